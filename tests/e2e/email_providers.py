"""Requests signed the way SendGrid's Event Webhook and Mailgun's webhooks sign them, with keys
made by the test (an EC P-256 key pair for SendGrid, a signing key for Mailgun)."""

from __future__ import annotations

import base64
import json
import secrets
import time
import uuid

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from webhook.providers import mailgun_events, sendgrid_events

SENDGRID_PATH = "/webhooks/email/sendgrid/events"
MAILGUN_PATH = "/webhooks/email/mailgun/events"
MAILGUN_KEY = "key-mailgun-events-0123456789abcdef"


class SendGridKeys:
    """An EC P-256 key pair; ``public`` is what SendGrid's console shows (base64 DER SPKI)."""

    def __init__(self) -> None:
        self.private = ec.generate_private_key(ec.SECP256R1())
        der = self.private.public_key().public_bytes(serialization.Encoding.DER,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
        self.public = base64.b64encode(der).decode()

    def headers(self, raw: bytes, timestamp: str | None = None) -> dict[str, str]:
        timestamp = timestamp or str(int(time.time()))
        return {"Content-Type": "application/json", sendgrid_events.TIMESTAMP_HEADER: timestamp,
                sendgrid_events.SIGNATURE_HEADER: sendgrid_events.sign(self.private, raw, timestamp)}


def sendgrid_event(kind: str, email: str, **fields) -> dict:
    return {"email": email, "event": kind, "sg_event_id": fields.pop("sg_event_id", uuid.uuid4().hex[:22]),
            "sg_message_id": f"{uuid.uuid4().hex[:22]}.filter0001", "timestamp": int(time.time()) - 5,
            "smtp-id": f"<{uuid.uuid4().hex}@example.com>", "category": ["newsletter"], **fields}


def raw(payload: object) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def mailgun_body(kind: str, recipient: str, *, key: str = MAILGUN_KEY, token: str | None = None,
                 timestamp: int | None = None, event_id: str | None = None, campaign: str | None = None) -> dict:
    timestamp = timestamp or int(time.time())
    token = token or secrets.token_hex(25)
    event = {"event": kind, "id": event_id or uuid.uuid4().hex[:22], "timestamp": time.time() - 2,
             "recipient": recipient, "tags": ["newsletter"], "message": {"headers": {"message-id": "m@mg.example.com"}}}
    if campaign:
        event["user-variables"] = {"campaign": campaign}
    return {"signature": {"timestamp": str(timestamp), "token": token,
                          "signature": mailgun_events.sign(key, str(timestamp), token)},
            "event-data": event}
