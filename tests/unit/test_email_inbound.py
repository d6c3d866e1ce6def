"""Inbound-parse forms (SendGrid, Mailgun) and Mailgun's signature."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from webhook.providers.email_inbound import MalformedMail, mailgun_signature_ok, parse_mailgun, parse_sendgrid

KEY = "key-" + "m" * 28


def signed(timestamp: str = "1764151200", token: str = "t" * 50, key: str = KEY) -> dict[str, str]:
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {"timestamp": timestamp, "token": token, "signature": signature}


def test_sendgrid_form():
    mail = parse_sendgrid({"from": "Bob Smith <Bob@Example.com>", "subject": "Re: Fwd: Unsubscribe", "text": "\n\n  stop  \nthanks",
                           "headers": "Received: x\nMessage-ID: <abc@mail.example.com>\nSubject: y"})
    assert (mail.sender, mail.subject, mail.first_line, mail.message_id) == ("bob@example.com", "Unsubscribe", "stop", "<abc@mail.example.com>")


def test_mailgun_form():
    mail = parse_mailgun({"sender": "bob@example.com", "subject": "Hello", "body-plain": "UNSUBSCRIBE me", "Message-Id": "<m1@x>"})
    assert (mail.sender, mail.subject, mail.first_line, mail.message_id) == ("bob@example.com", "Hello", "UNSUBSCRIBE me", "<m1@x>")


def test_sender_must_be_an_address():
    with pytest.raises(MalformedMail):
        parse_sendgrid({"from": "nobody", "subject": "stop"})


def test_mailgun_signature():
    now = 1764151200 + 60
    assert mailgun_signature_ok(KEY, signed(), now=now)
    assert not mailgun_signature_ok(KEY, signed(key="key-other" + "x" * 20), now=now)
    assert not mailgun_signature_ok(KEY, {**signed(), "token": "u" * 50}, now=now)  # altered
    assert not mailgun_signature_ok(KEY, signed(), now=now + 13 * 3600)  # replayed too late
    assert not mailgun_signature_ok(None, signed(), now=now)  # no key configured: fail closed
    assert not mailgun_signature_ok(KEY, {}, now=now)
