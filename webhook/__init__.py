"""unsub: per-channel marketing unsubscribe management.

The WSGI application is ``webhook:create_app()`` (see the Procfile).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable

from flask import Flask, Request, has_request_context, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_wtf.csrf import CSRFProtect

from webhook.configuration import KeywordConfigs
from webhook.consent import AddressHash, address_hasher
from webhook.database_check import check_reachable
from webhook.forwarding import forward_policy_problems
from webhook.keywords import ConfigProblem, KeywordConfig, KeywordConfigError, load_file
from webhook.matching import load_word_lists
from webhook.providers.twilio import SignatureChecker
from webhook.settings import Settings, SettingsError, from_env
from webhook.store import Store, StoreUnavailable, erasure_key_matches, open_store

__version__ = "0.1.0"
MAX_REQUEST_BYTES = 1024 * 1024

log = logging.getLogger("unsub")


class AdminOnlySessions(SecureCookieSessionInterface):
    """Session cookies exist for the admin pages only; webhooks and the API never pay for them."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not request.path.startswith("/admin"):
            return self.make_null_session(app)
        return super().open_session(app, request)


@dataclass
class Services:
    """What the edges need, built once per process by ``create_app``."""

    settings: Settings
    store: Store
    keywords: KeywordConfigs
    signatures: SignatureChecker
    # The keyed hash erased, suppressed addresses are kept as (from SECRET_KEY).
    address_hash: AddressHash

    @property
    def config(self) -> KeywordConfig:
        """The running keyword configuration (a newer saved version is picked up within seconds)."""
        return self.keywords.current()


def load_keywords(settings: Settings) -> KeywordConfig:
    try:
        return load_file(settings.keywords_file)
    except KeywordConfigError as error:
        first = error.problems[0]
        more = f" (and {len(error.problems) - 1} more)" if len(error.problems) > 1 else ""
        raise SettingsError(
            f"KEYWORDS_FILE {settings.keywords_file} is invalid: {first.path or 'document'}: {first.message}{more}; "
            f"run `unsub check {settings.keywords_file}` to list every problem"
        ) from None


def _policy(settings: Settings) -> Callable[[KeywordConfig], list[ConfigProblem]]:
    """The keyword rules that need this service's settings: forward URLs are https unless
    WEBHOOK_ALLOW_HTTP=1, and never this service's own /webhooks/twilio (checked against
    PUBLIC_BASE_URL and, on a save through the API or pages, the host it came to)."""

    def check(config: KeywordConfig) -> list[ConfigProblem]:
        bases = [settings.public_base_url or ""]
        if has_request_context():
            bases.append(request.host_url)
        return forward_policy_problems(config, settings.allow_http_webhooks, bases)

    return check


def create_app(settings: Settings | None = None, *, store: Store | None = None) -> Flask:
    """Build the WSGI app: settings -> store (migrated) -> keyword config -> blueprints.

    Without ``settings`` they are read from the environment, and a missing or bad
    setting stops start-up with SettingsError (one line naming the setting).
    """
    settings = settings or from_env()
    file_config = load_keywords(settings)  # a bad file stops start-up with one line
    if store is None:
        store = open_store(settings.database_url)
    address_hash = address_hasher(settings.erasure_key or settings.secret_key or "")
    store.use_erasure_hasher(address_hash)  # an erased contact's message ids stay duplicates
    try:
        check_reachable(settings.database_url)  # one line for a database that is down, not the pool's retries
        store.migrate()
        keywords = KeywordConfigs.start(store, settings.keywords_file, file_config)
        key_fits = erasure_key_matches(store, address_hash)
    except StoreUnavailable as error:
        raise SettingsError(f"DATABASE_URL cannot be used: {error}") from None
    except KeywordConfigError as error:
        first = error.problems[0]
        # The file would drop a channel in use, or the running stored version breaks a rule
        # added since it was saved (fix: change the file, which then becomes the new version).
        raise SettingsError(f"the keyword configuration cannot start ({error.source}): {first.path}: {first.message}; "
                            f"edit KEYWORDS_FILE {settings.keywords_file} to fix it") from None
    finally:
        # Workers forked after this open their own connections.
        store.close()
    if not key_fits:
        # Started with another key, erased contacts would not be recognised: sendable again.
        raise SettingsError(
            "ERASURE_KEY (or SECRET_KEY, without it) is not the key this database's erased contacts were "
            "hashed with; set ERASURE_KEY to the SECRET_KEY in force when they were erased"
        )

    keywords.policy = _policy(settings)
    problems = keywords.policy(keywords.loaded)
    if problems:
        raise SettingsError(f"the keyword configuration cannot run here: {problems[0].path}: {problems[0].message}")
    # The typo path's word lists (about 0.7 s to read): before the workers fork, not on a webhook.
    load_word_lists([channel.index for channel in keywords.loaded.channels.values()])

    app = Flask(__name__)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_REQUEST_BYTES,
        SECRET_KEY=settings.secret_key,
        JSON_SORT_KEYS=False,
        SESSION_COOKIE_NAME="unsub_admin",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(settings.public_base_url and settings.public_base_url.startswith("https:")),
        WTF_CSRF_TIME_LIMIT=None,  # valid for the whole (browser-session) sign-in
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),  # how long a signed session cookie is accepted
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    from webhook.web import observe

    observe.init_app(app, settings.metrics_token)  # first: every later hook's log lines carry the request id
    app.session_interface = AdminOnlySessions()
    app.extensions["unsub"] = Services(
        settings, store, keywords, SignatureChecker(settings.twilio_auth_token), address_hash
    )

    from webhook.web import (  # noqa: F401 (add routes)
        admin,
        admin_insights,
        admin_webhooks,
        api,
        api_data,
        api_webhooks,
        email,
        errors,
        health,
        mailgun_events,
        sendgrid_events,
        webhooks,
        whatsapp,
    )

    app.register_blueprint(webhooks.bp)
    app.register_blueprint(whatsapp.bp)
    app.register_blueprint(email.bp)
    # E-mail providers' events (complaints, unsubscribes): one blueprint per provider.
    app.register_blueprint(sendgrid_events.bp)
    app.register_blueprint(mailgun_events.bp)
    app.register_blueprint(admin.bp)
    # CSRF tokens on every admin form; the other endpoints authenticate otherwise
    # (Twilio signatures, bearer token, signed unsubscribe tokens).
    csrf = CSRFProtect(app)
    for other in (webhooks.bp, whatsapp.bp, api.bp, api_webhooks.bp, email.bp, sendgrid_events.bp, mailgun_events.bp,
                  health.bp):
        csrf.exempt(other)
    app.register_blueprint(api.bp)
    app.register_blueprint(api_webhooks.bp)
    app.register_blueprint(health.bp)
    errors.init_app(app)
    return app
