"""SendGrid's Event Webhook: the Signed Event Webhook (ECDSA P-256) and the batch parser."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from webhook.domain import utcnow
from webhook.providers.sendgrid_events import InvalidKey, MalformedPayload, parse_batch, public_key, sign, signature_ok
from webhook.settings import SettingsError, from_env

PRIVATE = ec.generate_private_key(ec.SECP256R1())


def key_text(private=PRIVATE) -> str:
    """The key as SendGrid's console shows it: base64 of the DER SubjectPublicKeyInfo."""
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


KEY = key_text()
BODY = json.dumps([{"email": "bob@example.com", "event": "spamreport", "sg_event_id": "ev1", "timestamp": 1764151200}]).encode()


def event(kind: str = "spamreport", **fields) -> dict:
    return {"email": "Bob@Example.com", "event": kind, "sg_event_id": f"sg-{kind}-1", "sg_message_id": "m1.filter",
            "timestamp": int(time.time()) - 60, **fields}


# -- the key ---------------------------------------------------------------------------


def test_the_console_key_and_a_pasted_pem_block_are_both_read():
    pem = PRIVATE.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert public_key(KEY).public_numbers() == public_key(pem.decode()).public_numbers()
    assert KEY.startswith("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE")  # what SendGrid's P-256 keys start with


