"""Alembic environment: runs migrations with the URL given by services.persistence.database,
or, when run as `alembic upgrade head` (alembic.ini sets no URL), with the database the
settings name (POSTGRES_URL, else the embedded one)."""

from alembic import context
from sqlalchemy import create_engine

from models.tables import metadata


def configured_url() -> str:
    """The URL Settings names, for the `alembic` command line."""
    from services.persistence.database import open_database, to_sqlalchemy_url
    from services.settings import Settings

    settings = Settings()
    url = settings.postgres_url.get_secret_value() if settings.postgres_url else None
    return to_sqlalchemy_url(open_database(url, settings.data_dir).url)


config = context.config
engine = create_engine(config.get_main_option("sqlalchemy.url") or configured_url())
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
