"""The consent webhooks' endpoints and deliveries in the admin API (bearer ADMIN_TOKEN).

Names from contract.md ("Consent webhooks"): ``POST/GET/DELETE /api/v1/webhook-endpoints``,
``GET /api/v1/webhook-endpoints/{id}/deliveries`` and a replay of a failed delivery.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from webhook import outbox
from webhook.domain import Delivery, Endpoint, iso
from webhook.web import services
from webhook.web.api import int_arg, json_body, require_admin_token
from webhook.web.errors import error_response

bp = Blueprint("api_webhooks", __name__, url_prefix="/api/v1/webhook-endpoints")
bp.before_request(require_admin_token)


class NewEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    url: StrictStr = Field(min_length=1, max_length=2000)
    description: StrictStr = Field(default="", max_length=200)


class EndpointChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    enabled: StrictBool


def endpoint_json(endpoint: Endpoint, *, secret: bool = False) -> dict:
    body = {
        "id": endpoint.id, "url": endpoint.url, "description": endpoint.description, "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason, "created_at": iso(endpoint.created_at),
    }
    if secret:
        body["secret"] = endpoint.secret  # in the answer that creates it, never again
    return body


def delivery_json(delivery: Delivery) -> dict:
    try:
        payload = json.loads(delivery.body) if delivery.body else None
    except ValueError:
        payload = None
    return {
        "id": delivery.id, "webhook_id": delivery.webhook_id, "type": delivery.event_type, "state": delivery.state,
        "attempts": delivery.attempts,
        "next_attempt_at": iso(delivery.next_attempt_at) if delivery.next_attempt_at else None,
        "created_at": iso(delivery.created_at),
        "finished_at": iso(delivery.finished_at) if delivery.finished_at else None,
        "last_status": delivery.last_status, "last_error": delivery.last_error, "payload": payload,
        "log": [{"at": iso(a.attempted_at), "status": a.status_code, "duration_ms": a.duration_ms,
                 "answer": a.excerpt, "error": a.error} for a in delivery.log],
    }


def create_endpoint(url: str, description: str) -> Endpoint:
    """Check the URL (https only unless WEBHOOK_ALLOW_HTTP=1) and add an enabled endpoint with a
    new secret; ValueError says what is wrong with the URL. Nothing is sent to it."""
    svc = services()
    outbox.check_endpoint_url(url, svc.settings.allow_http_webhooks)
    return svc.store.create_endpoint(url, description.strip(), outbox.new_secret())


@bp.post("")
def post_endpoint() -> Response | tuple[Response, int]:
    body = json_body(NewEndpoint)
    assert isinstance(body, NewEndpoint)
    try:
        endpoint = create_endpoint(body.url, body.description)
    except ValueError as error:
        return error_response(422, "invalid_url", str(error))
    response = jsonify(endpoint_json(endpoint, secret=True))
    response.headers["Cache-Control"] = "no-store"
    return response, 201


@bp.get("")
def list_endpoints() -> Response:
    return jsonify({"endpoints": [endpoint_json(e) for e in services().store.endpoints()]})


def _endpoint_or_404(endpoint_id: int) -> Endpoint | Response:
    endpoint = services().store.endpoint(endpoint_id)
    return endpoint if endpoint is not None else error_response(404, "not_found", f"no webhook endpoint {endpoint_id}")


@bp.get("/<int:endpoint_id>")
def get_endpoint(endpoint_id: int) -> Response:
    found = _endpoint_or_404(endpoint_id)
    return found if isinstance(found, Response) else jsonify(endpoint_json(found))


@bp.patch("/<int:endpoint_id>")
def patch_endpoint(endpoint_id: int) -> Response:
    body = json_body(EndpointChange)
    assert isinstance(body, EndpointChange)
    changed = services().store.set_endpoint_enabled(endpoint_id, body.enabled, "disabled by an admin")
    if changed is None:
        return error_response(404, "not_found", f"no webhook endpoint {endpoint_id}")
    return jsonify(endpoint_json(changed))


@bp.delete("/<int:endpoint_id>")
def delete_endpoint(endpoint_id: int) -> Response:
    if not services().store.delete_endpoint(endpoint_id):
        return error_response(404, "not_found", f"no webhook endpoint {endpoint_id}")
    return Response(status=204)


@bp.post("/<int:endpoint_id>/ping")
def ping_endpoint(endpoint_id: int) -> Response | tuple[Response, int]:
    delivery_id = services().store.queue_ping(endpoint_id)
    if delivery_id is None:
        return error_response(404, "not_found", f"no webhook endpoint {endpoint_id}")
    return jsonify({"delivery_id": delivery_id, "state": "pending"}), 202


@bp.get("/<int:endpoint_id>/deliveries")
def list_deliveries(endpoint_id: int) -> Response:
    found = _endpoint_or_404(endpoint_id)
    if isinstance(found, Response):
        return found
    limit = max(1, min(int_arg("limit", 50), 500))
    offset = max(0, int_arg("offset", 0))
    deliveries = services().store.deliveries(endpoint_id, limit, offset)
    return jsonify({"endpoint_id": endpoint_id, "deliveries": [delivery_json(d) for d in deliveries]})


@bp.post("/<int:endpoint_id>/deliveries/<int:delivery_id>/retry")
def retry_delivery(endpoint_id: int, delivery_id: int) -> Response | tuple[Response, int]:
    store = services().store
    delivery = store.delivery(delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint_id:
        return error_response(404, "not_found", f"no delivery {delivery_id} to webhook endpoint {endpoint_id}")
    if not store.retry_delivery(delivery_id):
        if delivery.state == "failed" and delivery.body is not None:
            return error_response(409, "superseded", f"delivery {delivery_id} is not the latest change of its contact "
                                  "queued to this endpoint: sent now, it would undo the later one at the receiver; "
                                  "retry the latest (it carries the contact's current status)")
        if delivery.state == "failed":
            return error_response(409, "blanked", f"delivery {delivery_id} named an erased contact and was blanked")
        return error_response(409, "not_failed", f"delivery {delivery_id} is {delivery.state}: only a failed one is retried")
    return jsonify({"delivery_id": delivery_id, "state": "pending"}), 202
