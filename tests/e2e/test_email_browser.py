"""The unsubscribe page in a real headless Chromium, against a real server process."""

from __future__ import annotations

import pytest

from tests.browser import browser_page  # noqa: F401 (fixture)
from tests.conftest import SECRET_KEY
from tests.e2e.servers import gunicorn
from webhook.email_tokens import make_token
from webhook.store import open_store

pytestmark = pytest.mark.slow
CAROL = "carol@example.com"


def test_unsubscribe_page_in_a_browser(browser_page, database_url, tmp_path):  # noqa: F811
    page = browser_page
    server = gunicorn(database_url, tmp_path, workers=1)
    db = open_store(database_url)
    try:
        url = f"{server.base}/unsubscribe/{make_token(SECRET_KEY, 'email', CAROL)}"
        page.goto(url)
        assert page.title() == "Unsubscribe"
        assert "Stop marketing e-mails from Example Co to carol@example.com?" in page.inner_text("#question")
        assert db.subscription("email", CAROL) is None  # loading the page changed nothing

        page.get_by_label("Not relevant to me").check()
        page.get_by_label("Tell us more (optional)").fill("wrong products")
        page.get_by_role("button", name="Unsubscribe").click()
        assert "You are unsubscribed." in page.inner_text("#status")
        assert page.url.startswith(url)  # no redirect away from the page
        assert db.subscription("email", CAROL).status == "unsubscribed"
        assert db.history("email", CAROL)[-1].reason == "not_relevant: wrong products"

        page.get_by_role("button", name="Subscribe again").click()
        assert "subscribed again" in page.inner_text("#status")
        assert db.subscription("email", CAROL).status == "subscribed"

        page.get_by_role("link", name="FR").click()
        assert page.locator("html").get_attribute("lang") == "fr"
        assert "Ne plus recevoir" in page.inner_text("#question")
        page.screenshot(path=str(tmp_path / "unsubscribe-fr.png"))
    finally:
        db.close()
        server.stop()
