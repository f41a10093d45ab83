"""prompt-context key on responses and feedback events, for curation's grouped scan

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 04:00:00
"""

import sqlalchemy as sa
from alembic import op

from ct_llm.feedback.context import context_hash

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BATCH = 1000


def _backfill(conn: sa.Connection, table: str, key: str, rows: list[tuple]) -> None:
    stmt = sa.text(f"UPDATE {table} SET context_hash = :h WHERE {key} = :k")
    for start in range(0, len(rows), _BATCH):
        conn.execute(stmt, [{"h": h, "k": k} for k, h in rows[start : start + _BATCH]])


def upgrade() -> None:
    with op.batch_alter_table("responses") as batch_op:
        batch_op.add_column(sa.Column("context_hash", sa.String(length=32), nullable=True))
    with op.batch_alter_table("feedback_events") as batch_op:
        batch_op.add_column(sa.Column("context_hash", sa.String(length=32), nullable=True))

    # Existing rows get the key the ingestion path now writes: the event's own messages, else
    # those of the response it is about.
    conn = op.get_bind()
    responses = sa.table(
        "responses", sa.column("id"), sa.column("tenant"), sa.column("messages", sa.JSON)
    )
    by_response: dict[tuple[str, str], str] = {}
    for rid, tenant, messages in conn.execute(
        sa.select(responses.c.id, responses.c.tenant, responses.c.messages)
    ):
        by_response[(tenant, rid)] = context_hash(messages or [])
    _backfill(conn, "responses", "id", [(rid, h) for (_, rid), h in by_response.items()])

    events = sa.table(
        "feedback_events",
        sa.column("seq"),
        sa.column("tenant"),
        sa.column("response_id"),
        sa.column("messages", sa.JSON),
    )
    updates = []
    for seq, tenant, rid, messages in conn.execute(
        sa.select(events.c.seq, events.c.tenant, events.c.response_id, events.c.messages)
    ):
        h = context_hash(messages) if messages else by_response.get((tenant, rid))
        if h is not None:
            updates.append((seq, h))
    _backfill(conn, "feedback_events", "seq", updates)

    with op.batch_alter_table("feedback_events") as batch_op:
        batch_op.create_index(
            "ix_feedback_tenant_context_seq", ["tenant", "context_hash", "seq"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("feedback_events") as batch_op:
        batch_op.drop_index("ix_feedback_tenant_context_seq")
        batch_op.drop_column("context_hash")
    with op.batch_alter_table("responses") as batch_op:
        batch_op.drop_column("context_hash")
