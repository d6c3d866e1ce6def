"""The Store's campaign, statistics, erasure, suppression, feedback and review contract.

Runs against SQLite, and PostgreSQL when configured (see tests/conftest.py). Every time is
a fixed, timezone-aware UTC datetime so that windows and days are deterministic.
"""

from __future__ import annotations

import itertools
import threading
from datetime import datetime, timedelta, timezone

import pytest

from webhook.domain import CampaignMessage, ConsentEvent, Feedback, RawStats, ReviewItem, dedupe_key, utcnow
from webhook.store import ADDRESS_TABLES, open_store

ALICE = "+14155550123"
BOB = "+14155550124"
CAROL = "+14155550125"

H = timedelta(hours=1)
SINCE = datetime(2026, 3, 1, tzinfo=timezone.utc)
UNTIL = datetime(2026, 3, 8, tzinfo=timezone.utc)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # inside [SINCE, UNTIL)
WINDOW = timedelta(hours=72)
LATE = datetime(2026, 3, 6, 9, 0, tzinfo=timezone.utc)  # a full window after SINCE, before UNTIL
FEEDBACK_WINDOW = timedelta(hours=24)


@pytest.fixture
def store(database_url):
    store = open_store(database_url)
    store.migrate()
    yield store
    store.close()


def number(i: int) -> str:
    return f"+1415555{i:04d}"


def event(action="opt_out", *, at, channel="sms", address=ALICE, source="keyword", sid=None, **extra) -> ConsentEvent:
    return ConsentEvent(channel=channel, address=address, action=action, source=source, occurred_at=at, message_id=sid,
                        dedupe_key=dedupe_key("twilio", sid), **extra)


def sent(message_id: str, status: str, at: datetime, *, campaign="spring", channel="sms", address=ALICE) -> CampaignMessage:
    return CampaignMessage(message_id=message_id, campaign=campaign, channel=channel, address=address, status=status, at=at)


def stats(store, channel: str | None = None, since=SINCE, until=UNTIL, window=WINDOW) -> RawStats:
    return store.raw_stats(since, until, window, channel)


def by_campaign(raw: RawStats) -> dict[tuple[str, str], tuple[int, int]]:
    """(campaign, channel) -> (delivered, attributed opt-outs); fails on a repeated key."""
    found = {(campaign, channel): (delivered, outs) for campaign, channel, delivered, outs in raw.campaigns}
    assert len(found) == len(raw.campaigns), raw.campaigns
    return found


def pages(batches, most: int = 50) -> list:
    """The batches of an iterator, at most ``most`` of them (a paging bug fails, never hangs)."""
    found = list(itertools.islice(batches, most + 1))
    assert len(found) <= most, "the iterator does not end"
    return found


