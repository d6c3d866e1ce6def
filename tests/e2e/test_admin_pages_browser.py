"""The admin pages as an admin sees them, in headless Chromium (issue 11 items 17-19): the sign-in
page says where the token comes from and lands on the Dashboard, the keyword page sizes its
boxes to their content and shows a refused edit's problems beside their fields in words,
the Try result sits by the Try box, headings say "SMS" not "sms (sms)", and a national number
in the Contacts search is explained (and found with DEFAULT_REGION)."""

from __future__ import annotations

import os

import pytest

from tests.browser import browser_page  # noqa: F401 (fixture)
from tests.conftest import ADMIN_TOKEN
from tests.e2e.servers import Server, free_port, server_env
from tests.e2e.servers import sys as _sys

pytestmark = pytest.mark.slow
SCREENSHOTS = os.environ.get("UNSUB_SCREENSHOTS")  # a folder to keep the screenshots in, for a person to look at


def _server(database_url, tmp_path, **extra) -> Server:
    port = free_port()
    env = server_env(database_url, **extra)
    argv = [_sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1", "webhook:create_app()"]
    server = Server(argv, tmp_path, env, port)
    server.wait_ready()
    return server


def _shot(page, tmp_path, name: str) -> None:
    folder = SCREENSHOTS or str(tmp_path)
    page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


def test_the_admin_pages_read_as_an_admin_expects(browser_page, database_url, tmp_path):  # noqa: F811
    page = browser_page
    server = _server(database_url, tmp_path, DEFAULT_REGION="US")
    try:
        server.send("STOP please", "+14155550124")
        server.send("Cancel my order, it's late", "+14155550125")
        page.goto(f"{server.base}/admin/login")
        assert "ADMIN_TOKEN" in page.inner_text("#token-hint") and "instance/secrets.env" in page.inner_text("#token-hint")
        page.get_by_label("Admin token").fill(ADMIN_TOKEN)
        page.get_by_role("button", name="Sign in").click()
        assert page.url.endswith("/admin/dashboard") and page.locator("h1").inner_text() == "Dashboard"

        page.goto(f"{server.base}/admin/keywords/sms/en")
        assert page.locator("h1").inner_text() == "Keywords: SMS, English"
        for name in ("opt_out_keywords", "phrases", "opt_in_keywords", "help_keywords"):
            box = page.locator(f"#{name}")
            lines = box.input_value().count("\n") + 1
            assert int(box.get_attribute("rows")) >= min(lines, 30), name  # nothing hidden below the fold
        # Try first: the result sits by the Try box, in the same fieldset.
        page.get_by_label("Message", exact=True).fill("Cancel my order, it's late")
        page.get_by_role("button", name="Try").click()
        result = page.locator("fieldset.try #try-result")
        assert "review" in result.inner_text() and "CANCEL" in result.inner_text()
        # A refused edit: START as an opt-out keyword clashes with the opt-in START, and the
        # help reply loses its support contact.
        keywords = page.locator("#opt_out_keywords")
        keywords.fill(keywords.input_value() + "\nSTART")
        page.locator("#help_reply").fill("Example Co: reply STOP to stop.")
        page.get_by_role("button", name="Save as a new version").click()
        assert "START is already an opt-out keyword in English" in page.locator("#opt_in_keywords-errors").inner_text()
        assert "support contact" in page.locator("#help_reply-errors").inner_text()
        assert "channels.sms" not in page.inner_text("main")  # words, not paths
        assert page.locator("#opt_in_keywords").get_attribute("aria-invalid") == "true"
        _shot(page, tmp_path, "keyword-edit-refused")

        page.goto(f"{server.base}/admin/events")
        assert "message" in page.locator("tbody").inner_text()  # sources in words
        _shot(page, tmp_path, "events")

        page.goto(f"{server.base}/admin/contacts")
        page.get_by_label("Phone number or e-mail").fill("415-555-0124")
        page.get_by_role("button", name="Search").click()
        assert page.locator("section", has_text="SMS: +14155550124").locator(".status").inner_text() == "unsubscribed"
        _shot(page, tmp_path, "contacts")
    finally:
        server.stop()


def test_a_national_number_without_default_region_is_explained(browser_page, database_url, tmp_path):  # noqa: F811
    page = browser_page
    server = _server(database_url, tmp_path)
    try:
        page.goto(f"{server.base}/admin/login")
        page.get_by_label("Admin token").fill(ADMIN_TOKEN)
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"{server.base}/admin/contacts")
        page.get_by_label("Phone number or e-mail").fill("415-555-0124")
        page.get_by_role("button", name="Search").click()
        message = page.locator("[role=alert]").inner_text()
        assert "international" in message and "DEFAULT_REGION" in message
    finally:
        server.stop()
