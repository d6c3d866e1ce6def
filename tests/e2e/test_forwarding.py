"""Sitting in front of a business's existing webhook (issue 18): the Procfile's web and worker
processes, a local endpoint that checks Twilio signatures for its own URL, both backends."""

from __future__ import annotations

import time
import uuid
from urllib.parse import parse_qsl

import pytest
import requests
from twilio.request_validator import RequestValidator

from tests.conftest import ADMIN_TOKEN, AUTH_TOKEN
from tests.e2e.receiver import Answer, Received, Receiver
from tests.e2e.servers import WorkerProcess, gunicorn
from webhook.providers.twilio import SIGNATURE_HEADER, signature_for

pytestmark = pytest.mark.slow
ALICE = "+14155550901"
HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ENV = {"WEBHOOK_ALLOW_HTTP": "1", "WEBHOOK_RETRY_SCHEDULE": "1s,1s,1s"}
THEIR_TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response><Message>Thanks, our team will answer soon.</Message></Response>'


def valid(endpoint: Receiver, got: Received) -> bool:
    """The endpoint's own check, unchanged: Twilio's RequestValidator for its own URL."""
    params = dict(parse_qsl(got.body.decode(), keep_blank_values=True))
    return RequestValidator(AUTH_TOKEN).validate(endpoint.url, params, got.headers.get(SIGNATURE_HEADER.lower(), ""))


