"""Inbound-parse providers for e-mail (SendGrid Inbound Parse, Mailgun routes): form -> InboundMail.

No Flask here: the blueprint passes the form fields and the provider's secret.
"""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Mapping

from webhook.addresses import normalise_email
from webhook.domain import InboundMail
from webhook.providers import mailgun_events

MAILGUN_MAX_AGE_SECONDS = 12 * 3600  # a signed request older than this is refused (replays)
# Every field is cut to a bound before anything else reads it, and read in one pass: a
# request may carry 10 MiB of form data, and whatever is quadratic in it (stripping
# "Re: " 500,000 times, one copy each) ties a worker up for as long as the sender likes.
SUBJECT_CHARS = 2000  # a subject line is at most 998 characters (RFC 5322); folded ones rarely twice that
BODY_CHARS = 64 * 1024  # the first line people type is near the top, not after 64 KiB of blank lines
HEADERS_CHARS = 256 * 1024  # Received: chains of real mails are a few KiB
SENDER_CHARS = 998  # one header line (RFC 5322)
SUBJECT_LENGTH, FIRST_LINE_LENGTH, MESSAGE_ID_LENGTH = 500, 200, 250
# All the reply and forward prefixes at once ("Re: Fwd: RE:"), matched in one linear pass.
REPLY_PREFIXES = re.compile(r"(?:\s*(?:re|fw|fwd|aw|wg|tr|rv|res|enc|sv)\s*:)*\s*", re.IGNORECASE)


class MalformedMail(ValueError):
    """The request is authenticated but not a mail we can read (400)."""


def _first_line(text: str) -> str:
    for line in (text or "")[:BODY_CHARS].splitlines():
        if line.strip():
            return line.strip()[:FIRST_LINE_LENGTH]
    return ""


def _message_id(value: str | None) -> str | None:
    text = (value or "")[:SENDER_CHARS].strip()[:MESSAGE_ID_LENGTH]
    return text or None


def _header_message_id(headers: str) -> str | None:
    for line in (headers or "")[:HEADERS_CHARS].splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == "message-id" and value.strip():
            return _message_id(value)
    return None


def _subject(raw: str | None) -> str:
    """The subject without reply and forward prefixes ("Re: Fwd: unsubscribe" -> "unsubscribe")."""
    subject = (raw or "")[:SUBJECT_CHARS]
    prefixes = REPLY_PREFIXES.match(subject)
    start = prefixes.end() if prefixes else 0
    return subject[start:].strip()[:SUBJECT_LENGTH]


def _sender(raw: str | None) -> str | None:
    """The sender's address from a From header ("Bob <bob@example.com>"), or None."""
    try:
        return normalise_email(parseaddr((raw or "")[:SENDER_CHARS])[1])
    except RecursionError:  # parseaddr recurses once per nested "(" of a comment
        return None


def _mail(raw_sender: str | None, subject: str | None, body: str | None, message_id: str | None) -> InboundMail:
    address = _sender(raw_sender)
    if address is None:
        raise MalformedMail("the sender is not an e-mail address")
    return InboundMail(address, _subject(subject), _first_line(body or ""), message_id)


def parse_sendgrid(form: Mapping[str, str]) -> InboundMail:
    """SendGrid Inbound Parse (multipart): from, subject, text, headers."""
    return _mail(form.get("from"), form.get("subject"), form.get("text"), _header_message_id(form.get("headers", "")))


def mailgun_signature_ok(signing_key: str | None, form: Mapping[str, str], now: float | None = None) -> bool:
    """Mailgun's webhook signature: HMAC-SHA256(key, timestamp + token), recent timestamp.

    The scheme is Mailgun's, shared with its events route (``mailgun_events.signature_ok``);
    the route then accepts each token once (one memory for both routes)."""
    return mailgun_events.signature_ok(signing_key, form.get("timestamp", ""), form.get("token", ""),
                                       form.get("signature", ""), max_age=MAILGUN_MAX_AGE_SECONDS, now=now)


def parse_mailgun(form: Mapping[str, str]) -> InboundMail:
    """A Mailgun route's forward: sender, subject, body-plain, Message-Id."""
    return _mail(form.get("sender") or form.get("from"), form.get("subject"), form.get("body-plain"),
                 _message_id(form.get("Message-Id")))
