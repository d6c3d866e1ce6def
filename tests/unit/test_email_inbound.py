"""Inbound-parse forms (SendGrid, Mailgun) and Mailgun's signature."""

from __future__ import annotations

import hashlib
import hmac
import time

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


# Every field is bounded before it is read and read in one pass: a sender controls all of them.

def test_half_a_million_reply_prefixes_are_stripped_in_one_pass():
    started = time.monotonic()
    mail = parse_sendgrid({"from": "bob@example.com", "subject": "Re: " * 500_000, "text": "stop"})
    assert (mail.subject, mail.first_line) == ("", "stop")
    assert parse_sendgrid({"from": "bob@example.com", "subject": "RE:Fwd :  re: AW: SV: Unsubscribe "}).subject == "Unsubscribe"
    assert parse_sendgrid({"from": "bob@example.com", "subject": "Re: " * 5 + "x" * 600}).subject == "x" * 500
    assert time.monotonic() - started < 10  # sanity bound only: it took about 20 s before


def test_huge_body_headers_and_message_id_are_read_within_bounds():
    body = "\n" * 1000 + "  stop  \n" + "x" * (30 * 1024 * 1024)
    headers = "Received: from x\n" * 10_000 + "Message-Id: " + "<" + "m" * 1_000_000 + ">\n"
    mail = parse_sendgrid({"from": "bob@example.com", "text": body, "headers": headers})
    assert mail.first_line == "stop" and mail.message_id == "<" + "m" * 249
    assert parse_sendgrid({"from": "bob@example.com", "text": "x" * (30 * 1024 * 1024)}).first_line == "x" * 200
    assert parse_mailgun({"sender": "bob@example.com", "Message-Id": " <" + "m" * 100_000}).message_id == "<" + "m" * 249


def test_a_deeply_nested_sender_comment_is_malformed_not_a_crash():
    with pytest.raises(MalformedMail):  # parseaddr recursed once per "(": RecursionError, a 500
        parse_sendgrid({"from": "(" * 5000 + "bob@example.com", "subject": "stop"})
    assert parse_sendgrid({"from": "Bob (work (desk)) <Bob@Example.com>"}).sender == "bob@example.com"


@pytest.mark.parametrize("timestamp", ["1" * 5000, "\u00b2" * 10, "\u0661\u0667\u0666\u0664"])
def test_a_mailgun_timestamp_int_cannot_read_is_refused_not_a_crash(timestamp):
    assert not mailgun_signature_ok(KEY, signed(timestamp=timestamp), now=1764151200)
