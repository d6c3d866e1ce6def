"""WhatsApp Cloud API end to end (issue 13): the Procfile's web and worker processes, a local
fake of the Graph API that records what it gets, both backends."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

from tests.conftest import ADMIN_TOKEN
from tests.e2e.receiver import Answer, Receiver
from tests.e2e.servers import WorkerProcess, gunicorn
from webhook.providers.whatsapp_cloud import sign

pytestmark = pytest.mark.slow
APP_SECRET = "meta-app-secret-0123456789abcdef"
VERIFY_TOKEN = "meta-verify-token-0123456789"
ACCESS_TOKEN = "EAAG-test-access-token-0123456789"
NUMBER_ID = "106540352242922"
WA_ALICE, WA_BOB = "14155550801", "14155550802"
HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def graph():
    fake = Receiver()
    yield fake
    fake.close()


@pytest.fixture
def env(graph) -> dict[str, str]:
    return {"WHATSAPP_APP_SECRET": APP_SECRET, "WHATSAPP_VERIFY_TOKEN": VERIFY_TOKEN, "WHATSAPP_ACCESS_TOKEN": ACCESS_TOKEN,
            "WHATSAPP_API_URL": graph.url.rsplit("/", 1)[0] + "/v21.0", "WEBHOOK_ALLOW_HTTP": "1",
            "WEBHOOK_RETRY_SCHEDULE": "1s,1s,1s"}


@pytest.fixture
def web(database_url, tmp_path, env):
    server = gunicorn(database_url, tmp_path, workers=2, env=env)
    yield server
    server.stop()


@pytest.fixture
def worker(database_url, tmp_path, env):
    process = WorkerProcess(database_url, tmp_path, env=env)
    yield process
    process.kill()


def envelope(*changes: dict) -> dict:
    return {"object": "whatsapp_business_account", "entry": [{"id": "WABA1", "changes": list(changes)}]}


def messages(*items: dict, statuses: tuple = ()) -> dict:
    return {"field": "messages", "value": {
        "messaging_product": "whatsapp", "metadata": {"display_phone_number": "15550001111", "phone_number_id": NUMBER_ID},
        "contacts": [{"profile": {"name": "Alice"}, "wa_id": WA_ALICE}], "messages": list(items), "statuses": list(statuses)}}


def text(body: str, sender: str = WA_ALICE, wamid: str | None = None) -> dict:
    return {"from": sender, "id": wamid or f"wamid.{uuid.uuid4().hex}", "timestamp": str(int(time.time())), "type": "text",
            "text": {"body": body}}


def post(web, payload: dict | bytes, *, secret: str = APP_SECRET, signature: str | None = None) -> requests.Response:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return requests.post(f"{web.base}/webhooks/whatsapp", data=raw, timeout=10, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": signature if signature is not None else sign(secret, raw)})


def status_of(web, channel: str, wa_id: str) -> dict:
    return requests.get(f"{web.base}/api/v1/subscriptions/{channel}/+{wa_id}", headers=HEADERS, timeout=10).json()


def test_the_verification_handshake(web):
    ok = requests.get(f"{web.base}/webhooks/whatsapp", params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN,
                                                                "hub.challenge": "1158201444"}, timeout=10)
    assert (ok.status_code, ok.text) == (200, "1158201444")
    for params in ({"hub.mode": "subscribe", "hub.verify_token": "wrong-token-000000", "hub.challenge": "1"},
                   {"hub.mode": "unsubscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "1"}, {}):
        assert requests.get(f"{web.base}/webhooks/whatsapp", params=params, timeout=10).status_code == 403


def test_bad_signatures_and_nonsense_change_nothing(web):
    stop = envelope(messages(text("STOP")))
    assert post(web, stop, secret="another-app-secret-000000").status_code == 403
    assert post(web, stop, signature="").status_code == 403
    assert post(web, stop, signature="sha256=" + "0" * 64).status_code == 403
    assert status_of(web, "whatsapp", WA_ALICE)["status"] == "unknown"
    assert post(web, b"not json").status_code == 400
    assert post(web, {"object": "page", "entry": []}).status_code == 400
    assert post(web, b"[" * 5000 + b"]" * 5000).status_code == 400
    odd = envelope(messages(text("STOP", sender="not-a-number"), text("STOP", sender=WA_BOB)))
    assert post(web, odd).status_code == 200  # the bad item is skipped, the rest recorded
    assert status_of(web, "whatsapp", WA_BOB)["status"] == "unsubscribed"


def test_a_stop_unsubscribes_whatsapp_only_and_sends_one_reply(web, worker, graph):
    # The same contact as Twilio WhatsApp (whatsapp:+1...) and as SMS: only WhatsApp changes.
    web.send("START", f"+{WA_ALICE}")  # SMS, through Twilio
    stop = envelope(messages(text("STOP")))
    assert post(web, stop).status_code == 200
    assert post(web, stop).status_code == 200  # Meta redelivers the batch: recorded once, answered once
    assert status_of(web, "whatsapp", WA_ALICE)["status"] == "unsubscribed"
    assert status_of(web, "sms", WA_ALICE)["status"] == "subscribed"
    history = status_of(web, "whatsapp", WA_ALICE)["history"]
    assert len(history) == 1 and history[0]["message_id"].startswith("wamid.")
    sent = graph.wait_for(lambda r: len(r) == 1, 10)[0]
    assert sent.path == f"/v21.0/{NUMBER_ID}/messages"
    assert sent.headers["authorization"] == f"Bearer {ACCESS_TOKEN}"
    body = sent.json
    assert (body["messaging_product"], body["recipient_type"], body["to"], body["type"]) == ("whatsapp", "individual", WA_ALICE, "text")
    assert "unsubscribed" in body["text"]["body"]
    time.sleep(1)
    assert len(graph.received) == 1


def test_the_localised_stop_promotions_button_opts_out(web):
    button = {"from": WA_ALICE, "id": f"wamid.{uuid.uuid4().hex}", "timestamp": str(int(time.time())), "type": "button",
              "button": {"payload": "opaque-marketing-payload", "text": "Parar promoções"}}
    assert post(web, envelope(messages(button))).status_code == 200
    history = status_of(web, "whatsapp", WA_ALICE)["history"]
    assert [(h["action"], h["keyword"]) for h in history] == [("opt_out", "PARAR PROMOÇÕES")]
    interactive = {"from": WA_BOB, "id": f"wamid.{uuid.uuid4().hex}", "timestamp": str(int(time.time())),
                   "type": "interactive", "interactive": {"type": "button_reply", "button_reply": {"id": "STOP", "title": "No thanks"}}}
    assert post(web, envelope(messages(interactive))).status_code == 200
    assert status_of(web, "whatsapp", WA_BOB)["status"] == "unsubscribed"  # the reply's id is its payload


def test_preference_stop_and_resume_record_without_a_reply(web, worker, graph):
    def preference(value: str, at: int) -> dict:
        return {"field": "user_preferences", "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": NUMBER_ID},
                "user_preferences": [{"wa_id": WA_ALICE, "detail": "User requested to stop marketing messages",
                                      "category": "marketing_messages", "value": value, "timestamp": str(at)}]}}

    now = int(time.time())
    assert post(web, envelope(preference("stop", now - 60))).status_code == 200
    assert post(web, envelope(preference("stop", now - 60))).status_code == 200  # redelivered: once
    found = status_of(web, "whatsapp", WA_ALICE)
    assert found["status"] == "unsubscribed"
    assert [(h["source"], h["match_kind"]) for h in found["history"]] == [("provider", "whatsapp_settings")]
    assert post(web, envelope(preference("resume", now))).status_code == 200
    assert status_of(web, "whatsapp", WA_ALICE)["status"] == "subscribed"
    time.sleep(1.5)
    assert graph.received == []  # they acted in WhatsApp's own settings: nothing to confirm


def test_a_batch_mixing_messages_and_statuses_records_all_of_it(web):
    statuses = (
        {"id": "wamid.out1", "status": "failed", "timestamp": str(int(time.time())), "recipient_id": WA_BOB,
         "errors": [{"code": 131050, "title": "Unable to deliver the message. This recipient has chosen to stop receiving marketing messages"}]},
        {"id": "wamid.out2", "status": "delivered", "timestamp": str(int(time.time())), "recipient_id": "14155550803"},
    )
    batch = envelope(messages(text("STOP"), text("hello there", sender="14155550804"), statuses=statuses))
    assert post(web, batch).status_code == 200
    assert post(web, batch).status_code == 200
    assert status_of(web, "whatsapp", WA_ALICE)["status"] == "unsubscribed"
    blocked = status_of(web, "whatsapp", WA_BOB)
    assert blocked["status"] == "unsubscribed" and [h["source"] for h in blocked["history"]] == ["carrier"]
    assert status_of(web, "whatsapp", "14155550803")["status"] == "unknown"
    assert status_of(web, "whatsapp", "14155550804")["status"] == "unknown"


def test_a_reply_that_fails_twice_is_retried(web, worker, graph):
    graph.answer = lambda got, count: Answer(500 if count < 2 else 200, body=b'{"error": {"message": "try again"}}')
    assert post(web, envelope(messages(text("STOP")))).status_code == 200
    got = graph.wait_for(lambda r: len(r) == 3 and r[-1].status == 200, 20)
    assert len({r.body for r in got}) == 1  # the same reply each time


def test_without_an_access_token_no_reply_is_queued(database_url, tmp_path, env, graph):
    quiet = {**env, "WHATSAPP_ACCESS_TOKEN": ""}
    server = gunicorn(database_url, tmp_path, workers=1, env=quiet)
    try:
        assert post(server, envelope(messages(text("STOP")))).status_code == 200
        assert post(server, envelope(messages(text("STOP", sender=WA_BOB)))).status_code == 200
        health = requests.get(f"{server.base}/healthz", timeout=10).json()["outbox"]
        assert health["pending"] == 0
        log = server.log.read_text()
        assert log.count("WHATSAPP_ACCESS_TOKEN is not set") == 1  # logged once, not per message
    finally:
        server.stop()


@pytest.mark.parametrize("wrong", ["a string", 7, {"an": "object"}])
def test_wrong_typed_parts_of_a_batch_are_skipped_and_its_stops_recorded(web, wrong):
    broken = messages()
    broken["value"]["messages"] = broken["value"]["statuses"] = wrong
    preferences = {"field": "user_preferences", "value": {"user_preferences": wrong}}
    batch = envelope(broken, messages(text("STOP")), preferences, messages(text("STOP", sender=WA_BOB)))
    batch["entry"].append({"id": "WABA2", "changes": wrong})
    response = post(web, batch)
    assert response.status_code == 200
    assert status_of(web, "whatsapp", WA_ALICE)["status"] == "unsubscribed"
    assert status_of(web, "whatsapp", WA_BOB)["status"] == "unsubscribed"


def test_a_batch_over_the_bound_is_refused_whole_with_413(web):
    from webhook.providers.whatsapp_cloud import MAX_BATCH_ITEMS

    batch = envelope(messages(text("STOP"), *[text("hello", sender=f"1415555{n:04d}") for n in range(MAX_BATCH_ITEMS)]))
    response = post(web, batch)
    assert response.status_code == 413 and f"at most {MAX_BATCH_ITEMS}" in response.text
    assert status_of(web, "whatsapp", WA_ALICE)["status"] == "unknown"


def test_a_future_dated_start_or_resume_cannot_hide_a_later_real_stop(web):
    future = str(int(time.time()) + 10 * 365 * 86400)
    start = {**text("START"), "timestamp": future}
    assert post(web, envelope(messages(start))).status_code == 200
    assert status_of(web, "whatsapp", WA_ALICE)["status"] == "subscribed"
    time.sleep(1.1)  # Meta's times are whole seconds: the STOP a second after the START
    assert post(web, envelope(messages(text("STOP")))).status_code == 200
    assert status_of(web, "whatsapp", WA_ALICE)["status"] == "unsubscribed"
    resume = {"field": "user_preferences", "value": {"user_preferences": [
        {"wa_id": WA_BOB, "category": "marketing_messages", "value": "resume", "timestamp": future}]}}
    assert post(web, envelope(resume)).status_code == 200
    time.sleep(1.1)
    assert post(web, envelope(messages(text("STOP", sender=WA_BOB)))).status_code == 200
    assert status_of(web, "whatsapp", WA_BOB)["status"] == "unsubscribed"


def test_an_undated_preference_stop_is_not_a_duplicate_of_an_earlier_one(web):
    """Without Meta's timestamp the change's key cannot be the time: a second undated STOP
    (after a resume) must still unsubscribe, while a redelivery of the same POST counts once."""
    def preference(value: str, **extra) -> dict:
        return envelope({"field": "user_preferences", "value": {
            "messaging_product": "whatsapp", "metadata": {"phone_number_id": NUMBER_ID},
            "user_preferences": [{"wa_id": WA_BOB, "category": "marketing_messages", "value": value, **extra}]}})

    first = preference("stop")
    assert post(web, first).status_code == 200
    assert post(web, first).status_code == 200  # Meta's redelivery of the same POST: once
    assert [h["action"] for h in status_of(web, "whatsapp", WA_BOB)["history"]] == ["opt_out"]
    time.sleep(1.1)  # undated changes take the time they arrive: keep them apart
    assert post(web, preference("resume", detail="back")).status_code == 200
    assert status_of(web, "whatsapp", WA_BOB)["status"] == "subscribed"
    time.sleep(1.1)
    assert post(web, preference("stop", detail="again")).status_code == 200
    found = status_of(web, "whatsapp", WA_BOB)
    assert found["status"] == "unsubscribed", found["history"]
    assert [h["action"] for h in found["history"]] == ["opt_out", "opt_in", "opt_out"]
