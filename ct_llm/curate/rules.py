"""Pairing rules: the feedback about one prompt context -> training examples. Pure functions.

Curation streams a tenant's events grouped by prompt context (the exact messages the model saw,
`feedback/context.py`), so every answer in a group is an alternative answer to the same prompt:
the first answer and its regenerations, or the same question asked again. Each rule reads a group
and emits examples in TRL's conversational format:

- `edit_pair`:       an edit -> DPO pair: the corrected text is `chosen`, the served answer
                     `rejected`. A user's latest edit of an answer counts.
- `thumbs_pair`:     an answer voted up and another voted down in the same context -> DPO pair.
                     Each answer is in at most one such pair; strongest support first.
- `rating_pair`:     two answers whose mean ratings differ by >= `rating_margin` -> DPO pair
                     (highest with lowest, then inwards).
- `regenerate_pair`: (opt-in) a regenerate event naming the answer the user kept -> DPO pair,
                     kept = chosen, regenerated = rejected. Implicit, so off by default.
- `thumbs_kto`:      a voted answer not used by `thumbs_pair` -> KTO example (label = the vote).
- `sft_top_rated`:   an answer with mean rating >= `sft_min_rating` -> SFT example.
- `sft_edit`:        an edit -> SFT example (the corrected text is the completion).

Conflicting votes on one answer: each user's latest vote counts (a corrected mis-click is
believed); then the majority of users decides; a tie gives the answer no label. An answer's
"support" is the set of users on the winning side; `thumbs_pair_min_users` asks that many
distinct users on each side of a thumbs pair. Votes without a user id count as one user each.

Every example carries the users whose feedback made it (for the per-user cap) and the
conversation it came from (for the split).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Messages = list[dict[str, str]]


@dataclass(slots=True)
class FeedbackRecord:
    """One feedback event joined with the answer it is about. (Not frozen: a frozen dataclass's
    __init__ costs several times more, and curation builds one per event.)"""

    seq: int
    event_id: str
    kind: str
    value: Any
    messages: Messages
    response: str
    conversation_id: str | None = None
    response_id: str | None = None
    user_id: str | None = None

    @property
    def user(self) -> str:
        return self.user_id if self.user_id is not None else f"anonymous:{self.event_id}"

    @property
    def answer_key(self) -> str:
        """Which answer the event is about: its response id, else the answer text itself."""
        return self.response_id if self.response_id is not None else f"text:{self.response}"


@dataclass(slots=True)
class Example:
    kind: str  # dpo | kto | sft
    row: dict[str, Any]
    rule: str
    users: tuple[str, ...]
    conversation: str


@dataclass
class RuleConfig:
    rules: frozenset[str]
    rating_margin: float = 2
    sft_min_rating: float = 5
    thumbs_pair_min_users: int = 1


@dataclass
class Drops:
    """Why events or examples did not become training rows, counted per reason."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str, n: int = 1) -> None:
        if n:
            self.counts[reason] = self.counts.get(reason, 0) + n


@dataclass
class _Answer:
    text: str
    conversation: str
    up: set[str] = field(default_factory=set)
    down: set[str] = field(default_factory=set)
    ratings: dict[str, int] = field(default_factory=dict)
    label: bool | None = None
    """The majority of users' latest votes; None on a tie or without votes."""
    support: set[str] = field(default_factory=set)
    """The users on the winning side."""

    def decide(self) -> None:
        if len(self.up) != len(self.down):
            self.label = len(self.up) > len(self.down)
            self.support = self.up if self.label else self.down

    @property
    def mean_rating(self) -> float:
        return sum(self.ratings.values()) / len(self.ratings)


def _prompt(messages: Messages) -> Messages:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def _assistant(text: str) -> Messages:
    return [{"role": "assistant", "content": text}]


def _conversation(rec: FeedbackRecord) -> str:
    return rec.conversation_id or rec.response_id or rec.event_id


def _answers(group: list[FeedbackRecord], drops: Drops) -> dict[str, _Answer]:
    """Each answer of the group with every user's latest vote and rating on it."""
    answers: dict[str, _Answer] = {}
    votes: dict[tuple[str, str], bool] = {}
    for rec in group:  # in event order: later votes overwrite earlier ones
        key = rec.answer_key
        ans = answers.get(key)
        if ans is None:
            ans = answers[key] = _Answer(rec.response, _conversation(rec))
        if rec.kind == "thumbs" and isinstance(rec.value, bool):
            if (key, rec.user) in votes:
                drops.add("vote_superseded_by_same_user")
            votes[(key, rec.user)] = rec.value
        elif rec.kind == "rating" and isinstance(rec.value, int):
            if rec.user in ans.ratings:
                drops.add("rating_superseded_by_same_user")
            ans.ratings[rec.user] = rec.value
    for (key, user), up in votes.items():
        (answers[key].up if up else answers[key].down).add(user)
    for ans in answers.values():
        ans.decide()
        if ans.up and ans.label is None:
            drops.add("votes_tied")
    return answers


