"""Shared fixtures: settings on a fresh database per test, an app, a client that signs like Twilio.

Backends: every test that takes ``database_url`` runs on SQLite, and on PostgreSQL too
when UNSUB_TEST_POSTGRES_URL is set (``.ci/run`` sets it; see README "Tests").
"""

from __future__ import annotations

import itertools
import os
import re
import uuid
from pathlib import Path
from typing import Callable

import pytest

from webhook import create_app
from webhook.providers.twilio import SIGNATURE_HEADER, signature_for
from webhook.settings import PACKAGED_KEYWORDS, Settings

AUTH_TOKEN = "test-auth-token-0123456789"
ADMIN_TOKEN = "test-admin-token-0123456789"
SECRET_KEY = "test-secret-key-0123456789"
DATA = Path(__file__).parent / "data"
POSTGRES_URL = os.environ.get("UNSUB_TEST_POSTGRES_URL")

_sids = itertools.count(1)


def new_sid() -> str:
    return f"SM{uuid.uuid4().hex}"


def csrf(page: bytes) -> str:
    """The CSRF token of an admin page's form."""
    found = re.search(rb'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no CSRF token"
    return found.group(1).decode()


def backends() -> list:
    found = [pytest.param("sqlite", id="sqlite")]
    if POSTGRES_URL:
        found.append(pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres))
    return found


@pytest.fixture(params=backends())
def database_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'unsub.db'}"
    from tests.pg import fresh_database

    return fresh_database(request)


def make_settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        keywords_file=PACKAGED_KEYWORDS,
        twilio_auth_token=AUTH_TOKEN,
        admin_token=ADMIN_TOKEN,
        secret_key=SECRET_KEY,
    )


@pytest.fixture
def settings(database_url) -> Settings:
    return make_settings(database_url)


@pytest.fixture
def app(settings):
    app = create_app(settings)
    yield app
    app.extensions["unsub"].store.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def store(app):
    return app.extensions["unsub"].store


class Twilio:
    """Posts form-encoded requests signed the way Twilio signs them."""

    def __init__(self, client, token: str = AUTH_TOKEN, base: str = "http://localhost") -> None:
        self.client = client
        self.token = token
        self.base = base

    def post(self, path: str, params: dict[str, str], *, token: str | None = None, signature: str | None = None, base: str | None = None):
        url = (base or self.base) + path
        sig = signature if signature is not None else signature_for(token or self.token, url, params)
        return self.client.post(path, data=params, headers={SIGNATURE_HEADER: sig})

    def message(self, body: str, *, sender: str = "+14155550123", to: str = "+14155550100", sid: str | None = None, whatsapp: bool = False, **extra: str):
        prefix = "whatsapp:" if whatsapp else ""
        params = {"MessageSid": sid or new_sid(), "AccountSid": "AC" + "0" * 32, "From": prefix + sender, "To": prefix + to, "Body": body, "NumMedia": "0", **extra}
        return self.post("/webhooks/twilio", params)


@pytest.fixture
def twilio(client) -> Twilio:
    return Twilio(client)


@pytest.fixture
def signed_in(client):
    """The client, signed in to the admin pages (through the sign-in form, CSRF token included)."""
    page = client.get("/admin/login")
    response = client.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": csrf(page.data), "next": "/admin/events"})
    assert response.status_code == 302 and response.location.endswith("/admin/events")
    return client


@pytest.fixture
def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def status_of(client, admin_headers) -> Callable[[str, str], str]:
    def status(channel: str, address: str) -> str:
        response = client.get(f"/api/v1/subscriptions/{channel}/{address}", headers=admin_headers)
        assert response.status_code == 200, response.json
        return response.json["status"]

    return status


POSTGRES_HINT = (
    "PostgreSQL tests are off: set UNSUB_TEST_POSTGRES_URL=postgresql://postgres@127.0.0.1:5432/test "
    "(a user that may create databases) to run every store, webhook and API test on PostgreSQL too"
)


def pytest_report_header(config) -> str:
    return f"backends: sqlite, postgresql ({POSTGRES_URL})" if POSTGRES_URL else f"backends: sqlite only. {POSTGRES_HINT}"


def pytest_terminal_summary(terminalreporter) -> None:
    if not POSTGRES_URL:
        terminalreporter.write_line(POSTGRES_HINT)
