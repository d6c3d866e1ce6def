"""Prometheus metrics: the families a dashboard depends on, counted where things happen.

Off until ``enable()`` (create_app with METRICS_TOKEN, ``unsub worker --metrics-port``):
every ``count_*`` / ``observe_*`` call is then one attribute test, so a service without
METRICS_TOKEN pays nothing. ``prometheus_client`` is imported by ``enable()``, not at import
time: its multiprocess mode is chosen from PROMETHEUS_MULTIPROC_DIR when it is imported, and
the gunicorn configuration (``webhook.gunicorn_conf``) sets that directory first.

Labels only ever hold fixed words (channel names, actions, sources, intents, route
patterns, results): never an address, a path or a message.
"""

from __future__ import annotations

import hmac
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator

log = logging.getLogger("unsub.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE = "unmatched"  # the route label of a request no URL rule matched (a 404)
# Seconds; the webhook answers in milliseconds, admin pages and exports take longer.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0)


@dataclass(frozen=True)
class Families:
    consent_changes: Any
    inbound_messages: Any
    request_duration: Any
    deliveries: Any
    forward_requests: Any
    registry: Any


_on: Families | None = None


def enabled() -> bool:
    return _on is not None


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def enable() -> None:
    """Create the metric families (once per process; later calls do nothing)."""
    global _on
    if _on is not None:
        return
    from prometheus_client import CollectorRegistry, Counter, Histogram

    registry = CollectorRegistry(auto_describe=True)
    _on = Families(
        consent_changes=Counter("unsub_consent_changes_total", "Consent changes recorded (committed).",
                                ("channel", "action", "source"), registry=registry),
        inbound_messages=Counter("unsub_inbound_messages_total", "Inbound messages handled, by what they meant.",
                                 ("provider", "channel", "intent"), registry=registry),
        request_duration=Histogram("unsub_http_request_duration_seconds", "Time to answer an HTTP request.",
                                   ("route", "method", "status"), buckets=BUCKETS, registry=registry),
        deliveries=Counter("unsub_deliveries_total", "Outbox delivery attempts, by result.", ("result",),
                           registry=registry),
        forward_requests=Counter("unsub_forward_requests_total", "Forwards to a business's webhook, by result.",
                                 ("result",), registry=registry),
        registry=registry,
    )


# -- counting (cheap no-ops while metrics are off) ----------------------------------------

def count_consent_change(channel: str, action: str, source: str) -> None:
    if _on is not None:
        _on.consent_changes.labels(channel, action, source).inc()


def count_inbound(provider: str, channel: str, intent: str) -> None:
    if _on is not None:
        _on.inbound_messages.labels(provider, channel, intent).inc()


# Methods a client can send are unbounded text: anything else is counted as ``other`` so a
# caller cannot create series at will (routes are URL rule patterns, statuses are ours).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    if _on is not None:
        _on.request_duration.labels(route, method_label(method), str(status)).observe(seconds)


def count_deliveries(results: dict[str, int]) -> None:
    if _on is not None:
        for result, n in results.items():
            _on.deliveries.labels(result).inc(n)


def count_forward(result: str) -> None:
    if _on is not None:
        _on.forward_requests.labels(result).inc()


def inbound_intent(intent: str, skipped: str | None) -> str:
    """The intent label of an inbound message: a provider's redelivery counts as ``duplicate``."""
    return "duplicate" if skipped == "duplicate" else intent


# -- scraping ------------------------------------------------------------------------------

def token_matches(header: str | None, token: str) -> bool:
    """Whether an Authorization header is ``Bearer <token>`` (constant-time)."""
    return hmac.compare_digest((header or "").encode("utf-8"), f"Bearer {token}".encode("utf-8"))


class Scrape:
    """What one scrape shows: the counters (summed over every process writing to the
    multiprocess directory, or this process's own), then the gauges read now by ``gauges``."""

    def __init__(self, gauges: Callable[[], Iterator[Any]] | None = None) -> None:
        self.gauges = gauges

    def collect(self) -> Iterator[Any]:
        path = multiprocess_dir()
        if path:
            from prometheus_client.multiprocess import MultiProcessCollector

            yield from MultiProcessCollector(None, path=path).collect()
        elif _on is not None:
            yield from _on.registry.collect()
        if self.gauges is not None:
            yield from self.gauges()


def gauge(name: str, documentation: str, value: float, labels: dict[str, str] | None = None) -> Any:
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(name, documentation, labels=list(labels or {}))
    family.add_metric(list((labels or {}).values()), value)
    return family


def build_info(version: str) -> Any:
    return gauge("unsub_build_info", "The running unsub version (always 1).", 1, {"version": version})


def render(scrape: Scrape) -> tuple[bytes, str]:
    """The Prometheus text format of a scrape, and its content type."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return generate_latest(scrape), CONTENT_TYPE_LATEST  # type: ignore[arg-type]


# -- the worker's own endpoint ---------------------------------------------------------------

def serve(host: str, port: int, token: str, version: str) -> Any:
    """Serve /metrics for ``unsub worker`` on a background thread, with the same bearer check.
    Returns the server (``shutdown()`` stops it)."""
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client.exposition import ThreadingWSGIServer

    def build() -> Iterator[Any]:
        yield build_info(version)

    def app(environ: dict, start_response: Callable) -> list[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        if not token_matches(environ.get("HTTP_AUTHORIZATION"), token):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
            return [b"a valid METRICS_TOKEN bearer token is required\n"]
        body, content_type = render(Scrape(build))
        start_response("200 OK", [("Content-Type", content_type)])
        return [body]

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (wsgiref's name)
            pass

    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=Quiet)
    threading.Thread(target=server.serve_forever, name="unsub-metrics", daemon=True).start()
    return server