def _pair(prompt: Messages, chosen: str, rejected: str) -> dict[str, Any]:
    return {"prompt": prompt, "chosen": _assistant(chosen), "rejected": _assistant(rejected)}


def _edits(group: list[FeedbackRecord], drops: Drops) -> list[FeedbackRecord]:
    """Each user's latest edit of each answer."""
    latest: dict[tuple[str, str], FeedbackRecord] = {}
    for rec in group:
        if rec.kind != "edit":
            continue
        if not isinstance(rec.value, str) or not rec.value.strip():
            drops.add("edit_empty")
            continue
        key = (rec.answer_key, rec.user)
        if key in latest:
            drops.add("edit_superseded_by_same_user")
        latest[key] = rec
    return list(latest.values())


def _thumbs_pairs(
    prompt: Messages, answers: dict[str, _Answer], cfg: RuleConfig
) -> tuple[list[Example], set[str]]:
    def strongest(label: bool) -> list[tuple[str, _Answer]]:
        side = [
            (k, a)
            for k, a in answers.items()
            if a.label is label and len(a.support) >= cfg.thumbs_pair_min_users
        ]
        return sorted(side, key=lambda ka: (-len(ka[1].support), ka[0]))

    out, used = [], set()
    for (ku, up), (kd, down) in zip(strongest(True), strongest(False), strict=False):
        users = tuple(sorted(up.support | down.support))
        out.append(
            Example("dpo", _pair(prompt, up.text, down.text), "thumbs_pair", users, up.conversation)
        )
        used.update((ku, kd))
    return out, used


def _rating_pairs(prompt: Messages, answers: dict[str, _Answer], cfg: RuleConfig) -> list[Example]:
    rated = sorted(
        ((k, a) for k, a in answers.items() if a.ratings),
        key=lambda ka: (-ka[1].mean_rating, ka[0]),
    )
    out = []
    while len(rated) >= 2:
        (_, hi), (_, lo) = rated.pop(0), rated.pop()
        if hi.mean_rating - lo.mean_rating < cfg.rating_margin:
            break  # the remaining answers are closer still
        users = tuple(sorted(set(hi.ratings) | set(lo.ratings)))
        out.append(
            Example("dpo", _pair(prompt, hi.text, lo.text), "rating_pair", users, hi.conversation)
        )
    return out


def _regenerate_pairs(
    prompt: Messages, group: list[FeedbackRecord], answers: dict[str, _Answer]
) -> list[Example]:
    out = []
    for rec in group:
        kept = answers.get(rec.value) if rec.kind == "regenerate" and rec.value else None
        if kept is not None and rec.value != rec.answer_key:
            out.append(
                Example(
                    "dpo",
                    _pair(prompt, kept.text, rec.response),
                    "regenerate_pair",
                    (rec.user,),
                    _conversation(rec),
                )
            )
    return out


def apply_rules(group: list[FeedbackRecord], cfg: RuleConfig, drops: Drops) -> list[Example]:
    """All examples the enabled rules make from one prompt context's events (in event order)."""
    if not group:
        return []
    prompt = _prompt(group[0].messages)
    answers = _answers(group, drops)
    on = cfg.rules
    out: list[Example] = []
    edits = _edits(group, drops) if {"edit_pair", "sft_edit"} & on else []
    for rec in edits:
        where = (rec.user,), _conversation(rec)
        if "edit_pair" in on:
            out.append(Example("dpo", _pair(prompt, rec.value, rec.response), "edit_pair", *where))
        if "sft_edit" in on:
            row = {"prompt": prompt, "completion": _assistant(rec.value)}
            out.append(Example("sft", row, "sft_edit", *where))
    used: set[str] = set()
    if "thumbs_pair" in on and len(answers) > 1:
        pairs, used = _thumbs_pairs(prompt, answers, cfg)
        out += pairs
    if "rating_pair" in on and len(answers) > 1:
        out += _rating_pairs(prompt, answers, cfg)
    if "regenerate_pair" in on:
        out += _regenerate_pairs(prompt, group, answers)
    for key, ans in answers.items():
        if "thumbs_kto" in on and ans.label is not None and key not in used:
            row = {"prompt": prompt, "completion": _assistant(ans.text), "label": ans.label}
            out.append(
                Example("kto", row, "thumbs_kto", tuple(sorted(ans.support)), ans.conversation)
            )
        if "sft_top_rated" in on and ans.ratings and ans.mean_rating >= cfg.sft_min_rating:
            row = {"prompt": prompt, "completion": _assistant(ans.text)}
            out.append(
                Example("sft", row, "sft_top_rated", tuple(sorted(ans.ratings)), ans.conversation)
            )
    return out


def ignored_kinds(group: Iterable[FeedbackRecord]) -> int:
    """Events no rule reads (comments): counted in the report, not dropped as bad."""
    return sum(1 for rec in group if rec.kind == "comment")
