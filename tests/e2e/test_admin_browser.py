"""An admin in a real headless Chromium: sign in, add a WhatsApp keyword, try it, save,
see another server process honour it within seconds, roll back, look up the contact."""

from __future__ import annotations

import time

import pytest

from tests.browser import browser_page  # noqa: F401 (fixture)
from tests.conftest import ADMIN_TOKEN
from tests.e2e.servers import gunicorn

pytestmark = pytest.mark.slow
DANA = "+14155550177"


def eventually(check, seconds: float = 8.0) -> float:
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds}s"
        time.sleep(0.2)
    return time.monotonic() - started


def test_admin_edits_keywords_and_looks_up_the_contact(browser_page, database_url, tmp_path):  # noqa: F811
    page = browser_page
    admin = gunicorn(database_url, tmp_path, workers=1)
    webhooks = gunicorn(database_url, tmp_path, workers=2)  # another process, same database
    try:
        page.goto(f"{admin.base}/admin/keywords")
        assert "/admin/login" in page.url
        page.get_by_label("Admin token").fill(ADMIN_TOKEN)
        page.get_by_role("button", name="Sign in").click()
        assert page.url.endswith("/admin/keywords")

        page.get_by_role("link", name="Edit whatsapp en").click()
        keywords = page.get_by_label("Opt-out keywords (the whole message)")
        keywords.fill(keywords.input_value() + "\nPLONK")
        page.get_by_label("Message", exact=True).fill("plonk")
        page.get_by_role("button", name="Try").click()
        assert "opt-out" in page.inner_text("#try-result")
        assert webhooks.send("plonk", "whatsapp:" + DANA).text.endswith("<Response />")  # not saved yet

        page.get_by_label("Note for the history (optional)").fill("add PLONK")
        page.get_by_role("button", name="Save as a new version").click()
        assert "Saved as version 2." in page.inner_text(".flash")

        replies: list[str] = []
        eventually(lambda: "unsubscribed" in (replies.append(webhooks.send("plonk", "whatsapp:" + DANA).text) or replies[-1]))

        page.get_by_role("link", name="Keywords").click()
        page.get_by_role("link", name="History and roll back").click()
        page.get_by_role("button", name="Roll back to version 1").click()
        assert "version 3 has the content of version 1" in page.inner_text(".flash")
        eventually(lambda: webhooks.send("plonk", "whatsapp:+14155550178").text.endswith("<Response />"))

        page.get_by_role("link", name="Contacts").click()
        page.get_by_label("Phone number or e-mail").fill(DANA)
        page.get_by_role("button", name="Search").click()
        section = page.locator("section", has_text="WhatsApp: ")
        assert section.locator(".status").inner_text() == "unsubscribed"
        row = section.locator("tbody tr").first.inner_text()
        assert "opt-out" in row and "PLONK" in row and "\t2" in row  # keyword and config version
        assert page.locator("section", has_text="SMS: ").locator(".status").inner_text() == "unknown"
        page.screenshot(path=str(tmp_path / "admin-contact.png"), full_page=True)

        page.get_by_role("button", name="Sign out").click()
        page.goto(f"{admin.base}/admin/events")
        assert "/admin/login" in page.url
    finally:
        admin.stop()
        webhooks.stop()
