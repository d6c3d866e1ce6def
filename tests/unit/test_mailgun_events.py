"""Mailgun's webhooks: the signature inside the body (15 minutes, either key) and the event parser."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from webhook.domain import utcnow
from webhook.providers import email_inbound
from webhook.providers.mailgun_events import (
    MAX_AGE_SECONDS,
    TOKEN_MEMORY,
    MalformedPayload,
    parse_event,
    sign,
    token_expiry,
    verify,
)

KEY = "key-mailgun-signing-0123456789"
NOW = 1764151200


def signature(timestamp: str | int = NOW, token: str = "t" * 50, key: str = KEY, **extra) -> dict:
    return {"timestamp": timestamp, "token": token, "signature": sign(key, str(timestamp), token), **extra}


def body(event: dict | None = None, **sig) -> dict:
    return {"signature": signature(**sig), "event-data": event if event is not None else complained()}


def complained(kind: str = "complained", **fields) -> dict:
    return {"event": kind, "id": "Ase7i2zsRYeDXztHGENqRA", "timestamp": NOW - 30.25, "recipient": "Alice@Example.com",
            "user-variables": {"campaign": "spring-sale"}, "message": {"headers": {"message-id": "m1@mg.example.com"}},
            **fields}


def test_a_recent_signature_verifies_and_names_its_token():
    signed = verify(KEY, body(), now=NOW + 60)
    assert signed is not None and signed.token == "t" * 50
    assert signed.expires_at == datetime.fromtimestamp(NOW, timezone.utc) + TOKEN_MEMORY
    assert verify(KEY, body(timestamp=str(NOW)), now=NOW) is not None  # sent as a string, documented as a number


def test_a_subaccount_event_verifies_with_the_parent_key_too():
    data = {"signature": {**signature(key="subaccount-key-0123456789"), "parent-signature": sign(KEY, str(NOW), "t" * 50)},
            "event-data": complained()}
    assert verify(KEY, data, now=NOW) is not None
    assert verify("another-key-0123456789", data, now=NOW) is None


@pytest.mark.parametrize("data", [
    body(key="another-key-0123456789"),
    {**body(), "signature": {**signature(), "token": "u" * 50}},  # altered after signing
    {**body(), "signature": {**signature(), "signature": "é" * 64}},  # not hex, not ASCII: refused, not a crash
    {**body(), "signature": {**signature(), "signature": 12}},
    {**body(), "signature": {**signature(), "timestamp": True}},
    {**body(), "signature": {**signature(), "timestamp": "\u0661\u0667\u0666\u0664"}},  # digits int() would take
    {**body(), "signature": {**signature(), "timestamp": "1" * 5000}},
    {**body(), "signature": {**signature(), "token": ""}},
    {**body(), "signature": {**signature(token="x" * 201)}},
    {"event-data": complained()},  # unsigned
    {"signature": "x", "event-data": complained()},
    [], None, "signature",
])
def test_anything_else_is_refused(data):
    assert verify(KEY, data, now=NOW) is None


def test_the_timestamp_must_be_within_15_minutes_either_way():
    assert verify(KEY, body(), now=NOW + MAX_AGE_SECONDS) is not None
    assert verify(KEY, body(), now=NOW + MAX_AGE_SECONDS + 1) is None
    assert verify(KEY, body(), now=NOW - MAX_AGE_SECONDS - 1) is None


def test_no_key_refuses_everything():
    assert verify(None, body(), now=NOW) is None
    assert verify("", body(), now=NOW) is None


def test_tokens_are_remembered_as_long_as_the_inbound_mail_route_accepts_them():
    # A token first used on the events route must still be refused when replayed on the
    # inbound-mail route, which accepts timestamps 12 hours old.
    assert TOKEN_MEMORY >= timedelta(seconds=email_inbound.MAILGUN_MAX_AGE_SECONDS)
    assert token_expiry(str(NOW)) - datetime.fromtimestamp(NOW, timezone.utc) == TOKEN_MEMORY


def test_the_inbound_mail_signature_is_the_same_scheme_with_its_own_window():
    form = {key: str(value) for key, value in signature().items()}
    assert email_inbound.mailgun_signature_ok(KEY, form, now=NOW + 11 * 3600)
    assert not email_inbound.mailgun_signature_ok(KEY, {**form, "signature": "é"}, now=NOW)  # a 500 before: TypeError


def test_complained_and_unsubscribed_become_opt_outs():
    (complaint,) = parse_event(body()).items
    assert (complaint.action, complaint.source, complaint.match_kind, complaint.address) == (
        "opt_out", "complaint", "mailgun_complained", "alice@example.com")
    assert (complaint.key, complaint.message_id, complaint.id_namespace) == (
        "Ase7i2zsRYeDXztHGENqRA", "Ase7i2zsRYeDXztHGENqRA", "mailgun-event")
    assert complaint.campaign == "spring-sale" and complaint.identities == ()
    assert complaint.at == datetime.fromtimestamp(NOW - 30.25, timezone.utc)
    (unsubscribe,) = parse_event(body(complained("unsubscribed"))).items
    assert (unsubscribe.action, unsubscribe.source, unsubscribe.match_kind) == ("opt_out", "provider", "mailgun_unsubscribed")


@pytest.mark.parametrize("kind", ["delivered", "opened", "clicked", "failed", "accepted", "stored", None, 7])
def test_other_events_are_ignored(kind):
    batch = parse_event(body(complained(kind)))
    assert (batch.items, batch.skipped, batch.ignored) == ([], [], 1)


@pytest.mark.parametrize("fields,why", [
    ({"recipient": "nobody"}, "no usable recipient"),
    ({"recipient": None}, "no usable recipient"),
    ({"id": None}, "no event id"),
    ({"id": "x" * 201}, "no event id"),
])
def test_an_unreadable_event_is_skipped_with_its_reason(fields, why):
    batch = parse_event(body(complained(**fields)))
    assert batch.items == [] and why in batch.skipped[0].why


@pytest.mark.parametrize("variables,campaign", [
    ({"campaign": "black-friday"}, "black-friday"), ({"campaign": ""}, None), ({"campaign": {"id": 1}}, None),
    ("campaign=x", None), (None, None),
])
def test_the_campaign_comes_from_the_user_variables(variables, campaign):
    (change,) = parse_event(body(complained(**{"user-variables": variables}))).items
    assert change.campaign == campaign


@pytest.mark.parametrize("data", [{"signature": {}}, {"event-data": "complained"}, {"event-data": []}, [], None])
def test_a_body_without_event_data_is_malformed(data):
    with pytest.raises(MalformedPayload):
        parse_event(data)


def test_a_time_in_the_future_or_absurd_is_replaced_by_now():
    for odd in (time.time() + 86400, -1, "1764151200", float("inf"), None):
        (change,) = parse_event(body(complained(timestamp=odd))).items
        assert abs(change.at - utcnow()) < timedelta(seconds=5), odd
