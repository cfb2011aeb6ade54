"""Shared fixtures: a real PostgreSQL for every test session.

`POSTGRES_URL` (e.g. the CI's local server) is used when set; otherwise an embedded
PostgreSQL is started under a temporary directory. Each session gets its own database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from services.persistence.database import Database, create_engine, open_database, upgrade_schema


def _with_dbname(url: str, dbname: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{dbname}"))


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server (maintenance database)."""
    url = os.environ.get("POSTGRES_URL")
    if url:
        yield url
        return
    database = open_database(None, Path(tmp_path_factory.mktemp("pg")))
    yield database.url


def create_database(server_url: str) -> str:
    """Create an empty, migrated database on the server and return its URL."""
    name = f"pa_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = _with_dbname(server_url, name)
    upgrade_schema(url)
    return url


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A fresh, migrated database for one test."""
    return create_database(postgres_server)


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Database(url=postgres_url))
    yield engine
    await engine.dispose()
