"""gunicorn's logs without contacts' addresses or secrets in them (the Procfile's --logger-class).

Request lines and referers of the admin API and pages name phone numbers and e-mail
addresses (`/api/v1/subscriptions/sms/+14155550123`, `/admin/contacts?q=...`, even the
erasure `DELETE /api/v1/contacts/...`), unsubscribe links carry a usable token, and the
SendGrid inbound URL carries its secret. ``webhook.redact.mask_url`` masks each of them.

The same logger class formats gunicorn's error log and the app's own lines (``webhook.logs``):
readable text, or one JSON object a line with LOG_FORMAT=json; both masked, both carrying
the request id of the request that wrote them.
"""

from __future__ import annotations

import logging
import os
import traceback
from typing import Any

from gunicorn.glogging import Logger

from webhook import logs
from webhook.redact import mask_url

__all__ = ["URL_ATOMS", "MaskingLogger", "mask_url"]

# Fields of the access log that hold the URL: request line, path, query, referer, and the
# same from the environ ({...}e) and request headers ({...}i).
URL_ATOMS = ("r", "U", "q", "f", "{raw_uri}e", "{path_info}e", "{query_string}e", "{http_referer}e", "{referer}i",
             # what else the client writes into the line: its User-Agent and a Basic-auth user name
             "a", "{user-agent}i", "u")
# What the app leaves in the WSGI environ for this log (webhook.web.observe).
ROUTE_KEY = "unsub.route"
REQUEST_ID_KEY = "unsub.request_id"


def log_format() -> str:
    """LOG_FORMAT as the logger class reads it (start-up refuses other values: webhook.settings)."""
    value = os.environ.get("LOG_FORMAT", "").strip().lower()
    return value if value in logs.FORMATS else "text"


class MaskingLogger(Logger):
    """gunicorn's Logger: URL fields of each access-log line masked, every line formatted by
    ``webhook.logs`` (LOG_FORMAT), the app's loggers sent the same way."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # The app's lines (and libraries' warnings) go to stderr as gunicorn's own do.
        logs.configure(log_format(), self.loglevel)

    def _set_handler(self, log: logging.Logger, output: Any, fmt: logging.Formatter, stream: Any = None) -> None:
        if log is self.access_log:
            fmt = logs.formatter(log_format(), self.access_fmt)
        else:
            fmt = logs.formatter(log_format(), self.error_fmt, self.datefmt)
        super()._set_handler(log, output, fmt, stream)  # type: ignore[misc]

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        for name in URL_ATOMS:
            value = atoms.get(name)
            if isinstance(value, str):
                atoms[name] = mask_url(value)
        return atoms

    def access(self, resp: Any, req: Any, environ: dict, request_time: Any) -> None:
        if not getattr(self, "access_log_enabled", self.cfg.accesslog is not None):
            return
        safe_atoms = self.atoms_wrapper_class(self.atoms(resp, req, environ, request_time))
        status = getattr(resp, "status_code", None)
        if status is None:
            status = str(getattr(resp, "status", "") or "").split(" ")[0] or None
        extra = {
            "method": environ.get("REQUEST_METHOD"),
            "route": environ.get(ROUTE_KEY),
            "status": int(status) if status is not None and str(status).isdigit() else None,
            "duration_ms": round(request_time.total_seconds() * 1000, 3),
            "request_id": environ.get(REQUEST_ID_KEY),
            "masked": True,  # by atoms(): webhook.logs does not mask the line again
        }
        try:
            self.access_log.info(self.cfg.access_log_format, safe_atoms, extra=extra)
        except Exception:
            self.error(traceback.format_exc())
