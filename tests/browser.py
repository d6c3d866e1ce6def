"""Headless Chromium through Playwright, with Debian's chromium (Playwright's own download does
not work here). Without it the browser tests skip and say how to enable them; with
UNSUB_REQUIRE_BROWSER=1 (set by .ci/run) they fail instead."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = os.environ.get("UNSUB_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
HINT = "browser tests need Chromium and Playwright: apt-get install chromium && pip install playwright (or set UNSUB_CHROMIUM)"


@pytest.fixture
def browser_page():
    missing = not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM))
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing = True
    if missing:
        if os.environ.get("UNSUB_REQUIRE_BROWSER"):
            pytest.fail(HINT)
        pytest.skip(HINT)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(10_000)
            yield page
        finally:
            browser.close()