def as_time(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def campaign_row(store, message_id: str) -> dict:
    """One campaign_messages row, read directly: the protocol has no reader for a single message."""
    sql = "SELECT campaign, channel, address, status, stage, delivered_at FROM campaign_messages WHERE message_id = {}"
    if store.kind == "sqlite":
        cursor = store.db.conn.execute(sql.format("?"), (message_id,))
        names = [d[0] for d in cursor.description]
        row = dict(zip(names, cursor.fetchone(), strict=True))
    else:
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(store.conninfo, row_factory=dict_row) as conn:
            row = conn.execute(sql.format("%s"), (message_id,)).fetchone()
    row["delivered_at"] = as_time(row["delivered_at"])
    return row


def refuse_delete_of_events(store) -> None:
    """Outside an erasure the log refuses a DELETE, on a fresh connection and on the store's own."""
    if store.kind == "sqlite":
        import sqlite3

        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            store.db.conn.execute("DELETE FROM consent_events")
        fresh = sqlite3.connect(store.path)
        try:
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                fresh.execute("DELETE FROM consent_events")
        finally:
            fresh.close()
    else:
        import psycopg

        with psycopg.connect(store.conninfo) as conn:
            with pytest.raises(psycopg.Error, match="append-only"):
                conn.execute("DELETE FROM consent_events")
        from webhook.store.postgres import POOL_MAX_SIZE

        # The pooled connection that ran the erasure must not keep its permission: the
        # pool hands out its idle connections in turn, so this reaches each of them.
        for _ in range(POOL_MAX_SIZE):
            with store._connection("test") as conn:
                with pytest.raises(psycopg.Error, match="append-only"):
                    conn.execute("DELETE FROM consent_events")


# -- campaign messages ---------------------------------------------------------------


def test_campaign_statuses_only_move_forward_and_keep_the_first_delivery(store):
    added = store.record_campaign_messages([
        sent("SMa", "delivered", T0 + 2 * H, address=ALICE),
        sent("SMa", "sent", T0 + H, address=ALICE),  # a late callback: stays delivered
        sent("SMb", "queued", T0, address=BOB),
        sent("SMb", "sent", T0 + H, address=BOB),
        sent("SMb", "delivered", T0 + 3 * H, address=BOB),
        sent("SMc", "sent", T0, address=CAROL),
        sent("SMc", "failed", T0 + H, address=CAROL),
    ])
    assert added == 3
    assert store.record_campaign_messages([sent("SMa", "read", T0 + 5 * H), sent("SMa", "delivered", T0 + 6 * H)]) == 0

    a, b, c = (campaign_row(store, sid) for sid in ("SMa", "SMb", "SMc"))
    assert (a["status"], a["stage"], a["delivered_at"]) == ("read", 4, T0 + 2 * H)
    assert (b["status"], b["stage"], b["delivered_at"]) == ("delivered", 3, T0 + 3 * H)
    assert (c["status"], c["stage"], c["delivered_at"]) == ("failed", 2, None)

    # Alice opts out after the first delivery but before the "read" callback: attributed
    # only if delivered_at stayed at the first delivery. Carol's message failed.
    store.record(event(at=T0 + 4 * H, address=ALICE))
    store.record(event(at=T0 + 2 * H, address=CAROL))
    assert by_campaign(stats(store)) == {("spring", "sms"): (2, 1)}


def test_delivered_then_sent_stays_delivered_across_calls(store):
    assert store.record_campaign_messages([sent("SMd", "delivered", T0 + H)]) == 1
    assert store.record_campaign_messages([sent("SMd", "sent", T0)]) == 0
    assert store.record_campaign_messages([sent("SMd", "queued", T0 - H)]) == 0
    row = campaign_row(store, "SMd")
    assert (row["status"], row["stage"], row["delivered_at"]) == ("delivered", 3, T0 + H)


def test_failed_then_delivered_counts_and_failed_alone_never_does(store):
    store.record_campaign_messages([
        sent("SMf1", "failed", T0, address=ALICE),
        sent("SMf2", "undelivered", T0, address=BOB),
        sent("SMf2", "failed", T0 + H, address=BOB),
    ])
    assert by_campaign(stats(store)) == {("spring", "sms"): (0, 0)}
    store.record_campaign_messages([sent("SMf1", "delivered", T0 + H)])
    assert campaign_row(store, "SMf1")["delivered_at"] == T0 + H
    assert by_campaign(stats(store)) == {("spring", "sms"): (1, 0)}


def test_a_repeated_message_id_counts_once_and_keeps_its_first_campaign_channel_and_address(store):
    added = store.record_campaign_messages([
        sent("SMx", "sent", T0, campaign="spring"),
        sent("SMx", "delivered", T0 + H, campaign="summer", channel="whatsapp", address=BOB),
        sent("SMy", "sent", T0, campaign="spring", address=BOB),
    ])
    assert added == 2
    assert store.record_campaign_messages([sent("SMx", "read", T0 + 2 * H, campaign="autumn", address=CAROL)]) == 0
    row = campaign_row(store, "SMx")
    assert (row["campaign"], row["channel"], row["address"], row["status"]) == ("spring", "sms", ALICE, "read")
    assert row["delivered_at"] == T0 + H
    assert by_campaign(stats(store)) == {("spring", "sms"): (1, 0)}


# -- statistics ------------------------------------------------------------------------


def test_opt_outs_are_attributed_to_the_latest_delivered_message_within_the_window(store):
    a = [number(i) for i in range(7)]
    store.record_campaign_messages([
        # a0: an older message within the window loses to a newer one
        sent("M1", "delivered", T0, campaign="older", address=a[0]),
        sent("M2", "delivered", T0 + 2 * H, campaign="newer", address=a[0]),
        # a1: a delivery after the opt-out does not count
        sent("M3", "delivered", T0, campaign="before", address=a[1]),
        sent("M4", "delivered", T0 + 5 * H, campaign="after", address=a[1]),
        # a2: delivered longer than the window before the opt-out
        sent("M5", "delivered", T0, campaign="stale", address=a[2]),
        # a3: an imported opt-out is never attributed
        sent("M6", "delivered", T0, campaign="imported", address=a[3]),
        # a4: an opt-out on WhatsApp goes to the WhatsApp message, not the newer SMS one
        sent("M7", "delivered", T0, campaign="wa", channel="whatsapp", address=a[4]),
        sent("M8", "delivered", T0 + H, campaign="crossed", channel="sms", address=a[4]),
        # a5: opting out twice counts once
        sent("M9", "delivered", T0, campaign="twice", address=a[5]),
        # a6: delivered within the window before an opt-out on another channel only
        sent("M10", "delivered", T0, campaign="sms_only", address=a[6]),
    ])
    store.record(event(at=T0 + 3 * H, address=a[0]))
    store.record(event(at=T0 + 4 * H, address=a[1]))
    store.record(event(at=T0 + WINDOW + H, address=a[2]))
    store.record(event(at=T0 + H, address=a[3], source="import"))
    store.record(event(at=T0 + 2 * H, address=a[4], channel="whatsapp"))
    store.record(event(at=T0 + H, address=a[5]))
    store.record(event("opt_in", at=T0 + 2 * H, address=a[5]))
    store.record(event(at=T0 + 3 * H, address=a[5]))
    store.record(event(at=T0 + H, address=a[6], channel="email"))

    expected = {
        ("older", "sms"): (1, 0), ("newer", "sms"): (1, 1),
        ("before", "sms"): (1, 1), ("after", "sms"): (1, 0),
        ("stale", "sms"): (1, 0),
        ("imported", "sms"): (1, 0),
        ("wa", "whatsapp"): (1, 1), ("crossed", "sms"): (1, 0),
        ("twice", "sms"): (1, 1),
        ("sms_only", "sms"): (1, 0),
    }
    assert by_campaign(stats(store)) == expected
    assert by_campaign(stats(store, "sms")) == {key: value for key, value in expected.items() if key[1] == "sms"}
    assert by_campaign(stats(store, "whatsapp")) == {("wa", "whatsapp"): (1, 1)}
    assert stats(store, "email").campaigns == []


def test_a_shorter_window_drops_an_attribution(store):
    store.record_campaign_messages([sent("M1", "delivered", T0)])
    store.record(event(at=T0 + 5 * H))
    assert by_campaign(stats(store, window=6 * H)) == {("spring", "sms"): (1, 1)}
    assert by_campaign(stats(store, window=4 * H)) == {("spring", "sms"): (1, 0)}


def test_window_edges_to_the_second(store):
    store.record_campaign_messages([
        sent("M1", "delivered", LATE - WINDOW + timedelta(seconds=1), campaign="inside", address=ALICE),
        sent("M2", "delivered", LATE - WINDOW - timedelta(seconds=1), campaign="outside", address=BOB),
        sent("M3", "delivered", LATE + timedelta(seconds=1), campaign="just_after", address=CAROL),
    ])
    for address in (ALICE, BOB, CAROL):
        store.record(event(at=LATE, address=address))
    assert by_campaign(stats(store)) == {("inside", "sms"): (1, 1), ("outside", "sms"): (1, 0), ("just_after", "sms"): (1, 0)}


@pytest.mark.parametrize(
    "opted_out_at,delivered_at,attributed",
    [
        # 0.1 ms outside the window (SQLite once rounded the window's start to the millisecond)
        (LATE.replace(microsecond=123456), LATE.replace(microsecond=123456) - WINDOW - timedelta(microseconds=100), 0),
        # 0.1 ms inside the window
        (LATE.replace(microsecond=999600), LATE.replace(microsecond=999600) - WINDOW + timedelta(microseconds=100), 1),
    ],
    ids=["just-outside", "just-inside"],
)
def test_window_edges_to_the_microsecond(store, opted_out_at, delivered_at, attributed):
    store.record_campaign_messages([sent("M1", "delivered", delivered_at)])
    store.record(event(at=opted_out_at))
    assert by_campaign(stats(store)) == {("spring", "sms"): (1, attributed)}


def test_two_addresses_of_one_campaign_both_count(store):
    store.record_campaign_messages([sent(f"M{i}", "delivered", T0, address=number(i)) for i in range(3)])
    store.record(event(at=T0 + H, address=number(0)))
    store.record(event(at=T0 + H, address=number(2)))
    assert by_campaign(stats(store)) == {("spring", "sms"): (3, 2)}


def test_campaigns_are_counted_by_sent_at_within_the_period(store):
    store.record_campaign_messages([
        # sent before the period, delivered inside it: not this period's campaign
        sent("E1", "sent", SINCE - 2 * H, campaign="early", address=ALICE),
        sent("E1", "delivered", SINCE + H, campaign="early", address=ALICE),
        # sent at the very end of the period; its opt-out comes just after the period
        sent("L1", "delivered", UNTIL - H, campaign="late", address=BOB),
        # sent when the period has ended
        sent("N1", "delivered", UNTIL, campaign="next", address=CAROL),
    ])
    store.record(event(at=SINCE + 2 * H, address=ALICE))
    store.record(event(at=UNTIL + H, address=BOB))
    store.record(event(at=UNTIL + 2 * H, address=CAROL))
    raw = stats(store)
    assert by_campaign(raw) == {("late", "sms"): (1, 1)}
    assert raw.daily == [("2026-03-01", "sms", "opt_out", 1)]
    later = stats(store, since=UNTIL, until=UNTIL + timedelta(days=1))
    assert by_campaign(later) == {("next", "sms"): (1, 1)}


def test_daily_counts_keywords_and_kinds(store):
    new_york = timezone(timedelta(hours=-5))
    rows = [
        # (action, at, channel, source, keyword, language, match_kind)
        ("opt_out", datetime(2026, 3, 2, 23, 30, tzinfo=new_york), "sms", "keyword", "STOP", "en", "keyword"),  # 3 March UTC
        ("opt_out", datetime(2026, 3, 3, 10, 0, tzinfo=timezone.utc), "sms", "keyword", "ARRÊT", "fr", "first_word"),
        ("opt_out", datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc), "sms", "keyword", "STOP", "en", "first_word"),
        ("opt_out", datetime(2026, 3, 2, 11, 0, tzinfo=timezone.utc), "sms", "keyword", "please stop", "en", "phrase"),
        ("opt_out", datetime(2026, 3, 2, 11, 30, tzinfo=timezone.utc), "sms", "keyword", "🛑", "en", "emoji"),
        ("opt_out", datetime(2026, 3, 2, 11, 45, tzinfo=timezone.utc), "sms", "keyword", "END", "en", None),
        ("opt_out", datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc), "sms", "carrier", None, None, None),
        ("opt_out", datetime(2026, 3, 2, 12, 30, tzinfo=timezone.utc), "sms", "admin", None, None, None),
        ("opt_out", datetime(2026, 3, 2, 12, 45, tzinfo=timezone.utc), "sms", "import", None, None, None),
        ("opt_in", datetime(2026, 3, 2, 13, 0, tzinfo=timezone.utc), "sms", "keyword", "START", "en", "keyword"),
        ("opt_out", datetime(2026, 3, 2, 14, 0, tzinfo=timezone.utc), "whatsapp", "keyword", "STOP", "en", "keyword"),
        ("opt_out", datetime(2026, 3, 4, 8, 0, tzinfo=timezone.utc), "whatsapp", "keyword", "BAJA", "es", "keyword"),
        # outside [SINCE, UNTIL): counted nowhere
        ("opt_out", SINCE - timedelta(microseconds=1), "sms", "keyword", "STOP", "en", "keyword"),
        ("opt_out", UNTIL, "sms", "keyword", "STOP", "en", "keyword"),
    ]
    for i, (action, at, channel, source, keyword, language, kind) in enumerate(rows):
        store.record(event(action, at=at, channel=channel, address=number(i), source=source,
                           keyword=keyword, language=language, match_kind=kind))

    raw = stats(store)
    assert raw.daily == [
        ("2026-03-02", "sms", "opt_in", 1),
        ("2026-03-02", "sms", "opt_out", 7),
        ("2026-03-02", "whatsapp", "opt_out", 1),
        ("2026-03-03", "sms", "opt_out", 2),
        ("2026-03-04", "whatsapp", "opt_out", 1),
    ]
    assert set(raw.keywords) == {
        ("STOP", "en", 3), ("ARRÊT", "fr", 1), ("please stop", "en", 1), ("🛑", "en", 1), ("END", "en", 1), ("BAJA", "es", 1),
    }
    assert raw.keywords[0] == ("STOP", "en", 3)
    assert raw.kinds[0] == ("keyword", 4)
    assert sorted(raw.kinds[1:]) == [
        ("admin", 1), ("carrier", 1), ("emoji", 1), ("first_word", 2), ("import", 1), ("phrase", 1),
    ]
    assert raw.kinds[1] == ("first_word", 2)

    sms = stats(store, "sms")
    assert {day for day, channel, *_ in sms.daily} == {"2026-03-02", "2026-03-03"}
    assert {channel for _, channel, *_ in sms.daily} == {"sms"}
    assert ("STOP", "en", 2) in sms.keywords and not any(k == "BAJA" for k, *_ in sms.keywords)
    assert dict(sms.kinds)["keyword"] == 2
    whatsapp = stats(store, "whatsapp")
    assert whatsapp.daily == [("2026-03-02", "whatsapp", "opt_out", 1), ("2026-03-04", "whatsapp", "opt_out", 1)]
    assert set(whatsapp.kinds) == {("keyword", 2)}
    narrow = stats(store, since=datetime(2026, 3, 3, tzinfo=timezone.utc), until=datetime(2026, 3, 4, tzinfo=timezone.utc))
    assert narrow.daily == [("2026-03-03", "sms", "opt_out", 2)]


