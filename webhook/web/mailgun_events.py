"""Mailgun's webhooks (complaints and unsubscribes): JSON signed inside the body (glue only)."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Blueprint, Response, abort, request

from webhook import bounded_json
from webhook.providers import mailgun_events
from webhook.web import services
from webhook.web.email_events import record_batch

bp = Blueprint("mailgun_events", __name__)
log = logging.getLogger("unsub.mailgun")


def first_use(token: str, expires_at: datetime) -> bool:
    """True the first time a Mailgun token is seen on any Mailgun route (its signature does not
    cover the body: a second use is a replay, whatever the body says).

    The token is spent before the request is recorded. If recording then fails (503), the
    retry still gets in: Mailgun signs each attempt afresh (a retry hours later would fail its
    own 15-minute window otherwise)."""
    return services().store.remember_token(mailgun_events.TOKEN_NAMESPACE, token, expires_at)


@bp.post("/webhooks/email/mailgun/events")
def receive() -> Response:
    """The complaint or unsubscribe of one Mailgun event, recorded before the 200; other events
    are accepted and ignored. Only the signature is read until the request is verified, recent
    and its token unused."""
    svc = services()
    raw = request.get_data(cache=False)  # MAX_CONTENT_LENGTH applies: 413 above it
    try:
        data = bounded_json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        data = None  # no JSON, so no signature to find: 403 below
    signed = mailgun_events.verify(svc.settings.mailgun_signing_key, data)
    if signed is None:
        log.warning("rejected a Mailgun webhook with a missing, invalid or stale signature")
        abort(403, description="invalid, missing or stale Mailgun signature")
    if not first_use(signed.token, signed.expires_at):
        log.warning("rejected a Mailgun webhook whose token was used before (a replay)")
        abort(403, description="this Mailgun signature was used before")
    try:
        batch = mailgun_events.parse_event(data)
    except mailgun_events.MalformedPayload as error:
        abort(400, description=f"malformed Mailgun webhook: {error}")
    return record_batch("Mailgun", batch)
