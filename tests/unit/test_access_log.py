"""The access log masks contacts' addresses, in every form the API accepts, unsubscribe tokens
and the SendGrid secret (webhook.redact.mask_url, re-exported by webhook.access_log)."""

from __future__ import annotations

import datetime

import pytest

from webhook.access_log import MaskingLogger, mask_url


@pytest.mark.parametrize("url,masked", [
    ("GET /api/v1/subscriptions/sms/+14155550123 HTTP/1.1", "GET /api/v1/subscriptions/sms/+1***23 HTTP/1.1"),
    ("DELETE /api/v1/contacts/%2B447700900123 HTTP/1.1", "DELETE /api/v1/contacts/%2B44***23 HTTP/1.1"),
    ("/admin/contacts?q=bob@example.com", "/admin/contacts?q=b***@example.com"),
    ("/api/v1/contacts/alice.smith%40example.co.uk/export?format=csv", "/api/v1/contacts/a***%40example.co.uk/export?format=csv"),
    ("POST /unsubscribe/WyJlbWFpbCIsImJvYkBleGFtcGxlLmNvbSJd.abc HTTP/1.1", "POST /unsubscribe/*** HTTP/1.1"),
    ("POST /webhooks/email/sendgrid/s3cret-path-0123456789 HTTP/1.1", "POST /webhooks/email/sendgrid/*** HTTP/1.1"),
    ("GET /admin/keywords/versions/12 HTTP/1.1", "GET /admin/keywords/versions/12 HTTP/1.1"),  # nothing personal
    ("POST /webhooks/twilio HTTP/1.1", "POST /webhooks/twilio HTTP/1.1"),
    ("GET /api/v1/stats?since=2026-11-01&until=2026-11-30 HTTP/1.1", "GET /api/v1/stats?since=2026-11-01&until=2026-11-30 HTTP/1.1"),
    ("POST /admin/contacts/erase HTTP/1.1", "POST /admin/contacts/erase HTTP/1.1"),
    # Numbers written with spaces, dashes and brackets, percent-encoded or not (issue 11, item 6).
    ("GET /api/v1/subscriptions/sms/%2B1%20415%20555%200123 HTTP/1.1", "GET /api/v1/subscriptions/sms/%2B1***23 HTTP/1.1"),
    ("GET /api/v1/subscriptions/sms/%2B1%28415%295550123 HTTP/1.1", "GET /api/v1/subscriptions/sms/%2B1***23 HTTP/1.1"),
    ("GET /api/v1/subscriptions/sms/+1-415-555-0123 HTTP/1.1", "GET /api/v1/subscriptions/sms/+1***23 HTTP/1.1"),
    ("/api/v1/subscriptions/sms/+1 415 555 0123", "/api/v1/subscriptions/sms/+1***23"),  # PATH_INFO is decoded
    ("/api/v1/subscriptions/sms/+1(415)5550123", "/api/v1/subscriptions/sms/+1***23"),
    ("GET /api/v1/subscriptions/sms/+3545512345 HTTP/1.1", "GET /api/v1/subscriptions/sms/+354***45 HTTP/1.1"),  # short
    # What DEFAULT_REGION lets the API read: national numbers, whatsapp:, 00, letters, full-width digits.
    ("GET /api/v1/subscriptions/sms/(415)%20555-0124 HTTP/1.1", "GET /api/v1/subscriptions/sms/***24 HTTP/1.1"),
    ("GET /api/v1/subscriptions/sms/4155550124 HTTP/1.1", "GET /api/v1/subscriptions/sms/***24 HTTP/1.1"),
    ("GET /api/v1/subscriptions/whatsapp/whatsapp:+14155550123 HTTP/1.1",
     "GET /api/v1/subscriptions/whatsapp/whatsapp:+1***23 HTTP/1.1"),
    ("GET /api/v1/subscriptions/sms/0044%207700%20900123 HTTP/1.1", "GET /api/v1/subscriptions/sms/0044***23 HTTP/1.1"),
    ("GET /api/v1/subscriptions/sms/+1-800-FLOWERS HTTP/1.1", "GET /api/v1/subscriptions/sms/+1***RS HTTP/1.1"),
    ("GET /api/v1/subscriptions/sms/%EF%BC%8B%EF%BC%91%EF%BC%94%EF%BC%91%EF%BC%95%EF%BC%95%EF%BC%95%EF%BC%95%EF%BC%90"
     "%EF%BC%91%EF%BC%92%EF%BC%93 HTTP/1.1", "GET /api/v1/subscriptions/sms/%2B1***23 HTTP/1.1"),
    ("POST /admin/contacts/sms/+14155550123 HTTP/1.1", "POST /admin/contacts/sms/+1***23 HTTP/1.1"),
    # Secrets sent as query parameters to any route, and the SendGrid path in other capitals.
    ("GET /healthz?token=abcDEF123&x=1 HTTP/1.1", "GET /healthz?token=***&x=1 HTTP/1.1"),
    ("GET /metrics?API_KEY=s3cr3t HTTP/1.1", "GET /metrics?API_KEY=*** HTTP/1.1"),
    ("POST /Webhooks/Email/SendGrid/s3cret-path HTTP/1.1", "POST /Webhooks/Email/SendGrid/*** HTTP/1.1"),
    # Queries that carry an address, with or without +.
    ("GET /admin/contacts?q=14155550123 HTTP/1.1", "GET /admin/contacts?q=***23 HTTP/1.1"),
    ("GET /admin/contacts?q=%2B1+415+555+0123 HTTP/1.1", "GET /admin/contacts?q=%2B1***23 HTTP/1.1"),
    ("GET /admin/contacts/export?address=bob%40example.com&format=csv HTTP/1.1",
     "GET /admin/contacts/export?address=b***%40example.com&format=csv HTTP/1.1"),
    ("GET /api/v1/suppressions/sms?after=%2B14155550123&limit=10 HTTP/1.1",
     "GET /api/v1/suppressions/sms?after=%2B1***23&limit=10 HTTP/1.1"),
    ("q=%2B14155550123", "q=%2B1***23"),  # the query string alone (%(q)s)
    # Any other place: phone-like runs and e-mail addresses by pattern.
    ("GET /nowhere/+1-415-555-0123?x=%2B1%20415%20555%200123&y=bob%40example.com HTTP/1.1",
     "GET /nowhere/+1***23?x=%2B1***23&y=b***%40example.com HTTP/1.1"),
    ("GET /nowhere/%2B3545512345 HTTP/1.1", "GET /nowhere/%2B354***45 HTTP/1.1"),
    ("GET /nowhere/+1-800-FLOWERS HTTP/1.1", "GET /nowhere/+1***RS HTTP/1.1"),
    ("https://unsub.example.com/admin/login?next=%2Fadmin%2Fcontacts%3Fq%3D%252B14155550123",
     "https://unsub.example.com/admin/login?next=%2Fadmin%2Fcontacts%3Fq%3D%2B1***23"),
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked


@pytest.mark.parametrize("url", [
    "/admin/contacts?q=%2B1%20415%20555%200123", "/x?next=%2Fadmin%2Fcontacts%3Fq%3Dbob%2540example.com",
    "/api/v1/subscriptions/sms/%2B1%2D415%2D555%2D0123", "/x/1.415.555.0123", "/x/tel:+1.415.555.0123",
])
def test_no_digits_of_the_number_but_the_last_two_remain(url):
    masked = mask_url(url)
    assert "415" not in masked and "555" not in masked and "bob" not in masked, masked


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
               "HTTP_REFERER": "https://unsub.example.com/admin/contacts?q=bob@example.com", "REMOTE_ADDR": "127.0.0.1",
               "HTTP_USER_AGENT": "crm-sync (owner +1 415 555 0199, carol@example.com)"}
    logger = MaskingLogger.__new__(MaskingLogger)
    logger.cfg = Config()
    headers = [("Referer", environ["HTTP_REFERER"]), ("User-Agent", environ["HTTP_USER_AGENT"])]
    atoms = logger.atoms(Response(), headers, environ, datetime.timedelta(seconds=0))
    assert atoms["r"] == "GET /admin/contacts?q=%2B1***23 HTTP/1.1"
    assert atoms["q"] == "q=%2B1***23"
    assert atoms["f"].endswith("q=b***@example.com") and atoms["{referer}i"].endswith("q=b***@example.com")
    assert "4155550123" not in repr(atoms)
    assert "555 0199" not in atoms["a"] and "carol@" not in atoms["a"]  # the User-Agent is the client's text too
