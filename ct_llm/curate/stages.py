"""The stages of one curation run over shared state (the dedup index, drop counts, per-user
row counts): rules -> scrub -> validate -> dedup -> staging, then cap -> split -> final files,
then replay. `dataset.py` drives them and writes the version."""

from __future__ import annotations

import bisect
import hashlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ct_llm.config import CurateConfig
from ct_llm.curate.dedup import Deduper
from ct_llm.curate.files import CONV, USER, Staging, VersionWriter
from ct_llm.curate.golden import GoldenRow
from ct_llm.curate.guards import is_reviewer, user_cap
from ct_llm.curate.layout import KINDS, split_path
from ct_llm.curate.rules import Drops, Example, RuleConfig, apply_rules, ignored_kinds
from ct_llm.curate.scrub_rows import RowScrubber
from ct_llm.curate.split import bucket, heldout_bucket
from ct_llm.curate.validate import Validator

_DEDUP_BATCH = 2000
ANONYMOUS = "<anonymous>"  # feedback without a user id is capped as one user
Progress = Callable[[int], None]


def _dedup_item(kind: str, row: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    """(namespace, answers, prompt) for the deduper: a near duplicate is near in its answers
    *and* its prompt. System messages are left out: the gateway adds the same one to every
    request, and it says nothing about which question was asked."""
    namespace = f"kto:{row['label']}" if kind == "kto" else kind
    cols = ("chosen", "rejected") if kind == "dpo" else ("completion",)
    answers = [m["content"] for c in cols for m in row[c]]
    prompt = [m["content"] for m in row["prompt"] if m["role"] != "system"]
    return namespace, answers, prompt


def prompt_key(row: dict[str, Any]) -> int:
    """64-bit key of a row's question (its non-system messages, whitespace and case folded):
    which rows answer the same prompt, whatever the answers."""
    text = "\x1f".join(
        " ".join(m["content"].split()).casefold() for m in row["prompt"] if m["role"] != "system"
    )
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


class Curation:
    """One run's state: the stages above, sharing the dedup index and the drop counts."""

    def __init__(self, cfg: CurateConfig, root: Path) -> None:
        self.cfg = cfg
        self.rule_cfg = RuleConfig(
            rules=frozenset(cfg.rules),
            rating_margin=cfg.rating_margin,
            sft_min_rating=cfg.sft_min_rating,
            thumbs_pair_min_users=cfg.guards.thumbs_pair_min_users,
        )
        self.validator = Validator(
            max_turn_chars=cfg.max_turn_chars, control_tokens=cfg.control_tokens
        )
        self.scrubber = RowScrubber()
        # 32 permutations suffice because a match needs prompt and answers both near (see
        # dedup.py): two independent band matches make unrelated rows collide far more rarely.
        self.deduper = Deduper(near_dup=cfg.near_dup, num_perm=32, seed=cfg.seed)
        self.drops = Drops()
        self.by_rule: Counter[str] = Counter()
        self.staging = Staging(root)
        self.rows_per_user: Counter[str] = Counter()
        """Rows per capped user (reviewers and exempt rows are counted in exempt_rows)."""
        self.exempt_rows = 0
        # Prompts the new feedback speaks about: replay leaves the parent's rows on them out.
        self.new_prompts: set[int] = set()
        self._pending: list[tuple[str, dict[str, Any], str | None, str | None, str]] = []

    # -- stage: rules, scrub, validate, dedup, stage ---------------------------------------
    def owner(self, ex: Example) -> str | None:
        """Whose row this is: a reviewer who vouches for it (exempt from the cap), else its first
        named user; None for rows nobody is capped for (golden rows; anonymous feedback when
        `cap_anonymous` is off)."""
        reviewers = [u for u in ex.users if is_reviewer(u)]
        if reviewers:
            return min(reviewers)
        named = [u for u in ex.users if not u.startswith("anonymous:")]
        if named:
            return min(named)
        return ANONYMOUS if self.cfg.guards.cap_anonymous else None

    def offer(
        self, kind: str, row: dict[str, Any], user: str | None, conv: str | None, rule: str
    ) -> None:
        row = self.scrubber.row(row)
        reason = self.validator.check(kind, row)
        if reason:
            self.drops.add(reason)
            return
        self._pending.append((kind, row, user, conv, rule))
        if len(self._pending) >= _DEDUP_BATCH:
            self.flush()

    def flush(self) -> None:
        items = [_dedup_item(k, r) for k, r, *_ in self._pending]
        for (kind, row, user, conv, rule), dup in zip(
            self._pending, self.deduper.check_batch(items), strict=True
        ):
            if dup:
                self.drops.add(dup)
                continue
            self.by_rule[rule] += 1
            if rule != "golden":
                self.new_prompts.add(prompt_key(row))
            if user is None or is_reviewer(user):
                self.exempt_rows += 1
            else:
                self.rows_per_user[user] += 1
            self.staging.add(kind, row, user, conv)
        self._pending = []

    def feedback(self, groups: Any, on_progress: Progress | None) -> None:
        events = 0
        for n, group in enumerate(groups, 1):
            events += len(group)
            self.drops.add("comment_not_used", ignored_kinds(group))
            for ex in apply_rules(group, self.rule_cfg, self.drops):
                self.offer(ex.kind, ex.row, self.owner(ex), ex.conversation, ex.rule)
            if on_progress and n % 20_000 == 0:
                on_progress(events)
        self.flush()

    def golden(self, files: list[tuple[str, list[GoldenRow]]]) -> dict[str, int]:
        take = self.cfg.replay.golden_fraction
        used: dict[str, int] = {}
        for name, rows in files:
            keep = [r for i, r in enumerate(rows) if bucket(f"{name}:{i}", self.cfg.seed) < take]
            for kind, row in keep:
                # Training only (no conversation), exempt from the cap (no user).
                self.offer(kind, row, None, None, "golden")
            used[name] = len(keep)
        self.flush()
        return used

    # -- finish: cap, split, replay ----------------------------------------------------------
    def write_version(self, out: VersionWriter) -> dict[str, Any]:
        self.flush()
        self.staging.close()
        g = self.cfg.guards
        cap = user_cap(self.rows_per_user, self.exempt_rows, g.max_user_share, g.min_rows_per_user)
        kept: Counter[str] = Counter()
        trimmed = 0
        last: list[Any] = [None, False]  # rows of one conversation are adjacent: a 1-entry cache

        def is_held_out(conv: str | None) -> bool:
            if conv is None:
                return False  # no conversation (golden rows): training only
            if conv != last[0]:
                last[:] = [conv, heldout_bucket(conv, self.cfg.seed) < self.cfg.heldout_fraction]
            return bool(last[1])

        for kind in KINDS:
            for batch in self.staging.batches(kind):
                table = pa.Table.from_batches([batch])
                keep, test = [], []
                for user, conv in zip(
                    table.column(USER).to_pylist(), table.column(CONV).to_pylist(), strict=True
                ):
                    ok = user is None or is_reviewer(user) or kept[user] < cap
                    if ok and user is not None:
                        kept[user] += 1
                    trimmed += not ok
                    keep.append(ok)
                    test.append(is_held_out(conv))
                keep_a, test_a = pa.array(keep), pa.array(test)
                out.write(kind, "train", table.filter(pc.and_not(keep_a, test_a)))
                out.write(kind, "test", table.filter(pc.and_(keep_a, test_a)))
        self.drops.add("user_cap", trimmed)
        self.staging.remove()
        # Shares are of all rows, and reviewers count: the figure says how much of the version
        # one identity made, whether or not the cap applied to it. `kept` has every named row
        # (reviewers' too); exempt_rows has the reviewers' and the unnamed ones.
        reviewer_rows = sum(n for u, n in kept.items() if is_reviewer(u))
        total = sum(kept.values()) + self.exempt_rows - reviewer_rows
        ranked = kept.most_common()
        capped = [n for u, n in ranked if not is_reviewer(u)]

        def share(n: int) -> float:
            return round(n / total, 4) if total else 0.0

        return {
            "max_user_share": g.max_user_share,
            "rows_per_user": cap,
            "rows_trimmed": trimmed,
            "largest_user_share": share(ranked[0][1]) if ranked else 0.0,
            "largest_user_is_reviewer": bool(ranked) and is_reviewer(ranked[0][0]),
            "largest_capped_user_share": share(capped[0]) if capped else 0.0,
            "reviewer_rows": reviewer_rows,
        }

    def replay(
        self, parent_dir: Path | None, new_train: dict[str, int], out: VersionWriter
    ) -> tuple[dict[str, int], int]:
        """Rows of the parent's training split, `replay.fraction` x the new training rows per
        kind, sampled with the seed. Left out: duplicates of new rows, and rows on a prompt the
        new feedback speaks about - the newer feedback is the current preference there (a
        policy changed: last version's "60 days" chosen answer is this version's rejected
        one, and replaying it would teach both). Returns (rows per kind, rows superseded)."""
        info: dict[str, int] = {}
        superseded = 0
        if parent_dir is None or self.cfg.replay.fraction <= 0:
            return info, superseded
        import pyarrow.parquet as pq

        for kind in KINDS:
            path = split_path(parent_dir, kind, "train")
            want = round(self.cfg.replay.fraction * new_train.get(kind, 0))
            if not path.is_file() or want <= 0:
                continue
            file = pq.ParquetFile(path)
            picked = _pick(file.metadata.num_rows, want, self.cfg.seed, parent_dir.name)
            rows, start = [], 0
            for batch in file.iter_batches(batch_size=4096):
                end = start + batch.num_rows
                lo, hi = bisect.bisect_left(picked, start), bisect.bisect_left(picked, end)
                if hi > lo:
                    rows += batch.take(pa.array([i - start for i in picked[lo:hi]])).to_pylist()
                start = end
            current = [r for r in rows if prompt_key(r) not in self.new_prompts]
            superseded += len(rows) - len(current)
            dups = self.deduper.check_batch([_dedup_item(kind, r) for r in current])
            fresh = [r for r, d in zip(current, dups, strict=True) if d is None]
            out.write_rows(kind, "train", fresh)
            info[kind] = len(fresh)
        return info, superseded


def _pick(n: int, k: int, seed: int, salt: str) -> list[int]:
    """k of range(n), the same for the same (seed, salt): the k smallest hashes."""
    return sorted(sorted(range(n), key=lambda i: bucket(f"{salt}:{i}", seed))[: min(k, n)])
