"""The service as deployed: gunicorn processes on one database, duplicates, kill -9."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.e2e.servers import gunicorn
from webhook.store import open_store

pytestmark = pytest.mark.slow


@pytest.fixture
def db(database_url):
    store = open_store(database_url)
    yield store
    store.close()


def test_concurrent_duplicate_deliveries_to_two_servers_record_one_event(database_url, tmp_path, db):
    first = gunicorn(database_url, tmp_path, workers=2)
    second = gunicorn(database_url, tmp_path, workers=2)
    try:
        sid = "SM" + "d0" * 16  # one MessageSid delivered 16 times at once
        barrier = threading.Barrier(16)

        def deliver(i: int) -> tuple[int, bytes]:
            server = first if i % 2 else second
            barrier.wait()
            response = server.send("STOP", "+14155550123", sid=sid)
            return response.status_code, response.content

        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(deliver, range(16)))
    finally:
        first.stop()
        second.stop()
    assert {status for status, _ in answers} == {200}
    assert len({body for _, body in answers}) == 1
    assert b"unsubscribed" in answers[0][1]
    assert db.event_count() == 1
    assert db.subscription("sms", "+14155550123").status == "unsubscribed"


class StopLoad:
    """Threads sending STOPs from distinct numbers; ``acknowledged`` holds those answered 200."""

    def __init__(self, server, first_area: int, threads: int = 4) -> None:
        self.server = server
        self.acknowledged: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._fire, args=(first_area + i,)) for i in range(threads)]
        for thread in self._threads:
            thread.start()

    def _fire(self, area: int) -> None:
        session = requests.Session()
        for n in range(3000):
            if self._stop.is_set():
                return
            number = f"+1415{area:03d}{n:04d}"
            try:
                response = self.server.send("STOP", number, session=session, timeout=10)
            except requests.RequestException:
                continue
            if response.status_code == 200 and b"unsubscribed" in response.content:
                with self._lock:
                    self.acknowledged.append(number)

    def wait_for(self, count: int, seconds: float = 10) -> None:
        deadline = time.monotonic() + seconds
        while len(self.acknowledged) < count and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)


def unrecorded(db, numbers: list[str]) -> list[str]:
    return [n for n in numbers if (sub := db.subscription("sms", n)) is None or sub.status != "unsubscribed"]


def test_acknowledged_opt_outs_survive_kill_9(database_url, tmp_path, db):
    server = gunicorn(database_url, tmp_path, workers=2)
    load = StopLoad(server, 200, threads=6)
    load.wait_for(100)
    server.kill()
    load.stop()
    assert len(load.acknowledged) >= 100, "the load never got going"
    assert unrecorded(db, load.acknowledged) == []


def test_workers_migrating_a_fresh_database_at_once(database_url, tmp_path, db):
    # Without --preload each of the 4 workers runs create_app and its migrations at once.
    server = gunicorn(database_url, tmp_path, workers=4, preload=False)
    try:
        responses = [server.send("STOP", f"+1415555{i:04d}") for i in range(8)]
    finally:
        server.stop()
    assert all(r.status_code == 200 for r in responses)
    assert db.event_count() == 8
    assert db.migrate() == []


def test_different_messages_for_one_address_at_two_servers_leave_the_latest_status(database_url, tmp_path, db):
    first = gunicorn(database_url, tmp_path, workers=2)
    second = gunicorn(database_url, tmp_path, workers=2)
    try:
        barrier = threading.Barrier(20)

        def deliver(i: int) -> int:
            server = first if i % 2 else second
            barrier.wait()
            return server.send("STOP" if i % 3 else "START", "+14155550188").status_code

        with ThreadPoolExecutor(20) as pool:
            statuses = list(pool.map(deliver, range(20)))
    finally:
        first.stop()
        second.stop()
    assert statuses == [200] * 20
    history = db.history("sms", "+14155550188")
    assert len(history) == 20
    latest = history[-1]
    expected = {"opt_out": "unsubscribed", "opt_in": "subscribed"}[latest.action]
    assert db.subscription("sms", "+14155550188").status == expected


def test_acknowledged_opt_outs_survive_kill_9_of_the_workers(database_url, tmp_path, db):
    server = gunicorn(database_url, tmp_path, workers=2)
    load = StopLoad(server, 400)
    try:
        for _ in range(3):  # kill every worker three times under load; the master starts new ones
            time.sleep(0.7)
            workers = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True).stdout.split()
            for pid in workers:
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(1.5)
        answered_after = len(load.acknowledged)
        time.sleep(1.0)
        assert len(load.acknowledged) > answered_after, "new workers did not take over"
    finally:
        load.stop()
        server.stop()
    assert load.acknowledged and unrecorded(db, load.acknowledged) == []


def test_a_burst_that_waited_in_the_backlog_is_shed_not_answered_late(tmp_path):
    """A request that sat in the listen backlog for more than 10 s gets 503 at once, with
    nothing recorded, instead of an answer after Twilio's 15 s; then service resumes.

    The worker is paused (SIGSTOP) so the burst queues in the kernel, where no router
    header records the wait: the app reads it from the connection (TCP_INFO).
    """
    database_url = f"sqlite:///{tmp_path / 'burst.db'}"
    server = gunicorn(database_url, tmp_path, workers=1)
    try:
        worker = int(subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True).stdout.split()[0])
        os.kill(worker, signal.SIGSTOP)
        results: dict[str, tuple[int, float]] = {}

        def send(number: str) -> None:
            started = time.monotonic()
            response = server.send("STOP", number, timeout=40)
            results[number] = (response.status_code, time.monotonic() - started)

        burst = [f"+1415555{n:04d}" for n in range(6)]
        threads = [threading.Thread(target=send, args=(number,)) for number in burst]
        for thread in threads:
            thread.start()
        time.sleep(11)  # beyond MAX_QUEUED_SECONDS (10 s), inside gunicorn's 20 s worker timeout
        os.kill(worker, signal.SIGCONT)
        for thread in threads:
            thread.join(timeout=40)
        assert sorted(status for status, _ in results.values()) == [503] * len(burst), results
        # Each was answered within a second or so of the worker resuming, not after more waiting.
        assert max(seconds for _, seconds in results.values()) < 14, results
        assert server.send("STOP", "+14155559999").status_code == 200  # fresh traffic is served
    finally:
        server.stop()
    store = open_store(database_url)
    try:
        assert [store.subscription("sms", n) for n in burst] == [None] * len(burst)  # nothing recorded
        assert store.subscription("sms", "+14155559999").status == "unsubscribed"
    finally:
        store.close()


def test_the_procfile_access_log_masks_addresses(tmp_path):
    from pathlib import Path

    from tests.conftest import ADMIN_TOKEN

    procfile = (Path(__file__).parents[2] / "Procfile").read_text(encoding="utf-8")
    assert "--logger-class webhook.access_log.MaskingLogger" in procfile
    log = tmp_path / "access.log"
    server = gunicorn(f"sqlite:///{tmp_path / 'log.db'}", tmp_path, workers=1,
                      extra=["--access-logfile", str(log), "--logger-class", "webhook.access_log.MaskingLogger"])
    try:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        assert requests.get(f"{server.base}/api/v1/subscriptions/sms/+14155550123", headers=headers).status_code == 200
        assert requests.delete(f"{server.base}/api/v1/contacts/bob@example.com", headers=headers).status_code == 200
        # Numbers written with separators, percent-encoded, are accepted and masked too.
        for written in ("%2B1%20415%20555%200125", "%2B1%28415%295550126", "+1-415-555-0127"):
            assert requests.get(f"{server.base}/api/v1/subscriptions/sms/{written}", headers=headers).status_code == 200
        server.send("STOP", "+14155550124")
    finally:
        server.stop()
    text = log.read_text()
    assert "/api/v1/subscriptions/sms/+1***23" in text and "/api/v1/contacts/b***@example.com" in text
    assert "/api/v1/subscriptions/sms/%2B1***25" in text and "/api/v1/subscriptions/sms/+1***27" in text
    assert "4155550123" not in text and "bob@" not in text and "555" not in text
    assert "POST /webhooks/twilio" in text
