"""Admin pages for the consent webhooks (issue 12): the endpoints (add, enable or disable,
delete after a confirm step, send a test event) and each endpoint's recent deliveries (state,
every attempt's answer, the payload, and a retry for failed ones).

Same blueprint, session check and CSRF protection as the other admin pages. A new
endpoint's secret is rendered once, in the answer to the form that adds it: never flashed or
put in the session cookie (signed, not encrypted: readable by whoever holds it), never shown
again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import abort, flash, redirect, render_template, request, url_for

from webhook.domain import Delivery, Endpoint, utcnow
from webhook.web import services
from webhook.web.admin import bp, page_arg
from webhook.web.api_webhooks import create_endpoint

DELIVERY_PAGE = 20
DESCRIPTION_MAX = 200  # as the API's (api_webhooks.NewEndpoint)
STALE_BACKLOG_SECONDS = 60  # a due delivery waiting longer than this suggests no worker runs


@dataclass(frozen=True)
class DeliveryView:
    """One delivery as the deliveries page shows it."""

    delivery: Delivery
    state: str  # in words
    payload: str | None  # pretty JSON (escaped by the template)
    payload_note: str  # why there is none
    can_retry: bool


def _endpoint_or_404(endpoint_id: int) -> Endpoint:
    found = services().store.endpoint(endpoint_id)
    if found is None:
        abort(404, description=f"There is no webhook endpoint {endpoint_id} (it may have been deleted).")
    return found


def _name(endpoint: Endpoint) -> str:
    """An endpoint in a flash message: its host, not its URL, whose query may carry a token
    (flashes travel in the session cookie, which is signed but readable)."""
    return f"endpoint {endpoint.id} ({urlsplit(endpoint.url).hostname or 'no host'})"


def _disabled_words(endpoint: Endpoint) -> str:
    """Why an endpoint is disabled, as the list shows it after "Disabled:"."""
    reason = (endpoint.disabled_reason or "").strip()
    if reason.lower().startswith("disabled "):
        reason = reason[len("disabled "):]
    return reason or "no reason recorded"


def _list_page(error: str | None = None, form: dict[str, str] | None = None, status: int = 200):
    svc = services()
    backlog = svc.store.outbox_backlog()
    return render_template(
        "admin/webhooks.html", endpoints=svc.store.endpoints(), backlog=backlog,
        stale=backlog.oldest_due_seconds > STALE_BACKLOG_SECONDS, allow_http=svc.settings.allow_http_webhooks,
        error=error, form=form or {"url": "", "description": ""}, disabled_words=_disabled_words,
        description_max=DESCRIPTION_MAX, oldest_due=_duration(int(backlog.oldest_due_seconds)),
        retried_for=_duration(int(sum(svc.settings.retry_schedule, timedelta()).total_seconds())),
    ), status


@bp.get("/webhooks")
def webhooks():
    return _list_page()


@bp.post("/webhooks")
def add_webhook():
    url = request.form.get("url", "").strip()
    description = request.form.get("description", "").strip()
    form = {"url": url, "description": description}
    if not url:
        return _list_page("Not added: give the URL the deliveries go to.", form, 422)
    if len(description) > DESCRIPTION_MAX:
        return _list_page(f"Not added: the description must be at most {DESCRIPTION_MAX} characters.", form, 422)
    try:
        endpoint = create_endpoint(url, description)
    except ValueError as error:
        return _list_page(f"Not added: {error}.", form, 422)
    # The secret is in this answer and nowhere else (no flash, no session); the admin
    # blueprint's after_request also marks every admin answer no-store.
    return render_template("admin/webhook_created.html", endpoint=endpoint), 201, {"Cache-Control": "no-store"}


@bp.post("/webhooks/<int:endpoint_id>/enabled")
def set_webhook_enabled(endpoint_id: int):
    choice = request.form.get("enabled", "")
    if choice not in ("1", "0"):
        abort(400, description="enabled must be 1 (enable) or 0 (disable)")
    enabled = choice == "1"
    reason = f"by an admin on {utcnow():%Y-%m-%d %H:%M} UTC"
    changed = services().store.set_endpoint_enabled(endpoint_id, enabled, reason)
    if changed is None:
        abort(404, description=f"There is no webhook endpoint {endpoint_id} (it may have been deleted).")
    if enabled:
        flash(f"Enabled {_name(changed)}: changes from now on are sent to it, and deliveries that were waiting go out.")
    else:
        flash(f"Disabled {_name(changed)}: nothing is sent to it until it is enabled again. Changes recorded "
              "meanwhile are not queued for it; deliveries already waiting stay, and go out once it is enabled.")
    return redirect(url_for("admin.webhooks"))


@bp.get("/webhooks/<int:endpoint_id>/delete")
def confirm_delete_webhook(endpoint_id: int):
    return render_template("admin/webhook_delete.html", endpoint=_endpoint_or_404(endpoint_id))


@bp.post("/webhooks/<int:endpoint_id>/delete")
def delete_webhook(endpoint_id: int):
    endpoint = _endpoint_or_404(endpoint_id)
    if not services().store.delete_endpoint(endpoint_id):
        abort(404, description=f"There is no webhook endpoint {endpoint_id} (it may have been deleted).")
    flash(f"Deleted {_name(endpoint)} and its deliveries: nothing more is sent to it.")
    return redirect(url_for("admin.webhooks"))


@bp.post("/webhooks/<int:endpoint_id>/ping")
def ping_webhook(endpoint_id: int):
    endpoint = _endpoint_or_404(endpoint_id)
    delivery_id = services().store.queue_ping(endpoint_id)
    if delivery_id is None:
        abort(404, description=f"There is no webhook endpoint {endpoint_id} (it may have been deleted).")
    message = f"Test event queued as delivery {delivery_id}: the worker sends it within seconds; reload to see its answer."
    if not endpoint.enabled:
        message += " This endpoint is disabled: enable it for the test event to go out."
    flash(message)
    return redirect(url_for("admin.webhook_deliveries", endpoint_id=endpoint_id))


def _state_words(delivery: Delivery) -> str:
    if delivery.state == "pending":
        return "waiting for its first attempt" if delivery.attempts == 0 else "will be tried again"
    return delivery.state  # delivered, failed


def _view(delivery: Delivery) -> DeliveryView:
    payload, note = None, ""
    if delivery.body:
        try:
            payload = json.dumps(json.loads(delivery.body), indent=2, ensure_ascii=False)
        except ValueError:
            payload = delivery.body
    elif delivery.event_type == "contact.erased":
        note = "Blanked once it was sent or had failed: it named an erased contact."
    else:
        note = "Written at the first attempt, from the change it announces."
    return DeliveryView(delivery, _state_words(delivery), payload, note,
                        can_retry=delivery.state == "failed" and delivery.body is not None)


@bp.get("/webhooks/<int:endpoint_id>/deliveries")
def webhook_deliveries(endpoint_id: int):
    endpoint = _endpoint_or_404(endpoint_id)
    page = page_arg()
    found = services().store.deliveries(endpoint_id, DELIVERY_PAGE + 1, (page - 1) * DELIVERY_PAGE)
    return render_template(
        "admin/webhook_deliveries.html", endpoint=endpoint, deliveries=[_view(d) for d in found[:DELIVERY_PAGE]],
        page=page, page_size=DELIVERY_PAGE, more=len(found) > DELIVERY_PAGE, disabled_words=_disabled_words,
        now=utcnow(),
    )


@bp.post("/webhooks/<int:endpoint_id>/deliveries/<int:delivery_id>/retry")
def retry_webhook_delivery(endpoint_id: int, delivery_id: int):
    endpoint = _endpoint_or_404(endpoint_id)
    store = services().store
    delivery = store.delivery(delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint_id:
        abort(404, description=f"There is no delivery {delivery_id} to webhook endpoint {endpoint_id}.")
    if store.retry_delivery(delivery_id):
        message = f"Delivery {delivery_id} goes out again now, its attempts counted afresh."
        if not endpoint.enabled:
            message += " This endpoint is disabled: enable it for the delivery to go out."
        flash(message)
    elif delivery.state == "failed" and delivery.body is not None:
        flash(f"Delivery {delivery_id} was not sent again: a later change of the same contact was queued to this "
              "endpoint since, and sent now this one would undo it at the receiver. Retry the latest one instead.",
              "error")
    elif delivery.state == "failed":
        flash(f"Delivery {delivery_id} cannot be sent again: its payload named an erased contact and was blanked.",
              "error")
    else:
        flash(f"Delivery {delivery_id} was not sent again: it is {_state_words(delivery)}, and only a failed "
              "delivery is retried.", "error")
    return redirect(url_for("admin.webhook_deliveries", endpoint_id=endpoint_id) + f"#delivery-{delivery_id}")


def _duration(seconds: int) -> str:
    """A length of time in words an admin reads at a glance (45 s, 5 min, 2 h 30 min, 3 d 3 h)."""
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def _since(moment: datetime, now: datetime) -> str:
    """How long ago (or from now) a moment is."""
    seconds = int((now - moment).total_seconds())
    return f"in {_duration(-seconds)}" if seconds < 0 else f"{_duration(seconds)} ago"


bp.add_app_template_filter(_since, "since")
