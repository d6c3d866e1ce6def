"""The outbox's contract on both backends: deliveries written with the change they announce,
claims that keep one contact's order and never hand one delivery to two workers, attempts
recorded, erasure leftovers gone."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from webhook.domain import AttemptResult, ConsentEvent, dedupe_key, utcnow
from webhook.store import open_store

ALICE, BOB = "+14155550701", "+14155550702"
LEASE = timedelta(seconds=30)


@pytest.fixture
def store(database_url):
    opened = open_store(database_url)
    opened.migrate()
    yield opened
    opened.close()


def stop(store, address=ALICE, action="opt_out", sid=None, **extra):
    return store.record(ConsentEvent("sms", address, action, "keyword", utcnow(), keyword="STOP", message_id=sid,
                                     dedupe_key=dedupe_key("twilio", sid), **extra))


def claim(store, worker="w1", per_lane=16, limit=100, busy=()):
    return store.claim_deliveries(worker, per_lane=per_lane, limit=limit, lease=LEASE, busy_lanes=list(busy))


def done(delivery, worker="w1", outcome="delivered", **extra):
    return AttemptResult(delivery.id, outcome, utcnow(), worker, status_code=200 if outcome == "delivered" else 500,
                         duration_ms=3, excerpt="ok", body='{"x": 1}', **extra)


def test_without_endpoints_a_change_queues_nothing(store):
    stop(store)
    assert claim(store) == [] and store.outbox_backlog().pending == 0


def test_a_change_queues_one_delivery_per_enabled_endpoint_in_its_transaction(store):
    first = store.create_endpoint("https://a.example.com/h", "A", "whsec_a")
    second = store.create_endpoint("https://b.example.com/h", "B", "whsec_b")
    off = store.create_endpoint("https://c.example.com/h", "C", "whsec_c")
    store.set_endpoint_enabled(off.id, False, "paused")
    recorded = stop(store, sid="SMq1")
    stop(store, sid="SMq1")  # a repeat records nothing, so queues nothing
    claimed = claim(store)
    assert sorted((c.endpoint_id, c.target, c.secret) for c in claimed) == [
        (first.id, "https://a.example.com/h", "whsec_a"), (second.id, "https://b.example.com/h", "whsec_b")]
    assert {c.event_id for c in claimed} == {recorded.event_id}
    assert {(c.event_type, c.status_after, c.previous_status, c.attempts) for c in claimed} == {
        ("consent.opted_out", "unsubscribed", "unknown", 1)}
    assert len({c.webhook_id for c in claimed}) == 2 and all(c.webhook_id.startswith("msg_") for c in claimed)
    assert store.endpoint(off.id).disabled_reason == "paused"


def test_unchanged_imports_queue_nothing_and_copies_announce_nothing(store):
    store.create_endpoint("https://a.example.com/h", "", "whsec_a")
    event = ConsentEvent("sms", ALICE, "opt_out", "import", utcnow(), dedupe_key="import:x")
    assert store.import_events([event], only_if_changes=True) == 1
    assert store.import_events([ConsentEvent("sms", ALICE, "opt_out", "import", utcnow(), dedupe_key="import:y")],
                               only_if_changes=True) == 0
    copied = ConsentEvent("sms", BOB, "opt_out", "keyword", utcnow(), id=9000, recorded_at=utcnow(), dedupe_key="twilio:c")
    assert store.copy_events([copied]) == 1
    assert store.history("sms", BOB)[0].id == 9000  # ids kept: pending deliveries name them
    assert [c.address for c in claim(store)] == [ALICE]
    assert stop(store, address="+14155550799").event_id > 9000  # later events come after the copied ids


def test_one_contacts_deliveries_go_one_at_a_time_in_order_and_never_hold_up_another(store):
    store.create_endpoint("https://a.example.com/h", "", "whsec_a")
    stop(store, ALICE)
    stop(store, ALICE, "opt_in")
    stop(store, BOB)
    first = claim(store)
    assert [(c.address, c.event_type) for c in first] == [(ALICE, "consent.opted_out"), (BOB, "consent.opted_out")]
    assert claim(store, "w2") == []  # Alice's second waits for her first, which w1 holds
    alice, bob = first
    retry_at = utcnow() - timedelta(seconds=1)
    store.finish_attempts([done(alice, outcome="retry", next_attempt_at=retry_at), done(bob)])
    again = claim(store, "w2")
    assert [(c.address, c.event_type, c.attempts) for c in again] == [(ALICE, "consent.opted_out", 2)]
    store.finish_attempts([done(again[0], "w2")])
    last = claim(store, "w3")
    assert [(c.address, c.event_type) for c in last] == [(ALICE, "consent.opted_in")]


def test_claims_take_at_most_per_lane_and_skip_busy_lanes(store):
    a = store.create_endpoint("https://a.example.com/h", "", "s")
    b = store.create_endpoint("https://b.example.com/h", "", "s")
    for i in range(5):
        stop(store, f"+1415555{i:04d}")
    claimed = claim(store, per_lane=2)
    assert sorted(c.endpoint_id for c in claimed) == [a.id, a.id, b.id, b.id]
    rest = claim(store, "w2", per_lane=10, busy=[f"endpoint:{a.id}"])
    assert {c.endpoint_id for c in rest} == {b.id} and len(rest) == 3


def test_a_claim_expires_and_the_late_answer_of_its_worker_moves_nothing(store):
    store.create_endpoint("https://a.example.com/h", "", "s")
    stop(store)
    held = store.claim_deliveries("dead", per_lane=16, limit=10, lease=timedelta(seconds=-1), busy_lanes=[])
    taken = claim(store, "alive")
    assert [c.id for c in taken] == [c.id for c in held] and taken[0].attempts == 2
    store.finish_attempts([done(held[0], "dead", outcome="failed")])  # too late: no longer its claim
    store.finish_attempts([done(taken[0], "alive")])
    delivery = store.delivery(taken[0].id)
    assert (delivery.state, delivery.attempts, [a.status_code for a in delivery.log]) == ("delivered", 2, [500, 200])


def test_concurrent_workers_never_claim_one_delivery_twice(store, database_url):
    store.create_endpoint("https://a.example.com/h", "", "s")
    for i in range(60):
        stop(store, f"+1415556{i:04d}")
    claimed: list[int] = []
    lock = threading.Lock()

    def work(name: str) -> None:
        own = open_store(database_url)
        try:
            for _ in range(200):  # rivals skip what another holds (SKIP LOCKED): go on until all are out
                found = own.claim_deliveries(name, per_lane=4, limit=4, lease=LEASE, busy_lanes=[])
                with lock:
                    claimed.extend(c.id for c in found)
                    if len(claimed) >= 60:
                        return
        finally:
            own.close()

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claimed) == len(set(claimed)) == 60


def test_outcomes_released_failed_and_410(store):
    endpoint = store.create_endpoint("https://a.example.com/h", "", "s")
    stop(store, ALICE)
    stop(store, BOB)
    alice, bob = claim(store)
    store.finish_attempts([AttemptResult(alice.id, "released", utcnow(), "w1"),
                           done(bob, outcome="failed", disable_endpoint=True)])
    assert store.delivery(alice.id).attempts == 0 and store.delivery(alice.id).state == "pending"
    assert store.delivery(bob.id).state == "failed" and store.outbox_backlog().failed == 1
    gone = store.endpoint(endpoint.id)
    assert gone.enabled is False and "410" in gone.disabled_reason
    assert claim(store) == []  # a disabled endpoint's deliveries wait
    store.set_endpoint_enabled(endpoint.id, True)
    assert [c.id for c in claim(store)] == [alice.id]
    assert store.retry_delivery(bob.id) and not store.retry_delivery(bob.id)
    assert store.delivery(bob.id).state == "pending"


def test_erasure_drops_the_contacts_deliveries_and_announces_it_once_then_blanks_it(store):
    store.create_endpoint("https://a.example.com/h", "", "s")
    stop(store, ALICE)
    stop(store, BOB)
    delivered = [c for c in claim(store) if c.address == BOB]
    store.finish_attempts([done(delivered[0])])
    stop(store, ALICE, "opt_in")
    erasure = store.erase(ALICE, lambda channel, address: f"h:{channel}:{address}")
    assert erasure.deleted["outbox"] == 2
    claimed = claim(store, "w2")
    erased = [c for c in claimed if c.event_type == "contact.erased"]
    assert len(erased) == 1 and erased[0].address is None and ALICE in (erased[0].body or "")
    store.finish_attempts([AttemptResult(erased[0].id, "delivered", utcnow(), "w2", 200, 5, f"bye {ALICE}",
                                         body=erased[0].body)])
    kept = store.delivery(erased[0].id)
    assert kept.body is None and kept.log[0].excerpt == ""  # no trace of the address once done


def test_backlog_and_next_due(store):
    assert store.next_due_at() is None
    store.create_endpoint("https://a.example.com/h", "", "s")
    stop(store)
    backlog = store.outbox_backlog()
    assert backlog.pending == 1 and backlog.oldest_due_seconds >= 0
    assert store.next_due_at() is not None and store.next_due_at() <= utcnow()


def test_event_facts_attribute_the_campaign(store):
    from webhook.domain import CampaignMessage

    store.record_campaign_messages([CampaignMessage("SMcm", "spring", "sms", ALICE, "delivered", utcnow() - timedelta(hours=1))])
    recorded = stop(store)
    facts = store.event_facts(recorded.event_id, timedelta(hours=72))
    assert (facts.address, facts.campaign, facts.keyword, facts.status) == (ALICE, "spring", "STOP", "unsubscribed")
    assert store.event_facts(recorded.event_id, timedelta(minutes=30)).campaign is None
    assert store.event_facts(10**9, timedelta(hours=1)) is None


def test_a_disabled_endpoints_waiting_deliveries_are_not_overdue(store):
    endpoint = store.create_endpoint("https://a.example.com/h", "", "s")
    stop(store)
    store.set_endpoint_enabled(endpoint.id, False, "paused")
    import time

    time.sleep(0.05)
    backlog = store.outbox_backlog()
    assert backlog.pending == 1 and backlog.oldest_due_seconds == 0  # waiting by design, no worker missing


def test_a_change_made_while_an_endpoint_is_disabled_reaches_it_once_enabled_in_order(store):
    """A consent store's receivers must hear every opt-out: a change recorded while their
    endpoint is disabled (by an admin, or by a 410) waits for it, it is not skipped."""
    endpoint = store.create_endpoint("https://a.example.com/h", "", "s")
    store.set_endpoint_enabled(endpoint.id, False, "paused")
    first = stop(store, sid="SM" + "1" * 32)
    second = stop(store, action="opt_in", sid="SM" + "2" * 32)
    assert claim(store) == []  # held while disabled
    assert store.outbox_backlog().pending >= 2
    store.set_endpoint_enabled(endpoint.id, True)
    claimed = claim(store)
    assert [c.event_id for c in claimed if c.event_id is not None] == [first.event_id]  # one contact: in order
    store.finish_attempts([done(c) for c in claimed])
    assert [c.event_id for c in claim(store) if c.event_id is not None] == [second.event_id]


def test_an_older_failed_delivery_is_not_retried_over_a_later_one_of_its_contact(store):
    endpoint = store.create_endpoint("https://a.example.com/h", "", "s")
    stop(store, action="opt_in", sid="SM" + "3" * 32)
    [old] = claim(store)
    store.finish_attempts([done(old, outcome="failed")])
    assert store.delivery(old.id).state == "failed"
    stop(store, sid="SM" + "4" * 32)  # the contact's STOP, later
    [new] = claim(store)
    store.finish_attempts([done(new)])
    assert not store.retry_delivery(old.id)  # sent now, the opt-in would undo the STOP downstream
    assert store.delivery(old.id).state == "failed"
    other = stop(store, address=BOB, action="opt_in", sid="SM" + "5" * 32)
    [lone] = claim(store)
    assert lone.event_id == other.event_id
    store.finish_attempts([done(lone, outcome="failed")])
    assert store.retry_delivery(lone.id)  # the latest of its contact: retried
    assert endpoint.id == lone.endpoint_id
