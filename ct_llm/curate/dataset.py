"""`ct-llm curate`: a tenant's new feedback -> an immutable, explainable dataset version.

The pipeline, in one streaming pass over the store and one over the staged rows:

    window (events since the parent version)  -> quarantine bursty users (guards.find_bursts)
    events grouped by prompt context (events.stream_groups)
      -> pairing rules (rules.apply_rules) -> PII scrub -> validation -> exact + near dedup
      -> staging Parquet per kind (with who made each row and its conversation)
    golden examples (imported now or before) go through the same scrub/validation/dedup first
    per-user cap over the staged rows (guards.user_cap) -> split by conversation -> final files
    replay: a sample of the parent version's training rows, deduplicated against the new ones,
            leaving out rows on prompts the new feedback answers again (superseded)
    manifest.json: sha256 of every file, counts, drops per reason, rules and config, event range

Memory holds one context group, one dedup batch, the dedup and prompt key sets (ints) and per-user
counters, never the dataset. Everything runs in a temporary folder renamed into place at the
end (`atomic_directory`), then the version's row is inserted; a run killed between the two is
cleared by the next (`_clear_leftovers`). `--dry-run` runs the same code into a folder it then
deletes.
"""

from __future__ import annotations

import contextlib
import gc
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ct_llm import leftovers
from ct_llm.atomic import atomic_directory, atomic_write_json, sha256_file
from ct_llm.config import CurateConfig
from ct_llm.curate import events as ev
from ct_llm.curate.files import VersionWriter
from ct_llm.curate.golden import import_golden, load_golden
from ct_llm.curate.guards import find_bursts
from ct_llm.curate.layout import KINDS, split_path
from ct_llm.curate.stages import Curation, Progress
from ct_llm.curate.validate import Validator
from ct_llm.errors import NoDataError
from ct_llm.loop.locks import job_lock
from ct_llm.store.db import get_engine, session_scope
from ct_llm.store.models import DatasetVersion
from ct_llm.workspace import Workspace


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
        if dry_run:  # writes nothing under datasets/
            return _curate(ws, tenant, dry_run, import_path, on_progress)
        # One curation per tenant at a time: two would pick the same version name, and the
        # clean-up below must not move a folder another run is about to register.
        with job_lock(ws.locks_dir, "curate", tenant):
            _clear_leftovers(ws, tenant)
            return _curate(ws, tenant, dry_run, import_path, on_progress)


def _clear_leftovers(ws: Workspace, tenant: str) -> None:
    """What a killed curation left (ct_llm/leftovers.py): its temporary folder is deleted; its
    complete folder without a row is quarantined to `datasets/.orphans/`.

    Quarantined rather than adopted: the store is a dataset's source of truth, and curating again
    rebuilds the version from the same events (and any newer ones) in minutes. Adopting would take
    the row's fields from a file found on disk, among them `max_event_seq`, where the next
    version's window starts: a wrong one would silently skip feedback. The folder stays under
    `.orphans/` for inspection."""
    names = leftovers.version_names(f"{tenant}-data")
    leftovers.remove_temporaries(ws.datasets_dir, names)
    with session_scope(ws.database_url) as session:
        query = select(DatasetVersion.id).where(DatasetVersion.tenant == tenant)
        known = set(session.scalars(query))
    for folder in leftovers.unregistered(ws.datasets_dir, names, known):
        leftovers.quarantine(folder, ws.datasets_dir, "complete, but no dataset version row")


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
        )
        final = ws.datasets_dir / version
        with _output_dir(final, dry_run) as tmp:
            run = Curation(cfg, tmp)
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
            replayed, superseded = run.replay(
                _parent_dir(parent), {k: c["train"] for k, c in out.counts().items()}, out
            )
            out.close()
            manifest = _manifest(
                version, tenant, parent, cfg, window, summary, stats, run, out, cap_info, bursts
            )
            manifest["golden"] = golden_used
            manifest["replay"] = {
                "from": parent.id if replayed else None,
                "rows": replayed,
                "superseded": superseded,
            }
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


@contextlib.contextmanager
def _output_dir(final: Path, dry_run: bool) -> Iterator[Path]:
    """The version's folder while it is written: renamed into place at the end, or, for a dry
    run, a temporary folder deleted at the end."""
    if dry_run:
        with tempfile.TemporaryDirectory(prefix="ct-llm-curate-dry-") as tmp:
            yield Path(tmp)
    else:
        with atomic_directory(final) as tmp:
            yield tmp


def _drops(run: Curation, stats: ev.StreamStats) -> dict[str, int]:
    drops = dict(run.drops.counts)
    for reason, n in stats.malformed.items():
        drops[reason] = drops.get(reason, 0) + n
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
    run: Curation,
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
