"""What every e-mail provider's event route does once its request is verified and parsed:
record each complaint and unsubscribe through the one core use case, log what was skipped,
and answer 200 (the provider retries anything else, so it comes after everything is recorded).
Glue only; the routes are ``sendgrid_events`` and ``mailgun_events``."""

from __future__ import annotations

import logging

from flask import Response

from webhook import consent
from webhook.domain import PreferenceBatch
from webhook.web import services
from webhook.web.webhooks import log_skipped, mask

log = logging.getLogger("unsub.email_events")


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
    log_skipped(log, provider, batch.skipped)
    repeated = len(batch.items) - added
    text = f"ok: {added} recorded, {repeated} already recorded, {batch.ignored} ignored, {len(batch.skipped)} skipped\n"
    return Response(text, mimetype="text/plain")
