"""The admin API's data routes: statistics, campaign sends, feedback, the review queue,
suppression export, and a contact's audit export and erasure. Same blueprint, same token."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from typing import Literal

from flask import Response, abort, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from webhook import consent
from webhook.analytics import build_report
from webhook.domain import MESSAGE_STAGES, REVIEW_STATUSES, Feedback, ReviewItem, iso, utcnow
from webhook.gating import gated_categories
from webhook.store import ErasureKeyMismatch
from webhook.web import services
from webhook.web.api import bp, int_arg, json_body
from webhook.web.errors import error_response

MAX_SENDS = 10_000
MAX_STATS_DAYS = 366
DEFAULT_STATS_DAYS = 30
# Times the service accepts from clients: far from datetime's limits, so arithmetic never overflows.
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9000, 1, 1, tzinfo=timezone.utc)


def parse_moment(name: str, value: str, *, end: bool = False) -> datetime:
    """A date (YYYY-MM-DD, the whole day: ``end`` means the day after) or ISO 8601 time, in UTC."""
    whole_day = len(value) == 10
    try:
        if whole_day:
            moment = datetime.combine(datetime.strptime(value, "%Y-%m-%d").date(), time(), timezone.utc)
        else:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        abort(400, description=f"{name} must be a date (2026-11-26) or an ISO 8601 time (2026-11-26T10:00:00Z)")
    moment = moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
    if not EARLIEST <= moment <= LATEST:
        abort(400, description=f"{name} must be between {EARLIEST.year} and {LATEST.year}")
    return moment + timedelta(days=1) if whole_day and end else moment


def period(since_arg: str | None, until_arg: str | None) -> tuple[datetime, datetime]:
    """[since, until) from query values; the last 30 days by default; at most a year."""
    until = parse_moment("until", until_arg, end=True) if until_arg else utcnow()
    since = parse_moment("since", since_arg) if since_arg else until - timedelta(days=DEFAULT_STATS_DAYS)
    if since >= until:
        abort(400, description="since must be before until")
    if until - since > timedelta(days=MAX_STATS_DAYS):
        abort(400, description=f"the period is longer than {MAX_STATS_DAYS} days; ask for a shorter one")
    return since, until


def stats_report(since: datetime, until: datetime, channel: str | None) -> dict:
    svc = services()
    window = timedelta(hours=svc.settings.attribution_window_hours)
    return build_report(svc.store.raw_stats(since, until, window, channel), since, until, window,
                        svc.store.channel_scopes(since, until), channel)


@bp.get("/stats")
def get_stats() -> Response:
    channel = request.args.get("channel") or None
    if channel is not None and services().config.channel(channel) is None:
        return error_response(404, "unknown_channel", f"unknown channel {channel!r}")
    since, until = period(request.args.get("since"), request.args.get("until"))
    return jsonify(stats_report(since, until, channel))


class SendBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    address: StrictStr = Field(max_length=320)
    message_id: StrictStr | None = Field(default=None, min_length=1, max_length=200)
    status: Literal[tuple(MESSAGE_STAGES)] = "delivered"  # type: ignore[valid-type]
    at: datetime | None = Field(default=None, strict=False)

    @field_validator("at")
    @classmethod
    def _sensible_time(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        if not EARLIEST.replace(year=1971) <= value <= LATEST.replace(year=8999):
            raise ValueError(f"must be between {EARLIEST.year + 1} and {LATEST.year - 1}")
        return value


class SendsBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    channel: StrictStr
    sends: list[SendBody] = Field(max_length=MAX_SENDS)


@bp.post("/campaigns/<campaign>/sends")
def post_campaign_sends(campaign: str) -> Response:
    """Sends made by another tool, so their opt-outs count against the campaign."""
    svc = services()
    body = json_body(SendsBody)
    assert isinstance(body, SendsBody)
    sends = [consent.Send(s.address, s.message_id, s.status, s.at) for s in body.sends]
    try:
        result = consent.record_sends(svc.config, svc.store, campaign, body.channel, sends, svc.settings.default_region)
    except consent.UnknownChannel as error:
        return error_response(404, "unknown_channel", str(error))
    except ValueError as error:
        return error_response(400, "invalid_campaign", str(error))
    return jsonify({"campaign": campaign, "channel": body.channel, "recorded": result.added,
                    "repeated": len(sends) - len(result.invalid) - result.added, "invalid": result.invalid})


def _feedback_json(item: Feedback) -> dict:
    return {"id": item.id, "channel": item.channel, "address": item.address, "kind": item.kind, "text": item.text,
            "message_id": item.message_id, "received_at": iso(item.received_at)}


@bp.get("/feedback")
def list_feedback() -> Response:
    limit = max(1, min(int_arg("limit", 50), 500))
    offset = max(0, int_arg("offset", 0))
    items, total = services().store.feedback_items(limit, offset)
    return jsonify({"feedback": [_feedback_json(i) for i in items], "total": total})


def _review_json(item: ReviewItem) -> dict:
    return {"id": item.id, "channel": item.channel, "address": item.address, "text": item.text,
            "message_id": item.message_id, "received_at": iso(item.received_at), "status": item.status,
            "decided_by": item.decided_by, "decided_at": iso(item.decided_at) if item.decided_at else None,
            "reason": item.reason, "config_version": item.config_version}


@bp.get("/review")
def list_review() -> Response:
    status = request.args.get("status", "open")
    if status not in REVIEW_STATUSES + ("all",):
        abort(400, description=f"status must be one of {', '.join(REVIEW_STATUSES)} or all")
    limit = max(1, min(int_arg("limit", 50), 500))
    offset = max(0, int_arg("offset", 0))
    items, total = services().store.review_items(None if status == "all" else status, limit, offset)
    return jsonify({"items": [_review_json(i) for i in items], "total": total})


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    decision: Literal["confirm", "dismiss"]
    by: StrictStr = Field(default="api", min_length=1, max_length=100)


@bp.post("/review/<int:item_id>")
def decide_review(item_id: int) -> Response:
    svc = services()
    body = json_body(DecisionBody)
    assert isinstance(body, DecisionBody)
    try:
        item = consent.decide_review(svc.store, item_id, body.decision, body.by)
    except consent.NotOpen as error:
        return error_response(409 if svc.store.review_item(item_id) else 404, "not_open", str(error))
    return jsonify(_review_json(item))


@bp.get("/suppressions/<channel>")
def list_suppressions(channel: str) -> Response:
    """One page of a channel's unsubscribed addresses in address order; ``after`` pages on."""
    svc = services()
    found = svc.config.channel(channel)
    if found is None:
        return error_response(404, "unknown_channel", f"unknown channel {channel!r}")
    limit = max(1, min(int_arg("limit", 1000), 10_000))
    page = next(svc.store.iter_suppressions(channel, limit, after=request.args.get("after", "")), [])
    return jsonify({
        "channel": channel,
        "suppressions": [{"address": s.address, "unsubscribed_at": iso(s.unsubscribed_at), "source": s.source,
                          "keyword": s.keyword} for s in page],
        "next_after": page[-1].address if len(page) == limit else None,
        # Erased contacts are suppressed by hash and cannot be listed: say so, so nobody
        # gates sends on this list alone.
        "erased_not_listed": svc.store.has_erasures(channel),
        # What every address listed must not get on this channel (its revocation_scope).
        "gated_categories": gated_categories(found.revocation_scope),
    })


