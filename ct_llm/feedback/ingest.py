"""Store a batch of feedback events for one tenant, idempotently.

Each item is validated on its own: a malformed event is rejected with its index and a reason and
the rest of the batch is stored. An `event_id` seen before with the same payload hash is a
duplicate (stored once, counted); with a different payload it is a conflict (rejected), so a
client bug that reuses ids cannot silently overwrite feedback.

Identity is not the body's to give (README "Trust model"). An event about a logged response
inherits that response's model version, conversation and end user; a body that names others is
rejected. Only a reviewer key's `user_id` is kept against the log: it names the reviewer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ct_llm.feedback.context import context_hash
from ct_llm.feedback.schema import (
    DEFAULT_LIMITS,
    FeedbackEventIn,
    TextLimits,
    parse_event,
    payload_hash,
)
from ct_llm.feedback.sender import Sender, as_sender
from ct_llm.store.models import ChatResponse, FeedbackEvent, utcnow

log = logging.getLogger("ct_llm.feedback.ingest")

# SQLite allows 999 bound parameters per statement on old builds; stay well under it.
_IN_CHUNK = 500


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    thumbs_down_by_version: dict[str, int] = field(default_factory=dict)
    """Accepted thumbs-down events per model version (for the canary-vs-production metrics)."""
    thumbs_up_by_version: dict[str, int] = field(default_factory=dict)
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    """invalid | conflict | unknown_response | contradicts_log: the metrics' label, the answer
    has the detail."""

    def reject(self, reason: str, index: int, event_id: str | None, error: str) -> None:
        self.rejected.append({"index": index, "event_id": event_id, "error": error})
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        """The API answer, exactly as the contract names it."""
        return {"accepted": self.accepted, "duplicates": self.duplicates, "rejected": self.rejected}


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def _raw_event_id(item: Any) -> str | None:
    """The event_id of an item that failed validation, if it has a usable one, for the answer."""
    if isinstance(item, dict) and isinstance(item.get("event_id"), str):
        return item["event_id"][:256]
    return None


def _unforeseen(e: Exception) -> str:
    detail = str(e)[:200]
    return f"event could not be validated ({type(e).__name__}{': ' + detail if detail else ''})"


def _known_hashes(session: Session, tenant: str, event_ids: Iterable[str]) -> dict[str, str]:
    ids = sorted(set(event_ids))
    out: dict[str, str] = {}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(FeedbackEvent.event_id, FeedbackEvent.payload_hash).where(
                FeedbackEvent.tenant == tenant, FeedbackEvent.event_id.in_(chunk)
            )
        )
        out.update({eid: h for eid, h in rows})
    return out


@dataclass(frozen=True)
class _Joined:
    """What an event inherits from the response it is about."""

    conversation_id: str | None
    model_version: str
    context_hash: str | None
    user_id: str | None


def _known_responses(
    session: Session, tenant: str, response_ids: Iterable[str]
) -> dict[str, _Joined]:
    """Only this tenant's responses: another tenant's response_id is as unknown as a made-up
    one."""
    ids = sorted(set(response_ids))
    out: dict[str, _Joined] = {}
    cols = (
        ChatResponse.id,
        ChatResponse.conversation_id,
        ChatResponse.model_version,
        ChatResponse.context_hash,
        ChatResponse.user_id,
    )
    for chunk in _chunks(ids):
        rows = session.execute(
            select(*cols).where(ChatResponse.tenant == tenant, ChatResponse.id.in_(chunk))
        )
        out.update({rid: _Joined(conv, mv, ctx, user) for rid, conv, mv, ctx, user in rows})
    return out


def contradiction(ev: FeedbackEventIn, joined: _Joined, sender: Sender) -> str | None:
    """Why the body contradicts what the gateway logged for its response, or None.

    A field left out is taken from the log; a field that repeats the log is fine. A reviewer's
    `user_id` is the reviewer (an agent correcting a customer's answer), so only for other keys
    must it be the end user the answer was served to."""
    claims = [("model_version", ev.model_version, joined.model_version)]
    claims.append(("conversation_id", ev.conversation_id, joined.conversation_id))
    if not sender.trusted and joined.user_id is not None:
        claims.append(("user_id", ev.user_id, joined.user_id))
    for name, claimed, logged in claims:
        if claimed is not None and claimed != logged:
            shown = "none" if logged is None else f"'{logged}'"
            return (
                f"{name} '{claimed}' contradicts the logged response {ev.response_id} "
                f"({name} {shown}); leave it out or send the logged value"
            )
    return None


def _row(
    sender: Sender, ev: FeedbackEventIn, digest: str, joined: _Joined | None
) -> dict[str, Any]:
    """The column values of one stored event (ORM attribute names, for a bulk INSERT)."""
    messages = [m.model_dump(exclude_none=True) for m in ev.messages] if ev.messages else None
    # An event that carries its own messages is about them; otherwise about its response's.
    inherited = joined.context_hash if joined else None
    ctx = context_hash(messages) if messages else inherited
    user = ev.user_id
    if joined is not None and not sender.trusted and joined.user_id is not None:
        user = joined.user_id
    now = utcnow()
    return {
        "tenant": sender.tenant,
        "event_id": ev.event_id,
        "payload_hash": digest,
        "kind": ev.kind,
        "value": ev.value,
        "response_id": ev.response_id,
        "conversation_id": ev.conversation_id or (joined.conversation_id if joined else None),
        "user_id": user,
        "model_version": ev.model_version or (joined.model_version if joined else None),
        "messages": messages,
        "response": ev.response,
        "context_hash": ctx,
        "metadata_": ev.metadata,
        "created_at": ev.created_at or now,
        "received_at": now,
        "key_prefix": sender.key_prefix,
        "trusted": sender.trusted,
    }


def stage_events(
    session: Session,
    sender: Sender | str,
    items: Sequence[Any],
    limits: TextLimits = DEFAULT_LIMITS,
) -> IngestResult:
    """Validate and classify `items` and insert the new ones in the caller's transaction.
    `sender`: who the key says sent them (a bare tenant: an untrusted sender without a key).

    Rows inserted earlier in the same transaction count as stored: that is how the group-commit
    writer classifies many requests in one transaction. Commit is the caller's.
    """
    sender = as_sender(sender)
    tenant = sender.tenant
    result = IngestResult()
    parsed: list[tuple[int, FeedbackEventIn, str]] = []
    for index, item in enumerate(items):
        try:
            ev = parse_event(item, limits)
            digest = payload_hash(ev)
        except ValueError as e:
            result.reject("invalid", index, _raw_event_id(item), str(e))
            continue
        except Exception as e:
            # A shape validation did not foresee: it costs this event, never the rest of the
            # batch (before, one such event turned the whole request into a 500).
            log.warning("event %d could not be validated", index, exc_info=True)
            result.reject("invalid", index, _raw_event_id(item), _unforeseen(e))
            continue
        parsed.append((index, ev, digest))

    stored = _known_hashes(session, tenant, (ev.event_id for _, ev, _ in parsed))
    responses = _known_responses(
        session, tenant, (ev.response_id for _, ev, _ in parsed if ev.response_id)
    )
    in_batch: dict[str, str] = {}
    rows: list[dict[str, Any]] = []
    for index, ev, digest in parsed:
        prior = in_batch.get(ev.event_id, stored.get(ev.event_id))
        if prior is not None:
            if prior == digest:
                result.duplicates += 1
            else:
                where = "earlier in this batch" if ev.event_id in in_batch else "before"
                result.reject(
                    "conflict",
                    index,
                    ev.event_id,
                    f"conflict: event_id was received {where} with a different payload; "
                    "a new event needs a new event_id",
                )
            continue
        joined = responses.get(ev.response_id) if ev.response_id else None
        if ev.response_id and joined is None:
            result.reject(
                "unknown_response", index, ev.event_id, f"unknown response_id '{ev.response_id}'"
            )
            continue
        lie = contradiction(ev, joined, sender) if joined is not None else None
        if lie is not None:
            result.reject("contradicts_log", index, ev.event_id, lie)
            continue
        row = _row(sender, ev, digest, joined)
        rows.append(row)
        in_batch[ev.event_id] = digest
        result.accepted += 1
        if ev.kind == "thumbs":
            version = row["model_version"] or "unknown"
            counts = result.thumbs_up_by_version if ev.value else result.thumbs_down_by_version
            counts[version] = counts.get(version, 0) + 1
    if rows:
        # One executemany instead of an ORM object per event: the same rows, a fraction of the
        # CPU, which is what bounds ingestion once commits are grouped.
        session.execute(insert(FeedbackEvent), rows)
    result.rejected.sort(key=lambda r: r["index"])
    return result


def ingest_events(
    session: Session,
    sender: Sender | str,
    items: Sequence[Any],
    limits: TextLimits = DEFAULT_LIMITS,
) -> IngestResult:
    """Validate and store `items` for `sender` in the caller's transaction.

    If a concurrent request stores one of the same event_ids between our read and our insert,
    the unique (tenant, event_id) constraint fires; the transaction is rolled back and the batch
    classified again, now seeing the other request's rows as duplicates or conflicts. Because
    of that rollback, call it in a transaction of its own.
    """
    try:
        return stage_events(session, sender, items, limits)
    except IntegrityError:
        session.rollback()
        return stage_events(session, sender, items, limits)
