"""Chargebacks: a run's kind, and the Stripe webhook events received.

- `workflow_states.kind`: `dispute` (a CRM case), `chargeback` (a Stripe dispute, its id
  as the run's case id) or `early_fraud_warning` (a Radar warning, its id likewise).
- `stripe_events`: every verified webhook event, once: a redelivered event id is answered
  2xx and changes nothing.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "workflow_states",
        sa.Column("kind", sa.String(length=24), server_default="dispute", nullable=False),
    )
    op.add_column("workflow_states", sa.Column("dispute_outcome", postgresql.JSONB()))
    op.create_table(
        "stripe_events",
        sa.Column("event_id", sa.String(length=255), primary_key=True),
        sa.Column("type", sa.String(length=100), nullable=False),
        sa.Column("object_id", sa.String(length=255)),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column(
            "received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    )


def downgrade() -> None:
    op.drop_table("stripe_events")
    op.drop_column("workflow_states", "dispute_outcome")
    op.drop_column("workflow_states", "kind")
