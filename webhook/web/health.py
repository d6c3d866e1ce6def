from __future__ import annotations

from flask import Blueprint, jsonify

from webhook.web import services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    svc = services()
    svc.store.ping()  # StoreUnavailable -> 503
    return jsonify({"status": "ok", "database": svc.store.kind, "keywords_version": svc.config.version})
