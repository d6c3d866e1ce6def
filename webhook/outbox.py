"""What the outbox sends and when: payloads, Standard Webhooks signatures, the retry schedule.

Pure: no I/O. The store keeps the deliveries (written in the same transaction as the
change they announce); the worker (``webhook/worker.py``) claims and sends them.
"""

from __future__ import annotations

import base64
import json
import random
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

from standardwebhooks.webhooks import Webhook

from webhook.domain import iso

# Standard Webhooks' schedule after the first (immediate) attempt: 10 attempts in all.
DEFAULT_RETRY_SCHEDULE = (
    timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30), timedelta(hours=2), timedelta(hours=5),
    timedelta(hours=10), timedelta(hours=14), timedelta(hours=20), timedelta(hours=24),
)
DELIVERY_TIMEOUT_SECONDS = 15.0
MAX_RETRY_AFTER = timedelta(hours=24)
JITTER = 0.2  # each delay is stretched or shrunk by up to 20 %, so retries of many deliveries spread out
EXCERPT_CHARS = 200
SECRET_PREFIX = "whsec_"
EVENT_TYPES = {"opt_out": "consent.opted_out", "opt_in": "consent.opted_in"}
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")  # one line, whatever the receiver answered


def new_secret() -> str:
    """``whsec_`` and the base64 of 32 random bytes (Standard Webhooks asks for 24 at least)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def new_webhook_id() -> str:
    return "msg_" + secrets.token_hex(16)


def parse_retry_schedule(text: str) -> tuple[timedelta, ...]:
    """``5s,5m,30m,2h`` -> delays; ValueError naming what is wrong."""
    delays = []
    for part in text.split(","):
        found = _DURATION.fullmatch(part)
        if not found:
            raise ValueError(f"{part.strip()!r} is not a delay such as 5s, 5m, 2h or 1d")
        delays.append(timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)]))
    if not 1 <= len(delays) <= 50 or any(d > timedelta(days=7) for d in delays):
        raise ValueError("give between 1 and 50 delays of at most 7 days each")
    return tuple(delays)


def check_endpoint_url(url: str, allow_http: bool) -> str:
    """An endpoint (or forward, or API) URL as given, or ValueError saying what is allowed.

    Admins set these URLs and the worker POSTs to them from the server's network: any host
    is allowed (the receiver often runs beside the service), only the scheme is restricted.
    """
    if len(url) > 2000 or not url.isprintable() or " " in url:
        raise ValueError("the URL must be at most 2000 printable characters without spaces")
    parts = urlsplit(url)
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname:
        hint = "" if allow_http else " (set WEBHOOK_ALLOW_HTTP=1 to allow http:// for local testing)"
        raise ValueError(f"the URL must be an absolute {' or '.join(s + '://' for s in schemes)} URL{hint}")
    if parts.username or parts.password:
        raise ValueError("the URL must not carry a user name or password")
    return url


@dataclass(frozen=True)
class EventFacts:
    """What a consent webhook says about one recorded change."""

    event_id: int
    channel: str
    address: str
    action: str
    source: str
    keyword: str | None
    language: str | None
    match_kind: str | None
    occurred_at: datetime
    recorded_at: datetime
    status: str
    previous_status: str
    campaign: str | None = None


def consent_body(facts: EventFacts) -> str:
    """The JSON body of ``consent.opted_out`` / ``consent.opted_in`` (contract.md)."""
    return _body(EVENT_TYPES[facts.action], facts.recorded_at, {
        "channel": facts.channel, "address": facts.address, "status": facts.status,
        "previous_status": facts.previous_status, "source": facts.source, "keyword": facts.keyword,
        "language": facts.language, "match_kind": facts.match_kind, "campaign": facts.campaign,
        "occurred_at": iso(facts.occurred_at), "event_id": facts.event_id,
    })


def erased_body(address: str, channels: list[str], at: datetime) -> str:
    """``contact.erased``: receivers can erase too; ``channels`` are those it stays suppressed on."""
    return _body("contact.erased", at, {"address": address, "channels": sorted(channels)})


def ping_body(endpoint_id: int, at: datetime) -> str:
    return _body("ping", at, {"endpoint_id": endpoint_id, "message": "a test event sent by an admin"})


def _body(kind: str, at: datetime, data: dict) -> str:
    return json.dumps({"type": kind, "timestamp": iso(at), "data": data}, ensure_ascii=False, separators=(",", ":"))


def signed_headers(secret: str, webhook_id: str, body: str, now: datetime) -> dict[str, str]:
    """Standard Webhooks 1.0 headers for one attempt: the same id on every attempt, the
    timestamp and signature of this one (receivers refuse timestamps older than 5 minutes)."""
    signature = Webhook(secret).sign(webhook_id, now, body)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
        "user-agent": "unsub-webhooks/1",
    }


def retry_after(header: str | None, now: datetime) -> timedelta | None:
    """A ``Retry-After`` header (seconds, or an HTTP date) as a delay, at most MAX_RETRY_AFTER."""
    if not header:
        return None
    value = header.strip()
    try:
        delay = timedelta(seconds=max(0, int(value)))
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        delay = max(timedelta(0), when - now)
    return min(delay, MAX_RETRY_AFTER)


# Deliveries that never give up: a receiver that missed an erasure keeps the contact's data,
# and once failed its body (which names the contact) would be blanked, so it could never be
# sent again. After the schedule it is tried at the schedule's last interval until it is
# delivered, the endpoint answers 410, or the endpoint is deleted.
NEVER_FAILS = frozenset({"contact.erased"})


def next_attempt(attempts: int, schedule: tuple[timedelta, ...], now: datetime, after: timedelta | None = None,
                 rng: random.Random | None = None, event_type: str | None = None) -> datetime | None:
    """When to try again after ``attempts`` failed attempts, or None: no attempt left (failed)."""
    if attempts > len(schedule):
        if event_type not in NEVER_FAILS or not schedule:
            return None
        attempts = len(schedule)
    delay = schedule[attempts - 1] * (1 + (rng or random).uniform(-JITTER, JITTER))
    if after is not None and after > delay:
        delay = after
    return now + delay


def excerpt(body: bytes | str | None) -> str:
    """The start of an answer, as text a log or a page can show."""
    if not body:
        return ""
    text = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return _CONTROLS.sub(" ", text[:EXCERPT_CHARS])
