"""who said it: the end user and key of each logged chat, the key and trust of each event

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 03:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Identity comes from keys and from what the gateway logged, never from a feedback body
    # (README "Trust model"): the end user a chat was served to, the key that sent it, and for
    # every event the key that sent it and whether that key's role is trusted (reviewer).
    with op.batch_alter_table("responses") as batch_op:
        batch_op.add_column(sa.Column("user_id", sa.String(length=256), nullable=True))
        batch_op.add_column(sa.Column("key_prefix", sa.String(length=16), nullable=True))
    with op.batch_alter_table("feedback_events") as batch_op:
        batch_op.add_column(sa.Column("key_prefix", sa.String(length=16), nullable=True))
        # Events stored before this migration were never vouched for by a reviewer key.
        batch_op.add_column(
            sa.Column("trusted", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("feedback_events") as batch_op:
        batch_op.drop_column("trusted")
        batch_op.drop_column("key_prefix")
    with op.batch_alter_table("responses") as batch_op:
        batch_op.drop_column("key_prefix")
        batch_op.drop_column("user_id")