@pytest.mark.parametrize("text", [
    "not base64 at all!",
    base64.b64encode(b"\x30\x03\x02\x01\x01").decode(),  # DER, but not a key
    key_text(ec.generate_private_key(ec.SECP384R1())),  # another curve
    base64.b64encode(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode(),
])
def test_anything_but_a_p256_public_key_is_refused(text):
    with pytest.raises(InvalidKey):
        public_key(text)


def test_a_bad_key_stops_start_up_with_one_line_naming_it(tmp_path):
    env = {"TWILIO_AUTH_TOKEN": "a" * 32, "SECRET_KEY": "b" * 32}
    assert from_env({**env, "SENDGRID_EVENT_PUBLIC_KEY": KEY}, cwd=tmp_path).sendgrid_event_public_key == KEY
    assert from_env(env, cwd=tmp_path).sendgrid_event_public_key is None
    with pytest.raises(SettingsError) as caught:
        from_env({**env, "SENDGRID_EVENT_PUBLIC_KEY": "MFkw-not-a-key"}, cwd=tmp_path)
    assert "SENDGRID_EVENT_PUBLIC_KEY" in str(caught.value) and "\n" not in str(caught.value)


# -- the signature ---------------------------------------------------------------------


def test_a_signature_over_timestamp_and_raw_body_verifies():
    timestamp = str(int(time.time()))
    assert signature_ok(KEY, BODY, sign(PRIVATE, BODY, timestamp), timestamp)


def test_anything_altered_or_missing_does_not_verify():
    timestamp = "1764151200"
    good = sign(PRIVATE, BODY, timestamp)
    assert not signature_ok(KEY, BODY + b" ", good, timestamp)  # the body, re-serialised or altered
    assert not signature_ok(KEY, BODY, good, "1764151201")  # the timestamp
    assert not signature_ok(key_text(ec.generate_private_key(ec.SECP256R1())), BODY, good, timestamp)  # another key
    assert not signature_ok(None, BODY, good, timestamp)  # no key configured: fail closed
    assert not signature_ok("", BODY, good, timestamp)
    assert not signature_ok(KEY, BODY, None, timestamp)
    assert not signature_ok(KEY, BODY, good, None)
    assert not signature_ok(KEY, BODY, "", timestamp)
    assert not signature_ok(KEY, BODY, "%%% not base64 %%%", timestamp)
    assert not signature_ok(KEY, BODY, base64.b64encode(b"\x00" * 64).decode(), timestamp)  # not DER
    assert not signature_ok(KEY, BODY, good * 20, timestamp)  # far too long to be one
    assert not signature_ok(KEY, BODY, good, "é" * 10 + "\u2603")  # a header WSGI could not have given us
    assert not signature_ok("garbage key", BODY, good, timestamp)  # never raises, even for a bad key


# -- the batch -------------------------------------------------------------------------


def test_each_event_kind_becomes_what_the_contract_says():
    batch = parse_batch([event("spamreport"), event("unsubscribe"), event("group_unsubscribe", asm_group_id=42),
                         event("group_resubscribe", asm_group_id=42), event("delivered"), event("open"),
                         event("bounce"), event("processed")])
    got = [(c.action, c.source, c.match_kind, c.identities) for c in batch.items]
    assert got == [
        ("opt_out", "complaint", "sendgrid_spamreport", ()),
        ("opt_out", "provider", "sendgrid_unsubscribe", ()),
        ("opt_out", "provider", "sendgrid_group_unsubscribe", (("asm_group_id", "42"),)),
        ("opt_in", "provider", "sendgrid_group_resubscribe", (("asm_group_id", "42"),)),
    ]
    assert (batch.ignored, batch.skipped) == (4, [])
    first = batch.items[0]
    assert (first.channel_type, first.address, first.key, first.message_id, first.id_namespace) == (
        "email", "bob@example.com", "sg-spamreport-1", "sg-spamreport-1", "sendgrid-event")
    assert "group 42" in batch.items[2].detail


def test_a_spam_report_sent_with_a_group_is_bound_to_that_group():
    (change,) = parse_batch([event("spamreport", asm_group_id="7")]).items
    assert change.identities == (("asm_group_id", "7"),)


@pytest.mark.parametrize("fields,campaign", [
    ({"campaign": "spring-sale"}, "spring-sale"),  # custom args: top-level fields of the event
    ({"unique_args": {"campaign": "legacy"}}, "legacy"),
    ({"custom_args": {"campaign": "nested"}}, "nested"),
    ({"campaign": ""}, None),
    ({"campaign": 12}, None),
    ({"unique_args": "campaign=x"}, None),
    ({}, None),
    ({"campaign": "x" * 5000}, "x" * 200),  # bounded here; the core refuses what is too long
])
def test_the_campaign_comes_from_the_custom_args(fields, campaign):
    (change,) = parse_batch([event(**fields)]).items
    assert change.campaign == campaign


def test_unreadable_events_are_skipped_with_a_reason_and_the_rest_kept():
    batch = parse_batch([
        "not an object", event(email="not-an-address"), event(email=None), event(sg_event_id=None),
        event(sg_event_id=""), event(sg_event_id="x" * 201), event("group_unsubscribe"),  # no group
        event("group_unsubscribe", asm_group_id=True), event("group_resubscribe", asm_group_id=-3),
        event(email="carol@example.com"), {"event": None}, {"event": ["spamreport"]},
    ])
    assert [c.address for c in batch.items] == ["carol@example.com"]
    assert len(batch.skipped) == 9 and batch.ignored == 2
    reasons = " / ".join(f"{s.where}: {s.why}" for s in batch.skipped)
    assert "event 0: not an object" in reasons and "no usable e-mail address" in reasons
    assert "no sg_event_id" in reasons and "without a usable asm_group_id" in reasons


@pytest.mark.parametrize("data", [{}, {"events": []}, "[]", 3, None])
def test_a_body_that_is_not_an_array_of_events_is_malformed(data):
    with pytest.raises(MalformedPayload):
        parse_batch(data)


def test_an_empty_batch_is_nothing_to_do():
    assert parse_batch([]).items == []


def test_times_are_the_events_own_unless_absurd_or_in_the_future():
    at = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
    (change,) = parse_batch([event(timestamp=int(at.timestamp()))]).items
    assert change.at == at
    for odd in (None, "1764151200", 0, -5, 10**30, float("nan"), True, int((utcnow() + timedelta(days=2)).timestamp())):
        (change,) = parse_batch([event(timestamp=odd)]).items
        assert abs(change.at - utcnow()) < timedelta(seconds=5), odd
