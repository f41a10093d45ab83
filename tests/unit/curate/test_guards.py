"""Anti-poisoning guards: the per-user cap and burst quarantine."""

from __future__ import annotations

import random

from ct_llm.curate.guards import (
    UserActivity,
    curation_user,
    find_bursts,
    is_reviewer,
    user_cap,
)

BURSTS = {"volume_factor": 10.0, "min_events": 50, "vote_z": 5.0, "min_votes": 30}


def capped_shares(counts: dict[str, int], exempt: int, cap: int) -> dict[str, float]:
    kept = {u: min(n, cap) for u, n in counts.items()}
    total = sum(kept.values()) + exempt
    return {u: k / total for u, k in kept.items()}


def test_cap_holds_every_user_under_the_share_after_trimming():
    rng = random.Random(0)
    counts = {f"u{i}": rng.randint(1, 8) for i in range(2000)}
    counts["attacker"] = 4000  # ~30% of the rows
    cap = user_cap(counts, exempt_rows=0, share=0.02, floor=1)
    shares = capped_shares(counts, 0, cap)
    assert shares["attacker"] <= 0.02
    assert max(shares.values()) <= 0.02
    assert cap >= 8  # ordinary users keep everything
    assert user_cap(counts, 0, 0.02, floor=1) == cap  # deterministic


def test_cap_is_the_largest_that_holds():
    counts = {"a": 100, "b": 100, **{f"u{i}": 1 for i in range(100)}}
    cap = user_cap(counts, exempt_rows=0, share=0.1, floor=0)
    assert max(capped_shares(counts, 0, cap).values()) <= 0.1
    assert max(capped_shares(counts, 0, cap + 1).values()) > 0.1


def test_cap_never_below_the_floor_and_exempt_rows_count():
    assert user_cap({"a": 5, "b": 5}, exempt_rows=0, share=0.02, floor=1) == 1
    assert user_cap({"a": 5}, exempt_rows=1000, share=0.02, floor=1) == 5
    assert user_cap({}, exempt_rows=0, share=0.02, floor=3) == 3


def test_volume_burst_is_quarantined_and_reviewers_are_not():
    activity = {f"u{i}": UserActivity(events=5) for i in range(100)}
    activity["flood"] = UserActivity(events=400)
    activity[curation_user("agent-1", True, "ctk_abcd1234")] = UserActivity(events=400)
    out = find_bursts(activity, **BURSTS)
    assert list(out) == ["flood"] and out["flood"].startswith("volume")


def test_small_heavy_users_are_not_a_burst():
    activity = {f"u{i}": UserActivity(events=5) for i in range(100)}
    activity["keen"] = UserActivity(events=45)  # 9x the median but under min_events
    assert find_bursts(activity, **BURSTS) == {}


def test_one_sided_voting_is_quarantined_but_an_opinionated_user_is_not():
    activity = {f"u{i}": UserActivity(events=40, thumbs=40, thumbs_down=12) for i in range(50)}
    activity["downvoter"] = UserActivity(events=40, thumbs=40, thumbs_down=40)
    activity["grumpy"] = UserActivity(events=40, thumbs=40, thumbs_down=20)  # 50% vs 30%
    activity["few"] = UserActivity(events=10, thumbs=10, thumbs_down=10)  # under min_votes
    out = find_bursts(activity, **BURSTS)
    assert list(out) == ["downvoter"] and out["downvoter"].startswith("vote pattern")


def test_burst_false_alarms_on_ordinary_users_are_rare():
    rng = random.Random(1)
    activity = {}
    for i in range(2000):
        n = rng.randint(30, 60)
        downs = sum(rng.random() < 0.3 for _ in range(n))
        activity[f"u{i}"] = UserActivity(events=n + rng.randint(0, 5), thumbs=n, thumbs_down=downs)
    assert find_bursts(activity, **BURSTS) == {}


def test_only_a_reviewer_key_makes_a_reviewer_whatever_the_user_id_says():
    assert curation_user("agent-7", True, "ctk_abcd1234") == "reviewer:agent-7"
    assert curation_user(None, True, "ctk_abcd1234") == "reviewer:ctk_abcd1234"
    assert is_reviewer(curation_user("agent-7", True, None))
    # An ingest key's claims: kept as claims, and a claim dressed as a reviewer is renamed.
    assert curation_user("agent-7", False, "ctk_abcd1234") == "agent-7"
    assert not is_reviewer(curation_user("reviewer:agent-7", False, "ctk_abcd1234"))
    assert curation_user(None, False, "ctk_abcd1234") is None
    assert not is_reviewer(None)
