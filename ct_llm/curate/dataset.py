"""`ct-llm curate`: read a tenant's feedback, apply the pairing rules, split, and write an
immutable dataset version `datasets/<version>/` with a manifest that explains it."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ct_llm.atomic import atomic_directory, atomic_write_json, sha256_file
from ct_llm.curate.pairing import (
    CurationStats,
    FeedbackRecord,
    build_preference_pairs,
    build_unpaired_examples,
)
from ct_llm.curate.pii import scrub
from ct_llm.curate.split import split_by_conversation
from ct_llm.errors import NoDataError
from ct_llm.store.db import session_scope
from ct_llm.store.models import ChatResponse, DatasetVersion, FeedbackEvent
from ct_llm.workspace import Workspace

RULES = [
    "pii->typed placeholders (prompts, answers, edits, comments)",
    "edit->dpo_pair",
    "thumbs->kto_example (latest vote per response wins)",
]


@dataclass
class CurateResult:
    version: str | None
    path: Path | None
    manifest: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "path": str(self.path) if self.path else None,
            **{k: self.manifest[k] for k in ("counts", "drops", "pii_scrubbed", "source_events")},
        }


def load_feedback_records(session: Session, tenant: str) -> tuple[list[FeedbackRecord], int]:
    """Every feedback event of the tenant joined with the answer it is about. Returns the records
    and the number of events that could not be joined (their answer is unknown)."""
    rows = session.execute(
        select(FeedbackEvent, ChatResponse)
        .outerjoin(
            ChatResponse,
            (ChatResponse.id == FeedbackEvent.response_id) & (ChatResponse.tenant == tenant),
        )
        .where(FeedbackEvent.tenant == tenant)
        .order_by(FeedbackEvent.seq)
    ).all()
    records, unjoined = [], 0
    for ev, resp in rows:
        messages = ev.messages if ev.messages is not None else (resp.messages if resp else None)
        response = ev.response if ev.response is not None else (resp.response if resp else None)
        if messages is None or response is None:
            unjoined += 1
            continue
        # The gateway logs the system prompt it added, so the training prompt is exactly what
        # the model saw.
        records.append(
            FeedbackRecord(
                seq=ev.seq,
                event_id=ev.event_id,
                kind=ev.kind,
                value=ev.value,
                messages=messages,
                response=response,
                conversation_id=ev.conversation_id or (resp.conversation_id if resp else None),
                response_id=ev.response_id,
                user_id=ev.user_id,
            )
        )
    return records, unjoined


def _scrub_text(text: str, counts: dict[str, int]) -> str:
    clean, found = scrub(text)
    for kind, n in found.items():
        counts[kind] = counts.get(kind, 0) + n
    return clean


def scrub_records(records: list[FeedbackRecord]) -> tuple[list[FeedbackRecord], dict[str, int]]:
    """Every text a record carries with PII replaced by typed placeholders, and the counts per
    type. Runs before pairing, so nothing downstream (pairs, hashes, files) ever sees the PII."""
    counts: dict[str, int] = {}
    out = []
    for r in records:
        messages = [
            {**m, "content": _scrub_text(m["content"], counts)}
            if isinstance(m.get("content"), str)
            else m
            for m in r.messages
        ]
        # Edits and comments are user text; a regenerate value is a response id, not text.
        is_text = r.kind in ("edit", "comment") and isinstance(r.value, str)
        value = _scrub_text(r.value, counts) if is_text else r.value
        out.append(
            replace(r, messages=messages, response=_scrub_text(r.response, counts), value=value)
        )
    return out, counts


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def _next_version(session: Session, tenant: str) -> tuple[str, str | None]:
    count = session.scalar(
        select(func.count()).select_from(DatasetVersion).where(DatasetVersion.tenant == tenant)
    )
    parent = session.scalars(
        select(DatasetVersion.id)
        .where(DatasetVersion.tenant == tenant)
        .order_by(DatasetVersion.created_at.desc())
        .limit(1)
    ).first()
    return f"{tenant}-data-v{(count or 0) + 1}", parent


def curate_dataset(ws: Workspace, tenant: str, *, dry_run: bool = False) -> CurateResult:
    cfg = ws.config.curate
    with session_scope(ws.database_url) as session:
        records, unjoined = load_feedback_records(session, tenant)
        records, pii_counts = scrub_records(records)
        stats = CurationStats()
        if unjoined:
            stats.drops["unknown_response"] = unjoined
        pairs = build_preference_pairs(records, stats)
        unpaired = build_unpaired_examples(records, stats)
        dpo_train, dpo_heldout = split_by_conversation(pairs, cfg.heldout_fraction, cfg.seed)
        kto_train, kto_heldout = split_by_conversation(unpaired, cfg.heldout_fraction, cfg.seed)
        splits = {
            "dpo_train": dpo_train,
            "dpo_heldout": dpo_heldout,
            "kto_train": kto_train,
            "kto_heldout": kto_heldout,
        }
        version, parent = _next_version(session, tenant)
        seqs = [r.seq for r in records]
        manifest: dict[str, Any] = {
            "version": version,
            "tenant": tenant,
            "parent": parent,
            "created_at": datetime.now(timezone.utc).isoformat(),
            "rules": RULES,
            "config": cfg.model_dump(),
            "counts": {name: len(rows) for name, rows in splits.items()},
            "drops": stats.drops,
            "pii_scrubbed": dict(sorted(pii_counts.items())),
            "source_events": {
                "count": len(records) + unjoined,
                "first_seq": min(seqs) if seqs else None,
                "last_seq": max(seqs) if seqs else None,
            },
        }
        if dry_run:
            return CurateResult(None, None, manifest)
        if not dpo_train and not kto_train:
            raise NoDataError(
                f"nothing to curate for tenant '{tenant}': {manifest['source_events']['count']} "
                f"feedback events gave no training examples (drops: {stats.drops or 'none'}); "
                "send edits or thumbs through POST /v1/feedback first"
            )
        final = ws.datasets_dir / version
        with atomic_directory(final) as tmp:
            for name, rows in splits.items():
                _write_jsonl(tmp / f"{name}.jsonl", rows)
            manifest["files"] = {
                f"{name}.jsonl": sha256_file(tmp / f"{name}.jsonl") for name in splits
            }
            atomic_write_json(tmp / "manifest.json", manifest)
            manifest_sha = sha256_file(tmp / "manifest.json")
        session.add(
            DatasetVersion(
                id=version,
                tenant=tenant,
                path=str(final),
                manifest_sha256=manifest_sha,
                counts=manifest["counts"],
                max_event_seq=manifest["source_events"]["last_seq"] or 0,
                parent=parent,
            )
        )
    return CurateResult(version, final, manifest)


def latest_dataset(session: Session, tenant: str) -> DatasetVersion | None:
    return session.scalars(
        select(DatasetVersion)
        .where(DatasetVersion.tenant == tenant)
        .order_by(DatasetVersion.created_at.desc())
        .limit(1)
    ).first()
