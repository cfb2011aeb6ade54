"""Initial schema: runs, decisions, audit trail, messages, sandbox ledger, caches, auth.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.UUID(as_uuid=False), nullable=True),
        sa.Column("case_id", sa.String(length=64), nullable=True),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column(
            "detail",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_audit_events_case_id"), "audit_events", ["case_id"], unique=False)
    op.create_index(op.f("ix_audit_events_run_id"), "audit_events", ["run_id"], unique=False)
    op.create_table(
        "draft_cache",
        sa.Column("cache_key", sa.String(length=128), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("dispute_type", sa.String(length=64), nullable=False),
        sa.Column("proposal", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("cache_key"),
    )
    op.create_index(
        op.f("ix_draft_cache_dispute_type"), "draft_cache", ["dispute_type"], unique=False
    )
    op.create_table(
        "notifications",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_notifications_run_id"), "notifications", ["run_id"], unique=False)
    op.create_table(
        "processed_messages",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.String(length=200), nullable=True),
        sa.Column("message_id", sa.String(length=200), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=True),
        sa.Column("run_id", sa.UUID(as_uuid=False), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_table(
        "reviewer_api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("key_prefix", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_table(
        "sandbox_ledger",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject_id", sa.String(length=64), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index(
        op.f("ix_sandbox_ledger_subject_id"), "sandbox_ledger", ["subject_id"], unique=False
    )
    op.create_table(
        "used_review_tokens",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column(
            "used_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("nonce"),
    )
    op.create_table(
        "workflow_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("case_id", sa.String(length=64), nullable=False),
        sa.Column("customer_id", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=20), server_default="running", nullable=False),
        sa.Column("current_step", sa.String(length=64), nullable=True),
        sa.Column("crm_data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("billing_data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("payment_data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("resolution_proposal", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("human_review_data", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("final_resolution", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "llm_cost", sa.Numeric(precision=10, scale=6), server_default="0", nullable=False
        ),
        sa.Column(
            "total_cost", sa.Numeric(precision=10, scale=6), server_default="0", nullable=False
        ),
        sa.Column("cost_breakdown", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id"),
    )
    op.create_index("idx_workflow_states_case_id", "workflow_states", ["case_id"], unique=False)
    op.create_index(
        "idx_workflow_states_created_at", "workflow_states", ["created_at"], unique=False
    )
    op.create_index(
        "idx_workflow_states_current_step", "workflow_states", ["current_step"], unique=False
    )
    op.create_index("idx_workflow_states_run_id", "workflow_states", ["run_id"], unique=False)
    op.create_index("idx_workflow_states_status", "workflow_states", ["status"], unique=False)
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.UUID(as_uuid=False), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reviewer", sa.String(length=200), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("comments", sa.Text(), server_default="", nullable=False),
        sa.Column("modified_resolution", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("proposal_before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column(
            "decided_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["workflow_states.run_id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "round", name="uq_review_decisions_run_round"),
    )
    op.create_index(
        "idx_review_decisions_unapplied",
        "review_decisions",
        ["decided_at"],
        unique=False,
        postgresql_where=sa.text("applied_at IS NULL"),
    )

    op.execute(
        """
        CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
        BEGIN
            RAISE EXCEPTION 'audit_events is append-only';
        END;
        $$ LANGUAGE plpgsql;
        CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
            FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS audit_events_no_change ON audit_events")
    op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    op.drop_index(
        "idx_review_decisions_unapplied",
        table_name="review_decisions",
        postgresql_where=sa.text("applied_at IS NULL"),
    )
    op.drop_table("review_decisions")
    op.drop_index("idx_workflow_states_status", table_name="workflow_states")
    op.drop_index("idx_workflow_states_run_id", table_name="workflow_states")
    op.drop_index("idx_workflow_states_current_step", table_name="workflow_states")
    op.drop_index("idx_workflow_states_created_at", table_name="workflow_states")
    op.drop_index("idx_workflow_states_case_id", table_name="workflow_states")
    op.drop_table("workflow_states")
    op.drop_table("used_review_tokens")
    op.drop_index(op.f("ix_sandbox_ledger_subject_id"), table_name="sandbox_ledger")
    op.drop_table("sandbox_ledger")
    op.drop_table("reviewer_api_keys")
    op.drop_table("processed_messages")
    op.drop_index(op.f("ix_notifications_run_id"), table_name="notifications")
    op.drop_table("notifications")
    op.drop_index(op.f("ix_draft_cache_dispute_type"), table_name="draft_cache")
    op.drop_table("draft_cache")
    op.drop_index(op.f("ix_audit_events_run_id"), table_name="audit_events")
    op.drop_index(op.f("ix_audit_events_case_id"), table_name="audit_events")
    op.drop_table("audit_events")
