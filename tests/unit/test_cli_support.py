"""webhook.cli_support: what the commands show of a database URL."""

from __future__ import annotations

import os

import pytest

from webhook.cli_support import database_location


@pytest.mark.parametrize("url,shown", [
    ("postgresql://unsub:s3cret-pass@db.example.com:5432/unsub", "postgresql://unsub:***@db.example.com:5432/unsub"),
    ("postgres://unsub:p@ss@db.example.com/unsub", "postgres://unsub:***@db.example.com/unsub"),
    ("postgresql://unsub@/unsub?host=/var/run/postgresql", "postgresql://unsub@/unsub?host=/var/run/postgresql"),
    ("sqlite:////srv/unsub/unsub.db", "/srv/unsub/unsub.db"),
    ("sqlite:///unsub.db?synchronous=full", os.path.join(os.getcwd(), "unsub.db")),
])
def test_database_location_is_absolute_and_never_shows_a_password(url, shown):
    assert database_location(url) == shown
