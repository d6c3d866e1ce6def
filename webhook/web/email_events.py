"""What every e-mail provider's event route does once its request is verified and parsed:
record each complaint and unsubscribe through the one core use case, log what was skipped,
and answer 200 (the provider retries anything else, so it comes after everything is recorded).
Glue only; the routes are ``sendgrid_events`` and ``mailgun_events``."""

from __future__ import annotations

import logging
from typing import Sequence

from flask import Response

from webhook import consent
from webhook.domain import PreferenceBatch, Skipped
from webhook.web import services
from webhook.web.webhooks import mask

log = logging.getLogger("unsub.email_events")
MAX_LOGGED_SKIPS = 20  # a batch of thousands of unreadable events must not flood the log


def record_batch(provider: str, batch: PreferenceBatch) -> Response:
    """Record every change of a provider's batch, in order; 200 once all of it is recorded.

    A database that cannot take a change raises StoreUnavailable (503 by the error handler):
    the provider retries the whole batch, and what was recorded already records nothing twice."""
    svc = services()
    added = 0
    for change in batch.items:
        recorded = consent.handle_preference(change, svc.config, svc.store)
        added += recorded.created
        if change.source == "complaint" and recorded.created:
            # %r: the campaign is the sender's text as the provider relayed it (no line breaks in the log).
            log.info("%s: spam complaint from %s (campaign %r)", provider, mask(change.address), change.campaign)
    _log_skipped(provider, batch.skipped)
    repeated = len(batch.items) - added
    text = f"ok: {added} recorded, {repeated} already recorded, {batch.ignored} ignored, {len(batch.skipped)} skipped\n"
    return Response(text, mimetype="text/plain")


def _log_skipped(provider: str, skipped: Sequence[Skipped]) -> None:
    for item in skipped[:MAX_LOGGED_SKIPS]:
        log.info("skipped %s of a %s webhook: %s", item.where, provider, item.why)
    if len(skipped) > MAX_LOGGED_SKIPS:
        log.info("skipped %d more events of that %s webhook", len(skipped) - MAX_LOGGED_SKIPS, provider)