def give_reason(store, item: Feedback) -> bool:
    """A reason follows an opt-out: record one for the address (once), then keep the reason."""
    store.record(event(at=T0 - 24 * H, channel=item.channel, address=item.address, sid=f"known:{item.channel}:{item.address}"))
    return store.add_feedback(item)


def test_feedback_and_open_review_items_in_the_statistics(store):
    items = [
        Feedback("sms", ALICE, "with_opt_out", "too many", T0, "F1", dedupe_key="twilio:F1"),
        Feedback("sms", BOB, "after_opt_out", "never signed up", T0 + H, "F2", dedupe_key="twilio:F2"),
        Feedback("whatsapp", CAROL, "with_opt_out", "wrong number", T0 + 2 * H, "F3", dedupe_key="twilio:F3"),
        Feedback("email", ALICE, "page", "old news", SINCE - H, "F4", dedupe_key="twilio:F4"),  # before the period
        Feedback("email", BOB, "page", "later", UNTIL, "F5", dedupe_key="twilio:F5"),  # the period's end is excluded
    ]
    for item in items:
        assert give_reason(store, item)
    for i, channel in enumerate(["sms", "sms", "whatsapp"]):
        store.add_review_item(ReviewItem(channel, number(i), "cancel my order", T0, f"R{i}", dedupe_key=f"twilio:R{i}"))
    first = store.review_items("open")[0][0]
    assert store.decide_review_item(first.id, "dismissed", "ops")

    raw = stats(store)
    assert raw.feedback_total == 3 and raw.review_open == 2
    assert [f.message_id for f in raw.feedback] == ["F3", "F2", "F1"]
    assert raw.feedback[0].received_at == T0 + 2 * H and raw.feedback[0].kind == "with_opt_out"
    sms = stats(store, "sms")
    assert (sms.feedback_total, sms.review_open) == (2, 1)
    assert [f.message_id for f in sms.feedback] == ["F2", "F1"]
    whatsapp = stats(store, "whatsapp")
    assert (whatsapp.feedback_total, whatsapp.review_open) == (1, 1)
    assert stats(store, since=UNTIL, until=UNTIL + H).feedback_total == 1


