"""Shared fixtures: a real PostgreSQL for every test session.

`POSTGRES_URL` (e.g. the CI's local server) is used when set; otherwise an embedded
PostgreSQL is started under a temporary directory. The migrations run once per session,
into a template database; each test gets its own copy (`CREATE DATABASE ... TEMPLATE`),
dropped when the test ends.
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


def empty_database(server_url: str, *, template: str = "template1") -> str:
    """Create a database on the server (a copy of `template`) and return its URL."""
    name = f"pa_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    return _with_dbname(server_url, name)


def create_database(server_url: str, *, template: str | None = None) -> str:
    """Create a migrated database on the server (a copy of `template` when given)."""
    if template is not None:
        return empty_database(server_url, template=template)
    url = empty_database(server_url)
    upgrade_schema(url)
    return url


def drop_database(server_url: str, url: str) -> None:
    """Drop a test database, ending any connection a test left open."""
    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def template_database(postgres_server: str) -> Iterator[str]:
    """The name of a database migrated once for the session, the template of every test's."""
    url = create_database(postgres_server)
    yield urlsplit(url).path.lstrip("/")
    drop_database(postgres_server, url)


@pytest.fixture
def postgres_url(postgres_server: str, template_database: str) -> Iterator[str]:
    """A fresh, migrated database for one test."""
    url = create_database(postgres_server, template=template_database)
    yield url
    drop_database(postgres_server, url)


@pytest.fixture
async def engine(postgres_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(Database(url=postgres_url))
    yield engine
    await engine.dispose()
