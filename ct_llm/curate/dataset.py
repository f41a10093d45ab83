"""`ct-llm curate`: a tenant's new feedback -> an immutable, explainable dataset version.

The pipeline, in one streaming pass over the store and one over the staged rows:

    window (events since the parent version)  -> quarantine bursty users (guards.find_bursts)
    events grouped by prompt context (events.stream_groups)
      -> pairing rules (rules.apply_rules) -> PII scrub -> validation -> exact + near dedup
      -> staging Parquet per kind (with who made each row and its conversation)
    golden examples (imported now or before) go through the same scrub/validation/dedup first
    per-user cap over the staged rows (guards.user_cap) -> split by conversation -> final files
    replay: a sample of the parent version's training rows, deduplicated against the new ones
    manifest.json: sha256 of every file, counts, drops per reason, rules and config, event range

Memory holds one context group, one dedup batch, the dedup key sets (ints) and per-user
counters, never the dataset. Everything runs in a temporary folder renamed into place at the
end (`atomic_directory`); `--dry-run` runs the same code into a folder it then deletes.
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import hashlib
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ct_llm.atomic import atomic_directory, atomic_write_json, sha256_file
from ct_llm.config import CurateConfig
from ct_llm.curate import events as ev
from ct_llm.curate.dedup import Deduper
from ct_llm.curate.files import CONV, USER, Staging, VersionWriter
from ct_llm.curate.golden import GoldenRow, import_golden, load_golden
from ct_llm.curate.guards import find_bursts, is_trusted, user_cap
from ct_llm.curate.layout import KINDS, split_path
from ct_llm.curate.rules import Drops, Example, RuleConfig, apply_rules, ignored_kinds
from ct_llm.curate.scrub_rows import RowScrubber
from ct_llm.curate.split import heldout_bucket
from ct_llm.curate.validate import Validator
from ct_llm.errors import NoDataError
from ct_llm.store.db import get_engine, session_scope
from ct_llm.store.models import DatasetVersion
from ct_llm.workspace import Workspace

_DEDUP_BATCH = 2000
ANONYMOUS = "<anonymous>"  # feedback without a user id is capped as one user
Progress = Callable[[int], None]


@dataclass
class CurateResult:
    version: str | None
    path: Path | None
    manifest: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        keys = ("counts", "drops", "pii_scrubbed", "source_events", "quarantined", "user_cap")
        return {
            "version": self.version,
            "path": str(self.path) if self.path else None,
            **{k: self.manifest[k] for k in keys},
        }


def latest_dataset(session: Session, tenant: str) -> DatasetVersion | None:
    return session.scalars(
        select(DatasetVersion)
        .where(DatasetVersion.tenant == tenant)
        .order_by(DatasetVersion.created_at.desc(), DatasetVersion.id.desc())
        .limit(1)
    ).first()


def _next_version(session: Session, tenant: str) -> str:
    count = session.scalar(
        select(func.count()).select_from(DatasetVersion).where(DatasetVersion.tenant == tenant)
    )
    return f"{tenant}-data-v{(count or 0) + 1}"


def _dedup_item(kind: str, row: dict[str, Any]) -> tuple[str, list[str], list[str]]:
    """(namespace, answers, prompt) for the deduper: a near duplicate is near in its answers
    *and* its prompt. System messages are left out: the gateway adds the same one to every
    request, and it says nothing about which question was asked."""
    namespace = f"kto:{row['label']}" if kind == "kto" else kind
    cols = ("chosen", "rejected") if kind == "dpo" else ("completion",)
    answers = [m["content"] for c in cols for m in row[c]]
    prompt = [m["content"] for m in row["prompt"] if m["role"] != "system"]
    return namespace, answers, prompt


class _Curation:
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
        self.exempt_rows = 0
        self._pending: list[tuple[str, dict[str, Any], str | None, str | None, str]] = []

    # -- stage: rules, scrub, validate, dedup, stage ---------------------------------------
    def owner(self, ex: Example) -> str | None:
        """Whose row this is for the cap: None (exempt) when a trusted user vouches for it."""
        patterns = self.cfg.guards.trusted_users
        if patterns and any(is_trusted(u, patterns) for u in ex.users):
            return None
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
            if user is None:
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
            keep = [r for i, r in enumerate(rows) if _sample(self.cfg.seed, name, i) < take]
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
                    ok = user is None or kept[user] < cap
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
        total = sum(kept.values()) + self.exempt_rows
        top = kept.most_common(1)
        return {
            "max_user_share": g.max_user_share,
            "rows_per_user": cap,
            "rows_trimmed": trimmed,
            "largest_user_share": round(top[0][1] / total, 4) if top and total else 0.0,
        }

    def replay(
        self, parent_dir: Path | None, new_train: dict[str, int], out: VersionWriter
    ) -> dict:
        """Rows of the parent's training split, `replay.fraction` x the new training rows per
        kind, sampled with the seed; duplicates of new rows are left out."""
        info: dict[str, int] = {}
        if parent_dir is None or self.cfg.replay.fraction <= 0:
            return info
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
            dups = self.deduper.check_batch([_dedup_item(kind, r) for r in rows])
            fresh = [r for r, d in zip(rows, dups, strict=True) if d is None]
            out.write_rows(kind, "train", fresh)
            info[kind] = len(fresh)
        return info


def _sample(seed: int, name: str, i: int) -> float:
    digest = hashlib.sha256(f"{seed}:{name}:{i}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _pick(n: int, k: int, seed: int, salt: str) -> list[int]:
    """k of range(n), the same for the same (seed, salt): the k smallest hashes."""
    return sorted(sorted(range(n), key=lambda i: _sample(seed, salt, i))[: min(k, n)])


def _parent_dir(parent: DatasetVersion | None) -> Path | None:
    if parent is None:
        return None
    path = Path(parent.path)
    # Versions written before the Parquet layout have nothing to replay.
    return path if any(split_path(path, k, "train").is_file() for k in KINDS) else None


@contextlib.contextmanager
def _fewer_gc_passes() -> Iterator[None]:
    """Curation allocates millions of short-lived objects while caches and dedup sets stay
    alive; with CPython's default thresholds the cyclic collector then rescans the survivors
    over and over, which measured ~25% of curation's time. It creates no reference cycles worth
    collecting early, so collect 70x less often for the run and restore the settings after."""
    saved = gc.get_threshold()
    gc.set_threshold(50_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*saved)


def curate_dataset(
    ws: Workspace,
    tenant: str,
    *,
    dry_run: bool = False,
    import_path: Path | None = None,
    on_progress: Progress | None = None,
) -> CurateResult:
    with _fewer_gc_passes():
        return _curate(ws, tenant, dry_run, import_path, on_progress)


def _curate(
    ws: Workspace,
    tenant: str,
    dry_run: bool,
    import_path: Path | None,
    on_progress: Progress | None,
) -> CurateResult:
    cfg = ws.config.curate
    golden = load_golden(ws.golden_dir / tenant)
    imported = None
    if import_path is not None:
        validator = Validator(max_turn_chars=cfg.max_turn_chars, control_tokens=cfg.control_tokens)
        with tempfile.TemporaryDirectory() as tmp:
            # A dry run keeps the import in a folder it then deletes; a real run stores it.
            where = Path(tmp) if dry_run else ws.golden_dir / tenant
            imported, _ = import_golden(import_path, where, validator)
            known = {name for name, _ in golden}
            golden += [f for f in load_golden(where) if f[0] not in known]

    with session_scope(ws.database_url) as session:
        parent = latest_dataset(session, tenant)
        version = _next_version(session, tenant)
    engine = get_engine(ws.database_url)
    with engine.connect() as conn:
        after = parent.max_event_seq if parent is not None and cfg.window == "new" else 0
        window = ev.Window(after, ev.max_seq(conn, tenant))
        g = cfg.guards
        bursts = find_bursts(
            ev.user_activity(conn, tenant, window),
            volume_factor=g.burst_volume_factor,
            min_events=g.burst_min_events,
            vote_z=g.burst_vote_z,
            min_votes=g.burst_min_votes,
            trusted=g.trusted_users,
        )
        final = ws.datasets_dir / version
        with _output_dir(final, dry_run) as tmp:
            run = _Curation(cfg, tmp)
            golden_used = run.golden(golden)
            stats = ev.StreamStats()
            summary = ev.summarise(conn, tenant, window)
            run.feedback(ev.stream_groups(conn, tenant, window, set(bursts), stats), on_progress)
            new_rows = sum(run.by_rule[r] for r in run.by_rule if r != "golden")
            if not dry_run and new_rows == 0 and imported is None:
                raise NoDataError(
                    f"nothing to curate for tenant '{tenant}': {summary.events} new feedback "
                    f"events since {parent.id if parent else 'the start'} gave no training "
                    f"examples (drops: {_drops(run, stats) or 'none'}); send edits, votes or "
                    "ratings through POST /v1/feedback, or import golden examples"
                )
            out = VersionWriter(tmp)
            cap_info = run.write_version(out)
            replayed = run.replay(
                _parent_dir(parent), {k: c["train"] for k, c in out.counts().items()}, out
            )
            out.close()
            manifest = _manifest(
                version, tenant, parent, cfg, window, summary, stats, run, out, cap_info, bursts
            )
            manifest["golden"] = golden_used
            manifest["replay"] = {"from": parent.id if replayed else None, "rows": replayed}
            manifest["files"] = {
                str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*.parquet"))
            }
            atomic_write_json(tmp / "manifest.json", manifest)
            manifest_sha = sha256_file(tmp / "manifest.json")
    if dry_run:
        return CurateResult(None, None, manifest)
    with session_scope(ws.database_url) as session:
        session.add(
            DatasetVersion(
                id=version,
                tenant=tenant,
                path=str(final),
                manifest_sha256=manifest_sha,
                counts=manifest["counts"],
                max_event_seq=window.upto_seq,
                parent=parent.id if parent else None,
            )
        )
    return CurateResult(version, final, manifest)


def _output_dir(final: Path, dry_run: bool):  # type: ignore[no-untyped-def]
    if dry_run:
        return _TempPath()
    return atomic_directory(final)


class _TempPath:
    def __enter__(self) -> Path:
        self._tmp = tempfile.TemporaryDirectory(prefix="ct-llm-curate-dry-")
        return Path(self._tmp.name)

    def __exit__(self, *exc: object) -> None:
        self._tmp.cleanup()


def _drops(run: _Curation, stats: ev.StreamStats) -> dict[str, int]:
    drops = dict(run.drops.counts)
    if stats.unjoined:
        drops["unknown_response"] = stats.unjoined
    return dict(sorted(drops.items()))


def _manifest(
    version: str,
    tenant: str,
    parent: DatasetVersion | None,
    cfg: CurateConfig,
    window: ev.Window,
    summary: ev.WindowSummary,
    stats: ev.StreamStats,
    run: _Curation,
    out: VersionWriter,
    cap_info: dict[str, Any],
    bursts: dict[str, str],
) -> dict[str, Any]:
    return {
        "version": version,
        "tenant": tenant,
        "parent": parent.id if parent else None,
        "created_at": datetime.now(timezone.utc).isoformat(),
        "rules": list(cfg.rules),
        "config": cfg.model_dump(),
        "counts": out.counts(),
        "rows_by_rule": dict(sorted(run.by_rule.items())),
        "drops": _drops(run, stats),
        "pii_scrubbed": dict(sorted(run.scrubber.counts.items())),
        "user_cap": cap_info,
        "quarantined": [
            {"user": u, "reason": why, "events": stats.skipped_users.get(u, 0)}
            for u, why in sorted(bursts.items())
        ],
        "source_events": {
            "window": {"after_seq": window.after_seq, "upto_seq": window.upto_seq},
            "count": summary.events,
            "first_seq": summary.first_seq,
            "last_seq": summary.last_seq,
        },
    }
