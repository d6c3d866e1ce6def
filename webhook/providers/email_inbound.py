"""Inbound-parse providers for e-mail (SendGrid Inbound Parse, Mailgun routes): form -> InboundMail.

No Flask here: the blueprint passes the form fields and the provider's secret.
"""

from __future__ import annotations

import hmac
import re
import time
from email.utils import parseaddr
from hashlib import sha256
from typing import Mapping

from webhook.addresses import normalise_email
from webhook.domain import InboundMail

MAILGUN_MAX_AGE_SECONDS = 12 * 3600  # a signed request older than this is refused (replays)
REPLY_PREFIX = re.compile(r"^\s*(re|fw|fwd|aw|wg|tr|rv|res|enc|sv)\s*:\s*", re.IGNORECASE)


class MalformedMail(ValueError):
    """The request is authenticated but not a mail we can read (400)."""


def _first_line(text: str) -> str:
    for line in (text or "").splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def _message_id(headers: str) -> str | None:
    for line in (headers or "").splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == "message-id" and value.strip():
            return value.strip()[:250]
    return None


def _subject(raw: str | None) -> str:
    """The subject without reply and forward prefixes ("Re: Fwd: unsubscribe" -> "unsubscribe")."""
    subject = (raw or "").strip()
    while True:
        stripped = REPLY_PREFIX.sub("", subject, count=1)
        if stripped == subject:
            return subject[:500]
        subject = stripped


def _mail(raw_sender: str | None, subject: str | None, body: str | None, message_id: str | None) -> InboundMail:
    address = normalise_email(parseaddr(raw_sender or "")[1])
    if address is None:
        raise MalformedMail("the sender is not an e-mail address")
    return InboundMail(address, _subject(subject), _first_line(body or ""), message_id)


def parse_sendgrid(form: Mapping[str, str]) -> InboundMail:
    """SendGrid Inbound Parse (multipart): from, subject, text, headers."""
    return _mail(form.get("from"), form.get("subject"), form.get("text"), _message_id(form.get("headers", "")))


def mailgun_signature_ok(signing_key: str | None, form: Mapping[str, str], now: float | None = None) -> bool:
    """Mailgun's webhook signature: HMAC-SHA256(key, timestamp + token), recent timestamp."""
    if not signing_key:
        return False
    timestamp, token, signature = form.get("timestamp", ""), form.get("token", ""), form.get("signature", "")
    if not (timestamp.isdigit() and token and signature):
        return False
    if abs((now or time.time()) - int(timestamp)) > MAILGUN_MAX_AGE_SECONDS:
        return False
    expected = hmac.new(signing_key.encode(), (timestamp + token).encode(), sha256).hexdigest()
    return hmac.compare_digest(expected, signature)


def parse_mailgun(form: Mapping[str, str]) -> InboundMail:
    """A Mailgun route's forward: sender, subject, body-plain, Message-Id."""
    return _mail(form.get("sender") or form.get("from"), form.get("subject"), form.get("body-plain"), form.get("Message-Id"))
