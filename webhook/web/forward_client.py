"""Forwarding a Twilio message to the business's own webhook, from the web process.

The one place the web process waits on a remote endpoint (bounded by the channel's
``forward.timeout_seconds``, at most 12 s, inside Twilio's 15 s): for a message unsub does
not answer itself, Twilio gets the endpoint's TwiML as it returned it. Anything else goes
through the outbox: a forward that fails or is late is delivered later by the worker, with
retries, re-signed at each attempt (its answer cannot reach Twilio any more).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time

import urllib3
from flask import Response

from webhook import Services, forwarding, metrics
from webhook.consent import Outcome
from webhook.domain import ForwardRecord, InboundMessage
from webhook.keywords import Channel
from webhook.providers.twilio import EMPTY_TWIML

log = logging.getLogger("unsub.forward")
POLL_SECONDS = 0.2
_http: urllib3.PoolManager | None = None
_http_pid: int | None = None


def _client() -> urllib3.PoolManager:
    """One connection pool per process (a forked worker builds its own)."""
    global _http, _http_pid
    if _http is None or _http_pid != os.getpid():
        _http = urllib3.PoolManager(num_pools=32, maxsize=4, retries=False)
        _http_pid = os.getpid()
    return _http


def forward(svc: Services, channel: Channel, message: InboundMessage, form: list[tuple[str, str]],
            outcome: Outcome) -> Response | None:
    """Forward the message as the channel says; the endpoint's answer for Twilio, or None
    (Twilio gets unsub's own answer)."""
    if channel.forward is None or not forwarding.should_forward(channel, outcome.intent):
        return None
    if not svc.settings.twilio_auth_token:
        return None  # cannot re-sign: the route refuses every request without the token anyway
    if forwarding.answers_itself(outcome.intent):
        # unsub's one confirmation is Twilio's answer whatever the endpoint says: no wait.
        queue(svc, channel, message, form, outcome.intent)
        return None
    key = message.dedupe_key
    earlier = svc.store.begin_forward(key, channel.name, message.address)
    if earlier is None:
        return _call(svc, channel, message, form, outcome.intent)
    # Twilio retried the message: the same answer as the first time, without a second call.
    deadline = time.monotonic() + channel.forward.timeout_seconds
    while earlier is not None and earlier.state == "calling" and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        earlier = svc.store.forward_record(key)
    if earlier is not None and earlier.state == "answered":
        return _answer(earlier)
    if earlier is not None and earlier.state == "calling":
        # The first call never finished (its process died?): deliver it later all the same.
        queue(svc, channel, message, form, outcome.intent)
    return None


def _call(svc: Services, channel: Channel, message: InboundMessage, form: list[tuple[str, str]],
          intent: str) -> Response | None:
    assert channel.forward is not None and svc.settings.twilio_auth_token
    request = forwarding.build(svc.settings.twilio_auth_token, channel.forward.url, form, intent, channel.name)
    started = time.perf_counter()
    status, content_type, answer, error = None, None, b"", None
    try:
        response = _client().request("POST", request.url, body=request.body, headers=request.headers, redirect=False,
                                     timeout=urllib3.Timeout(total=channel.forward.timeout_seconds), preload_content=False)
        try:
            answer = response.read(forwarding.MAX_ANSWER_BYTES + 1) or b""
        finally:
            response.release_conn()
        status, content_type = response.status, response.headers.get("Content-Type")
    except urllib3.exceptions.HTTPError as failure:
        error = " ".join(str(failure).split())[:200]
    elapsed = time.perf_counter() - started
    if status is not None and 200 <= status < 300 and len(answer) > forwarding.MAX_ANSWER_BYTES:
        # The endpoint has the message (a 2xx): sending it again would make it act twice.
        # Its answer is too big to pass on, so Twilio gets an empty one.
        log.warning("forward of %s on %s: %s with an answer over %d bytes, not passed to Twilio",
                    message.message_id, channel.name, status, forwarding.MAX_ANSWER_BYTES)
        content_type, answer = "text/xml", EMPTY_TWIML.encode("utf-8")
    if status is not None and 200 <= status < 300:
        record = ForwardRecord("answered", status, content_type, answer)
        svc.store.finish_forward(message.dedupe_key, record)
        metrics.count_forward("answered")
        log.info("forwarded %s on %s: %s in %.0f ms", message.message_id, channel.name, status, elapsed * 1000)
        return _answer(record)
    svc.store.finish_forward(message.dedupe_key, ForwardRecord("failed", status, content_type, None))
    metrics.count_forward("failed" if error is None else "unreachable")
    log.warning("forward of %s on %s failed (%s in %.0f ms): queued for the worker", message.message_id, channel.name,
                error or f"HTTP {status}", elapsed * 1000)
    queue(svc, channel, message, form, intent)
    return None


def _answer(record: ForwardRecord) -> Response:
    """The endpoint's answer as it returned it (its TwiML), with a 200 for Twilio."""
    return Response(record.answer or b"", status=200, content_type=record.content_type or "text/xml")


def queue(svc: Services, channel: Channel, message: InboundMessage, form: list[tuple[str, str]], intent: str) -> None:
    """The worker forwards it (once per message, however often Twilio delivers it)."""
    assert channel.forward is not None
    key = "fwd_" + hashlib.sha256(message.dedupe_key.encode("utf-8")).hexdigest()[:32]
    svc.store.queue_message(kind="forward", lane=f"forward:{channel.name}", key=key, address=message.address,
                            target=channel.forward.url, body=forwarding.outbox_body(form, intent, channel.name))
