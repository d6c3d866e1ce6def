"""Store.channel_scopes on every backend (issue 15): each channel's revocation_scope read from the
stored keyword versions in the database, the version in force at the start of the period first."""

from __future__ import annotations

import json
import time

import pytest

from webhook.domain import NewKeywordVersion, utcnow
from webhook.store import open_store


@pytest.fixture
def store(database_url):
    store = open_store(database_url)
    store.migrate()
    yield store
    store.close()


def save(store, **scopes: str | None) -> int:
    channels = {name: ({"type": "sms"} if scope is None else {"type": "sms", "revocation_scope": scope})
                for name, scope in scopes.items()}
    # Keywords that the stored JSON writes with a \u0000 escape (PostgreSQL's JSON functions
    # refuse it), one after an escaped backslash, and one that is the text \u0000 itself.
    channels[next(iter(channels))]["opt_out"] = {"keywords": {"en": ["STOP\x00", "a\\\x00", "b\\u0000"]}}
    document = json.dumps({"brand": "B", "support": "s", "channels": channels})
    version = store.add_keyword_version(NewKeywordVersion(
        content_hash=str(time.monotonic()), document=document, yaml="", source="api", author=None, note=None, diff=None))
    time.sleep(0.01)  # distinct creation times
    return version.number


def test_scopes_of_the_version_in_force_and_of_the_period(store):
    assert store.channel_scopes(utcnow(), utcnow()) == []  # no version at all
    first = save(store, sms=None, whatsapp="campaign")
    start = utcnow()
    second = save(store, sms="automated", whatsapp="campaign")
    third = save(store, sms="all", whatsapp="all", brand_b="automated")
    end = utcnow()
    save(store, sms="campaign")  # after the period

    found = store.channel_scopes(start, end)
    assert sorted((s.version, s.channel, s.scope) for s in found) == [
        (first, "sms", None), (first, "whatsapp", "campaign"),
        (second, "sms", "automated"), (second, "whatsapp", "campaign"),
        (third, "brand_b", "automated"), (third, "sms", "all"), (third, "whatsapp", "all"),
    ]
    assert [s.version for s in found] == sorted(s.version for s in found)  # by version
    assert all(s.created_at.tzinfo is not None for s in found)
    second_at = next(s.created_at for s in found if s.version == second)
    assert start <= second_at < end
    # A period after every version: only the one in force.
    later = utcnow()
    assert {s.version for s in store.channel_scopes(later, later)} == {first + 3}


def test_each_version_is_read_once_per_process(store, monkeypatch):
    first = save(store, sms="automated")
    reads: list[list[int]] = []
    read = store._read_scopes
    monkeypatch.setattr(store, "_read_scopes", lambda versions: reads.append(list(versions)) or read(versions))
    start = utcnow()
    second = save(store, sms="all")
    assert [(s.version, s.scope) for s in store.channel_scopes(start, utcnow())] == [(first, "automated"), (second, "all")]
    assert reads == [[first, second]]
    third = save(store, sms=None)
    assert [(s.version, s.scope) for s in store.channel_scopes(start, utcnow())] == [
        (first, "automated"), (second, "all"), (third, None)]
    assert reads == [[first, second], [third]]  # only the new version was read


def test_the_cache_starts_again_when_full_and_stays_right():
    from datetime import datetime as dt
    from datetime import timezone

    from webhook.domain import ChannelScope
    from webhook.store import ScopeCache

    at = dt(2026, 12, 1, tzinfo=timezone.utc)
    reads: list[list[int]] = []

    def read(versions):
        reads.append(list(versions))
        return [ChannelScope(n, at, "sms", "all" if n % 2 else None) for n in versions]

    cache = ScopeCache()
    cache.MAX_VERSIONS = 3
    assert [s.version for s in cache.scopes([1, 2, 3], read)] == [1, 2, 3]
    assert [s.scope for s in cache.scopes([2, 3, 4, 5], read)] == [None, "all", None, "all"]
    assert reads == [[1, 2, 3], [4, 5]]
    assert [s.version for s in cache.scopes([4, 5], read)] == [4, 5] and len(reads) == 2
