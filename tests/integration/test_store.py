"""One contract for every Store: run against SQLite, and PostgreSQL when configured; the core of
it (``contract_store``) also against the in-memory FakeStore the unit tests use, so it cannot drift."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from webhook.domain import ConsentEvent, dedupe_key, utcnow
from webhook.store import StoreUnavailable, open_store

ALICE = "+14155550123"


@pytest.fixture
def store(database_url):
    store = open_store(database_url)
    store.migrate()
    yield store
    store.close()


@pytest.fixture(params=["database", "fake"])
def contract_store(request, database_url):
    """Every real backend, and FakeStore (once per backend run: it is the same fake)."""
    if request.param == "fake":
        from tests.unit.fakes import FakeStore

        yield FakeStore()
        return
    yield request.getfixturevalue("store")


def event(action="opt_out", *, sid=None, at=None, channel="sms", address=ALICE, **extra) -> ConsentEvent:
    return ConsentEvent(channel=channel, address=address, action=action, source="keyword", occurred_at=at or utcnow(), message_id=sid,
                        dedupe_key=dedupe_key("twilio", sid), **extra)


def test_migrations_are_idempotent(store):
    assert store.migrate() == []


def test_unknown_until_first_event(contract_store):
    store = contract_store
    assert store.subscription("sms", ALICE) is None
    assert store.history("sms", ALICE) == []


def test_record_sets_status_and_keeps_history(contract_store):
    store = contract_store
    first = store.record(event("opt_out", sid="SM1", keyword="STOP", language="en", match_kind="keyword", raw_text="STOP", config_version="v1"))
    assert (first.created, first.status) == (True, "unsubscribed")
    store.record(event("opt_in", sid="SM2"))
    sub = store.subscription("sms", ALICE)
    assert sub.status == "subscribed"
    history = store.history("sms", ALICE)
    assert [e.action for e in history] == ["opt_out", "opt_in"]
    saved = history[0]
    assert (saved.keyword, saved.language, saved.match_kind, saved.raw_text, saved.message_id, saved.config_version) == ("STOP", "en", "keyword", "STOP", "SM1", "v1")
    assert saved.occurred_at.tzinfo is not None and saved.recorded_at is not None


def test_channels_are_independent(contract_store):
    store = contract_store
    store.record(event("opt_out", channel="sms"))
    assert store.subscription("whatsapp", ALICE) is None
    assert store.statuses_among("sms", [ALICE]) == {ALICE: "unsubscribed"}
    assert store.statuses_among("whatsapp", [ALICE]) == {}


def test_duplicate_message_id_records_once(contract_store):
    store = contract_store
    assert store.record(event(sid="SMdup")).created
    again = store.record(event("opt_in", sid="SMdup"))
    assert (again.created, again.status) == (False, "unsubscribed")
    assert store.event_count() == 1


def test_events_without_message_id_never_conflict(contract_store):
    store = contract_store
    store.record(event(sid=None))
    store.record(event(sid=None))
    assert store.event_count() == 2


def test_older_event_does_not_override_newer_status(contract_store):
    store = contract_store
    now = utcnow()
    store.record(event("opt_out", sid="SMnew", at=now))
    result = store.record(event("opt_in", sid="SMold", at=now - timedelta(days=1)))
    assert result.created and result.status == "unsubscribed"
    assert [e.message_id for e in store.history("sms", ALICE)] == ["SMold", "SMnew"]


def test_concurrent_duplicates_record_one_event(store, database_url):
    results = []

    def deliver():
        own = open_store(database_url)
        try:
            results.append(own.record(event(sid="SMrace")).created)
        finally:
            own.close()

    threads = [threading.Thread(target=deliver) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 11 + [True]
    assert store.event_count() == 1


def test_concurrent_events_leave_status_equal_to_latest_event(store, database_url):
    def deliver(i: int):
        own = open_store(database_url)
        try:
            own.record(event("opt_out" if i % 2 else "opt_in", sid=f"SMc{i}"))
        finally:
            own.close()

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    latest = store.history("sms", ALICE)[-1]
    assert store.subscription("sms", ALICE).status == {"opt_out": "unsubscribed", "opt_in": "subscribed"}[latest.action]


def test_statuses_among_many(contract_store):
    store = contract_store
    numbers = [f"+1415555{i:04d}" for i in range(1200)]
    for n in numbers[::3]:
        store.record(event(address=n))
    store.record(event("opt_in", address=numbers[1]))
    found = store.statuses_among("sms", numbers + ["+14155559999"])
    assert found == {n: "unsubscribed" for n in numbers[::3]} | {numbers[1]: "subscribed"}


def test_status_count_counts_every_contact_of_a_channel_erased_ones_included(store):
    assert store.status_count("brand-b") == 0
    store.record(event(channel="brand-b", sid="S1"))
    store.record(event("opt_in", channel="brand-b", address="+14155550124", sid="S2"))
    store.record(event(channel="brand-b", sid="S3"))  # the same contact again
    store.record(event(channel="sms", sid="S4"))
    assert (store.status_count("brand-b"), store.status_count("sms"), store.status_count("whatsapp")) == (2, 1, 0)
    store.erase(ALICE, lambda channel, address: f"h:{channel}:{address}")
    # Alice's rows are gone, her hash on brand-b (she had left it) stays: still a status to enforce.
    assert (store.status_count("brand-b"), store.status_count("sms")) == (2, 1)


def test_an_unchanged_status_records_nothing_when_asked(contract_store):
    store = contract_store
    first = store.record(event(), only_if_changes=True)
    assert (first.created, first.previous, first.status, first.skipped) == (True, "unknown", "unsubscribed", None)
    again = store.record(event(), only_if_changes=True)
    assert (again.created, again.status, again.skipped) == (False, "unsubscribed", "unchanged")
    assert store.import_events([event(), event("opt_in")], only_if_changes=True) == 1
    assert [e.action for e in store.history("sms", ALICE)] == ["opt_out", "opt_in"]
    assert store.record(event("opt_in", sid="SMdupkey")).created
    repeat = store.record(event("opt_out", sid="SMdupkey"))
    assert (repeat.created, repeat.skipped, repeat.status) == (False, "duplicate", "subscribed")


def test_log_is_append_only(store):
    store.record(event(sid="SMkeep"))
    if store.kind == "sqlite":
        conn = store.db.conn
        with pytest.raises(Exception, match="append-only"):
            conn.execute("UPDATE consent_events SET action = 'opt_in'")
        with pytest.raises(Exception, match="append-only"):
            conn.execute("DELETE FROM consent_events")
    else:
        import psycopg

        with psycopg.connect(store.conninfo) as conn:
            with pytest.raises(psycopg.Error, match="append-only"):
                conn.execute("UPDATE consent_events SET action = 'opt_in'")
    assert store.history("sms", ALICE)[0].action == "opt_out"


def test_text_with_nul_and_unicode_round_trips(contract_store):
    store = contract_store
    store.record(event(sid="SMtext", raw_text="STOP 🛑 ＳＴＯＰ مرحبا"))
    assert store.history("sms", ALICE)[0].raw_text == "STOP 🛑 ＳＴＯＰ مرحبا"


def test_ping(store):
    store.ping()


def test_unreachable_sqlite_database_is_unavailable(tmp_path):
    blocked = tmp_path / "file-not-dir"
    blocked.write_text("")
    store = open_store(f"sqlite:///{blocked}/unsub.db")
    with pytest.raises(StoreUnavailable):
        store.ping()
    with pytest.raises(StoreUnavailable):
        store.record(event())


def test_import_keeps_times_skips_repeats_and_respects_newer_status(contract_store):
    store = contract_store
    now = utcnow()
    store.record(event("opt_out", sid="SMlive", at=now))
    older = [
        event("opt_in", sid="SMimp1", at=now - timedelta(days=3), recorded_at=now - timedelta(days=3)),
        event("opt_out", sid=None, at=now - timedelta(days=2), channel="whatsapp", recorded_at=now - timedelta(days=2)),
    ]
    assert store.import_events(older) == 2
    assert store.import_events(older[:1]) == 0
    assert store.subscription("sms", ALICE).status == "unsubscribed"
    assert store.subscription("whatsapp", ALICE).status == "unsubscribed"
    first = store.history("sms", ALICE)[0]
    assert (first.message_id, first.recorded_at) == ("SMimp1", now - timedelta(days=3))


def test_iter_events_in_recorded_order(contract_store):
    store = contract_store
    for i in range(25):
        store.record(event(sid=f"SMit{i}", address=f"+1415555{i:04d}"))
    batches = list(store.iter_events(batch=10))
    assert [len(b) for b in batches] == [10, 10, 5]
    assert [e.message_id for b in batches for e in b] == [f"SMit{i}" for i in range(25)]


@pytest.mark.parametrize("url_suffix,expected", [("", "NORMAL"), ("?synchronous=full", "FULL"), ("?synchronous=normal", "NORMAL")])
def test_sqlite_synchronous_mode_comes_from_the_url(tmp_path, url_suffix, expected):
    store = open_store(f"sqlite:///{tmp_path / 's.db'}{url_suffix}")
    try:
        store.migrate()
        level = store.db.conn.execute("PRAGMA synchronous").fetchone()[0]
        assert {1: "NORMAL", 2: "FULL"}[level] == expected
        assert store.path == tmp_path / "s.db"
    finally:
        store.close()


def new_version(content_hash="h1", source="file", **extra):
    from webhook.domain import NewKeywordVersion

    return NewKeywordVersion(content_hash=content_hash, document='{"brand": "x"}', yaml="brand: x # hi\n", source=source, **extra)


def test_keyword_versions_are_numbered_and_listed_newest_first(store):
    assert store.latest_keyword_version() is None and store.latest_keyword_version_number() == 0
    first = store.add_keyword_version(new_version(author="deploy"))
    second = store.add_keyword_version(new_version("h2", source="api", author="ops", note="add ALTO", diff="+ ALTO"))
    assert (first.number, second.number) == (1, 2)
    assert store.latest_keyword_version_number() == 2
    assert store.latest_keyword_version().note == "add ALTO"
    assert [v.number for v in store.keyword_versions()] == [2, 1]
    assert store.keyword_version(1).yaml == "brand: x # hi\n" and store.keyword_version(1).created_at.tzinfo
    assert store.keyword_version(99) is None
    assert store.keyword_version(2**70) is None and store.keyword_version(0) is None


def test_an_unchanged_file_adds_no_version_and_admin_edits_stay(store):
    store.add_keyword_version(new_version("file-a"), only_if_file_changed=True)
    store.add_keyword_version(new_version("admin-b", source="admin"))
    again = store.add_keyword_version(new_version("file-a"), only_if_file_changed=True)
    assert (again.number, again.content_hash) == (2, "admin-b")
    changed = store.add_keyword_version(new_version("file-c"), only_if_file_changed=True)
    assert (changed.number, changed.source) == (3, "file")


def test_processes_starting_together_add_one_file_version(store, database_url):
    def start():
        own = open_store(database_url)
        try:
            own.add_keyword_version(new_version("file-z"), only_if_file_changed=True)
        finally:
            own.close()

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.latest_keyword_version_number() == 1


def test_events_filtered_newest_first_with_a_total(store):
    from webhook.domain import EventFilter

    now = utcnow()
    store.record(event("opt_out", sid="SMf1", at=now - timedelta(days=3)))
    store.record(event("opt_in", sid="SMf2", at=now - timedelta(days=2)))
    store.record(event("opt_out", sid="SMf3", at=now - timedelta(days=1), channel="whatsapp"))
    store.record(ConsentEvent(channel="email", address="b@example.com", action="opt_out", source="admin", occurred_at=now))
    everything, total = store.events(EventFilter(), limit=2)
    assert total == 4 and [e.channel for e in everything] == ["email", "whatsapp"]
    assert [e.message_id for e in store.events(EventFilter(), limit=2, offset=2)[0]] == ["SMf2", "SMf1"]
    assert store.events(EventFilter(channel="sms", action="opt_out"))[1] == 1
    assert store.events(EventFilter(source="admin"))[0][0].address == "b@example.com"
    recent, count = store.events(EventFilter(since=now - timedelta(days=2, hours=1), until=now - timedelta(hours=1)))
    assert count == 2 and {e.message_id for e in recent} == {"SMf2", "SMf3"}


def test_copy_db_copies_every_table_that_holds_state(store):
    """Issue 11 item 9: a new table is either copied by copy-db or named as not copied."""
    from webhook.store import COPY_TABLES, NOT_COPIED

    if store.kind == "sqlite":
        tables = {row["name"] for row in store._query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    else:
        with store._connection("list tables") as conn:
            tables = {row["table_name"] for row in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
                "AND table_type = 'BASE TABLE'")}
    assert tables == set(COPY_TABLES) | (NOT_COPIED - ({"erasure_in_progress"} if store.kind != "sqlite" else set()))


def test_an_erased_contacts_message_ids_stay_duplicates_as_keyed_hashes(store):
    from webhook.consent import address_hasher
    from webhook.domain import ReviewItem

    hash_for = address_hasher("store-test-erasure-key-0123456789")
    store.use_erasure_hasher(hash_for)
    store.record(event(sid="SMstop"))
    store.record(event("opt_in", sid="SMstart", channel="whatsapp"))
    assert store.add_review_item(ReviewItem("whatsapp", ALICE, "cancel my order", utcnow(), "SMrev", dedupe_key="twilio:SMrev"))
    store.erase(ALICE, hash_for)
    assert store.record(event("opt_in", sid="SMstart", channel="whatsapp")).skipped == "duplicate"
    assert store.import_events([event(sid="SMstop")]) == 0
    assert not store.add_review_item(ReviewItem("whatsapp", ALICE, "cancel my order", utcnow(), "SMrev", dedupe_key="twilio:SMrev"))
    assert store.subscription("whatsapp", ALICE) is None and store.history("sms", ALICE) == []
    assert store.record(event("opt_in", sid="SMnew", channel="whatsapp")).created
