"""Validly signed e-mail provider webhooks with hostile bodies are always answered 200 or 400,
never 500, and reach the store; unsigned ones are always 403 and record nothing.
(The same idea as test_fuzz_webhook.py for Twilio.)"""

from __future__ import annotations

import json
import secrets
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.e2e.email_providers import MAILGUN_KEY, MAILGUN_PATH, SENDGRID_PATH, SendGridKeys, sendgrid_event
from webhook import create_app
from webhook.providers import mailgun_events

KEYS = SendGridKeys()
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.text(alphabet="\x00\x01\x1b\x7f\u200b\u202e\ufeff\ufffd🛑@./ ", max_size=30),
    st.sampled_from(["bob@example.com", "Bob@Example.COM", "bob@example", "@example.com", "bob@@example.com",
                     "bøb@exämple.com", "a" * 300 + "@example.com", "spring-sale", "", " ", "a/b"]),
)
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-10**40, max_value=10**40),
                    st.floats(allow_nan=False), HOSTILE_TEXT)
ANY_JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                         st.dictionaries(HOSTILE_TEXT, inner, max_size=4)), max_leaves=20)
SENDGRID_KINDS = st.sampled_from(["spamreport", "unsubscribe", "group_unsubscribe", "group_resubscribe", "delivered",
                                  "open", "bounce", "SPAMREPORT", ""])


@st.composite
def sendgrid_events(draw) -> dict:
    """An event with SendGrid's fields, each one often right and sometimes anything at all."""
    event = sendgrid_event(draw(SENDGRID_KINDS), draw(st.sampled_from(["bob@example.com", "carol@example.com"])))
    for name in ("email", "sg_event_id", "timestamp", "asm_group_id", "campaign", "unique_args", "custom_args", "event"):
        if draw(st.integers(0, 3)) == 0:
            event[name] = draw(ANY_JSON)
    return event


MAILGUN_KINDS = st.sampled_from(["complained", "unsubscribed", "delivered", "failed", "opened", ""])


@st.composite
def mailgun_event_data(draw) -> dict:
    event = {"event": draw(MAILGUN_KINDS), "id": draw(st.text(min_size=1, max_size=30)), "timestamp": time.time(),
             "recipient": draw(st.sampled_from(["bob@example.com", "carol@example.com"])),
             "user-variables": {"campaign": "spring-sale"}}
    for name in ("event", "id", "timestamp", "recipient", "user-variables"):
        if draw(st.integers(0, 3)) == 0:
            event[name] = draw(ANY_JSON)
    return event


@pytest.fixture
def mail(settings):
    app = create_app(settings.with_changes(sendgrid_event_public_key=KEYS.public, mailgun_signing_key=MAILGUN_KEY))
    yield app.test_client()
    app.extensions["unsub"].store.close()


@pytest.fixture
def mail_store(mail):
    return mail.application.extensions["unsub"].store


def header(text: str) -> str:
    """Any text as an HTTP header value can carry it: its UTF-8 bytes read as latin-1, one line."""
    return text.encode("utf-8", "replace").decode("latin-1").replace("\r", " ").replace("\n", " ")


def post_sendgrid(mail, raw: bytes, headers: dict | None = None):
    return mail.post(SENDGRID_PATH, data=raw, headers=KEYS.headers(raw) if headers is None else headers)


@FUZZ
@given(batch=st.lists(sendgrid_events(), max_size=6))
def test_signed_sendgrid_batches_with_hostile_events_are_recorded_or_skipped(mail, batch):
    response = post_sendgrid(mail, json.dumps(batch).encode())
    assert response.status_code == 200, (batch, response.data)


@FUZZ
@given(body=st.one_of(ANY_JSON.map(lambda value: json.dumps(value).encode()), st.binary(max_size=200)))
def test_signed_sendgrid_nonsense_is_never_a_500(mail, body):
    response = post_sendgrid(mail, body)
    assert response.status_code in (200, 400), (body, response.data)


@FUZZ
@given(body=st.binary(max_size=200), signature=HOSTILE_TEXT, timestamp=HOSTILE_TEXT)
def test_unsigned_sendgrid_requests_are_403(mail, mail_store, body, signature, timestamp):
    headers = {"X-Twilio-Email-Event-Webhook-Signature": header(signature), "X-Twilio-Email-Event-Webhook-Timestamp": header(timestamp)}
    response = post_sendgrid(mail, body, headers)
    assert response.status_code == 403
    assert mail_store.event_count() == 0


def mailgun_signature() -> dict:
    timestamp, token = str(int(time.time())), secrets.token_hex(25)
    return {"timestamp": timestamp, "token": token, "signature": mailgun_events.sign(MAILGUN_KEY, timestamp, token)}


@FUZZ
@given(event=st.one_of(mailgun_event_data(), ANY_JSON), extra=st.dictionaries(HOSTILE_TEXT, ANY_JSON, max_size=3))
def test_signed_mailgun_bodies_with_hostile_events_are_never_a_500(mail, event, extra):
    body = {**extra, "signature": mailgun_signature(), "event-data": event}
    response = mail.post(MAILGUN_PATH, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    assert response.status_code in (200, 400), (body, response.data)
    assert response.status_code == 200 or not isinstance(event, dict)


@FUZZ
@given(body=st.one_of(ANY_JSON.map(lambda value: json.dumps(value).encode()), st.binary(max_size=200)),
       signature=st.dictionaries(st.sampled_from(["timestamp", "token", "signature", "parent-signature"]), ANY_JSON))
def test_unsigned_mailgun_requests_are_403(mail, mail_store, body, signature):
    for raw in (body, json.dumps({"signature": signature, "event-data": {"event": "complained", "id": "x",
                                                                         "recipient": "bob@example.com"}}).encode()):
        response = mail.post(MAILGUN_PATH, data=raw, headers={"Content-Type": "application/json"})
        assert response.status_code == 403, (raw, response.data)
    assert mail_store.event_count() == 0
