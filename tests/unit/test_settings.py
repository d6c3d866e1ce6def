from __future__ import annotations

import pytest

from webhook.settings import PACKAGED_KEYWORDS, SettingsError, from_env

GOOD = {"TWILIO_AUTH_TOKEN": "a" * 32, "SECRET_KEY": "b" * 32}


def test_defaults(tmp_path):
    settings = from_env(GOOD, cwd=tmp_path)
    assert settings.database_url == "sqlite:///unsub.db"
    assert settings.keywords_file == PACKAGED_KEYWORDS
    assert settings.admin_token is None
    assert settings.public_base_url is None


def test_keywords_file_in_working_directory_wins_over_packaged(tmp_path):
    (tmp_path / "keywords.yaml").write_text("brand: x\n")
    assert from_env(GOOD, cwd=tmp_path).keywords_file == tmp_path / "keywords.yaml"


@pytest.mark.parametrize(
    "env,needle",
    [
        ({"SECRET_KEY": "b" * 32}, "no provider is configured: set TWILIO_AUTH_TOKEN (Twilio) or WHATSAPP_APP_SECRET"),
        ({"TWILIO_AUTH_TOKEN": "a" * 32}, "SECRET_KEY is not set"),
        ({**GOOD, "ADMIN_TOKEN": "short"}, "ADMIN_TOKEN is shorter than 16"),
        ({**GOOD, "TWILIO_AUTH_TOKEN": "short"}, "TWILIO_AUTH_TOKEN is shorter than 16"),
        ({**GOOD, "DATABASE_URL": "mysql://x"}, "DATABASE_URL has unknown scheme 'mysql'"),
        ({**GOOD, "DATABASE_URL": "sqlite://x.db"}, "is not a SQLite URL"),
        ({**GOOD, "KEYWORDS_FILE": "/nonexistent/k.yaml"}, "KEYWORDS_FILE='/nonexistent/k.yaml' is not a readable file"),
        ({**GOOD, "PUBLIC_BASE_URL": "unsub.example.com"}, "PUBLIC_BASE_URL"),
        ({**GOOD, "DEFAULT_REGION": "XX"}, "DEFAULT_REGION"),
        ({**GOOD, "WHATSAPP_APP_SECRET": "short"}, "WHATSAPP_APP_SECRET is shorter than 16"),
        ({**GOOD, "WHATSAPP_VERIFY_TOKEN": "short"}, "WHATSAPP_VERIFY_TOKEN is shorter than 16"),
        ({**GOOD, "WHATSAPP_API_URL": "http://127.0.0.1:9/v21.0"}, "WHATSAPP_API_URL"),
        ({**GOOD, "WHATSAPP_API_URL": "graph.facebook.com"}, "WHATSAPP_API_URL"),
        ({**GOOD, "WEBHOOK_RETRY_SCHEDULE": "5s,soon"}, "WEBHOOK_RETRY_SCHEDULE"),
        ({**GOOD, "WEBHOOK_ALLOW_HTTP": "maybe"}, "WEBHOOK_ALLOW_HTTP"),
    ],
)
def test_bad_settings_stop_with_one_line_naming_the_setting(tmp_path, env, needle):
    with pytest.raises(SettingsError) as caught:
        from_env(env, cwd=tmp_path)
    assert needle in caught.value.message
    assert "\n" not in str(caught.value.code)
    assert str(caught.value.code).startswith("unsub: configuration error: ")


def test_local_mode_generates_secrets_once_and_keeps_them(tmp_path):
    first = from_env({}, local=True, cwd=tmp_path)
    second = from_env({}, local=True, cwd=tmp_path)
    assert first.twilio_auth_token == second.twilio_auth_token
    assert len(first.twilio_auth_token) >= 16 and first.admin_token and first.secret_key
    secrets_file = tmp_path / "instance" / "secrets.env"
    assert oct(secrets_file.stat().st_mode & 0o777) == "0o600"
    # The environment still wins over generated secrets.
    assert from_env({"TWILIO_AUTH_TOKEN": "c" * 20}, local=True, cwd=tmp_path).twilio_auth_token == "c" * 20


def test_each_provider_is_optional_but_one_is_needed(tmp_path):
    whatsapp_only = from_env({"SECRET_KEY": "b" * 32, "WHATSAPP_APP_SECRET": "w" * 32}, cwd=tmp_path)
    assert whatsapp_only.twilio_auth_token is None and whatsapp_only.whatsapp_app_secret == "w" * 32
    assert whatsapp_only.whatsapp_api_url == "https://graph.facebook.com/v21.0"
    assert from_env(GOOD, cwd=tmp_path).whatsapp_app_secret is None
    local = from_env({**GOOD, "WEBHOOK_ALLOW_HTTP": "1", "WHATSAPP_API_URL": "http://127.0.0.1:9/v21.0/"}, cwd=tmp_path)
    assert local.whatsapp_api_url == "http://127.0.0.1:9/v21.0" and local.allow_http_webhooks


def test_public_base_url_loses_its_trailing_slash(tmp_path):
    assert from_env({**GOOD, "PUBLIC_BASE_URL": "https://u.example.com/"}, cwd=tmp_path).public_base_url == "https://u.example.com"


def test_sqlite_url_options(tmp_path):
    assert from_env({**GOOD, "DATABASE_URL": "sqlite:///x.db?synchronous=full"}, cwd=tmp_path).database_url.endswith("?synchronous=full")
    with pytest.raises(SettingsError, match="synchronous=normal"):
        from_env({**GOOD, "DATABASE_URL": "sqlite:///x.db?journal=off"}, cwd=tmp_path)
