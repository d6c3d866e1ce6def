"""How every line the service writes looks: readable text (default) or one JSON object
(LOG_FORMAT=json), masked the same way in both.

Each line goes through ``webhook.redact.mask_url`` (message and traceback), so a phone
number or e-mail address that slipped into a message, an unsubscribe token or the SendGrid
secret in a URL never reaches the log, whatever the logger or level. A line written while
a request is served carries its request id (``request_context`` sets it per request).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
import time
import uuid
from typing import Any

from webhook.redact import mask_url

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# A router's X-Request-Id is kept when it is short and plain; otherwise one is made.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Attributes of a record that the JSON line carries when a caller (the access log) set them.
REQUEST_FIELDS = ("method", "route", "status", "duration_ms")

current_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("unsub_request_id", default=None)


def request_id_from(header: str | None) -> str:
    """The router's request id if it is sane (1-128 of ``A-Za-z0-9._:-``), else a new one."""
    if header and REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


def _masked_message(record: logging.LogRecord) -> str:
    if getattr(record, "masked", False):  # the access log masks its URL fields itself: not twice
        return record.getMessage()
    return mask_url(record.getMessage())


def _masked_exception(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    text = ""
    if record.exc_info:
        text = formatter.formatException(record.exc_info)
    if record.stack_info:
        text = (text + "\n" if text else "") + formatter.formatStack(record.stack_info)
    return mask_url(text)


def _request_id(record: logging.LogRecord) -> str | None:
    return getattr(record, "request_id", None) or current_request_id.get()


class TextFormatter(logging.Formatter):
    """The readable line (``fmt``), masked, with `` [request_id=...]`` while serving a request."""

    def format(self, record: logging.LogRecord) -> str:
        original = (record.msg, record.args, record.exc_info, record.exc_text, record.stack_info)
        extra = _masked_exception(self, record)
        record.msg, record.args, record.exc_info, record.exc_text, record.stack_info = (
            _masked_message(record), None, None, None, None)
        try:
            line = super().format(record)
        finally:
            record.msg, record.args, record.exc_info, record.exc_text, record.stack_info = original
        request_id = _request_id(record)
        if request_id:
            line += f" [request_id={request_id}]"
        return line + ("\n" + extra if extra else "")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, request fields when known."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _masked_message(record),
        }
        for name in REQUEST_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        request_id = _request_id(record)
        if request_id:
            line["request_id"] = request_id
        extra = _masked_exception(self, record)
        if extra:
            line["exception"] = extra
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(log_format: str, fmt: str | None = TEXT_FORMAT, datefmt: str | None = None) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter(fmt, datefmt)


class _Ours(logging.StreamHandler):
    """The handler ``configure`` installs: writes to the current sys.stderr (replaced, not
    added again, by a second call)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure(log_format: str, app_level: int = logging.INFO, loggers: tuple[str, ...] = ("unsub",)) -> None:
    """Send every logger's lines to stderr in ``log_format``, masked: the app's (``loggers``)
    from ``app_level``, libraries' from WARNING."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Ours)]:
        root.removeHandler(handler)
    handler = _Ours()
    handler.setFormatter(formatter(log_format))
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    for name in loggers:
        logging.getLogger(name).setLevel(app_level)
