"""Run dispatch: Procrastinate's job tables, and the run row's retry bookkeeping.

PostgreSQL owns every run's progress (docs/architecture.md, "The run lifecycle"): a run
that is not final has a Procrastinate job (its driver) or a next-attempt time. The job
library's schema is the one shipped with the pinned Procrastinate release; a later release
with schema changes needs a migration of its own applying that release's migration files.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from procrastinate.schema import SchemaManager

    op.execute(SchemaManager.get_schema())

    op.add_column("workflow_states", sa.Column("event_id", sa.String(length=200)))
    op.add_column(
        "workflow_states",
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column("workflow_states", sa.Column("next_attempt_at", sa.DateTime(timezone=True)))
    op.add_column("workflow_states", sa.Column("last_error", postgresql.JSONB()))
    op.create_index(
        "idx_workflow_states_next_attempt_at",
        "workflow_states",
        ["next_attempt_at"],
        postgresql_where=sa.text("status IN ('running', 'pending')"),
    )
    # One active run per case, whatever races the intake has: a second event for the same
    # case finds this one instead of starting another.
    op.create_index(
        "uq_workflow_states_active_case",
        "workflow_states",
        ["case_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('running', 'pending', 'needs_attention')"),
    )

    op.add_column(
        "processed_messages",
        sa.Column("receives", sa.Integer(), server_default="1", nullable=False),
    )
    # An unparseable body is recorded once per message, however often it is received.
    op.create_index(
        "uq_processed_messages_rejected_message",
        "processed_messages",
        ["message_id"],
        unique=True,
        postgresql_where=sa.text("event_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_processed_messages_rejected_message", table_name="processed_messages")
    op.drop_column("processed_messages", "receives")
    op.drop_index("uq_workflow_states_active_case", table_name="workflow_states")
    op.drop_index("idx_workflow_states_next_attempt_at", table_name="workflow_states")
    for column in ("last_error", "next_attempt_at", "attempts", "event_id"):
        op.drop_column("workflow_states", column)
    # Procrastinate ships no uninstall script: drop what its schema created, by name.
    op.execute(
        """
        DO $$
        DECLARE item record;
        BEGIN
            FOR item IN SELECT tablename FROM pg_tables
                        WHERE schemaname = current_schema() AND tablename LIKE 'procrastinate%'
            LOOP
                EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', item.tablename);
            END LOOP;
            FOR item IN SELECT p.oid::regprocedure AS signature FROM pg_proc p
                        JOIN pg_namespace n ON n.oid = p.pronamespace
                        WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate%'
            LOOP
                EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', item.signature);
            END LOOP;
            FOR item IN SELECT t.typname FROM pg_type t
                        JOIN pg_namespace n ON n.oid = t.typnamespace
                        WHERE n.nspname = current_schema() AND t.typname LIKE 'procrastinate%'
                          AND t.typtype IN ('e', 'c')
            LOOP
                EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', item.typname);
            END LOOP;
        END $$;
        """
    )
