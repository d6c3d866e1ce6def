"""Is the database there? One direct attempt, before a connection pool retries in the background.

psycopg_pool retries a failed connection with backoff and logs a two-line WARNING for
every attempt. At start-up (``create_app``, as ``gunicorn --preload`` runs it) or in a CLI
command, a PostgreSQL server that is down therefore printed a page of retries before the
one line that names DATABASE_URL. A single connection attempt first turns that into the
one line alone. Nothing to check for SQLite: a file is opened, not reached.
"""

from __future__ import annotations

import os
from typing import Any

from webhook.store import StoreUnavailable

CONNECT_TIMEOUT = 3  # seconds, as the store's own connections (unless the URL sets one)


def _where(params: dict[str, Any]) -> str:
    """host:port/dbname, never the password."""
    host = params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "localhost"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or params.get("user") or ""
    return f"{host}:{port}/{dbname}"


def check_reachable(database_url: str, name: str | None = None) -> None:
    """Raise StoreUnavailable, in one line, unless a PostgreSQL ``database_url`` takes a connection.

    ``name`` (DATABASE_URL, or a command's argument) starts the message when given.
    """
    if not database_url.startswith(("postgresql:", "postgres:")):
        return
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        params = conninfo_to_dict(database_url)
    except psycopg.Error:
        return  # a malformed URL: the store says so itself, password masked
    options: dict[str, Any] = {} if "connect_timeout" in params else {"connect_timeout": CONNECT_TIMEOUT}
    try:
        psycopg.connect(database_url, autocommit=True, **options).close()
    except psycopg.Error as error:
        reason = " ".join(str(error).split()) or type(error).__name__
        said = f"{name} cannot be used: " if name else ""
        raise StoreUnavailable(f"{said}PostgreSQL at {_where(params)}: {reason}") from None
