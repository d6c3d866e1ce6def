"""Tokens of signed requests already accepted, on both backends (mixins of the stores).

Mailgun signs ``timestamp + token`` and not the body, so whoever captures one signed request
can put any body under its signature until the timestamp is too old for the route. Each
token is therefore accepted once (``remember_token``). The table only ever holds tokens of
requests whose signature was valid (nobody else can make one), and each row goes once no
route would accept its timestamp: every call prunes the expired rows first, through an
index, so the table stays as small as the traffic of one replay window.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from webhook.domain import utcnow
from webhook.store.sqlite_times import to_text


class SQLiteSeenTokens:
    """``remember_token`` for SQLiteStore (under the database's write lock)."""

    _write: Any

    def remember_token(self, namespace: str, token: str, expires_at: datetime) -> bool:
        with self._write("remember a signed request's token") as conn:
            conn.execute("DELETE FROM seen_tokens WHERE expires_at < ?", (to_text(utcnow()),))
            return conn.execute(
                "INSERT INTO seen_tokens (namespace, token, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (namespace, token, to_text(expires_at)),
            ).rowcount == 1


class PostgresSeenTokens:
    """``remember_token`` for PostgresStore: the primary key decides which of two racing
    requests with one token wins (the other's insert does nothing)."""

    _connection: Any

    def remember_token(self, namespace: str, token: str, expires_at: datetime) -> bool:
        with self._connection("remember a signed request's token") as conn:
            with conn.transaction():
                conn.execute("DELETE FROM seen_tokens WHERE expires_at < now()")
                return conn.execute(
                    "INSERT INTO seen_tokens (namespace, token, expires_at) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                    (namespace.replace("\x00", ""), token.replace("\x00", ""), expires_at),
                ).rowcount == 1