@bp.get("/contacts/<path:address>/export")
def export_contact(address: str) -> Response:
    """Everything about one contact's consent (GDPR Art. 7(1) and 15), as JSON or CSV."""
    svc = services()
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv"):
        abort(400, description="format must be json or csv")
    try:
        record = consent.contact_record(svc.store, address, svc.settings.default_region)
    except consent.InvalidAddress as error:
        return error_response(400, "invalid_address", str(error))
    if fmt == "json":
        return jsonify(record)
    response = Response(consent.contact_csv(record), mimetype="text/csv")
    response.headers["Content-Disposition"] = "attachment; filename=consent-history.csv"
    return response


@bp.delete("/contacts/<path:address>")
def erase_contact(address: str) -> Response:
    """Erase a contact (GDPR Art. 17); where they had unsubscribed a keyed hash keeps them suppressed."""
    svc = services()
    try:
        erasure = consent.erase_contact(svc.store, address, svc.address_hash, svc.settings.default_region)
    except consent.InvalidAddress as error:
        return error_response(400, "invalid_address", str(error))
    except ErasureKeyMismatch:
        return error_response(409, "erasure_key_mismatch", "this database's erasures were made with another "
                              "ERASURE_KEY (or SECRET_KEY): nothing was erased; restart with the key they used")
    return jsonify({"address": erasure.address, "suppressed_channels": erasure.suppressed_channels,
                    "deleted": erasure.deleted})
