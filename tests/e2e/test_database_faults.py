"""The database goes away: 503 (never a 200 for an unrecorded change), then recovery without restart."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

import pytest
import requests

from tests.conftest import POSTGRES_URL, Twilio, make_settings
from tests.e2e.servers import gunicorn
from tests.faults import TcpProxy
from webhook import create_app
from webhook.store import open_store

ALICE = "+14155550123"


def wait_for(check, timeout: float = 30.0, what: str = "condition", state=lambda: "") -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"{what}: not true after {timeout}s {state()}")


@pytest.fixture
def proxied_postgres(request):
    if not POSTGRES_URL:
        pytest.skip("needs PostgreSQL (UNSUB_TEST_POSTGRES_URL)")
    from tests.pg import fresh_database

    direct = fresh_database(request)
    parts = urlsplit(direct)
    proxy = TcpProxy(parts.port or 5432, parts.hostname or "127.0.0.1").start()
    proxied = parts._replace(netloc=f"{parts.username or 'postgres'}@127.0.0.1:{proxy.port}").geturl()
    yield direct, proxied, proxy
    proxy.stop()


@pytest.mark.postgres
def test_postgres_down_gives_503_and_the_same_process_recovers(proxied_postgres):
    direct, proxied, proxy = proxied_postgres
    app = create_app(make_settings(proxied))
    twilio = Twilio(app.test_client())
    assert twilio.message("STOP", sender="+14155550001").status_code == 200

    proxy.stop()
    down = twilio.message("STOP", sender="+14155550002")
    assert down.status_code == 503
    assert down.headers["Retry-After"]
    assert app.test_client().get("/healthz").status_code == 503

    proxy.start()
    wait_for(lambda: app.test_client().get("/healthz").status_code == 200)
    assert twilio.message("STOP", sender="+14155550003").status_code == 200

    check = open_store(direct)
    try:
        assert check.subscription("sms", "+14155550001").status == "unsubscribed"
        assert check.subscription("sms", "+14155550002") is None  # answered 503: not recorded, Twilio retries
        assert check.subscription("sms", "+14155550003").status == "unsubscribed"
    finally:
        check.close()
    app.extensions["unsub"].store.close()


@pytest.mark.postgres
@pytest.mark.slow
def test_postgres_killed_under_load_never_acknowledges_an_unrecorded_opt_out(proxied_postgres, tmp_path):
    direct, proxied, proxy = proxied_postgres
    server = gunicorn(proxied, tmp_path, workers=2)
    answers: list[tuple[str, int]] = []
    failures: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def fire(worker: int) -> None:
        session = requests.Session()
        for n in range(3000):
            if stop.is_set():
                return
            number = f"+1415{worker:03d}{n:04d}"
            try:
                status = server.send("STOP", number, session=session, timeout=15).status_code
            except requests.RequestException as error:
                status = 0
                with lock:
                    failures.append(type(error).__name__)
            with lock:
                answers.append((number, status))

    threads = [threading.Thread(target=fire, args=(w,)) for w in range(300, 304)]
    try:
        for thread in threads:
            thread.start()
        def state() -> str:
            return f"{Counter(s for _, s in answers)} {Counter(failures)}\n" + server.log.read_text()[-3000:]

        wait_for(lambda: len(answers) >= 40, what="load started", state=state)
        proxy.stop()  # the database is gone: connections reset, new ones refused
        wait_for(lambda: sum(1 for _, s in answers if s == 503) >= 1, what="503s while down", state=state)
        proxy.start()
        resumed_from = len(answers)
        wait_for(lambda: sum(1 for _, s in answers[resumed_from:] if s == 200) >= 20, what="200s after recovery",
                 state=lambda: str(Counter(s for _, s in answers[resumed_from:])))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        server.stop()

    statuses = {s for _, s in answers}
    # Never a 500. A request can also outlast the client's 15 s while the database is
    # gone (0 here; seen about once in three runs under CI load, a known gap noted for
    # the fault-tolerance work): Twilio then retries it, and it was not acknowledged.
    assert statuses <= {0, 200, 503}, statuses
    check = open_store(direct)
    try:
        acknowledged = [n for n, s in answers if s == 200]
        recorded = {n for n in acknowledged if (sub := check.subscription("sms", n)) and sub.status == "unsubscribed"}
        assert set(acknowledged) == recorded
    finally:
        check.close()


def test_sqlite_locked_longer_than_the_busy_timeout_gives_503_then_recovers(tmp_path):
    path = tmp_path / "locked.db"
    app = create_app(make_settings(f"sqlite:///{path}"))
    twilio = Twilio(app.test_client())
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        locked = twilio.message("STOP", sender=ALICE)
        assert locked.status_code == 503
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    store = app.extensions["unsub"].store
    assert store.subscription("sms", ALICE) is None
    assert twilio.message("STOP", sender=ALICE).status_code == 200
    assert store.subscription("sms", ALICE).status == "unsubscribed"


@pytest.mark.postgres
def test_a_connection_killed_between_two_requests_costs_no_opt_out(request):
    # A connection given back a moment ago is used again unchecked (one round trip fewer a
    # request); if the server dropped it meanwhile, the STOP is written on a fresh one.
    if not POSTGRES_URL:
        pytest.skip("needs PostgreSQL (UNSUB_TEST_POSTGRES_URL)")
    import psycopg

    from tests.pg import fresh_database

    url = fresh_database(request)
    app = create_app(make_settings(url))
    twilio = Twilio(app.test_client())
    try:
        for n in range(3):
            assert twilio.message("STOP", sender=f"+1415555010{n}").status_code == 200
            with psycopg.connect(url, autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT count(*) AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t").fetchone()
            assert killed[0] >= 1
            answer = twilio.message("STOP", sender=f"+1415555020{n}")
            assert answer.status_code == 200, answer.data
        check = open_store(url)
        try:
            for n in range(3):
                assert check.subscription("sms", f"+1415555020{n}").status == "unsubscribed"
        finally:
            check.close()
    finally:
        app.extensions["unsub"].store.close()
