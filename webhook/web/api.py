"""The admin API under /api/v1 (bearer ADMIN_TOKEN). Its fixed part is in docs/contract."""

from __future__ import annotations

import hmac
import io
import json
from functools import lru_cache
from importlib import resources
from typing import Literal

from flask import Blueprint, Response, abort, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError
from ruamel.yaml import YAML

from webhook import bounded_json, consent
from webhook.addresses import normalise_email
from webhook.domain import ConsentEvent, iso
from webhook.email_tokens import list_unsubscribe_headers, make_token, unsubscribe_url
from webhook.keywords import KeywordConfigError, parse_document
from webhook.web import services
from webhook.web.errors import error_response

bp = Blueprint("api", __name__, url_prefix="/api/v1")
MAX_AUDIENCE = 10_000
HISTORY_LIMIT = 100
MAX_INT_ARG = 10**12


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


def json_payload() -> object | None:
    """The request's JSON body (None when it is not JSON), nested at most MAX_DEPTH deep (400)."""
    if not request.is_json:
        return None
    try:
        return bounded_json.loads(request.get_data(as_text=True))
    except bounded_json.TooDeep as error:
        abort(400, description=str(error))
    except ValueError:
        return None


def json_body(model: type[BaseModel]) -> BaseModel:
    data = json_payload()
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


def _subscription_json(found: consent.ContactStatus) -> dict:
    subscription = found.subscription
    return {
        "channel": found.channel,
        "address": found.address,
        "status": subscription.status if subscription else "unknown",
        "updated_at": iso(subscription.updated_at) if subscription and subscription.updated_at else None,
        "history": [_event_json(e) for e in found.history[-HISTORY_LIMIT:]],
        # What the contact must not get on the channel now, under its revocation_scope.
        "gated_categories": list(found.gated_categories),
    }


def _resolve_errors(error: Exception) -> Response:
    if isinstance(error, consent.UnknownChannel):
        return error_response(404, "unknown_channel", str(error))
    return error_response(400, "invalid_address", str(error))


@bp.get("/subscriptions/<channel>/<path:address>")
def get_subscription(channel: str, address: str) -> Response:
    svc = services()
    try:
        found = consent.lookup(svc.config, svc.store, channel, address, svc.address_hash, svc.settings.default_region)
    except (consent.UnknownChannel, consent.InvalidAddress) as error:
        return _resolve_errors(error)
    return jsonify(_subscription_json(found))


@bp.put("/subscriptions/<channel>/<path:address>")
def put_subscription(channel: str, address: str) -> Response:
    svc = services()
    body = json_body(SetStatusBody)
    assert isinstance(body, SetStatusBody)
    try:
        found = consent.set_status(
            svc.config, svc.store, channel, address, body.status, body.reason, svc.settings.default_region
        )
    except (consent.UnknownChannel, consent.InvalidAddress) as error:
        return _resolve_errors(error)
    return jsonify(_subscription_json(found))


@bp.post("/audience")
def post_audience() -> Response:
    svc = services()
    body = json_body(AudienceBody)
    assert isinstance(body, AudienceBody)
    try:
        result = consent.audience(
            svc.config, svc.store, body.channel, body.category, body.addresses, svc.address_hash, svc.settings.default_region
        )
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
    body = json_body(EmailLinksBody)
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


# -- keyword configuration -------------------------------------------------------


def _version_json(version, *, full: bool = False) -> dict:
    body = {
        "version": version.number,
        "source": version.source,
        "author": version.author,
        "note": version.note,
        "content_hash": version.content_hash,
        "created_at": iso(version.created_at),
    }
    if full:
        body["document"] = json.loads(version.document)
        body["diff"] = version.diff
    return body


def _invalid_config(error: KeywordConfigError) -> Response:
    return error_response(422, "invalid keyword configuration",
                          f"{len(error.problems)} problem(s); the running version stays in force",
                          errors=[p.as_dict() for p in error.problems])


def _wants_yaml() -> bool:
    return request.accept_mimetypes.best_match(["application/json", "application/yaml"]) == "application/yaml"


@bp.get("/keywords")
def get_keywords() -> Response:
    """The running configuration: JSON, or the YAML file (Accept: application/yaml)."""
    version = services().keywords.version
    if _wants_yaml():
        return Response(version.yaml, mimetype="application/yaml", headers={"X-Keywords-Version": str(version.number)})
    return jsonify(_version_json(version, full=True))


@bp.put("/keywords")
def put_keywords() -> Response:
    """Save a new version (JSON document, or YAML text with Content-Type: application/yaml)."""
    svc = services()
    author = request.args.get("author") or "api"
    note = request.args.get("note")
    try:
        if request.mimetype in ("application/yaml", "application/x-yaml", "text/yaml"):
            text = request.get_data(as_text=True)
            version, created = svc.keywords.save(None, yaml_text=text, source="api", author=author, note=note)
        else:
            document = json_payload()
            if document is None:
                abort(400, description="send the configuration as JSON, or as YAML with Content-Type: application/yaml")
            version, created = svc.keywords.save(document, source="api", author=author, note=note)
    except KeywordConfigError as error:
        return _invalid_config(error)
    body = _version_json(version, full=True)
    body["created"] = created
    return jsonify(body)


class TryBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    text: StrictStr = Field(max_length=1600)
    channel: StrictStr = "sms"
    document: dict | None = None


@bp.post("/keywords/try")
def try_keywords() -> Response:
    """Dry run: what a message would do on a channel, under the running or a proposed configuration."""
    svc = services()
    body = json_body(TryBody)
    assert isinstance(body, TryBody)
    try:
        config = parse_document(body.document) if body.document is not None else svc.config
    except KeywordConfigError as error:
        return _invalid_config(error)
    channel = config.channel(body.channel)
    if channel is None:
        return error_response(404, "unknown_channel", f"unknown channel {body.channel!r}")
    return jsonify(consent.dry_run(channel, body.text, config.version).as_dict())


def int_arg(name: str, default: int) -> int:
    """An integer query parameter; 400 when it is given but is not one."""
    values = request.args.getlist(name)
    if not values:
        return default
    try:
        if len(values) > 1:
            raise ValueError
        value = int(values[0])
    except ValueError:
        abort(400, description=f"{name} must be one integer")
    if abs(value) > MAX_INT_ARG:  # beyond any page, and beyond what a database integer holds
        abort(400, description=f"{name} must be between {-MAX_INT_ARG} and {MAX_INT_ARG}")
    return value


@bp.get("/keywords/versions")
def list_keyword_versions() -> Response:
    limit = max(1, min(int_arg("limit", 50), 200))
    offset = max(0, int_arg("offset", 0))
    versions = services().store.keyword_versions(limit, offset)
    return jsonify({"versions": [_version_json(v) for v in versions], "current": services().keywords.version.number})


@bp.get("/keywords/versions/<int:number>")
def get_keyword_version(number: int) -> Response:
    version = services().store.keyword_version(number)
    if version is None:
        return error_response(404, "not_found", f"no keyword version {number}")
    return jsonify(_version_json(version, full=True))


@bp.post("/keywords/versions/<int:number>/rollback")
def rollback_keywords(number: int) -> Response:
    """A new version with the content of version ``number``."""
    try:
        version = services().keywords.rollback(number, author=request.args.get("author") or "api")
    except KeywordConfigError as error:  # an old version today's rules refuse, or one that drops a channel in use
        return _invalid_config(error)
    if version is None:
        return error_response(404, "not_found", f"no keyword version {number}")
    return jsonify(_version_json(version, full=True))


@bp.get("/openapi.json")
def openapi() -> Response:
    return jsonify(openapi_document())