def test_statistics_keep_the_latest_200_reasons_and_count_all(store):
    for i in range(203):
        assert give_reason(store, Feedback("sms", number(i), "with_opt_out", f"reason {i}", T0 + i * timedelta(minutes=1), f"F{i}", dedupe_key=f"twilio:F{i}"))
    raw = stats(store)
    assert raw.feedback_total == 203 and len(raw.feedback) == 200
    assert raw.feedback[0].message_id == "F202" and raw.feedback[-1].message_id == "F3"


def test_empty_statistics(store):
    raw = stats(store)
    assert raw == RawStats(daily=[], campaigns=[], keywords=[], kinds=[], feedback=[], feedback_total=0, review_open=0)


# -- statuses, suppressions --------------------------------------------------------------


def test_statuses_among_many_addresses_in_chunks(store):
    numbers = [number(i) for i in range(2500)]
    events = []
    for i in range(0, 2500, 7):
        events.append(event("opt_out" if i % 2 else "opt_in", at=T0, address=numbers[i], source="import", recorded_at=T0))
    events.append(event(at=T0, address=numbers[1], channel="whatsapp", source="import", recorded_at=T0))
    assert store.import_events(events) == len(events)

    unknown = ["+14155559999", "+447700900123"]
    found = store.statuses_among("sms", numbers + unknown + numbers[:10])
    assert found == {numbers[i]: "unsubscribed" if i % 2 else "subscribed" for i in range(0, 2500, 7)}
    assert store.statuses_among("whatsapp", numbers) == {numbers[1]: "unsubscribed"}
    assert store.statuses_among("sms", []) == {}
    assert store.statuses_among("sms", iter(unknown)) == {}


