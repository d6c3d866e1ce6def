"""The access log masks contacts' addresses, unsubscribe tokens and the SendGrid secret."""

from __future__ import annotations

import datetime

import pytest

from webhook.access_log import MaskingLogger, mask_url


@pytest.mark.parametrize("url,masked", [
    ("GET /api/v1/subscriptions/sms/+14155550123 HTTP/1.1", "GET /api/v1/subscriptions/sms/+1415***0123 HTTP/1.1"),
    ("DELETE /api/v1/contacts/%2B447700900123 HTTP/1.1", "DELETE /api/v1/contacts/%2B4477***0123 HTTP/1.1"),
    ("/admin/contacts?q=bob@example.com", "/admin/contacts?q=b***@example.com"),
    ("/api/v1/contacts/alice.smith%40example.co.uk/export?format=csv", "/api/v1/contacts/a***%40example.co.uk/export?format=csv"),
    ("POST /unsubscribe/WyJlbWFpbCIsImJvYkBleGFtcGxlLmNvbSJd.abc HTTP/1.1", "POST /unsubscribe/*** HTTP/1.1"),
    ("POST /webhooks/email/sendgrid/s3cret-path-0123456789 HTTP/1.1", "POST /webhooks/email/sendgrid/*** HTTP/1.1"),
    ("GET /admin/keywords/versions/12 HTTP/1.1", "GET /admin/keywords/versions/12 HTTP/1.1"),  # nothing personal
    ("POST /webhooks/twilio HTTP/1.1", "POST /webhooks/twilio HTTP/1.1"),
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_the_logger_masks_every_url_field():
    class Config:  # what gunicorn's Logger reads at construction
        errorlog = "-"
        loglevel = "info"
        accesslog = None
        logconfig = None
        logconfig_dict: dict = {}
        logconfig_json = None
        syslog = False
        capture_output = False
        disable_redirect_access_to_syslog = False
        access_log_format = '%(h)s "%(r)s" %(s)s "%(f)s"'
        user = None
        group = None
        umask = 0

        def __init__(self):
            self.env = {}

    class Response:
        status = "200 OK"
        sent = 10
        headers: list = []

    environ = {"REQUEST_METHOD": "GET", "RAW_URI": "/admin/contacts?q=%2B14155550123", "SERVER_PROTOCOL": "HTTP/1.1",
               "PATH_INFO": "/admin/contacts", "QUERY_STRING": "q=%2B14155550123",
               "HTTP_REFERER": "https://unsub.example.com/admin/contacts?q=bob@example.com", "REMOTE_ADDR": "127.0.0.1"}
    logger = MaskingLogger.__new__(MaskingLogger)
    logger.cfg = Config()
    atoms = logger.atoms(Response(), [("Referer", environ["HTTP_REFERER"])], environ, datetime.timedelta(seconds=0))
    assert atoms["r"] == "GET /admin/contacts?q=%2B1415***0123 HTTP/1.1"
    assert atoms["q"] == "q=%2B1415***0123"
    assert atoms["f"].endswith("q=b***@example.com") and atoms["{referer}i"].endswith("q=b***@example.com")
    assert "4155550123" not in repr(atoms)
