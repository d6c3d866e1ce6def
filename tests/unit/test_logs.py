"""webhook.logs: one JSON object a line (or the readable text), masked, with the request id."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from webhook import logs


def record(message: str, *args, name: str = "unsub.webhooks", level: int = logging.INFO, exc_info=None, **extra):
    item = logging.LogRecord(name, level, __file__, 1, message, args, exc_info)
    for key, value in extra.items():
        setattr(item, key, value)
    return item


def test_a_json_line_has_the_fields_and_masks_addresses_anywhere_in_it():
    line = json.loads(logs.JsonFormatter().format(record("inbound from %s to %s", "+14155550123", "bob@example.com")))
    assert set(line) == {"time", "level", "logger", "message"}
    assert line["level"] == "info" and line["logger"] == "unsub.webhooks" and line["time"].endswith("Z")
    assert line["message"] == "inbound from +1***23 to b***@example.com"


def test_a_request_line_carries_its_fields():
    item = record("GET /x", method="GET", route="/api/v1/subscriptions/<channel>/<path:address>", status=200,
                  duration_ms=1.5, request_id="abc")
    line = json.loads(logs.JsonFormatter().format(item))
    assert line["route"] == "/api/v1/subscriptions/<channel>/<path:address>" and line["status"] == 200
    assert line["duration_ms"] == 1.5 and line["request_id"] == "abc" and line["method"] == "GET"


def test_the_traceback_is_masked_and_stays_in_the_object():
    try:
        raise ValueError("bad address +14155550123")
    except ValueError:
        item = record("failed", level=logging.ERROR, exc_info=sys.exc_info())
    text = logs.JsonFormatter().format(item)
    assert "\n" not in text  # one line
    line = json.loads(text)
    assert "ValueError: bad address +1***23" in line["exception"] and "4155550123" not in text


def test_the_text_line_is_masked_too_and_names_the_request():
    token = logs.current_request_id.set("req-1")
    try:
        text = logs.TextFormatter(logs.TEXT_FORMAT).format(record("unsubscribe link /unsubscribe/%s", "tok.en-secret"))
    finally:
        logs.current_request_id.reset(token)
    assert "/unsubscribe/***" in text and "tok.en-secret" not in text and text.endswith(" [request_id=req-1]")


def test_the_access_log_line_is_not_masked_twice():
    # Already masked by the logger class: a second pass would eat the digits it keeps.
    item = record("GET /api/v1/subscriptions/sms/+1***23 HTTP/1.1", masked=True)
    assert json.loads(logs.JsonFormatter().format(item))["message"].endswith("+1***23 HTTP/1.1")


@pytest.mark.parametrize("header, kept", [
    ("abc-123", True), ("Root=1-67891233-abcdef012345678912345678", False), ("a" * 128, True), ("a" * 129, False),
    ("with space", False), ("x\ny", False), ("", False), (None, False), ("trace:span.1_2", True),
])
def test_a_router_request_id_is_kept_only_when_short_and_plain(header, kept):
    found = logs.request_id_from(header)
    assert (found == header) is kept
    assert logs.REQUEST_ID.fullmatch(found)


def test_configure_sends_every_logger_through_one_masked_handler(capsys):
    root = logging.getLogger()
    before = list(root.handlers), root.level, logging.getLogger("unsub").level
    try:
        logs.configure("json", logging.INFO)
        logs.configure("json", logging.INFO)  # a second call replaces, does not add
        assert sum(isinstance(h, logs._Ours) for h in root.handlers) == 1
        logging.getLogger("unsub.test").info("to %s", "+14155550123")
        logging.getLogger("somelib").info("dropped below WARNING")
        logging.getLogger("somelib").warning("kept for bob@example.com")
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    finally:
        for handler in [h for h in root.handlers if isinstance(h, logs._Ours)]:
            root.removeHandler(handler)
        root.setLevel(before[1])
        logging.getLogger("unsub").setLevel(before[2])
    assert [line["message"] for line in lines] == ["to +1***23", "kept for b***@example.com"]


def test_a_batch_of_many_unusable_items_writes_a_bounded_number_of_lines(caplog):
    from webhook.domain import Skipped
    from webhook.web.webhooks import MAX_LOGGED_SKIPS, log_skipped

    caplog.set_level(logging.INFO, logger="unsub.test")
    log_skipped(logging.getLogger("unsub.test"), "WhatsApp", [Skipped(f"entry {i}", "not an object") for i in range(5000)])
    assert len(caplog.records) == MAX_LOGGED_SKIPS + 1
    assert caplog.records[-1].getMessage() == f"skipped {5000 - MAX_LOGGED_SKIPS} more items of that WhatsApp webhook"