def test_suppressions_in_address_order_page_by_page(store):
    addresses = [number(i) for i in (7, 2, 9, 4, 0, 5, 3)]
    for k, address in enumerate(addresses):
        store.record(event(at=T0 + k * H, address=address, keyword="STOP", language="en", match_kind="keyword"))
    store.record(event("opt_in", at=T0 + 10 * H, address=number(4)))  # back in: no longer suppressed
    store.record(event(at=T0, address=number(1), channel="whatsapp"))  # another channel
    expected = [number(i) for i in (0, 2, 3, 5, 7, 9)]

    batches = pages(store.iter_suppressions("sms", batch=4))
    assert [len(b) for b in batches] == [4, 2]
    assert [s.address for b in batches for s in b] == expected
    assert all(s.channel == "sms" and s.source == "keyword" and s.keyword == "STOP" for b in batches for s in b)
    assert [s.address for b in pages(store.iter_suppressions("sms", batch=2)) for s in b] == expected
    assert [len(b) for b in pages(store.iter_suppressions("sms", batch=2))] == [2, 2, 2]
    assert [s.address for b in pages(store.iter_suppressions("sms", batch=2, after=number(3))) for s in b] == expected[3:]
    assert [s.address for b in pages(store.iter_suppressions("sms", after=number(4))) for s in b] == [number(5), number(7), number(9)]
    assert pages(store.iter_suppressions("sms", after=number(9))) == []
    assert store.suppression_count("sms") == 6
    assert store.suppression_count("whatsapp") == 1
    assert store.suppression_count("email") == 0 and pages(store.iter_suppressions("email")) == []
    by_address = {s.address: s for b in batches for s in b}
    assert by_address[number(7)].unsubscribed_at == T0  # the first one recorded
    assert by_address[number(3)].unsubscribed_at == T0 + 6 * H


def test_a_suppression_names_the_event_that_set_the_status(store):
    store.record(event(at=T0, address=ALICE, keyword="STOP", language="en", match_kind="keyword"))
    # an older imported opt-out does not take over
    store.import_events([event(at=T0 - 24 * H, address=ALICE, source="import", recorded_at=T0 - 24 * H)])
    store.record(event(at=T0, address=BOB, keyword="STOPP", language="de", match_kind="keyword"))
    store.record(event(at=T0 + H, address=BOB, source="admin"))  # a newer opt-out does
    store.record(event(at=T0, address=CAROL, source="carrier"))
    found = {s.address: s for b in pages(store.iter_suppressions("sms")) for s in b}
    assert (found[ALICE].source, found[ALICE].keyword, found[ALICE].unsubscribed_at) == ("keyword", "STOP", T0)
    assert (found[BOB].source, found[BOB].keyword, found[BOB].unsubscribed_at) == ("admin", None, T0 + H)
    assert (found[CAROL].source, found[CAROL].keyword) == ("carrier", None)
    assert found[ALICE].unsubscribed_at.tzinfo is not None


