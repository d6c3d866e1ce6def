"""The admin API under /api/v1 (bearer ADMIN_TOKEN). Its fixed part is in docs/contract."""

from __future__ import annotations

import hmac
import io
from functools import lru_cache
from importlib import resources
from typing import Literal

from flask import Blueprint, Response, abort, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from ruamel.yaml import YAML

from webhook import consent
from webhook.addresses import normalise_email
from webhook.email_tokens import list_unsubscribe_headers, make_token, unsubscribe_url
from webhook.domain import ConsentEvent, iso
from webhook.web import services
from webhook.web.errors import error_response

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_AUDIENCE = 10_000
HISTORY_LIMIT = 100


class SetStatusBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    status: Literal["subscribed", "unsubscribed"]
    reason: StrictStr = Field(min_length=1, max_length=500)


class AudienceBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    channel: StrictStr
    category: Literal["campaign", "inbox", "flow"]
    addresses: list[StrictStr] = Field(max_length=MAX_AUDIENCE)


@lru_cache(maxsize=1)
def openapi_document() -> dict:
    text = resources.files("webhook").joinpath("openapi.yaml").read_text(encoding="utf-8")
    return YAML(typ="safe", pure=True).load(io.StringIO(text))


@bp.before_request
def require_admin_token() -> Response | None:
    if request.endpoint == "api.openapi":
        return None
    token = services().settings.admin_token
    if not token:
        return error_response(401, "unauthorized", "the admin API is disabled: set ADMIN_TOKEN")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        response = error_response(401, "unauthorized", "missing or wrong bearer token")
        response.headers["WWW-Authenticate"] = 'Bearer realm="unsub"'
        return response
    return None


def _json_body(model: type[BaseModel]) -> BaseModel:
    data = request.get_json(silent=True)
    if data is None:
        abort(400, description="the body must be a JSON object (Content-Type: application/json)")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = [
            {"path": ".".join(str(p) for p in item["loc"]) or "(body)", "message": item["msg"]} for item in error.errors()
        ]
        abort(error_response(422, "invalid_request", "the body is not valid", errors=problems))


def _event_json(event: ConsentEvent) -> dict:
    return {
        "action": event.action,
        "source": event.source,
        "keyword": event.keyword,
        "language": event.language,
        "match_kind": event.match_kind,
        "message_id": event.message_id,
        "text": event.raw_text,
        "reason": event.reason,
        "config_version": event.config_version,
        "at": iso(event.occurred_at),
    }


def _subscription_json(channel: str, address: str, subscription, history: list[ConsentEvent]) -> dict:
    return {
        "channel": channel,
        "address": address,
        "status": subscription.status if subscription else "unknown",
        "updated_at": iso(subscription.updated_at) if subscription and subscription.updated_at else None,
        "history": [_event_json(e) for e in history],
    }


def _resolve_errors(error: Exception) -> Response:
    if isinstance(error, consent.UnknownChannel):
        return error_response(404, "unknown_channel", str(error))
    return error_response(400, "invalid_address", str(error))


@bp.get("/subscriptions/<channel>/<path:address>")
def get_subscription(channel: str, address: str) -> Response:
    svc = services()
    try:
        name, normal, subscription, history = consent.lookup(
            svc.config, svc.store, channel, address, svc.settings.default_region
        )
    except (consent.UnknownChannel, consent.InvalidAddress) as error:
        return _resolve_errors(error)
    return jsonify(_subscription_json(name, normal, subscription, history[-HISTORY_LIMIT:]))


@bp.put("/subscriptions/<channel>/<path:address>")
def put_subscription(channel: str, address: str) -> Response:
    svc = services()
    body = _json_body(SetStatusBody)
    assert isinstance(body, SetStatusBody)
    try:
        name, normal, subscription, history = consent.set_status(
            svc.config, svc.store, channel, address, body.status, body.reason, svc.settings.default_region
        )
    except (consent.UnknownChannel, consent.InvalidAddress) as error:
        return _resolve_errors(error)
    return jsonify(_subscription_json(name, normal, subscription, history[-HISTORY_LIMIT:]))


@bp.post("/audience")
def post_audience() -> Response:
    svc = services()
    body = _json_body(AudienceBody)
    assert isinstance(body, AudienceBody)
    try:
        result = consent.audience(svc.config, svc.store, body.channel, body.category, body.addresses, svc.settings.default_region)
    except consent.UnknownChannel as error:
        return error_response(404, "unknown_channel", str(error))
    return jsonify({"sendable": result.sendable, "suppressed": result.suppressed, "invalid": result.invalid})


class EmailLinksBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    addresses: list[StrictStr] = Field(min_length=1, max_length=MAX_AUDIENCE)
    channel: StrictStr = "email"
    mailto: StrictStr | None = Field(default=None, max_length=254)


@bp.post("/email/links")
def post_email_links() -> Response:
    """Unsubscribe links and List-Unsubscribe headers for campaign e-mails."""
    svc = services()
    body = _json_body(EmailLinksBody)
    assert isinstance(body, EmailLinksBody)
    channel = svc.config.channel(body.channel)
    if channel is None or channel.type != "email":
        return error_response(404, "unknown_channel", f"{body.channel!r} is not an e-mail channel")
    base = svc.settings.public_base_url or request.host_url.rstrip("/")
    links, invalid = [], []
    for raw in body.addresses:
        address = normalise_email(raw)
        if address is None:
            invalid.append(raw)
            continue
        url = unsubscribe_url(base, make_token(svc.settings.secret_key or "", channel.name, address))
        links.append({"address": address, "url": url, "headers": list_unsubscribe_headers(url, body.mailto)})
    return jsonify({"links": links, "invalid": invalid})


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())
