"""Twilio webhooks: inbound messages and message status callbacks."""

from __future__ import annotations

import logging
import socket
import struct
import time
from typing import Sequence

from flask import Blueprint, Response, abort, request

from webhook import Services, consent, forwarding
from webhook.domain import Skipped
from webhook.providers import twilio
from webhook.web import forward_client, services

bp = Blueprint("webhooks", __name__)
log = logging.getLogger("unsub.webhooks")
MAX_QUEUED_SECONDS = 10.0  # leaves time to answer inside Twilio's 15 s
MAX_FIELDS = 200  # Twilio sends about 20; MMS adds two per media item (at most 10)


def mask(address: str) -> str:
    """Log-safe form of an address: +1***23, b***@example.com (``webhook.redact.mask_address``)."""
    from webhook.redact import mask_address

    return mask_address(address)


MAX_LOGGED_SKIPS = 20  # a batch of thousands of unreadable items must not flood the log


def log_skipped(logger: logging.Logger, provider: str, skipped: Sequence[Skipped]) -> None:
    """One line for each of the first MAX_LOGGED_SKIPS items a provider's batch could not
    use, then one line with how many more."""
    for item in skipped[:MAX_LOGGED_SKIPS]:
        logger.info("skipped %s of a %s webhook: %s", item.where, provider, item.why)
    if len(skipped) > MAX_LOGGED_SKIPS:
        logger.info("skipped %d more items of that %s webhook", len(skipped) - MAX_LOGGED_SKIPS, provider)


def _require_twilio_signature(svc: Services) -> twilio.TwilioForm:
    """The request's form, or 403 unless it carries a valid Twilio signature.

    Checked before anything else is read from the request. The body is read once
    (MAX_CONTENT_LENGTH applies: 413 above it); a body that is not a form has no valid
    signature, so it gets 403 too.
    """
    try:
        form = twilio.parse_form(request.get_data(cache=False), MAX_FIELDS)
    except ValueError:  # more than MAX_FIELDS fields
        abort(403, description="invalid or missing X-Twilio-Signature")
    environ = request.environ
    base = svc.settings.public_base_url or f"{environ['wsgi.url_scheme']}://{request.host}{request.script_root}"
    url = twilio.signed_url(base, request.path, environ.get("QUERY_STRING", ""))
    ok = svc.signatures.is_valid(
        url,
        form,
        request.headers.get(twilio.SIGNATURE_HEADER),
        request.headers.get(twilio.SIGNATURE_SETTINGS_HEADER),
    )
    if not ok:
        log.warning("rejected request with a missing or invalid Twilio signature for %s", url)
        abort(403, description="invalid or missing X-Twilio-Signature")
    return form


def queued_seconds(header: str | None, now: float) -> float | None:
    """How long a request waited before reaching the app, from a router's X-Request-Start
    (Heroku: milliseconds since the epoch; nginx: "t=<seconds.millis>"), or None."""
    if not header:
        return None
    value = header.strip().removeprefix("t=")
    try:
        started = float(value)
    except ValueError:
        return None
    for scale in (1.0, 1e3, 1e6):  # seconds, milliseconds, microseconds
        if abs(now - started / scale) < 86_400:
            return max(0.0, now - started / scale)
    return None


# Linux struct tcp_info: tcpi_last_data_recv (u32, milliseconds) is at byte 52.
TCP_INFO = getattr(socket, "TCP_INFO", None)
LAST_DATA_RECV = struct.Struct("=I")
LAST_DATA_RECV_OFFSET = 52


def kernel_queued_seconds(sock: object) -> float | None:
    """How long ago the kernel received the request's last bytes, or None where unknown.

    With gunicorn's sync workers a burst waits in the listen backlog, where no header
    records it; Linux still knows when the data arrived (TCP_INFO ``tcpi_last_data_recv``),
    read from the connection gunicorn hands over as ``gunicorn.socket``. One syscall.
    """
    if TCP_INFO is None or not isinstance(sock, socket.socket) or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, TCP_INFO, 104)
    except OSError:
        return None
    if len(info) < LAST_DATA_RECV_OFFSET + LAST_DATA_RECV.size:
        return None
    return LAST_DATA_RECV.unpack_from(info, LAST_DATA_RECV_OFFSET)[0] / 1000


def _shed_if_too_late() -> None:
    """503 for a request that already waited too long in front of the app: Twilio gives
    up after 15 s, so an answer later than that is lost work; a 503 is retried when the URL
    carries Twilio's retry policy (`#rc=3&rp=all`, README).

    The wait is the router's X-Request-Start when there is one (it includes the rest),
    else what the kernel says about the connection (a burst queued in the backlog)."""
    waited = queued_seconds(request.headers.get("X-Request-Start"), time.time())
    if waited is None:
        waited = kernel_queued_seconds(request.environ.get("gunicorn.socket"))
    if waited is not None and waited > MAX_QUEUED_SECONDS:
        log.warning("shed a webhook that waited %.1f s before reaching the app", waited)
        response = Response("overloaded: retry later\n", status=503, mimetype="text/plain")
        response.headers["Retry-After"] = "5"
        abort(response)


@bp.post("/webhooks/twilio")
def inbound() -> Response:
    if forwarding.INTENT_HEADER in request.headers:
        # Only unsub's own forwards carry it: a forward URL that leads back here would loop.
        abort(Response("loop detected: this request was forwarded by unsub; nothing was recorded\n", status=508,
                       mimetype="text/plain"))
    _shed_if_too_late()
    svc = services()
    form = _require_twilio_signature(svc)
    try:
        message = twilio.parse_inbound(form)
    except twilio.MalformedRequest as error:
        abort(400, description=f"malformed Twilio webhook: {error}")
    outcome = consent.handle_inbound(message, svc.config, svc.store)
    if outcome.match is not None and log.isEnabledFor(logging.INFO):
        log.info(
            "inbound %s on %s from %s: %s (%s %r, %s)%s",
            message.message_id, outcome.channel, mask(message.address), outcome.match.intent,
            outcome.match.kind, outcome.match.keyword, outcome.match.language,
            "" if outcome.recorded is None or outcome.recorded.created else " [duplicate]",
        )
    channel = svc.config.channel(outcome.channel)
    if channel is not None and channel.forward is not None:
        answered = forward_client.forward(svc, channel, message, list(form.items(multi=True)), outcome)
        if answered is not None:
            return answered
    return Response(twilio.twiml(outcome.reply), mimetype="text/xml")


@bp.post("/webhooks/twilio/status")
def status() -> Response:
    _shed_if_too_late()
    svc = services()
    form = _require_twilio_signature(svc)
    try:
        report = twilio.parse_status(form)
    except twilio.MalformedRequest as error:
        abort(400, description=f"malformed Twilio status callback: {error}")
    campaign = request.args.get("campaign")
    if campaign is not None:
        # StatusCallback=https://.../webhooks/twilio/status?campaign=spring-sale: a campaign message.
        try:
            consent.check_campaign_id(campaign)
        except ValueError as error:
            abort(400, description=f"StatusCallback URL: {error}")
    outcome = consent.handle_status(report, svc.config, svc.store, svc.address_hash, campaign)
    if outcome.recorded is not None:
        log.info("carrier opt-out of %s from status callback %s (%s)", mask(report.recipient), report.message_id,
                 "recorded" if outcome.recorded.created else "duplicate")
    return Response(status=204)
