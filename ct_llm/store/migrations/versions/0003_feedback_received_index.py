"""index feedback events by tenant and arrival time, for the monitoring reads

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 10:00:00
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The status page, the canary analysis and the drift trigger filter a tenant's events by a
    # `received_at` window; the tenant-only index made them read all of the tenant's events.
    with op.batch_alter_table("feedback_events") as batch_op:
        batch_op.create_index(
            "ix_feedback_tenant_received", ["tenant", "received_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("feedback_events") as batch_op:
        batch_op.drop_index("ix_feedback_tenant_received")
