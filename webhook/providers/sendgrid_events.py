"""SendGrid's Event Webhook: spam complaints and SendGrid's own unsubscribes, as preference changes.

Verify (the Signed Event Webhook: ECDSA P-256 / SHA-256 over the timestamp header followed
by the raw body), then parse a batch (a JSON array of events) into provider-neutral
``PreferenceChange`` values, with the items that could not be read and why. Every other
event (delivered, open, bounce, ...) is counted and ignored. The answer is a bare 200: a
complaint is never answered. No Flask, no I/O.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from webhook.addresses import normalise_email
from webhook.domain import PreferenceBatch, PreferenceChange, Skipped, utcnow

PROVIDER = "sendgrid"
SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
# event -> (action, source, the reason recorded with it). A spam report is the recipient
# telling their mailbox provider "this is spam": the strongest opt-out, kept apart as a
# complaint. The others are SendGrid's own unsubscribe link and preference centre.
EVENTS = {
    "spamreport": ("opt_out", "complaint", "reported as spam (SendGrid)"),
    "unsubscribe": ("opt_out", "provider", "unsubscribed through SendGrid"),
    "group_unsubscribe": ("opt_out", "provider", "left SendGrid unsubscribe group {group}"),
    "group_resubscribe": ("opt_in", "provider", "rejoined SendGrid unsubscribe group {group}"),
}
MAX_ID = 200  # sg_event_id is about 22 characters
MAX_CAMPAIGN = 200  # the core allows 100; longer ones are refused there, not cut here
MAX_HEADER = 512  # a DER P-256 signature is at most 72 bytes (96 in base64); a timestamp 10 digits


class MalformedPayload(ValueError):
    """Signed, but not SendGrid's batch of events (400)."""


class InvalidKey(ValueError):
    """SENDGRID_EVENT_PUBLIC_KEY is not an ECDSA P-256 public key in base64 (DER)."""


@lru_cache(maxsize=4)
def public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The key SendGrid's console shows ("Verification Key": base64 of a DER SubjectPublicKeyInfo).

    A pasted PEM block (with its BEGIN/END lines) is read too. Cached: parsed once per process."""
    body = "".join(line for line in text.strip().splitlines() if not line.strip().startswith("-----"))
    try:
        der = base64.b64decode("".join(body.split()), validate=True)
        key = load_der_public_key(der)
    except (binascii.Error, ValueError, UnsupportedAlgorithm) as error:
        raise InvalidKey(f"not a base64 DER public key ({type(error).__name__})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise InvalidKey("not an ECDSA P-256 key (SendGrid signs with P-256)")
    return key


def signature_ok(key_text: str | None, raw_body: bytes, signature: str | None, timestamp: str | None) -> bool:
    """SendGrid's Signed Event Webhook: the base64 DER ECDSA signature of the timestamp header
    followed by the raw body, verified with the P-256 public key. False without a key (fail
    closed), without either header, or for anything that does not verify.

    Verified over the bytes as received, never a re-serialisation. No freshness window on the
    timestamp: SendGrid retries a batch for up to a day and documents no tolerance, and a
    replayed batch records nothing new (every event is idempotent on its ``sg_event_id``).
    """
    if not key_text or not signature or not timestamp or len(signature) > MAX_HEADER or len(timestamp) > MAX_HEADER:
        return False
    try:
        signed = timestamp.encode("latin-1") + raw_body  # the header's bytes as sent (WSGI decodes latin-1)
        public_key(key_text).verify(base64.b64decode(signature, validate=True), signed, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, InvalidKey, binascii.Error, ValueError, UnicodeEncodeError):
        return False
    return True


def sign(private_key: ec.EllipticCurvePrivateKey, raw_body: bytes, timestamp: str) -> str:
    """The signature header SendGrid would send (for tests and local simulation)."""
    return base64.b64encode(private_key.sign(timestamp.encode("ascii") + raw_body, ec.ECDSA(hashes.SHA256()))).decode()


def parse_batch(data: Any) -> PreferenceBatch:
    """Every complaint and unsubscribe of one Event Webhook POST, in order.

    MalformedPayload unless it is a JSON array (SendGrid's batch); an event that cannot be
    read (no usable address, no ``sg_event_id``) is skipped with its reason, the others kept.
    """
    if not isinstance(data, list):
        raise MalformedPayload("not a SendGrid Event Webhook batch: the body must be a JSON array of events")
    items: list[PreferenceChange] = []
    skipped: list[Skipped] = []
    ignored = 0  # events of kinds unsub does not act on (delivered, open, bounce, ...)
    for n, event in enumerate(data):
        if not isinstance(event, dict):
            skipped.append(Skipped(f"event {n}", "not an object"))
            continue
        kind = event.get("event")
        if not isinstance(kind, str) or kind not in EVENTS:
            ignored += 1
            continue
        change = _change(kind, event)
        if isinstance(change, str):
            skipped.append(Skipped(f"event {n} ({kind})", change))
        else:
            items.append(change)
    return PreferenceBatch(items, skipped, ignored)


def _change(kind: str, event: dict) -> PreferenceChange | str:
    event_id = event.get("sg_event_id")
    if not isinstance(event_id, str) or not 0 < len(event_id) <= MAX_ID or not event_id.isprintable():
        return "no sg_event_id"
    raw_address = event.get("email")
    address = normalise_email(raw_address[:320]) if isinstance(raw_address, str) else None
    if address is None:
        return "no usable e-mail address"
    group = _group(event.get("asm_group_id"))
    if kind.startswith("group_") and group is None:
        return "a group event without a usable asm_group_id"
    action, source, reason = EVENTS[kind]
    return PreferenceChange(
        channel_type="email", address=address, action=action,  # type: ignore[arg-type]
        key=event_id, identities=(("asm_group_id", group),) if group else (), detail=reason.format(group=group),
        at=_when(event.get("timestamp")), id_namespace="sendgrid-event", match_kind=f"sendgrid_{kind}",
        source=source, campaign=_campaign(event), message_id=event_id,
        undoes=("sendgrid_group_unsubscribe", EVENTS["group_unsubscribe"][2].format(group=group))
        if kind == "group_resubscribe" else None,
    )


def _group(value: Any) -> str | None:
    """An unsubscribe group id: SendGrid sends a number; digits in a string are read too."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 0 < value < 10**18:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 18 and int(value) > 0:
        return str(int(value))
    return None


def _campaign(event: dict) -> str | None:
    """The campaign the mail was sent for: custom args arrive as top-level fields of each event
    (``"campaign": "spring-sale"``); older integrations nest them under unique_args/custom_args."""
    for found in (event.get("campaign"), _nested(event, "unique_args"), _nested(event, "custom_args")):
        if isinstance(found, str) and found:
            return found[:MAX_CAMPAIGN]
    return None


def _nested(event: dict, name: str) -> Any:
    args = event.get(name)
    return args.get("campaign") if isinstance(args, dict) else None


def _when(timestamp: Any) -> datetime:
    """SendGrid's unix seconds; now when missing, absurd or in the future (an event cannot
    have happened later than it is reported, and a future time would outrank later changes)."""
    if isinstance(timestamp, bool) or not isinstance(timestamp, (int, float)):
        return utcnow()
    now = utcnow()
    if not 1_230_768_000 <= timestamp <= now.timestamp():  # from 2009 to now
        return now
    return datetime.fromtimestamp(timestamp, timezone.utc)
