"""An admin widens SMS opt-outs to every automated message (issue 15) in headless Chromium: the
keyword page explains each choice and the FCC rule, saving the French page changes the channel's
scope for every language, the heading and the Keywords list show it, the page warns that the
replies still say "marketing", and the service (another request path, same server) gates flows."""

from __future__ import annotations

import pytest
import requests

from tests.browser import browser_page  # noqa: F401 (fixture)
from tests.conftest import ADMIN_TOKEN
from tests.e2e.test_admin_pages_browser import _server, _shot

pytestmark = pytest.mark.slow
ERIN = "+14155550188"


def test_an_admin_widens_the_sms_scope_and_the_service_gates_flows(browser_page, database_url, tmp_path):  # noqa: F811
    page = browser_page
    server = _server(database_url, tmp_path)
    api = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def audience(category: str) -> dict:
        body = {"channel": "sms", "category": category, "addresses": [ERIN]}
        return requests.post(f"{server.base}/api/v1/audience", json=body, headers=api, timeout=10).json()

    try:
        server.send("STOP", ERIN)
        assert audience("flow")["sendable"] == [ERIN]  # the default: campaigns only

        page.goto(f"{server.base}/admin/login")
        page.get_by_label("Admin token").fill(ADMIN_TOKEN)
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"{server.base}/admin/keywords")
        sms_row = page.locator("tr", has_text="sms").first
        assert "campaigns (campaign)" in sms_row.locator("td.scope").inner_text()

        page.get_by_role("link", name="Edit sms fr").click()
        assert page.locator("h1").inner_text() == "Keywords: SMS, French"
        assert "stops campaigns (revocation scope campaign" in page.locator("#scope-summary").inner_text()
        select = page.get_by_label("What an opt-out stops")
        assert select.input_value() == "campaign"
        choices = page.locator("#scope-choices").inner_text()
        assert "automated: campaign and flow messages" in choices and "inbox replies still go out" in choices
        assert "47 CFR 64.1200(a)(10)" in choices and "2027-01-31" in choices
        assert page.locator("#scope-warnings").count() == 0

        select.select_option("automated")
        page.get_by_role("button", name="Save as a new version").click()
        assert "Saved as version 2." in page.inner_text(".flash")
        assert page.url.endswith("/admin/keywords/sms/fr")
        assert "stops campaigns and flows" in page.locator("#scope-summary").inner_text()
        warnings = page.locator("#scope-warnings").inner_text()
        assert 'still say "marketing"' in warnings
        assert "opt-out reply: English, French, Spanish, Portuguese, German" in warnings  # the channel's, every language
        _shot(page, tmp_path, "revocation-scope-saved")

        page.goto(f"{server.base}/admin/keywords/sms/en")  # another language's page: the same channel scope
        assert page.get_by_label("What an opt-out stops").input_value() == "automated"
        page.goto(f"{server.base}/admin/keywords/whatsapp/en")
        assert page.get_by_label("What an opt-out stops").input_value() == "campaign"
        page.goto(f"{server.base}/admin/keywords")
        assert "campaigns and flows (automated)" in page.locator("tr", has_text="sms").first.inner_text()
        assert 'replies still say "marketing"' in page.locator("tr", has_text="sms").first.inner_text()
        _shot(page, tmp_path, "revocation-scope-list")

        page.get_by_role("link", name="Events").click()
        changed = page.locator("#scope-changes").inner_text()
        assert "sms: campaigns (campaign) → campaigns and flows (automated), version 2" in changed
        page.get_by_role("link", name="version 2").click()
        assert "revocation_scope: automated" in page.inner_text("main")  # the version's diff
        _shot(page, tmp_path, "revocation-scope-version")

        # The existing opt-out now holds back flows; inbox replies still go out.
        assert audience("flow")["suppressed"] == [ERIN] and audience("inbox")["sendable"] == [ERIN]
        found = requests.get(f"{server.base}/api/v1/subscriptions/sms/{ERIN}", headers=api, timeout=10).json()
        assert found["gated_categories"] == ["campaign", "flow"]
    finally:
        server.stop()