class Endpoint(Receiver):
    """The business's existing webhook: refuses what is not signed for it, answers TwiML."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures

        def answer(got: Received, count: int) -> Answer:
            if not valid(self, got):
                return Answer(403, body=b"bad signature")
            if count < self.failures:
                return Answer(500, body=b"down")
            return Answer(200, headers={"Content-Type": "text/xml"}, body=THEIR_TWIML)

        super().__init__(answer)


@pytest.fixture
def web(database_url, tmp_path):
    # One web worker, so the test can see when it runs a new keyword version (the forward).
    server = gunicorn(database_url, tmp_path, workers=1, env=ENV)
    yield server
    server.stop()


@pytest.fixture
def worker(database_url, tmp_path):
    process = WorkerProcess(database_url, tmp_path, env=ENV)
    yield process
    process.kill()


def set_forward(web, channel: str, forward: dict | None) -> requests.Response:
    document = requests.get(f"{web.base}/api/v1/keywords", headers=HEADERS, timeout=10).json()["document"]
    if forward is None:
        document["channels"][channel].pop("forward", None)
    else:
        document["channels"][channel]["forward"] = forward
    response = requests.put(f"{web.base}/api/v1/keywords", json=document, headers=HEADERS, timeout=10)
    if response.status_code == 200:  # the process picks the new version up within a second or so
        deadline = time.monotonic() + 15
        while requests.get(f"{web.base}/healthz", timeout=10).json()["keywords_version"] != str(response.json()["version"]):
            assert time.monotonic() < deadline, "the new keyword version was not picked up"
            time.sleep(0.1)
    return response


def send(web, body: str, sender: str = ALICE, sid: str | None = None, whatsapp: bool = False) -> requests.Response:
    prefix = "whatsapp:" if whatsapp else ""
    params = {"MessageSid": sid or f"SM{uuid.uuid4().hex}", "AccountSid": "AC" + "0" * 32, "From": prefix + sender,
              "To": prefix + "+14155550100", "Body": body, "NumMedia": "0"}
    url = web.base + "/webhooks/twilio"
    return requests.post(url, data=params, headers={SIGNATURE_HEADER: signature_for(AUTH_TOKEN, url, params)}, timeout=15)


def test_an_ordinary_message_is_forwarded_signed_and_its_twiml_answers_twilio(web):
    endpoint = Endpoint()
    try:
        assert set_forward(web, "sms", {"url": endpoint.url}).status_code == 200
        sid = f"SM{uuid.uuid4().hex}"
        answer = send(web, "Where is my order?", sid=sid)
        assert answer.status_code == 200 and answer.content == THEIR_TWIML
        got = endpoint.received[0]
        assert valid(endpoint, got) and got.status == 200
        assert (got.headers["x-unsub-intent"], got.headers["x-unsub-channel"]) == ("none", "sms")
        assert dict(parse_qsl(got.body.decode()))["Body"] == "Where is my order?"
        again = send(web, "Where is my order?", sid=sid)  # Twilio's retry of the same message
        assert again.content == THEIR_TWIML and len(endpoint.received) == 1  # the same answer, one call
        review = send(web, "Cancel my order, it's late")
        assert review.content == THEIR_TWIML and endpoint.received[-1].headers["x-unsub-intent"] == "review"
        whatsapp = send(web, "Where is my order?", whatsapp=True)  # another channel: not forwarded
        assert whatsapp.content.endswith(b"<Response />") and len(endpoint.received) == 2
    finally:
        endpoint.close()


def test_a_stop_gets_unsubs_confirmation_only_and_reaches_the_endpoint_with_all(web, worker):
    endpoint = Endpoint()
    try:
        assert set_forward(web, "sms", {"url": endpoint.url}).status_code == 200
        stop = send(web, "STOP")
        assert b"You are unsubscribed" in stop.content
        time.sleep(1.5)
        assert endpoint.received == []  # non_consent (the default): unsub answered it itself
        assert set_forward(web, "sms", {"url": endpoint.url, "messages": "all"}).status_code == 200
        again = send(web, "STOP", sender="+14155550902")
        assert b"You are unsubscribed" in again.content and THEIR_TWIML not in again.content  # one reply (CTIA)
        got = endpoint.wait_for(lambda r: len(r) == 1, 10)[0]
        assert valid(endpoint, got) and got.headers["x-unsub-intent"] == "opt_out"
    finally:
        endpoint.close()


def test_an_endpoint_that_fails_twice_gets_the_message_on_the_third_attempt(web, worker):
    endpoint = Endpoint(failures=2)
    try:
        assert set_forward(web, "sms", {"url": endpoint.url, "timeout_seconds": 3}).status_code == 200
        started = time.monotonic()
        answer = send(web, "Is the shop open on Sunday?")
        assert time.monotonic() - started < 10
        assert answer.status_code == 200 and answer.content.endswith(b"<Response />")  # unsub's (empty) answer
        got = endpoint.wait_for(lambda r: len(r) == 3 and r[-1].status == 200, 20)
        assert [r.status for r in got] == [500, 500, 200] and all(valid(endpoint, r) for r in got)
    finally:
        endpoint.close()


def test_a_2xx_with_an_oversized_answer_is_not_sent_again(web, worker):
    """The endpoint answered 200: it has the message. Its answer is too big to pass on to
    Twilio, which is no reason to deliver the message to it a second time."""
    big = Receiver(lambda got, count: Answer(200, headers={"Content-Type": "text/xml"}, body=b"<Response>" + b" " * 70_000
                                             + b"</Response>"))
    try:
        assert set_forward(web, "sms", {"url": big.url, "timeout_seconds": 3}).status_code == 200
        answer = send(web, "Is the shop open on Sunday?")
        assert answer.status_code == 200 and answer.content.endswith(b"<Response />")
        big.wait_for(lambda r: len(r) == 1, 10)
        time.sleep(7)  # the worker's first retry would come after 5 s
        assert len(big.received) == 1
    finally:
        big.close()


def test_a_forward_that_times_out_answers_twilio_in_time(web, worker):
    slow = Receiver(lambda got, count: Answer(200, delay=5 if count == 0 else 0, body=THEIR_TWIML))
    try:
        assert set_forward(web, "sms", {"url": slow.url, "timeout_seconds": 1}).status_code == 200
        started = time.monotonic()
        answer = send(web, "hello?")
        assert time.monotonic() - started < 4 and answer.content.endswith(b"<Response />")
        slow.wait_for(lambda r: len(r) == 2, 15)  # delivered again later by the worker
    finally:
        slow.close()


def test_a_loop_is_refused(web):
    host, port = web.base.split("://")[1].rsplit(":", 1)
    for url in (f"{web.base}/webhooks/twilio", f"{web.base}//webhooks/twilio/", f"{web.base}/webhooks/%74wilio",
                f"http://{host.upper()}.:{port}/webhooks/twilio"):  # the same place written otherwise
        own = set_forward(web, "sms", {"url": url})
        assert own.status_code == 422, url
        assert "loop" in own.json()["errors"][0]["message"]
    params = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": ALICE, "To": "+14155550100", "Body": "STOP"}
    url = web.base + "/webhooks/twilio"
    looped = requests.post(url, data=params, timeout=10, headers={SIGNATURE_HEADER: signature_for(AUTH_TOKEN, url, params),
                                                                  "X-Unsub-Intent": "none"})
    assert looped.status_code == 508
    status = requests.get(f"{web.base}/api/v1/subscriptions/sms/{ALICE}", headers=HEADERS, timeout=10).json()
    assert status["status"] == "unknown"  # recorded nowhere


def test_forward_urls_are_https_only_unless_allowed(database_url, tmp_path):
    server = gunicorn(database_url, tmp_path, workers=1)  # without WEBHOOK_ALLOW_HTTP
    try:
        refused = set_forward(server, "sms", {"url": "http://127.0.0.1:9/hooks"})
        assert refused.status_code == 422 and "https://" in refused.json()["errors"][0]["message"]
        assert set_forward(server, "sms", {"url": "https://helpdesk.example.com/twilio"}).status_code == 200
        bad = set_forward(server, "sms", {"url": "https://helpdesk.example.com/twilio", "messages": "some",
                                          "timeout_seconds": 30})
        assert bad.status_code == 422
        assert {e["path"] for e in bad.json()["errors"]} == {"channels.sms.forward.messages", "channels.sms.forward.timeout_seconds"}
    finally:
        server.stop()


def test_the_dashboard_shows_forwards_waiting_in_the_outbox(web):
    endpoint = Endpoint(failures=100)
    try:
        assert set_forward(web, "sms", {"url": endpoint.url, "timeout_seconds": 2}).status_code == 200
        send(web, "hello?")  # fails: queued for the worker, which is not running
        session = requests.Session()
        page = session.get(f"{web.base}/admin/login", timeout=10).text
        import re

        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        session.post(f"{web.base}/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": token}, timeout=10)
        dashboard = session.get(f"{web.base}/admin/dashboard", timeout=10).text
        assert "<strong>1</strong> forwards to your webhook waiting to be retried" in dashboard
    finally:
        endpoint.close()
