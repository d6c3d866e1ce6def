"""The Webhooks admin page as an admin uses it, in headless Chromium (issue 12): add an
endpoint pointing at a local receiver, copy the secret shown once, send a test event that the
Procfile's worker delivers, and read its answer on the deliveries page; a test event the
receiver refuses fails, shows why, and goes out again with Retry."""

from __future__ import annotations

import json
import os
import time
from typing import Callable

import pytest
from standardwebhooks.webhooks import Webhook

from tests.browser import browser_page  # noqa: F401 (fixture)
from tests.conftest import ADMIN_TOKEN
from tests.e2e.receiver import Answer, Receiver
from tests.e2e.servers import WorkerProcess, gunicorn

pytestmark = pytest.mark.slow
SCREENSHOTS = os.environ.get("UNSUB_SCREENSHOTS")  # a folder to keep the screenshots in, for a person to look at
# http:// for the local receiver; one retry a second after a failure, so a delivery fails within seconds.
ENV = {"WEBHOOK_ALLOW_HTTP": "1", "WEBHOOK_RETRY_SCHEDULE": "1s"}
ANSWERS = [
    Answer(200, body=b'{"received": true, "note": "thanks from the CRM"}'),
    Answer(500, body=b"<h1>Down for maintenance</h1> try later"),
    Answer(500, body=b"<h1>Down for maintenance</h1> try later"),
]


def _shot(page, tmp_path, name: str) -> None:
    folder = SCREENSHOTS or str(tmp_path)
    page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


def _reload_until(page, check: Callable[[], bool], seconds: float = 20) -> None:
    """Reload, as an admin waiting for the worker would, until ``check`` holds."""
    deadline = time.monotonic() + seconds
    while True:
        page.reload()
        if check():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds}s:\n{page.inner_text('main')[:3000]}")
        time.sleep(0.3)


def test_an_admin_adds_an_endpoint_sends_a_test_event_and_reads_the_answer(browser_page, database_url, tmp_path):  # noqa: F811
    page = browser_page
    receiver = Receiver(lambda got, count: ANSWERS[count] if count < len(ANSWERS) else Answer(200, body=b"ok again"))
    server = gunicorn(database_url, tmp_path, workers=1, env=ENV)
    worker = None
    try:
        page.goto(f"{server.base}/admin/login")
        page.get_by_label("Admin token").fill(ADMIN_TOKEN)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("navigation", name="Admin").get_by_role("link", name="Webhooks").click()
        assert page.locator("h1").inner_text() == "Webhooks" and "No endpoint yet" in page.inner_text("main")

        # A refused URL says why and keeps what was typed.
        page.get_by_label("URL the deliveries are POSTed to").fill("ftp://127.0.0.1/hooks")
        page.get_by_role("button", name="Add endpoint").click()
        assert "must be an absolute https:// or http:// URL" in page.locator("#add-error").inner_text()
        assert page.get_by_label("URL the deliveries are POSTed to").input_value() == "ftp://127.0.0.1/hooks"

        page.get_by_label("URL the deliveries are POSTed to").fill(receiver.url)
        page.get_by_label("Description").fill("CRM (local receiver)")
        page.get_by_role("button", name="Add endpoint").click()
        assert page.locator("h1").inner_text() == "Endpoint added"
        secret = page.locator("#secret").inner_text().strip()
        assert secret.startswith("whsec_")
        assert "Copy it now: it is not shown again." in page.get_by_role("alert").inner_text()
        _shot(page, tmp_path, "webhook-added")

        worker = WorkerProcess(database_url, tmp_path, env=ENV)
        page.get_by_role("button", name="Send a test event").click()
        assert page.url.endswith("/deliveries") and "Test event queued as delivery" in page.inner_text("main")
        got = receiver.wait_for(lambda r: len(r) == 1 and r[0].finished > 0, 15)
        assert Webhook(secret).verify(got[0].body, got[0].headers)["type"] == "ping"  # the secret shown signs it
        first = page.locator("article.delivery").first
        _reload_until(page, lambda: "delivered" in first.locator("h2").inner_text())
        attempts = first.locator("table.attempts").inner_text()
        assert "200" in attempts and '{"received": true, "note": "thanks from the CRM"}' in attempts and " ms" in attempts

        # A second test event: the receiver answers 500 twice, the delivery fails and says why.
        page.get_by_role("button", name="Send a test event").click()
        receiver.wait_for(lambda r: len(r) == 3 and r[2].finished > 0, 15)
        _reload_until(page, lambda: "failed" in first.locator("h2").inner_text())
        assert page.locator("article.delivery").count() == 2
        attempts = first.locator("table.attempts").inner_text()
        assert attempts.count("500") == 2 and "<h1>Down for maintenance</h1> try later" in attempts  # shown, not rendered
        first.locator("summary", has_text="Payload").click()
        payload = json.loads(first.locator("pre.payload").inner_text())
        assert payload["type"] == "ping" and payload["data"]["message"] == "a test event sent by an admin"
        _shot(page, tmp_path, "webhook-deliveries")

        first.get_by_role("button", name="Retry").click()
        assert "goes out again now" in page.get_by_role("status").inner_text()
        receiver.wait_for(lambda r: len(r) == 4 and r[3].finished > 0, 15)
        _reload_until(page, lambda: "delivered" in first.locator("h2").inner_text())
        assert "ok again" in first.locator("table.attempts").inner_text()
        assert "3 (1 since it was retried)" in first.locator("dl.facts").inner_text()
        _shot(page, tmp_path, "webhook-deliveries-retried")

        # The list: the endpoint with its state, and never its secret.
        page.get_by_role("link", name="← Webhooks").click()
        row = page.locator("#endpoints tbody tr").first
        assert receiver.url in row.inner_text() and "CRM (local receiver)" in row.inner_text() and "Enabled" in row.inner_text()
        assert secret not in page.content() and "whsec_" not in page.content()
        _shot(page, tmp_path, "webhooks")

        # Delete asks first.
        page.get_by_role("link", name="Delete endpoint 1").click()
        assert page.locator("h1").inner_text() == "Delete this endpoint?" and receiver.url in page.inner_text("main")
        _shot(page, tmp_path, "webhook-delete")
        page.get_by_role("button", name="Delete endpoint").click()
        assert "Deleted endpoint 1 (127.0.0.1)" in page.get_by_role("status").inner_text()
        assert "No endpoint yet" in page.inner_text("main")
    finally:
        if worker is not None:
            worker.stop()
        server.stop()
        receiver.close()
