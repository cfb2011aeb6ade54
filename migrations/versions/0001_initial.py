"""Initial schema: runs, decisions, audit trail, messages, sandbox ledger, caches, auth.

Revision ID: 0001
Revises:
"""

from alembic import op

from models.tables import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The tables as they stood at this revision; later revisions alter them with op.* calls.
TABLES = [
    "workflow_states",
    "review_decisions",
    "audit_events",
    "processed_messages",
    "sandbox_ledger",
    "draft_cache",
    "reviewer_api_keys",
    "used_review_tokens",
    "notifications",
]


def upgrade() -> None:
    bind = op.get_bind()
    metadata.create_all(bind, tables=[metadata.tables[name] for name in TABLES])
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
    bind = op.get_bind()
    op.execute("DROP TRIGGER IF EXISTS audit_events_no_change ON audit_events")
    op.execute("DROP FUNCTION IF EXISTS audit_events_append_only()")
    metadata.drop_all(bind, tables=[metadata.tables[name] for name in reversed(TABLES)])
