from __future__ import annotations

from flask import Blueprint, jsonify

from webhook.web import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    svc = services()
    svc.store.ping()  # StoreUnavailable -> 503
    backlog = svc.store.outbox_backlog()
    return jsonify({
        "status": "ok", "database": svc.store.kind, "keywords_version": svc.config.version,
        # Deliveries waiting for the worker; a growing oldest_due_seconds means no worker runs.
        "outbox": {"pending": backlog.pending, "oldest_due_seconds": round(backlog.oldest_due_seconds, 1),
                   "failed": backlog.failed},
    })