# -- erasure ---------------------------------------------------------------------------------


def hashed(channel: str, address: str) -> str:
    return f"h:{channel}:{address}"


def test_erasure_deletes_everything_and_keeps_hashes_only_where_unsubscribed(store):
    # Alice: out on sms and on a channel no configuration names, in on WhatsApp.
    store.record(event(at=T0, address=ALICE, sid="A1", keyword="STOP"))
    store.record(event(at=T0 + H, address=ALICE, sid="A2"))
    store.record(event("opt_in", at=T0, address=ALICE, channel="whatsapp", sid="A3"))
    store.record(event(at=T0, address=ALICE, channel="pigeon-post", sid="A4"))
    store.record_campaign_messages([
        sent("CA1", "delivered", T0 - H, address=ALICE),
        sent("CA2", "sent", T0 - H, address=ALICE, channel="whatsapp"),
        sent("CA3", "delivered", T0 - H, address=ALICE, channel="email-only"),  # a channel with no events
    ])
    assert store.add_feedback(Feedback("sms", ALICE, "with_opt_out", "too many", T0, "AF1", dedupe_key="twilio:AF1"))
    assert store.add_feedback(Feedback("pigeon-post", ALICE, "page", "meh", T0, "AF2", dedupe_key="twilio:AF2"))
    assert store.add_review_item(ReviewItem("whatsapp", ALICE, "cancel my order", T0, "AR1", dedupe_key="twilio:AR1"))
    # Bob: the same channels, untouched.
    store.record(event(at=T0, address=BOB, sid="B1"))
    store.record(event(at=T0, address=BOB, channel="pigeon-post", sid="B2"))
    store.record_campaign_messages([sent("CB1", "delivered", T0 - H, address=BOB)])
    assert store.add_feedback(Feedback("sms", BOB, "with_opt_out", "wrong number", T0, "BF1", dedupe_key="twilio:BF1"))
    assert store.add_review_item(ReviewItem("whatsapp", BOB, "quit it", T0, "BR1", dedupe_key="twilio:BR1"))
    assert not store.has_erasures("sms")
    assert store.erased_among("sms", [hashed("sms", ALICE)]) == {}

    before = utcnow()
    erasure = store.erase(ALICE, hashed)
    after = utcnow()
    assert erasure.address == ALICE
    assert sorted(erasure.suppressed_channels) == ["pigeon-post", "sms"]
    assert erasure.deleted == {"subscriptions": 3, "consent_events": 4, "campaign_messages": 3, "feedback": 2, "review_items": 1,
                               "outbox": 0}

    for channel in ("sms", "whatsapp", "pigeon-post"):
        assert store.subscription(channel, ALICE) is None and store.history(channel, ALICE) == []
    assert store.contact_events(ALICE) == [] and store.contact_feedback(ALICE) == []
    assert store.statuses_among("sms", [ALICE, BOB]) == {BOB: "unsubscribed"}
    assert [item.address for item in store.review_items(None)[0]] == [BOB]
    assert [f.address for f in store.feedback_items()[0]] == [BOB]

    # Bob is intact.
    assert [e.message_id for e in store.contact_events(BOB)] == ["B1", "B2"]
    assert [f.message_id for f in store.contact_feedback(BOB)] == ["BF1"]
    assert store.subscription("pigeon-post", BOB).status == "unsubscribed"
    assert store.event_count() == 2
    assert by_campaign(stats(store, "sms")) == {("spring", "sms"): (1, 1)}  # Bob's message and opt-out

    # Only the hashes of the channels Alice had left remain.
    assert store.has_erasures("sms") and store.has_erasures("pigeon-post")
    assert not store.has_erasures("whatsapp") and not store.has_erasures("email-only")
    found = store.erased_among("sms", [hashed("sms", ALICE), hashed("sms", BOB), hashed("whatsapp", ALICE)])
    assert list(found) == [hashed("sms", ALICE)]
    erased_at = found[hashed("sms", ALICE)]
    assert erased_at.tzinfo is not None
    assert before - timedelta(seconds=1) <= erased_at <= after + timedelta(seconds=1)
    assert store.erased_among("whatsapp", [hashed("whatsapp", ALICE)]) == {}
    assert store.erased_among("pigeon-post", [hashed("pigeon-post", ALICE)]).keys() == {hashed("pigeon-post", ALICE)}
    assert store.erased_among("sms", []) == {}

    # Erasing again finds nothing and forgets nothing, and says what is still true (issue 11
    # item 11): she is still suppressed where the first erasure left her hash.
    again = store.erase(ALICE, hashed)
    assert again.suppressed_channels == ["pigeon-post", "sms"] and again.deleted == dict.fromkeys(ADDRESS_TABLES + ("outbox",), 0)
    assert store.erased_among("sms", [hashed("sms", ALICE)]) == {hashed("sms", ALICE): erased_at}
    assert store.contact_events(BOB) != []


