"""Reviewer e-mail on API keys: ties an e-mailed review link to a registered reviewer.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("reviewer_api_keys", sa.Column("email", sa.String(length=320), nullable=True))
    op.create_index(
        op.f("ix_reviewer_api_keys_email"), "reviewer_api_keys", ["email"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_reviewer_api_keys_email"), table_name="reviewer_api_keys")
    op.drop_column("reviewer_api_keys", "email")
