"""The one place that maps errors to HTTP answers: JSON under /api, plain text elsewhere."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from webhook.redact import mask_url
from webhook.store import StoreUnavailable

log = logging.getLogger("unsub")
RETRY_AFTER_SECONDS = "5"


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def error_response(status: int, error: str, message: str, **extra: object) -> Response:
    if wants_json():
        # The request id (also the X-Request-Id header) lets a support ticket be traced in the logs.
        response = jsonify({"error": error, "message": message, **extra, "request_id": g.get("request_id")})
    else:
        response = Response(f"{message}\n", mimetype="text/plain")
    response.status_code = status
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        name = (error.name or "error").lower().replace(" ", "_")
        response = error_response(error.code or 500, name, error.description or name)
        if error.code == 405 and hasattr(error, "valid_methods") and error.valid_methods:
            response.headers["Allow"] = ", ".join(error.valid_methods)
        return response

    @app.errorhandler(StoreUnavailable)
    def store_unavailable(error: StoreUnavailable) -> Response:
        log.warning("database unavailable: %s", error)
        response = error_response(503, "unavailable", "the database is unavailable; nothing was recorded, retry later")
        response.headers["Retry-After"] = RETRY_AFTER_SECONDS
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        # The path may name a contact (/api/v1/contacts/+1...) or carry a token: masked like the access log.
        log.exception("unexpected error on %s %s", request.method, mask_url(request.path))
        return error_response(500, "internal_error", "unexpected error; it has been logged")
