"""The payout ledger, reviewer identities, and decisions bound to resolution versions.

- `payouts`: one row per intended movement of money, written before the provider is
  called and updated after (docs/architecture.md, "Money").
- `reviewers`: who may decide. API keys belong to a reviewer; revoking the reviewer ends
  their keys, sessions and links at once. Existing keys get a reviewer each, one per name.
- `review_decisions.reviewer_id` and `.version`: dual control compares identities, and an
  approval counts only for the version it was given on.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "reviewers",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320)),
        sa.Column("active", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("deactivated_at", sa.DateTime(timezone=True)),
    )
    op.create_index("uq_reviewers_name", "reviewers", [sa.text("lower(name)")], unique=True)
    op.create_index("uq_reviewers_email", "reviewers", ["email"], unique=True)

    op.add_column(
        "reviewer_api_keys",
        sa.Column("reviewer_id", sa.Integer(), sa.ForeignKey("reviewers.id")),
    )
    # One reviewer per existing name, with the newest e-mail its keys carry.
    op.execute(
        """
        INSERT INTO reviewers (name, email)
        SELECT DISTINCT ON (lower(reviewer)) reviewer, email
        FROM reviewer_api_keys
        ORDER BY lower(reviewer), created_at DESC
        ON CONFLICT DO NOTHING
        """
    )
    op.execute(
        """
        UPDATE reviewer_api_keys k SET reviewer_id = r.id
        FROM reviewers r WHERE lower(r.name) = lower(k.reviewer)
        """
    )

    op.add_column("review_decisions", sa.Column("reviewer_id", sa.Integer()))
    op.add_column("review_decisions", sa.Column("version", sa.Integer()))

    op.create_table(
        "payouts",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("run_id", postgresql.UUID(as_uuid=False), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("charge_id", sa.String(length=64), nullable=False),
        sa.Column("account_key", sa.String(length=64)),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False, unique=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("approved_by", postgresql.JSONB(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("provider_ref", sa.String(length=100)),
        sa.Column("provider_status", sa.String(length=32)),
        sa.Column("failure_reason", sa.Text()),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True)),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("amount > 0", name="ck_payouts_amount_positive"),
        sa.CheckConstraint(
            "state IN ('intended', 'sent', 'pending', 'succeeded', 'failed', 'unknown')",
            name="ck_payouts_state",
        ),
    )
    op.create_index("idx_payouts_charge_id", "payouts", ["charge_id"])
    op.create_index("idx_payouts_run_id", "payouts", ["run_id"])
    op.create_index("idx_payouts_case_id", "payouts", ["case_id"])


def downgrade() -> None:
    op.drop_table("payouts")
    op.drop_column("review_decisions", "version")
    op.drop_column("review_decisions", "reviewer_id")
    op.drop_column("reviewer_api_keys", "reviewer_id")
    op.drop_table("reviewers")
