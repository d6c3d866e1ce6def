"""PostgreSQL test databases: one fresh database per test, dropped afterwards."""

from __future__ import annotations

import os
import uuid
from urllib.parse import urlsplit

import pytest

POSTGRES_URL = os.environ.get("UNSUB_TEST_POSTGRES_URL", "")


def _with_database(url: str, name: str) -> str:
    """The same postgresql:// URL naming another database."""
    return urlsplit(url)._replace(path=f"/{name}").geturl()


def fresh_database(request: pytest.FixtureRequest) -> str:
    import psycopg
    from psycopg import sql

    name = f"unsub_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop() -> None:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    request.addfinalizer(drop)
    return _with_database(POSTGRES_URL, name)
