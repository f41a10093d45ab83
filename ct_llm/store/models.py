"""SQLAlchemy 2 models. Every table that holds tenant data has a `tenant` column and every
query filters on it: a tenant never reads another tenant's rows.

Schema changes go through Alembic migrations in `store/migrations/versions/`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ChatResponse(Base):
    """One answer served through the gateway; feedback joins to it by `id` (the response_id)."""

    __tablename__ = "responses"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    conversation_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    messages: Mapped[list[Any]] = mapped_column(JSON)
    response: Mapped[str] = mapped_column(Text)
    context_hash: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """feedback/context.py: responses to the same messages share it (regenerations)."""
    model_version: Mapped[str] = mapped_column(String(256))
    latency_ms: Mapped[float] = mapped_column(Float)
    user_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    """The end user the answer was served to (OpenAI `user` or the user header): what feedback
    on this response is attributed to, whatever its body claims."""
    key_prefix: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """The key that sent the chat."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class FeedbackEvent(Base):
    __tablename__ = "feedback_events"
    __table_args__ = (
        UniqueConstraint("tenant", "event_id", name="uq_feedback_tenant_event"),
        # Curation walks this index: a tenant's events grouped by prompt context, in order.
        Index("ix_feedback_tenant_context_seq", "tenant", "context_hash", "seq"),
        # Monitoring, the canary's vote counts and the loop's signals read a tenant's events in
        # a `received_at` window: without it they scan every event of the tenant.
        Index("ix_feedback_tenant_received", "tenant", "received_at"),
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    event_id: Mapped[str] = mapped_column(String(256))
    payload_hash: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[Any] = mapped_column(JSON)
    response_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    conversation_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    user_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(256), nullable=True)
    messages: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    response: Mapped[str | None] = mapped_column(Text, nullable=True)
    context_hash: Mapped[str | None] = mapped_column(String(32), nullable=True)
    """Of the event's own messages, else of the response it is about (set at ingestion)."""
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    key_prefix: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """The key that sent the event."""
    trusted: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Sent with a `reviewer` key (support agents, annotators): exempt from the per-user cap and
    the quarantine. A property of the key, never of a user id."""


class DatasetVersion(Base):
    __tablename__ = "dataset_versions"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    path: Mapped[str] = mapped_column(Text)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    max_event_seq: Mapped[int] = mapped_column(Integer)
    parent: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ModelVersion(Base):
    """A servable model: the base (kind='base') or a LoRA adapter trained on a dataset version."""

    __tablename__ = "model_versions"
    id: Mapped[str] = mapped_column(String(256), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    number: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    dataset_version: Mapped[str | None] = mapped_column(
        ForeignKey("dataset_versions.id"), nullable=True
    )
    parent_version: Mapped[str | None] = mapped_column(String(256), nullable=True)
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Alias(Base):
    """`production` and `canary` per tenant; moving an alias is how traffic moves."""

    __tablename__ = "aliases"
    tenant: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(256))
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class EvalReport(Base):
    __tablename__ = "eval_reports"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tenant: Mapped[str] = mapped_column(String(64), index=True)
    candidate: Mapped[str] = mapped_column(String(256), index=True)
    baseline: Mapped[str] = mapped_column(String(256))
    path: Mapped[str] = mapped_column(Text)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LineageEvent(Base):
    """Append-only record of every decision and action: gate, deploy, promote, rollback, cycle."""

    __tablename__ = "lineage_events"
    __table_args__ = (Index("ix_lineage_tenant_version", "tenant", "model_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    tenant: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(256), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    outcome: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
