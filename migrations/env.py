"""Alembic environment: runs migrations with the URL given by services.database."""

from alembic import context
from sqlalchemy import create_engine

from models.tables import metadata

config = context.config
engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
