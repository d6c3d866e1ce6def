"""What each request leaves for operators: a request id, its duration in the histogram, and
(with METRICS_TOKEN) the ``GET /metrics`` route.

Per request this is a clock read, a dict write and, with metrics on, one histogram
observation: no database read. The outbox gauges are read when Prometheus scrapes.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Iterator

from flask import Blueprint, Flask, Response, abort, g, request

from webhook import logs, metrics
from webhook.access_log import REQUEST_ID_KEY, ROUTE_KEY
from webhook.store import StoreUnavailable
from webhook.web import services

log = logging.getLogger("unsub.metrics")
REQUEST_ID_HEADER = "X-Request-Id"

bp = Blueprint("metrics", __name__)


def request_id() -> str | None:
    """This request's id (None outside a request)."""
    return g.get("request_id")


def route_label() -> str:
    """The URL rule that matched (``/api/v1/subscriptions/<channel>/<path:address>``), never the path."""
    rule = request.url_rule
    return rule.rule if rule is not None else metrics.UNMATCHED_ROUTE


def _start() -> None:
    g.started = time.perf_counter()
    g.request_id = logs.request_id_from(request.headers.get(REQUEST_ID_HEADER))
    g.log_token = logs.current_request_id.set(g.request_id)
    request.environ[REQUEST_ID_KEY] = g.request_id


def _finish(response: Response) -> Response:
    route = route_label()
    request.environ[ROUTE_KEY] = route
    response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
    started = g.get("started")
    if started is not None and metrics.enabled():
        metrics.observe_request(route, request.method, response.status_code, time.perf_counter() - started)
    return response


def _teardown(error: BaseException | None) -> None:
    token = g.pop("log_token", None)
    if token is not None:
        logs.current_request_id.reset(token)


def _gauges() -> Iterator[Any]:
    svc = services()
    yield metrics.gauge("unsub_keyword_config_version", "The keyword configuration version this process runs.",
                        svc.keywords.version.number)
    from webhook import __version__

    yield metrics.build_info(__version__)
    try:
        backlog = svc.store.outbox_backlog()
    except StoreUnavailable as error:
        # The counters are still worth a scrape; the gauges are missing until the database is back.
        log.warning("outbox gauges left out of a scrape: %s", error)
        return
    yield metrics.gauge("unsub_outbox_pending", "Deliveries (webhooks, replies, forwards) waiting in the outbox.",
                        backlog.pending)
    yield metrics.gauge("unsub_outbox_oldest_due_seconds", "How long the oldest due delivery has waited (0: none).",
                        backlog.oldest_due_seconds)


@bp.get("/metrics")
def scrape() -> Response:
    token = services().settings.metrics_token
    if not token:
        abort(404)
    if not metrics.token_matches(request.headers.get("Authorization"), token):
        response = Response("a valid METRICS_TOKEN bearer token is required\n", status=401, mimetype="text/plain")
        response.headers["WWW-Authenticate"] = "Bearer"
        return response
    body, content_type = metrics.render(metrics.Scrape(_gauges))
    return Response(body, status=200, content_type=content_type)


def init_app(app: Flask, metrics_token: str | None) -> None:
    app.before_request(_start)
    app.after_request(_finish)
    app.teardown_request(_teardown)
    if metrics_token:
        metrics.enable()
        app.register_blueprint(bp)
