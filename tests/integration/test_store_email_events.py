"""The Store's part of e-mail provider events (issue 19), on SQLite and PostgreSQL: the
campaign an event names (kept, copied, announced, counted), complaints per campaign in the
statistics, and the tokens of signed requests already seen."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from webhook.domain import CampaignMessage, ConsentEvent, dedupe_key, utcnow
from webhook.store import open_store

BOB, CAROL, DAN, ERIN = "bob@example.com", "carol@example.com", "dan@example.com", "erin@example.com"
H = timedelta(hours=1)
SINCE = datetime(2026, 3, 1, tzinfo=timezone.utc)
UNTIL = datetime(2026, 3, 8, tzinfo=timezone.utc)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
WINDOW = timedelta(hours=72)


@pytest.fixture
def store(database_url):
    store = open_store(database_url)
    store.migrate()
    yield store
    store.close()


def complaint(address: str, at: datetime, campaign: str | None, *, key: str | None = None, source: str = "complaint",
              action: str = "opt_out", channel: str = "email") -> ConsentEvent:
    key = key or f"{address}:{at.isoformat()}:{source}"
    return ConsentEvent(channel=channel, address=address, action=action, source=source, occurred_at=at,  # type: ignore[arg-type]
                        match_kind="sendgrid_spamreport", message_id=key, dedupe_key=dedupe_key("sendgrid-event", key),
                        campaign=campaign)


def delivered(message_id: str, address: str, at: datetime, campaign: str = "spring") -> CampaignMessage:
    return CampaignMessage(message_id, campaign, "email", address, "delivered", at)


def by_campaign(store, since=SINCE, until=UNTIL, channel=None) -> dict:
    raw = store.raw_stats(since, until, WINDOW, channel)
    complaints = {(campaign, ch): n for campaign, ch, n in raw.complaints}
    found = {(campaign, ch): (sent, outs, complaints.get((campaign, ch), 0)) for campaign, ch, sent, outs in raw.campaigns}
    assert len(found) == len(raw.campaigns), raw.campaigns
    assert set(complaints) <= set(found), (raw.complaints, raw.campaigns)
    return found


def test_an_event_keeps_the_campaign_it_names_and_a_copy_keeps_it_too(store, tmp_path):
    store.record(complaint(BOB, T0, "spring"))
    store.record(complaint(CAROL, T0, None))
    assert [e.campaign for e in store.history("email", BOB)] == ["spring"]
    assert [e.campaign for e in store.history("email", CAROL)] == [None]
    target = open_store(f"sqlite:///{tmp_path / 'copy.db'}")
    target.migrate()
    try:
        for events in store.iter_events():
            target.copy_events(events)
        assert [e.campaign for e in target.history("email", BOB)] == ["spring"]
        assert [e.campaign for e in target.contact_events(CAROL)] == [None]
    finally:
        target.close()


def test_a_consent_webhook_announces_the_named_campaign_over_the_guess(store):
    store.record_campaign_messages([delivered("M1", BOB, T0 - H, campaign="guessed"),
                                    delivered("M2", CAROL, T0 - H, campaign="guessed")])
    named = store.record(complaint(BOB, T0, "named"))
    guessed = store.record(complaint(CAROL, T0, None))
    facts = store.event_facts(named.event_id, WINDOW)
    assert (facts.source, facts.campaign, facts.action) == ("complaint", "named", "opt_out")
    assert store.event_facts(guessed.event_id, WINDOW).campaign == "guessed"


def test_complaints_count_per_campaign_beside_the_opt_outs(store):
    store.record_campaign_messages([delivered(f"M{i}", f"r{i}@example.com", T0) for i in range(4)]
                                   + [delivered("N1", BOB, T0, campaign="summer")])
    store.record(complaint("r0@example.com", T0 + H, "spring"))  # a complaint naming its campaign
    store.record(complaint("r1@example.com", T0 + H, None))  # a complaint attributed by the window
    store.record(complaint("r2@example.com", T0 + H, None, source="provider"))  # an unsubscribe, not a complaint
    # Complaining twice (SendGrid and a feedback loop, say) counts the address once.
    store.record(complaint("r0@example.com", T0 + 2 * H, "spring", key="again"))
    # A complaint naming another campaign than the one the window would guess counts there.
    store.record(complaint(BOB, T0 + H, "spring"))
    assert by_campaign(store) == {("spring", "email"): (4, 4, 3), ("summer", "email"): (1, 0, 0)}
    assert by_campaign(store, channel="sms") == {}


def test_a_campaign_only_a_provider_names_is_listed_in_the_period_of_its_complaints(store):
    store.record(complaint(BOB, T0, "unreported"))
    store.record(complaint(CAROL, T0, "unreported", source="provider"))
    store.record(complaint(DAN, UNTIL + H, "unreported"))  # after the period: not this period's
    assert by_campaign(store) == {("unreported", "email"): (0, 2, 1)}
    assert by_campaign(store, since=UNTIL, until=UNTIL + timedelta(days=1)) == {("unreported", "email"): (0, 1, 1)}


def test_a_named_campaign_with_sends_belongs_to_the_periods_it_was_sent_in(store):
    store.record_campaign_messages([delivered("M1", CAROL, UNTIL - H)])
    store.record(complaint(BOB, UNTIL + H, "spring"))  # just after the period, within the window: counts
    store.record(complaint(ERIN, SINCE - H, "spring"))  # before the period: not counted anywhere here
    assert by_campaign(store) == {("spring", "email"): (1, 1, 1)}
    # In the next period the campaign has no send: its late complaint is not counted twice.
    assert by_campaign(store, since=UNTIL, until=UNTIL + timedelta(days=1)) == {}


def test_imported_and_opt_in_events_are_never_complaints_of_a_campaign(store):
    store.record(complaint(BOB, T0, "spring", source="import"))
    store.record(complaint(CAROL, T0, "spring", action="opt_in", source="provider"))
    assert by_campaign(store) == {}


def test_a_token_is_accepted_once(store):
    later = utcnow() + H
    assert store.remember_token("mailgun", "t" * 50, later) is True
    assert store.remember_token("mailgun", "t" * 50, later) is False
    assert store.remember_token("other", "t" * 50, later) is True  # namespaces do not mix
    assert store.remember_token("mailgun", "u" * 50, later) is True


def test_expired_tokens_are_pruned(store):
    store.remember_token("mailgun", "old", utcnow() - timedelta(seconds=1))
    store.remember_token("mailgun", "new", utcnow() + H)
    store.remember_token("mailgun", "any", utcnow() + H)  # every call prunes what has expired
    rows = [row for rows in store.iter_rows("seen_tokens") for row in rows]
    assert sorted(row["token"] for row in rows) == ["any", "new"]


def test_two_requests_racing_with_one_token_are_accepted_once(store, database_url):
    stores = [open_store(database_url) for _ in range(6)]
    results: list[bool] = []
    start = threading.Barrier(len(stores))

    def claim(other) -> None:
        start.wait()
        results.append(other.remember_token("mailgun", "raced", utcnow() + H))

    threads = [threading.Thread(target=claim, args=(other,)) for other in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for other in stores:
        other.close()
    assert sorted(results) == [False] * 5 + [True]


def test_seen_tokens_are_copied(store, tmp_path):
    expires = utcnow().replace(microsecond=0) + H
    store.remember_token("mailgun", "t" * 50, expires)
    target = open_store(f"sqlite:///{tmp_path / 'copy.db'}")
    target.migrate()
    try:
        for rows in store.iter_rows("seen_tokens"):
            assert target.import_rows("seen_tokens", rows) == 1
        assert target.remember_token("mailgun", "t" * 50, expires) is False  # still a replay after the move
    finally:
        target.close()
