"""WhatsApp Cloud API webhooks: Meta's verification handshake and its batches (glue only)."""

from __future__ import annotations

import hashlib
import logging
import threading

from flask import Blueprint, Response, abort, request

from webhook import bounded_json, consent
from webhook.domain import InboundMessage, PreferenceChange, StatusReport
from webhook.providers import whatsapp_cloud
from webhook.web import services
from webhook.web.webhooks import log_skipped, mask

bp = Blueprint("whatsapp", __name__)
log = logging.getLogger("unsub.whatsapp")
_warned_no_token = threading.Event()


@bp.get("/webhooks/whatsapp")
def verify() -> Response:
    """Meta's handshake: the challenge back when the verify token matches, else 403."""
    challenge = whatsapp_cloud.handshake(request.args, services().settings.whatsapp_verify_token)
    if challenge is None:
        abort(403, description="the verification handshake did not match WHATSAPP_VERIFY_TOKEN")
    return Response(challenge, mimetype="text/plain")


@bp.post("/webhooks/whatsapp")
def receive() -> Response:
    """Every message, status and preference change of the batch, recorded before the 200
    (Meta retries anything else); confirmations go out afterwards through the worker."""
    svc = services()
    raw = request.get_data(cache=False)  # MAX_CONTENT_LENGTH applies: 413 above it
    if not whatsapp_cloud.signature_ok(svc.settings.whatsapp_app_secret, raw,
                                       request.headers.get(whatsapp_cloud.SIGNATURE_HEADER)):
        log.warning("rejected a WhatsApp webhook with a missing or invalid X-Hub-Signature-256")
        abort(403, description="invalid or missing X-Hub-Signature-256")
    try:
        batch = whatsapp_cloud.parse_batch(bounded_json.loads(raw.decode("utf-8")), hashlib.sha256(raw).hexdigest()[:32])
    except whatsapp_cloud.BatchTooLarge as error:  # refused whole, before anything is recorded
        log.warning("refused a WhatsApp webhook: %s", error)
        abort(413, description=f"WhatsApp webhook too large: {error}")
    except (UnicodeDecodeError, ValueError) as error:  # not JSON, too deep, or not the envelope
        abort(400, description=f"malformed WhatsApp webhook: {error}")
    for item in batch.items:
        if isinstance(item, InboundMessage):
            _message(item)
        elif isinstance(item, StatusReport):
            outcome = consent.handle_status(item, svc.config, svc.store, svc.address_hash)
            if outcome.recorded is not None:
                log.info("WhatsApp says %s stopped marketing messages (%s)", mask(item.recipient), item.error_code)
        elif isinstance(item, PreferenceChange):
            consent.handle_preference(item, svc.config, svc.store)
    log_skipped(log, "WhatsApp", batch.skipped)
    return Response("ok\n", mimetype="text/plain")


def _message(message: InboundMessage) -> None:
    svc = services()
    outcome = consent.handle_inbound(message, svc.config, svc.store)
    if not outcome.reply:
        return
    if not svc.settings.whatsapp_access_token:
        if not _warned_no_token.is_set():
            _warned_no_token.set()
            log.warning("WHATSAPP_ACCESS_TOKEN is not set: confirmations to WhatsApp Cloud API contacts are not sent")
        return
    answer = whatsapp_cloud.reply(svc.settings.whatsapp_api_url, message, outcome.reply)
    if answer is None:
        log.info("no phone_number_id in the webhook: cannot reply to %s", mask(message.address))
        return
    # Once per inbound message (keyed by its wamid), however often Meta redelivers the batch.
    svc.store.queue_message(kind="whatsapp_reply", lane=answer.lane, key=answer.key, address=answer.address,
                            target=answer.target, body=answer.body)
