"""Mailgun's webhooks: spam complaints and Mailgun's own unsubscribes, as preference changes.

Mailgun posts one event per request as JSON: ``{"signature": {"timestamp", "token",
"signature"}, "event-data": {...}}``. Its signature is hex HMAC-SHA256 of timestamp + token
with the webhook signing key. It does not cover the body, so a captured signature could carry
any body: the timestamp must be recent (15 minutes) and each token is accepted once (the
route remembers it in the store). The inbound-mail route (``email_inbound``) checks the same
scheme on form fields with a 12-hour window; both share ``signature_ok`` and one memory of
tokens. No Flask, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from webhook.addresses import normalise_email
from webhook.domain import PreferenceBatch, PreferenceChange, Skipped, utcnow

PROVIDER = "mailgun"
MAX_AGE_SECONDS = 15 * 60  # Mailgun's advice: refuse a timestamp further than this from now
# Tokens are remembered as long as any Mailgun route would accept their timestamp: the
# inbound-mail route accepts 12 hours (email_inbound.MAILGUN_MAX_AGE_SECONDS), and a token
# used on one route must not be replayed on the other.
TOKEN_MEMORY = timedelta(hours=12)
TOKEN_NAMESPACE = "mailgun"
# event -> (action, source, the reason recorded with it)
EVENTS = {
    "complained": ("opt_out", "complaint", "reported as spam (Mailgun)"),
    "unsubscribed": ("opt_out", "provider", "unsubscribed through Mailgun"),
}
MAX_TOKEN = 200  # Mailgun's are 50 characters
MAX_ID = 200
MAX_CAMPAIGN = 200


class MalformedPayload(ValueError):
    """Signed, but not Mailgun's webhook body (400)."""


def signature_ok(signing_key: str | None, timestamp: str, token: str, signature: str, *, max_age: int,
                 now: float | None = None) -> bool:
    """hex HMAC-SHA256(key, timestamp + token), in constant time, with a timestamp at most
    ``max_age`` seconds from now. False without a key (fail closed)."""
    # What int() takes without ValueError: ASCII digits ("²" is a digit too), under its
    # 4,300-digit limit (a Unix time has 10).
    if not signing_key or not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        return False
    if not token or len(token) > MAX_TOKEN or not signature:
        return False
    if abs((now or time.time()) - int(timestamp)) > max_age:
        return False
    expected = hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


def sign(signing_key: str, timestamp: str, token: str) -> str:
    """What Mailgun would put in ``signature.signature`` (for tests and local simulation)."""
    return hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def token_expiry(timestamp: str) -> datetime:
    """Until when a token signed at ``timestamp`` must be remembered (no route accepts it after)."""
    return datetime.fromtimestamp(int(timestamp), timezone.utc) + TOKEN_MEMORY


@dataclass(frozen=True)
class SignedToken:
    """A request whose signature verified: its token, to be accepted once, until ``expires_at``."""

    token: str
    expires_at: datetime


def verify(signing_key: str | None, data: Any, now: float | None = None) -> SignedToken | None:
    """The token of a correctly signed, recent events request, or None (403).

    The body's ``signature`` object is all that is read. Mailgun signs subaccounts' events
    with the subaccount's key and adds ``parent-signature`` with the primary account's key, so
    either verifies."""
    found = data.get("signature") if isinstance(data, dict) else None
    if not isinstance(found, dict):
        return None
    timestamp, token = found.get("timestamp"), found.get("token")
    if isinstance(timestamp, int) and not isinstance(timestamp, bool):
        timestamp = str(timestamp)  # documented as a number; sent as a string
    if not isinstance(timestamp, str) or not isinstance(token, str):
        return None
    for name in ("signature", "parent-signature"):
        signature = found.get(name)
        if isinstance(signature, str) and signature_ok(signing_key, timestamp, token, signature,
                                                       max_age=MAX_AGE_SECONDS, now=now):
            return SignedToken(token, token_expiry(timestamp))
    return None


def parse_event(data: Any) -> PreferenceBatch:
    """The complaint or unsubscribe of one webhook POST (Mailgun sends one event per request).

    MalformedPayload unless ``event-data`` is an object; an event that cannot be read (no
    usable recipient, no id) is skipped with its reason."""
    event = data.get("event-data") if isinstance(data, dict) else None
    if not isinstance(event, dict):
        raise MalformedPayload('not a Mailgun webhook: "event-data" must be an object')
    kind = event.get("event")
    if not isinstance(kind, str) or kind not in EVENTS:
        return PreferenceBatch(ignored=1)
    event_id = event.get("id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_ID or not event_id.isprintable():
        return PreferenceBatch(skipped=[Skipped(f"event-data ({kind})", "no event id")])
    raw = event.get("recipient")
    address = normalise_email(raw[:320]) if isinstance(raw, str) else None
    if address is None:
        return PreferenceBatch(skipped=[Skipped(f"event-data ({kind})", "no usable recipient address")])
    action, source, reason = EVENTS[kind]
    return PreferenceBatch([PreferenceChange(
        channel_type="email", address=address, action=action,  # type: ignore[arg-type]
        key=event_id, detail=reason, at=_when(event.get("timestamp")), id_namespace="mailgun-event",
        match_kind=f"mailgun_{kind}", source=source, campaign=_campaign(event), message_id=event_id,
    )])


def _campaign(event: dict) -> str | None:
    """``user-variables.campaign``: what the sender attached to the message (X-Mailgun-Variables)."""
    variables = event.get("user-variables")
    found = variables.get("campaign") if isinstance(variables, dict) else None
    return found[:MAX_CAMPAIGN] if isinstance(found, str) and found else None


def _when(timestamp: Any) -> datetime:
    """Mailgun's unix seconds (with a fraction); now when missing, absurd or in the future."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        return utcnow()
    now = utcnow()
    if not 1_230_768_000 <= timestamp <= now.timestamp():
        return now
    return datetime.fromtimestamp(timestamp, timezone.utc)
