"""The app's own log lines mask contacts' addresses like the access log (webhook.redact)."""

from __future__ import annotations

import logging

from webhook import consent


def test_an_unexpected_error_logs_the_path_with_the_address_masked(client, admin_headers, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(consent, "contact_record", broken)
    with caplog.at_level(logging.ERROR, logger="unsub"):
        response = client.get("/api/v1/contacts/%2B14155550123/export", headers=admin_headers)
    assert response.status_code == 500 and response.json["error"] == "internal_error"
    assert "unexpected error on GET /api/v1/contacts/+1***23/export" in caplog.text
    assert "4155550123" not in caplog.text


def test_the_inbound_log_line_masks_the_sender(twilio, caplog):
    with caplog.at_level(logging.INFO, logger="unsub"):
        assert twilio.message("STOP", sender="+14155550123").status_code == 200
    assert "+1***23" in caplog.text and "4155550123" not in caplog.text
