"""The one definition of a vote that may decide a rollout (feedback/votes.py). Pure."""

from __future__ import annotations

from ct_llm.feedback.votes import StoredVote, VoteCounts, count_votes, voter_of


def vote(rid: str, voter: str, value: bool, version: str = "v1") -> StoredVote:
    return StoredVote(version, rid, voter, "thumbs", value)


def test_the_latest_vote_of_a_voter_on_an_answer_counts_once() -> None:
    votes = [vote("r1", "user:a", True), vote("r1", "user:a", False), vote("r2", "user:a", True)]
    assert count_votes(votes) == {"v1": VoteCounts(thumbs=2, thumbs_down=1)}


def test_a_voter_counts_for_at_most_the_cap_per_version() -> None:
    votes = [vote(f"r{i}", "user:flood", False) for i in range(50)]
    votes += [vote("x", "user:b", True), vote("y", "user:flood", False, version="v2")]
    got = count_votes(votes, max_per_voter=20)
    assert got["v1"] == VoteCounts(thumbs=21, thumbs_down=20)
    assert got["v2"] == VoteCounts(thumbs=1, thumbs_down=1)  # the cap is per version


def test_the_voter_is_the_logged_user_a_reviewer_or_the_answer_itself() -> None:
    assert voter_of("r1", "alice", False, "mallory") == "user:alice"
    assert voter_of("r1", None, False, "mallory") == "response:r1"  # a claim names nobody
    assert voter_of("r1", "alice", True, "agent-anna") == "reviewer:agent-anna"
    # Invented user ids on an answer without a logged user: one vote.
    votes = [vote("r1", voter_of("r1", None, False, f"u{i}"), False) for i in range(30)]
    assert count_votes(votes) == {"v1": VoteCounts(thumbs=1, thumbs_down=1)}


def test_ratings_and_thumbs_of_one_voter_on_one_answer_both_count() -> None:
    votes = [vote("r1", "user:a", True), StoredVote("v1", "r1", "user:a", "rating", 4)]
    assert count_votes(votes)["v1"] == VoteCounts(1, 0, 1, 4.0, 16.0)
