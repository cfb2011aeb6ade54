"""Versioned policies: every ingested version of a policy section, by the hash of its text.

- `policy_versions`: one row per (policy, section, content hash), with the text and the
  ingestion version that first wrote it. The Chroma collection holds the current version
  only; proposals cite hashes, and an old hash stays readable here after re-ingestion.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_versions",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("policy_id", sa.String(length=64), nullable=False),
        sa.Column("section", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("source_file", sa.String(length=255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "ingested_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.UniqueConstraint("policy_id", "section", "content_hash", name="uq_policy_versions_hash"),
    )
    op.create_index("idx_policy_versions_content_hash", "policy_versions", ["content_hash"])


def downgrade() -> None:
    op.drop_index("idx_policy_versions_content_hash", table_name="policy_versions")
    op.drop_table("policy_versions")