def test_the_log_refuses_deletes_outside_an_erasure(store):
    store.record(event(at=T0, address=ALICE, sid="A1"))
    store.record(event(at=T0, address=BOB, sid="B1"))
    refuse_delete_of_events(store)
    store.erase(ALICE, hashed)
    refuse_delete_of_events(store)
    assert [e.message_id for e in store.contact_events(BOB)] == ["B1"]
    assert store.event_count() == 1


def test_erasing_an_unknown_address_changes_nothing(store):
    store.record(event(at=T0, address=BOB))
    erasure = store.erase(ALICE, hashed)
    assert erasure.suppressed_channels == [] and erasure.deleted == dict.fromkeys(ADDRESS_TABLES + ("outbox",), 0)
    assert not store.has_erasures("sms") and store.event_count() == 1


def test_a_new_event_after_erasure_is_recorded(store):
    store.record(event(at=T0, address=ALICE, sid="A1"))
    store.erase(ALICE, hashed)
    assert store.record(event("opt_in", at=T0 + H, address=ALICE, sid="A2")).status == "subscribed"
    assert [e.message_id for e in store.contact_events(ALICE)] == ["A2"]


# -- feedback ---------------------------------------------------------------------------------


def after_opt_out(at: datetime, sid: str | None, *, text="too many texts", channel="sms", address=ALICE) -> Feedback:
    return Feedback(channel, address, "after_opt_out", text, at, sid, dedupe_key=f"twilio:{sid}")


def test_the_first_message_after_an_opt_out_is_kept_as_its_reason(store):
    store.record(event(at=T0, address=ALICE))
    store.record(event(at=T0, address=CAROL))
    store.record(event("opt_in", at=T0 + H, address=CAROL))
    assert store.add_feedback(Feedback("sms", ALICE, "with_opt_out", "STOP spam", T0, "W1", dedupe_key="twilio:W1"))  # not an after_opt_out

    keep = store.add_feedback_after_opt_out
    assert not keep(after_opt_out(T0 + H, "X1", channel="whatsapp"), FEEDBACK_WINDOW)  # not out on that channel
    assert not keep(after_opt_out(T0 + H, "X2", address=BOB), FEEDBACK_WINDOW)  # never opted out
    assert not keep(after_opt_out(T0 + 2 * H, "X3", address=CAROL), FEEDBACK_WINDOW)  # opted back in
    assert not keep(after_opt_out(T0 + FEEDBACK_WINDOW + H, "X4"), FEEDBACK_WINDOW)  # too late
    assert not keep(after_opt_out(T0 - H, "X5"), FEEDBACK_WINDOW)  # before the opt-out
    assert keep(after_opt_out(T0 + H, "F1", text="I never signed up"), FEEDBACK_WINDOW)
    assert not keep(after_opt_out(T0 + 2 * H, "F2"), FEEDBACK_WINDOW)  # not the first
    assert not keep(after_opt_out(T0 + H, "F1"), FEEDBACK_WINDOW)  # a repeat

    # A new opt-out allows a new reason, but a repeated message id is still a repeat.
    store.record(event(at=T0 + 5 * H, address=ALICE))
    assert not keep(after_opt_out(T0 + 6 * H, "F1"), FEEDBACK_WINDOW)
    assert keep(after_opt_out(T0 + 6 * H, "F3", text="wrong number"), FEEDBACK_WINDOW)
    assert not keep(after_opt_out(T0 + 7 * H, "F4"), FEEDBACK_WINDOW)

    items, total = store.feedback_items()
    assert total == 3
    assert [(f.message_id, f.kind, f.text) for f in items] == [
        ("F3", "after_opt_out", "wrong number"), ("F1", "after_opt_out", "I never signed up"), ("W1", "with_opt_out", "STOP spam"),
    ]
    assert items[1].received_at == T0 + H and items[1].channel == "sms" and items[1].address == ALICE
    assert [f.message_id for f in store.contact_feedback(ALICE)] == ["W1", "F1", "F3"]


def test_only_one_of_concurrent_messages_after_an_opt_out_is_kept(store, database_url):
    store.record(event(at=T0, address=ALICE))
    results = []
    start = threading.Barrier(8)

    def send(i: int):
        own = open_store(database_url)
        try:
            start.wait()
            results.append(own.add_feedback_after_opt_out(after_opt_out(T0 + H, f"C{i}"), FEEDBACK_WINDOW))
        finally:
            own.close()

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert store.feedback_items()[1] == 1


def test_feedback_window_edges(store):
    store.record(event(at=T0, address=ALICE))
    assert store.add_feedback_after_opt_out(after_opt_out(T0 + 2 * H, "F1"), 3 * H)
    store.record(event(at=T0, address=BOB))
    assert not store.add_feedback_after_opt_out(after_opt_out(T0 + 2 * H, "F2", address=BOB), H)


