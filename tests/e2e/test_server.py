"""The service as deployed: gunicorn processes on one database, duplicates, kill -9."""

from __future__ import annotations

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
        sid = "SMduplicate0000000000000000000001"
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


def test_acknowledged_opt_outs_survive_kill_9(database_url, tmp_path, db):
    server = gunicorn(database_url, tmp_path, workers=2)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def fire(worker: int) -> None:
        session = requests.Session()
        n = 0
        while not stop.is_set() and n < 2000:
            number = f"+1415{worker:03d}{n:04d}"
            n += 1
            try:
                response = server.send("STOP", number, session=session, timeout=5)
            except requests.RequestException:
                continue
            if response.status_code == 200 and b"unsubscribed" in response.content:
                with lock:
                    acknowledged.append(number)

    threads = [threading.Thread(target=fire, args=(w,)) for w in range(200, 206)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 10
    while len(acknowledged) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(acknowledged) >= 100, "the load never got going"
    missing = [n for n in acknowledged if (sub := db.subscription("sms", n)) is None or sub.status != "unsubscribed"]
    assert missing == []


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
    import os
    import signal
    import subprocess

    server = gunicorn(database_url, tmp_path, workers=2)
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def fire(worker: int) -> None:
        session = requests.Session()
        for n in range(3000):
            if stop.is_set():
                return
            number = f"+1415{worker:03d}{n:04d}"
            try:
                response = server.send("STOP", number, session=session, timeout=10)
            except requests.RequestException:
                continue
            if response.status_code == 200 and b"unsubscribed" in response.content:
                with lock:
                    acknowledged.append(number)

    threads = [threading.Thread(target=fire, args=(w,)) for w in range(400, 404)]
    try:
        for thread in threads:
            thread.start()
        for _ in range(3):  # kill every worker three times under load; the master starts new ones
            time.sleep(0.7)
            workers = subprocess.run(["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True).stdout.split()
            for pid in workers:
                os.kill(int(pid), signal.SIGKILL)
        time.sleep(1.5)
        answered_after = len(acknowledged)
        time.sleep(1.0)
        assert len(acknowledged) > answered_after, "new workers did not take over"
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        server.stop()
    missing = [n for n in acknowledged if (sub := db.subscription("sms", n)) is None or sub.status != "unsubscribed"]
    assert acknowledged and missing == []
