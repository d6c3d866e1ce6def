"""The outbox's pure parts: signatures receivers' libraries accept, the retry schedule, Retry-After."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from webhook import outbox

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)


def test_secrets_are_whsec_and_32_random_bytes():
    secret = outbox.new_secret()
    assert secret.startswith("whsec_") and secret != outbox.new_secret()
    import base64

    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32


def test_a_signed_delivery_verifies_with_standardwebhooks():
    secret = outbox.new_secret()
    body = outbox.ping_body(3, NOW)
    now = datetime.now(timezone.utc)
    headers = outbox.signed_headers(secret, "msg_1", body, now)
    assert headers["webhook-id"] == "msg_1" and headers["webhook-timestamp"] == str(int(now.timestamp()))
    assert Webhook(secret).verify(body, headers)["type"] == "ping"
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("ping", "pong"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(outbox.new_secret()).verify(body, headers)
    stale = outbox.signed_headers(secret, "msg_1", body, now - timedelta(minutes=10))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, stale)  # receivers refuse old timestamps: each attempt signs afresh


def test_consent_body_has_the_contract_fields():
    facts = outbox.EventFacts(7, "sms", "+14155550123", "opt_out", "keyword", "STOP", "en", "keyword", NOW, NOW,
                              "unsubscribed", "subscribed", "spring")
    body = json.loads(outbox.consent_body(facts))
    assert body["type"] == "consent.opted_out" and body["timestamp"] == "2026-12-02T09:00:00Z"
    assert body["data"] == {"channel": "sms", "address": "+14155550123", "status": "unsubscribed",
                            "previous_status": "subscribed", "source": "keyword", "keyword": "STOP", "language": "en",
                            "match_kind": "keyword", "campaign": "spring", "occurred_at": "2026-12-02T09:00:00Z",
                            "event_id": 7}
    erased = json.loads(outbox.erased_body("a@example.com", ["email", "sms"], NOW))
    assert erased == {"type": "contact.erased", "timestamp": "2026-12-02T09:00:00Z",
                      "data": {"address": "a@example.com", "channels": ["email", "sms"]}}


@pytest.mark.parametrize("text,delays", [
    ("5s,5m,30m,2h", [5, 300, 1800, 7200]),
    (" 1s , 1.5m ,1d", [1, 90, 86400]),
    ("250ms", [0.25]),
])
def test_retry_schedules_are_read(text, delays):
    assert [d.total_seconds() for d in outbox.parse_retry_schedule(text)] == delays


@pytest.mark.parametrize("text", ["", "5", "5x", "5s,,5m", "8d", ",".join(["1s"] * 51)])
def test_bad_retry_schedules_are_refused(text):
    with pytest.raises(ValueError):
        outbox.parse_retry_schedule(text)


def test_next_attempt_follows_the_schedule_with_jitter_and_ends():
    schedule = outbox.DEFAULT_RETRY_SCHEDULE
    rng = random.Random(1)
    first = outbox.next_attempt(1, schedule, NOW, rng=rng)
    assert first is not None and timedelta(seconds=4) <= first - NOW <= timedelta(seconds=6)
    last = outbox.next_attempt(len(schedule), schedule, NOW, rng=rng)
    assert last is not None and timedelta(hours=19) <= last - NOW <= timedelta(hours=29)
    assert outbox.next_attempt(len(schedule) + 1, schedule, NOW) is None  # 10 attempts in all, then failed
    later = outbox.next_attempt(1, schedule, NOW, after=timedelta(minutes=10), rng=rng)
    assert later == NOW + timedelta(minutes=10)  # Retry-After beyond the schedule wins


@pytest.mark.parametrize("header,seconds", [
    ("120", 120), ("0", 0), ("-5", 0), ("Wed, 02 Dec 2026 09:01:00 GMT", 60), ("999999999", 86400),
    ("soon", None), (None, None), ("", None),
])
def test_retry_after(header, seconds):
    found = outbox.retry_after(header, NOW)
    assert (found.total_seconds() if found is not None else None) == seconds


@pytest.mark.parametrize("url,allow_http,ok", [
    ("https://crm.example.com/hooks", False, True),
    ("https://127.0.0.1:8443/hooks", False, True),  # any host: receivers often run beside the service
    ("http://127.0.0.1:9000/hooks", False, False),
    ("http://127.0.0.1:9000/hooks", True, True),
    ("ftp://example.com/x", True, False),
    ("https://user:pass@example.com/", False, False),
    ("https:///nohost", False, False),
    ("https://example.com/a b", False, False),
    ("https://example.com/\r\nX: y", False, False),
    ("https://example.com/" + "a" * 2000, False, False),
])
def test_endpoint_urls(url, allow_http, ok):
    if ok:
        assert outbox.check_endpoint_url(url, allow_http) == url
    else:
        with pytest.raises(ValueError):
            outbox.check_endpoint_url(url, allow_http)


def test_excerpts_are_short_single_lines():
    assert outbox.excerpt(b"ok\r\n" + b"x" * 500) == "ok  " + "x" * 196
    assert outbox.excerpt(None) == "" and outbox.excerpt(b"\xff\xfe") == "\ufffd\ufffd"


def test_an_erasure_notice_never_fails_it_keeps_trying_at_the_last_interval():
    """A receiver that missed contact.erased keeps the contact's data; once failed, its body
    would be blanked and it could not be sent again."""
    schedule = outbox.parse_retry_schedule("5s,5m,24h")
    for attempts in (4, 10, 500):
        again = outbox.next_attempt(attempts, schedule, NOW, rng=random.Random(1), event_type="contact.erased")
        assert again is not None and timedelta(hours=19) <= again - NOW <= timedelta(hours=29)
    assert outbox.next_attempt(4, schedule, NOW, event_type="consent.opted_out") is None  # others end as before