def test_feedback_is_idempotent_by_message_id_and_listed_newest_first(store):
    assert give_reason(store, Feedback("sms", ALICE, "with_opt_out", "too many", T0, "F1", dedupe_key="twilio:F1"))
    assert not give_reason(store, Feedback("sms", BOB, "with_opt_out", "other", T0 + H, "F1", dedupe_key="twilio:F1"))
    assert give_reason(store, Feedback("email", BOB, "page", "not relevant", T0 + 2 * H, "F2", dedupe_key="twilio:F2"))
    assert give_reason(store, Feedback("sms", CAROL, "with_opt_out", "cost", T0 - H, "F3", dedupe_key="twilio:F3"))
    items, total = store.feedback_items(limit=2)
    assert total == 3 and [f.message_id for f in items] == ["F2", "F1"]
    assert [f.message_id for f in store.feedback_items(limit=2, offset=2)[0]] == ["F3"]
    assert store.contact_feedback(BOB)[0].text == "not relevant"
    assert store.contact_feedback(ALICE)[0].text == "too many"


# -- review queue --------------------------------------------------------------------------------


def test_review_items_queue_and_decisions(store):
    items = [ReviewItem("sms", number(i), f"cancel order {i}", T0 + i * H, f"R{i}", dedupe_key=f"twilio:R{i}") for i in range(4)]
    assert [store.add_review_item(item) for item in items] == [True] * 4
    assert not store.add_review_item(ReviewItem("sms", ALICE, "again", T0, "R1", dedupe_key="twilio:R1"))

    everything, total = store.review_items(None)
    assert total == 4 and [item.message_id for item in everything] == ["R0", "R1", "R2", "R3"]
    assert all(item.status == "open" and item.decided_by is None and item.decided_at is None for item in everything)
    assert everything[1].text == "cancel order 1" and everything[1].received_at == T0 + H
    page, total = store.review_items("open", limit=2, offset=1)
    assert total == 4 and [item.message_id for item in page] == ["R1", "R2"]

    first, second = everything[0].id, everything[1].id
    before = utcnow()
    assert store.decide_review_item(first, "confirmed", "alice@example.com")
    assert not store.decide_review_item(first, "dismissed", "bob@example.com")
    assert store.decide_review_item(second, "dismissed", "bob@example.com")
    decided = store.review_item(first)
    assert (decided.status, decided.decided_by) == ("confirmed", "alice@example.com")
    assert decided.decided_at.tzinfo is not None and decided.decided_at >= before - timedelta(seconds=1)
    assert store.review_item(second).status == "dismissed"

    opened, open_total = store.review_items("open")
    assert open_total == 2 and [item.message_id for item in opened] == ["R2", "R3"]
    assert store.review_items("confirmed")[1] == 1 and store.review_items("dismissed")[0][0].message_id == "R1"
    assert store.review_items(None)[1] == 4


def test_a_review_item_is_decided_once_when_deciders_race(store, database_url):
    store.add_review_item(ReviewItem("sms", ALICE, "cancel", T0, "R1", dedupe_key="twilio:R1"))
    item_id = store.review_items("open")[0][0].id
    results = []
    start = threading.Barrier(6)

    def decide(i: int):
        own = open_store(database_url)
        try:
            start.wait()
            results.append((own.decide_review_item(item_id, "confirmed" if i % 2 else "dismissed", f"admin{i}"), i))
        finally:
            own.close()

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [i for won, i in results if won]
    assert len(results) == 6 and len(winners) == 1
    decided = store.review_item(item_id)
    assert decided.decided_by == f"admin{winners[0]}"
    assert decided.status == ("confirmed" if winners[0] % 2 else "dismissed")


@pytest.mark.parametrize("item_id", [0, -1, 2**63, 2**63 - 1, 10**30])
def test_review_ids_out_of_range_are_absent(store, item_id):
    assert store.add_review_item(ReviewItem("sms", ALICE, "cancel", T0, "R1", dedupe_key="twilio:R1"))
    assert store.review_item(item_id) is None
    assert store.decide_review_item(item_id, "confirmed", "ops") is False
    assert store.review_items("open")[1] == 1


def test_a_reason_for_an_address_erased_meanwhile_is_not_kept(store):
    store.record(event(at=T0, sid="E1"))
    store.erase(ALICE, hashed)
    assert not store.add_feedback(Feedback("sms", ALICE, "with_opt_out", "STOP you spam me, Alice Smith", T0, "E1", dedupe_key="twilio:E1"))
    assert store.feedback_items()[1] == 0


def test_erasing_again_after_a_new_opt_in_drops_the_stale_hash(store):
    store.record(event(at=T0, sid="S1"))
    assert store.erase(ALICE, hashed).suppressed_channels == ["sms"]
    store.record(event("opt_in", at=T0 + H, sid="S2"))  # new consent after the erasure
    assert store.erase(ALICE, hashed).suppressed_channels == []
    assert store.erased_among("sms", [hashed("sms", ALICE)]) == {}
    assert not store.has_erasures("sms")
