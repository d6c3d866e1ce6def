"""Consent webhooks end to end (issue 12): the Procfile's web and worker processes, a local
receiver, both backends. Every change is pushed at least once, signed (Standard Webhooks),
in order per contact, and survives any process dying."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.conftest import ADMIN_TOKEN, backends
from tests.e2e.receiver import Answer, Receiver
from tests.e2e.servers import WorkerProcess, gunicorn

pytestmark = pytest.mark.slow
ALICE, BOB = "+14155550601", "+14155550602"
HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ENV = {"WEBHOOK_ALLOW_HTTP": "1", "WEBHOOK_RETRY_SCHEDULE": "1s,1s,1s"}


@pytest.fixture
def web(database_url, tmp_path):
    server = gunicorn(database_url, tmp_path, workers=2, env=ENV)
    yield server
    server.stop()


@pytest.fixture
def workers(database_url, tmp_path):
    started: list[WorkerProcess] = []

    def start(*args: str) -> WorkerProcess:
        process = WorkerProcess(database_url, tmp_path, *args, env=ENV)
        started.append(process)
        return process

    yield start
    for process in started:
        if process.process.poll() is None:
            process.kill()


def endpoint(web, url: str) -> dict:
    created = requests.post(f"{web.base}/api/v1/webhook-endpoints", json={"url": url, "description": "crm"},
                            headers=HEADERS, timeout=10)
    assert created.status_code == 201, created.text
    return created.json()


def deliveries(web, endpoint_id: int) -> list[dict]:
    return requests.get(f"{web.base}/api/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=HEADERS,
                        timeout=10).json()["deliveries"]


def sid() -> str:
    return "SM" + uuid.uuid4().hex


def test_a_stop_is_delivered_signed_and_verifies(web, workers):
    receiver = Receiver()
    try:
        made = endpoint(web, receiver.url)
        assert made["secret"].startswith("whsec_") and made["enabled"] is True
        assert "secret" not in requests.get(f"{web.base}/api/v1/webhook-endpoints", headers=HEADERS, timeout=10).json()["endpoints"][0]
        time.sleep(0.5)
        assert receiver.received == []  # nothing is sent when an endpoint is created
        workers()
        assert web.send("STOP", ALICE).status_code == 200
        got = receiver.wait_for(lambda r: len(r) == 1, 10)[0]
        payload = Webhook(made["secret"]).verify(got.body, got.headers)
        assert payload["type"] == "consent.opted_out"
        data = payload["data"]
        assert (data["channel"], data["address"], data["status"], data["previous_status"]) == ("sms", ALICE, "unsubscribed", "unknown")
        assert (data["source"], data["keyword"], data["language"], data["match_kind"]) == ("keyword", "STOP", "en", "keyword")
        assert isinstance(data["event_id"], int) and data["occurred_at"].endswith("Z") and data["campaign"] is None
        with pytest.raises(WebhookVerificationError):
            Webhook("whsec_" + "A" * 44).verify(got.body, got.headers)  # another secret does not verify
        state = deliveries(web, made["id"])[0]
        assert (state["state"], state["attempts"], state["log"][0]["status"]) == ("delivered", 1, 200)
        # A ping only when an admin asks for one.
        assert requests.post(f"{web.base}/api/v1/webhook-endpoints/{made['id']}/ping", headers=HEADERS, timeout=10).status_code == 202
        ping = receiver.wait_for(lambda r: len(r) == 2, 10)[1]
        assert Webhook(made["secret"]).verify(ping.body, ping.headers)["type"] == "ping"
        health = requests.get(f"{web.base}/healthz", timeout=10).json()
        assert health["outbox"]["pending"] == 0
    finally:
        receiver.close()


def test_two_failures_then_success_keep_one_webhook_id(web, workers):
    receiver = Receiver(lambda got, count: Answer(500 if count < 2 else 200, body=b"try later"))
    try:
        made = endpoint(web, receiver.url)
        workers()
        web.send("STOP", ALICE)
        got = receiver.wait_for(lambda r: len(r) == 3 and r[-1].finished, 20)
        assert len({r.headers["webhook-id"] for r in got}) == 1
        assert [r.status for r in got] == [500, 500, 200]
        for attempt in got:  # each attempt is signed afresh, all verify
            Webhook(made["secret"]).verify(attempt.body, attempt.headers)
        time.sleep(0.5)
        state = deliveries(web, made["id"])[0]
        assert (state["state"], state["attempts"]) == ("delivered", 3)
        assert [a["status"] for a in state["log"]] == [500, 500, 200] and state["log"][0]["answer"] == "try later"
    finally:
        receiver.close()


def test_one_contacts_changes_arrive_in_order_and_never_hold_up_another(web, workers):
    def answer(got: object, count: int) -> Answer:
        data = got.json["data"]  # type: ignore[attr-defined]
        failing = data["address"] == ALICE and data["status"] == "unsubscribed" and count < 3
        return Answer(503 if failing else 200, headers={"Retry-After": "1"} if failing else {})

    receiver = Receiver(answer)
    try:
        endpoint(web, receiver.url)
        web.send("STOP", ALICE)
        web.send("START", ALICE)
        web.send("STOP", BOB)
        workers()
        got = receiver.wait_for(lambda r: sum(x.status == 200 for x in r) == 3, 20)
        delivered = [(x.json["data"]["address"], x.json["data"]["status"]) for x in got if x.status == 200]
        assert delivered.index((ALICE, "unsubscribed")) < delivered.index((ALICE, "subscribed"))
        assert delivered[0] == (BOB, "unsubscribed")  # not held up by Alice's failing delivery
        assert all(x.json["data"]["address"] == ALICE for x in got if x.status != 200)
    finally:
        receiver.close()


def test_a_change_made_while_no_worker_runs_is_delivered_when_one_starts(web, workers, database_url):
    receiver = Receiver()
    try:
        endpoint(web, receiver.url)
        web.send("STOP", ALICE)
        time.sleep(0.5)
        assert receiver.received == []
        health = requests.get(f"{web.base}/healthz", timeout=10).json()["outbox"]
        assert health["pending"] == 1 and health["oldest_due_seconds"] >= 0
        started = time.monotonic()
        workers()
        receiver.wait_for(lambda r: len(r) == 1, 5)
        assert time.monotonic() - started < 5
    finally:
        receiver.close()


def test_kill_9_of_the_worker_mid_delivery_loses_nothing(web, workers):
    receiver = Receiver(lambda got, count: Answer(200, delay=60 if count == 0 else 0))
    try:
        made = endpoint(web, receiver.url)
        first = workers("--lease", "5")
        web.send("STOP", ALICE)
        receiver.wait_for(lambda r: len(r) == 1, 10)  # the first attempt hangs at the receiver
        first.kill()
        started = time.monotonic()
        workers("--lease", "5")
        got = receiver.wait_for(lambda r: len(r) == 2 and r[1].status == 200, 30)
        assert time.monotonic() - started < 20  # the dead worker's claim expired and was taken over
        assert got[0].headers["webhook-id"] == got[1].headers["webhook-id"]
        time.sleep(0.5)
        assert deliveries(web, made["id"])[0]["state"] == "delivered"
    finally:
        receiver.close()


def test_a_stopping_worker_finishes_what_it_holds(web, workers):
    receiver = Receiver(lambda got, count: Answer(200, delay=1.5))
    try:
        made = endpoint(web, receiver.url)
        worker = workers()
        web.send("STOP", ALICE)
        receiver.wait_for(lambda r: len(r) == 1, 10)
        assert worker.stop() == 0  # SIGTERM while the attempt is under way
        state = deliveries(web, made["id"])[0]
        assert (state["state"], state["attempts"]) == ("delivered", 1)
    finally:
        receiver.close()


def test_410_gone_disables_the_endpoint(web, workers):
    receiver = Receiver(lambda got, count: Answer(410))
    try:
        made = endpoint(web, receiver.url)
        workers()
        web.send("STOP", ALICE)
        receiver.wait_for(lambda r: len(r) == 1, 10)
        time.sleep(1)
        listed = requests.get(f"{web.base}/api/v1/webhook-endpoints/{made['id']}", headers=HEADERS, timeout=10).json()
        assert listed["enabled"] is False and "410" in listed["disabled_reason"]
        web.send("STOP", BOB)
        time.sleep(1)
        assert len(receiver.received) == 1  # nothing more goes to a disabled endpoint...
        held, failed = deliveries(web, made["id"])[:2]  # newest first
        assert held["state"] == "pending"  # ...but Bob's STOP waits for it, to go out once it is enabled
        assert failed["state"] == "failed"
        retried = requests.post(f"{web.base}/api/v1/webhook-endpoints/{made['id']}/deliveries/{failed['id']}/retry",
                                headers=HEADERS, timeout=10)
        assert retried.status_code == 202
    finally:
        receiver.close()


def test_erasure_drops_pending_deliveries_and_announces_contact_erased(web, workers, database_url, tmp_path):
    receiver = Receiver()
    try:
        made = endpoint(web, receiver.url)
        web.send("STOP", ALICE)
        web.send("START", BOB)
        erased = requests.delete(f"{web.base}/api/v1/contacts/{ALICE}", headers=HEADERS, timeout=10)
        assert erased.status_code == 200 and erased.json()["deleted"]["outbox"] == 1
        workers()
        got = receiver.wait_for(lambda r: len(r) == 2, 10)
        kinds = {x.json["type"]: x.json["data"] for x in got}
        assert set(kinds) == {"contact.erased", "consent.opted_in"}
        assert kinds["contact.erased"] == {"address": ALICE, "channels": ["sms"]}
        time.sleep(0.5)
        logged = deliveries(web, made["id"])
        erased_delivery = next(d for d in logged if d["type"] == "contact.erased")
        assert erased_delivery["state"] == "delivered" and erased_delivery["payload"] is None  # blanked once done
        assert all(ALICE not in str(d) for d in logged)
    finally:
        receiver.close()


def test_endpoints_are_https_only_unless_allowed(database_url, tmp_path):
    server = gunicorn(database_url, tmp_path, workers=1)  # without WEBHOOK_ALLOW_HTTP
    try:
        refused = requests.post(f"{server.base}/api/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hooks"},
                                headers=HEADERS, timeout=10)
        assert refused.status_code == 422 and "WEBHOOK_ALLOW_HTTP" in refused.json()["message"]
        ok = requests.post(f"{server.base}/api/v1/webhook-endpoints", json={"url": "https://crm.example.com/hooks"},
                           headers=HEADERS, timeout=10)
        assert ok.status_code == 201
    finally:
        server.stop()


# Several workers share a PostgreSQL database (SQLite runs one): PostgreSQL only.
@pytest.mark.parametrize("database_url", [p for p in backends() if p.id == "postgresql"], indirect=True)
def test_two_workers_on_postgresql_never_deliver_one_attempt_twice_at_once(web, workers, database_url):
    receiver = Receiver(lambda got, count: Answer(200, delay=0.02))
    try:
        endpoint(web, receiver.url)
        workers()
        workers()
        numbers = [f"+1415556{i:04d}" for i in range(120)]
        for number in numbers:
            web.send("STOP", number)
        got = receiver.wait_for(lambda r: len(r) >= 120, 30)
        time.sleep(1)
        ids = [x.headers["webhook-id"] for x in receiver.received]
        assert len(ids) == len(set(ids)) == 120  # each delivery once: no two workers sent one together
        assert {x.json["data"]["address"] for x in got} == set(numbers)
    finally:
        receiver.close()


def test_worker_once_drains_what_is_due_and_exits(web, database_url, tmp_path):
    import subprocess

    from tests.e2e.servers import BIN, server_env

    receiver = Receiver()
    try:
        endpoint(web, receiver.url)
        web.send("STOP", ALICE)
        web.send("STOP", BOB)
        done = subprocess.run([str(BIN / "unsub"), "worker", "--once"], cwd=tmp_path, env=server_env(database_url, **ENV),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "2 delivery attempts" in done.stderr
        assert sorted(r.json["data"]["address"] for r in receiver.received) == [ALICE, BOB]
    finally:
        receiver.close()
