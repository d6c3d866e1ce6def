"""Every setting of the service, declared once and read once at start-up.

The table in README.md ("Settings") is generated from ``SETTINGS`` and a test
fails when the two disagree, so a new setting cannot go undocumented.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Mapping
from urllib.parse import parse_qsl, urlsplit

from webhook.outbox import DEFAULT_RETRY_SCHEDULE, check_endpoint_url, parse_retry_schedule

MIN_SECRET_LENGTH = 16
# Generated for local development (`unsub serve`), so a newcomer can simulate both providers.
SECRET_NAMES = ("TWILIO_AUTH_TOKEN", "SECRET_KEY", "ADMIN_TOKEN", "WHATSAPP_APP_SECRET", "WHATSAPP_VERIFY_TOKEN")
OPTIONAL_SECRETS = ("SENDGRID_INBOUND_SECRET", "MAILGUN_SIGNING_KEY", "ERASURE_KEY", "WHATSAPP_ACCESS_TOKEN", "METRICS_TOKEN")
LOG_FORMATS = ("text", "json")
# A provider is configured by its secret; at least one must be.
PROVIDER_SECRETS = ("TWILIO_AUTH_TOKEN", "WHATSAPP_APP_SECRET")
DEFAULT_WHATSAPP_API_URL = "https://graph.facebook.com/v21.0"
PACKAGED_KEYWORDS = Path(__file__).with_name("keywords.yaml")


@dataclass(frozen=True)
class SettingSpec:
    name: str
    default: str
    help: str


SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec("PORT", "none (Procfile)", "Port the Procfile `web:` process listens on."),
    SettingSpec(
        "DATABASE_URL",
        "`sqlite:///unsub.db`",
        "`sqlite:///relative.db`, `sqlite:////absolute/path.db` (add `?synchronous=full` to "
        "fsync every commit) or `postgresql://user@host:port/db` (also `postgres://`).",
    ),
    SettingSpec(
        "KEYWORDS_FILE",
        "`keywords.yaml` in the working directory, else the packaged default",
        "Path of the keyword configuration admins edit.",
    ),
    SettingSpec(
        "TWILIO_AUTH_TOKEN",
        "none: `/webhooks/twilio` refuses every request (403)",
        "Token Twilio signs webhooks with. Production needs it or `WHATSAPP_APP_SECRET` (at least one provider).",
    ),
    SettingSpec(
        "WHATSAPP_APP_SECRET",
        "none: `/webhooks/whatsapp` refuses every POST (403)",
        "Meta app secret; checks `X-Hub-Signature-256` on `/webhooks/whatsapp` (WhatsApp Cloud API).",
    ),
    SettingSpec(
        "WHATSAPP_VERIFY_TOKEN",
        "none: the handshake is refused (403)",
        "The token Meta's verification handshake must present (`GET /webhooks/whatsapp`; 16+ characters).",
    ),
    SettingSpec(
        "WHATSAPP_ACCESS_TOKEN",
        "none: no replies are sent (logged once)",
        "Bearer token for sending confirmations through the WhatsApp Cloud API (the worker sends them).",
    ),
    SettingSpec(
        "WHATSAPP_API_URL",
        "`https://graph.facebook.com/v21.0`",
        "Base of the WhatsApp Cloud API, version included (`http://` only with `WEBHOOK_ALLOW_HTTP=1`).",
    ),
    SettingSpec(
        "ADMIN_TOKEN",
        "none: admin surface disabled (401)",
        "Bearer token for `/api/v1` and the admin sign-in (16+ characters).",
    ),
    SettingSpec(
        "SECRET_KEY",
        "none",
        "Signs e-mail unsubscribe tokens and admin session cookies, and (without `ERASURE_KEY`) keys the "
        "hashes that keep erased contacts suppressed. A new one breaks every link already sent. "
        "Required in production.",
    ),
    SettingSpec(
        "PUBLIC_BASE_URL",
        "the request's own URL",
        "External base URL (e.g. `https://unsub.example.com`); rebuilds the URL Twilio "
        "signed when the app runs behind a proxy or TLS terminator.",
    ),
    SettingSpec(
        "SENDGRID_INBOUND_SECRET",
        "none: the SendGrid inbound-mail webhook refuses everything (403)",
        "Secret path segment of the SendGrid Inbound Parse URL "
        "(`/webhooks/email/sendgrid/SECRET`, 16+ characters).",
    ),
    SettingSpec(
        "MAILGUN_SIGNING_KEY",
        "none: both Mailgun routes refuse everything (403)",
        "Mailgun's HTTP webhook signing key; checks the signatures of `/webhooks/email/mailgun` (inbound mail) and "
        "`/webhooks/email/mailgun/events` (complaints and unsubscribes).",
    ),
    SettingSpec(
        "SENDGRID_EVENT_PUBLIC_KEY",
        "none: `/webhooks/email/sendgrid/events` refuses everything (403)",
        "The Verification Key SendGrid shows for its Signed Event Webhook (base64); checks the ECDSA signature of "
        "`/webhooks/email/sendgrid/events` (complaints and unsubscribes). A public key: not a secret.",
    ),
    SettingSpec(
        "DEFAULT_REGION",
        "none",
        "Two-letter country code used to read phone numbers written without `+` "
        "(admin API and audience lists), e.g. `US`.",
    ),
    SettingSpec(
        "ERASURE_KEY",
        "`SECRET_KEY`",
        "Key of the hashes that keep erased contacts suppressed. When you change `SECRET_KEY`, set this "
        "to its old value: started with another key than the erasures were made with, the service refuses "
        "to start rather than forget them.",
    ),
    SettingSpec(
        "ATTRIBUTION_WINDOW_HOURS",
        "`72`",
        "An opt-out counts against the latest campaign message delivered to that address on "
        "that channel within this many hours before it (1 to 720).",
    ),
    SettingSpec(
        "WEBHOOK_RETRY_SCHEDULE",
        "Standard Webhooks' schedule: 5s, 5m, 30m, 2h, 5h, 10h, 14h, 20h, 24h",
        "Delays between delivery attempts of consent webhooks, comma-separated (`5s,5m,30m,2h`); after the "
        "last one a delivery is marked failed.",
    ),
    SettingSpec(
        "WEBHOOK_ALLOW_HTTP",
        "off",
        "`1` lets webhook endpoints use plain `http://` (local testing); otherwise only `https://`.",
    ),
    SettingSpec(
        "METRICS_TOKEN",
        "none: `/metrics` does not exist (404) and nothing is counted",
        "Bearer token Prometheus presents to `GET /metrics` (and to `unsub worker --metrics-port`); 16+ "
        "characters. See Monitoring.",
    ),
    SettingSpec(
        "PROMETHEUS_MULTIPROC_DIR",
        "a new temporary directory, removed at exit",
        "Where the Procfile's web workers add up their metrics (with `METRICS_TOKEN`); prometheus_client's own "
        "files in it (`counter_*.db`, `gauge_*_*.db`, `histogram_*.db`, `summary_*.db`) are removed when the web "
        "process starts, nothing else. Give each web process its own.",
    ),
    SettingSpec(
        "LOG_FORMAT",
        "`text`",
        "`json`: every log line (gunicorn's access and error logs, the app's, the worker's) is one JSON object "
        "with `time`, `level`, `logger`, `message` (and `method`, `route`, `status`, `duration_ms`, `request_id` "
        "for requests). Both formats are masked.",
    ),
)


class SettingsError(SystemExit):
    """A setting is missing or wrong. Uncaught, it prints its one-line message and exits 1."""

    def __init__(self, message: str) -> None:
        super().__init__(f"unsub: configuration error: {message}")
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///unsub.db"
    keywords_file: Path = PACKAGED_KEYWORDS
    twilio_auth_token: str | None = None
    admin_token: str | None = None
    secret_key: str | None = None
    public_base_url: str | None = None
    default_region: str | None = None
    sendgrid_inbound_secret: str | None = None
    mailgun_signing_key: str | None = None
    erasure_key: str | None = None
    attribution_window_hours: int = 72
    retry_schedule: tuple[timedelta, ...] = DEFAULT_RETRY_SCHEDULE
    allow_http_webhooks: bool = False
    whatsapp_app_secret: str | None = None
    whatsapp_verify_token: str | None = None
    whatsapp_access_token: str | None = None
    whatsapp_api_url: str = DEFAULT_WHATSAPP_API_URL
    sendgrid_event_public_key: str | None = None
    metrics_token: str | None = None
    log_format: str = "text"
    # Where generated local-development secrets live (None in production).
    instance_path: Path | None = None

    def with_changes(self, **changes: object) -> "Settings":
        return replace(self, **changes)  # type: ignore[arg-type]


def check_database_url(url: str) -> str:
    """The URL if it names a SQLite or PostgreSQL database, else SettingsError."""
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite":
        path, _, query = url.partition("?")
        if not path.startswith("sqlite:///") or path == "sqlite:///":
            raise SettingsError(
                f"DATABASE_URL={url!r} is not a SQLite URL; use sqlite:///relative.db "
                "or sqlite:////absolute/path.db"
            )
        options = dict(parse_qsl(query, keep_blank_values=True))
        unknown = set(options) - {"synchronous"}
        if unknown or options.get("synchronous", "normal").lower() not in ("normal", "full"):
            raise SettingsError(
                f"DATABASE_URL={url!r}: the only SQLite option is ?synchronous=normal (default) or ?synchronous=full"
            )
        return url
    if scheme in ("postgresql", "postgres"):
        return url
    raise SettingsError(
        f"DATABASE_URL has unknown scheme {scheme or '(none)'!r}; use sqlite:///unsub.db "
        "or postgresql://user@host:5432/dbname"
    )


def _check_public_base_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(
            f"PUBLIC_BASE_URL={url!r} is not an http(s) URL; set it to the address Twilio "
            "calls, e.g. https://unsub.example.com"
        )
    if parts.query or parts.fragment:
        raise SettingsError("PUBLIC_BASE_URL must not have a query or fragment")
    return url.rstrip("/")


def _resolve_keywords_file(value: str | None, cwd: Path) -> Path:
    if value:
        path = Path(value)
        if not path.is_absolute():
            path = cwd / path
        if not path.is_file():
            raise SettingsError(
                f"KEYWORDS_FILE={value!r} is not a readable file; point it at your "
                "keywords.yaml or unset it to use the packaged default"
            )
        return path
    local = cwd / "keywords.yaml"
    return local if local.is_file() else PACKAGED_KEYWORDS


def check_window(value: str) -> int:
    try:
        hours = int(value.strip())
    except ValueError:
        hours = 0
    if not 1 <= hours <= 720:
        raise SettingsError(f"ATTRIBUTION_WINDOW_HOURS={value!r} is not a whole number of hours from 1 to 720 (default 72)")
    return hours


def _check_schedule(value: str) -> tuple[timedelta, ...]:
    try:
        return parse_retry_schedule(value)
    except ValueError as error:
        raise SettingsError(f"WEBHOOK_RETRY_SCHEDULE={value[:100]!r}: {error} (e.g. 5s,5m,30m,2h)") from None


def _check_api_url(value: str, allow_http: bool) -> str:
    try:
        return check_endpoint_url(value.rstrip("/"), allow_http)
    except ValueError as error:
        raise SettingsError(f"WHATSAPP_API_URL={value[:100]!r}: {error}") from None


def _check_sendgrid_key(value: str) -> str:
    from webhook.providers.sendgrid_events import InvalidKey, public_key

    try:
        public_key(value)
    except InvalidKey as error:
        raise SettingsError(
            f"SENDGRID_EVENT_PUBLIC_KEY is {error}; paste the Verification Key SendGrid shows under Mail Settings, "
            "Event Webhook, Signed Event Webhook (it starts with MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE)"
        ) from None
    return value.strip()


def _check_flag(name: str, value: str) -> bool:
    text = value.strip().lower()
    if text in ("", "0", "false", "no", "off"):
        return False
    if text in ("1", "true", "yes", "on"):
        return True
    raise SettingsError(f"{name}={value[:40]!r} is not 1 or 0")


def _check_log_format(value: str) -> str:
    text = value.strip().lower()
    if text not in LOG_FORMATS:
        raise SettingsError(f"LOG_FORMAT={value[:40]!r} is not text or json")
    return text


def _check_region(value: str) -> str:
    import phonenumbers

    region = value.strip().upper()
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise SettingsError(f"DEFAULT_REGION={value!r} is not a known two-letter country code (e.g. US, GB, FR)")
    return region


def load_local_secrets(instance_path: Path) -> dict[str, str]:
    """Read (creating on first use) the generated secrets of a local development instance."""
    path = instance_path / "secrets.env"
    found: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            name, sep, value = line.partition("=")
            if sep and name.strip() in SECRET_NAMES:
                found[name.strip()] = value.strip()
    missing = [name for name in SECRET_NAMES if name not in found]
    if missing:
        instance_path.mkdir(parents=True, exist_ok=True)
        for name in missing:
            found[name] = secrets.token_urlsafe(24)
        body = "# Generated by `unsub serve` for local development only. Never use in production.\n"
        body += "".join(f"{name}={found[name]}\n" for name in SECRET_NAMES)
        path.write_text(body, encoding="utf-8")
        path.chmod(0o600)
    return found


def from_env(
    environ: Mapping[str, str] | None = None,
    *,
    local: bool = False,
    cwd: Path | None = None,
) -> Settings:
    """Read and check every setting. ``local=True`` generates missing secrets into ./instance.

    Raises SettingsError with one line naming the setting and the fix.
    """
    env = dict(os.environ if environ is None else environ)
    cwd = cwd or Path.cwd()
    instance_path: Path | None = None
    if local:
        instance_path = cwd / "instance"
        generated = load_local_secrets(instance_path)
        for name in SECRET_NAMES:
            if not env.get(name):
                env[name] = generated[name]

    for name in SECRET_NAMES + OPTIONAL_SECRETS:
        value = env.get(name)
        if value is not None and value != "" and len(value) < MIN_SECRET_LENGTH:
            raise SettingsError(f"{name} is shorter than {MIN_SECRET_LENGTH} characters; use a long random value")
    if not env.get("SECRET_KEY"):
        raise SettingsError(
            "SECRET_KEY is not set; set it in the environment (production), or run "
            "`unsub serve` for local development with generated secrets"
        )
    if not any(env.get(name) for name in PROVIDER_SECRETS):
        raise SettingsError(
            "no provider is configured: set TWILIO_AUTH_TOKEN (Twilio) or WHATSAPP_APP_SECRET (WhatsApp Cloud API), "
            "or both; or run `unsub serve` for local development with generated secrets"
        )
    allow_http = _check_flag("WEBHOOK_ALLOW_HTTP", env.get("WEBHOOK_ALLOW_HTTP", ""))

    public = env.get("PUBLIC_BASE_URL") or None
    region = env.get("DEFAULT_REGION") or None
    return Settings(
        database_url=check_database_url(env.get("DATABASE_URL") or "sqlite:///unsub.db"),
        keywords_file=_resolve_keywords_file(env.get("KEYWORDS_FILE") or None, cwd),
        twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or None,
        admin_token=env.get("ADMIN_TOKEN") or None,
        secret_key=env["SECRET_KEY"],
        public_base_url=_check_public_base_url(public) if public else None,
        default_region=_check_region(region) if region else None,
        sendgrid_inbound_secret=env.get("SENDGRID_INBOUND_SECRET") or None,
        mailgun_signing_key=env.get("MAILGUN_SIGNING_KEY") or None,
        erasure_key=env.get("ERASURE_KEY") or None,
        attribution_window_hours=check_window(env["ATTRIBUTION_WINDOW_HOURS"]) if env.get("ATTRIBUTION_WINDOW_HOURS") else 72,
        retry_schedule=_check_schedule(env["WEBHOOK_RETRY_SCHEDULE"]) if env.get("WEBHOOK_RETRY_SCHEDULE")
        else DEFAULT_RETRY_SCHEDULE,
        allow_http_webhooks=allow_http,
        whatsapp_app_secret=env.get("WHATSAPP_APP_SECRET") or None,
        whatsapp_verify_token=env.get("WHATSAPP_VERIFY_TOKEN") or None,
        whatsapp_access_token=env.get("WHATSAPP_ACCESS_TOKEN") or None,
        whatsapp_api_url=_check_api_url(env.get("WHATSAPP_API_URL") or DEFAULT_WHATSAPP_API_URL, allow_http),
        sendgrid_event_public_key=_check_sendgrid_key(env["SENDGRID_EVENT_PUBLIC_KEY"])
        if env.get("SENDGRID_EVENT_PUBLIC_KEY") else None,
        metrics_token=env.get("METRICS_TOKEN") or None,
        log_format=_check_log_format(env.get("LOG_FORMAT") or "text"),
        instance_path=instance_path,
    )


def sqlite_path(database_url: str, cwd: Path | None = None) -> Path:
    """The file a ``sqlite:///`` URL names (relative to the working directory)."""
    raw = database_url[len("sqlite:///"):].partition("?")[0]
    path = Path(raw)
    return path if path.is_absolute() else (cwd or Path.cwd()) / path
