"""``Worker.run(once=True)`` (``unsub worker --once``) drains everything that is due before it
exits, on both backends: many deliveries through small lanes, and one contact's chain of
changes that only become due one after the other."""

from __future__ import annotations

import time

import pytest

from tests.e2e.receiver import Receiver
from webhook import outbox
from webhook.domain import ConsentEvent, utcnow
from webhook.store import open_store
from webhook.worker import Worker

ALICE = "+14155550801"


class SlowClaims:
    """The store, with claims that skip a busy lane taking long enough for that lane's attempts
    to finish meanwhile: the race a fast receiver hits (the lane is busy during the claim and
    empty right after it)."""

    def __init__(self, store) -> None:
        self.store = store

    def __getattr__(self, name: str):
        return getattr(self.store, name)

    def claim_deliveries(self, worker, **kwargs):
        found = self.store.claim_deliveries(worker, **kwargs)
        if kwargs["busy_lanes"]:
            time.sleep(0.3)
        return found


@pytest.fixture
def store(database_url):
    opened = open_store(database_url)
    opened.migrate()
    yield opened
    opened.close()


def test_once_delivers_everything_due_before_it_exits(store):
    receiver = Receiver()
    try:
        store.create_endpoint(receiver.url, "crm", outbox.new_secret())
        others = [f"+1415555{i:04d}" for i in range(40)]
        store.import_events([ConsentEvent("sms", number, "opt_out", "keyword", utcnow(), keyword="STOP")
                             for number in others])
        for action in ("opt_out", "opt_in", "opt_out"):  # each due only once the one before is recorded
            store.record(ConsentEvent("sms", ALICE, action, "keyword", utcnow(), keyword="STOP"))

        made = Worker(SlowClaims(store), lane_threads=4).run(once=True)  # type: ignore[arg-type]

        assert made == 43
        assert store.outbox_backlog().pending == 0
        got = [r.json for r in receiver.received]
        assert sorted(x["data"]["address"] for x in got if x["data"]["address"] != ALICE) == sorted(others)
        assert [x["type"] for x in got if x["data"]["address"] == ALICE] == [
            "consent.opted_out", "consent.opted_in", "consent.opted_out"]
    finally:
        receiver.close()
