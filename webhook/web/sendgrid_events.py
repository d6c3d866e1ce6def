"""SendGrid's Event Webhook (complaints and unsubscribes), signed with ECDSA (glue only)."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, abort, request

from webhook import bounded_json
from webhook.providers import sendgrid_events
from webhook.web import services
from webhook.web.email_events import record_batch

bp = Blueprint("sendgrid_events", __name__)
log = logging.getLogger("unsub.sendgrid")


@bp.post("/webhooks/email/sendgrid/events")
def receive() -> Response:
    """Every spam report and unsubscribe of the batch, recorded before the 200; other events
    (delivered, open, bounce, ...) are accepted and ignored. The signature is checked over the
    raw body before anything is parsed."""
    raw = request.get_data(cache=False)  # MAX_CONTENT_LENGTH applies (SendGrid posts at most 768 KB): 413 above it
    if not sendgrid_events.signature_ok(services().settings.sendgrid_event_public_key, raw,
                                        request.headers.get(sendgrid_events.SIGNATURE_HEADER),
                                        request.headers.get(sendgrid_events.TIMESTAMP_HEADER)):
        log.warning("rejected a SendGrid event webhook with a missing or invalid signature")
        abort(403, description=f"invalid or missing {sendgrid_events.SIGNATURE_HEADER}")
    try:
        batch = sendgrid_events.parse_batch(bounded_json.loads(raw.decode("utf-8")))
    except (UnicodeDecodeError, ValueError) as error:  # not JSON, too deep, or not an array of events
        abort(400, description=f"malformed SendGrid event webhook: {error}")
    return record_batch("SendGrid", batch)
