"""Per-channel revocation scope (issue 15) through the real app, API, CLI and database (SQLite,
and PostgreSQL when enabled): what a STOP gates under `campaign`, `automated` and `all`, what
`gated_categories` says, a bad value refused with its path, and a change of scope applying to
existing opt-outs from that moment without rewriting the consent log."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner

from tests.conftest import SECRET_KEY
from webhook.cli import main
from webhook.email_tokens import make_token
from webhook.settings import PACKAGED_KEYWORDS

ALICE, BOB, CARA = "+14155550123", "+14155550124", "+14155550125"
CATEGORIES = ("campaign", "inbox", "flow")


def set_scopes(client, headers, **scopes: str):
    """Save a keyword version with these channels' scopes, as an integration would (PUT /keywords)."""
    document = client.get("/api/v1/keywords", headers=headers).json["document"]
    for channel, scope in scopes.items():
        document["channels"][channel]["revocation_scope"] = scope
    response = client.put("/api/v1/keywords", json=document, headers=headers)
    assert response.status_code == 200 and response.json["created"], response.json
    return response.json["version"]


def split(client, headers, channel: str, category: str, addresses: list[str]) -> dict:
    response = client.post("/api/v1/audience", json={"channel": channel, "category": category, "addresses": addresses},
                           headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def gated(client, headers, channel: str, address: str) -> list[str]:
    body = client.get(f"/api/v1/subscriptions/{channel}/{address}", headers=headers).json
    assert {"channel", "address", "status", "updated_at", "history"} <= set(body)  # existing keys stay
    return body["gated_categories"]


def test_automated_on_sms_gates_campaign_and_flow_and_whatsapp_keeps_the_default(client, admin_headers, twilio):
    set_scopes(client, admin_headers, sms="automated")
    assert b"unsubscribed" in twilio.message("STOP", sender=ALICE).data
    assert b"unsubscribed" in twilio.message("STOP", sender=ALICE, whatsapp=True).data
    everyone = [ALICE, BOB]
    for category in ("campaign", "flow"):
        assert split(client, admin_headers, "sms", category, everyone) == {
            "sendable": [BOB], "suppressed": [ALICE], "invalid": []}, category
    assert split(client, admin_headers, "sms", "inbox", everyone)["sendable"] == [ALICE, BOB]
    # WhatsApp keeps the default: campaigns only.
    assert split(client, admin_headers, "whatsapp", "campaign", everyone)["suppressed"] == [ALICE]
    for category in ("flow", "inbox"):
        assert split(client, admin_headers, "whatsapp", category, everyone)["sendable"] == [ALICE, BOB], category

    assert gated(client, admin_headers, "sms", ALICE) == ["campaign", "flow"]
    assert gated(client, admin_headers, "whatsapp", ALICE) == ["campaign"]
    assert gated(client, admin_headers, "sms", BOB) == []  # unknown
    assert gated(client, admin_headers, "email", "alice@example.com") == []
    twilio.message("START", sender=ALICE)
    assert gated(client, admin_headers, "sms", ALICE) == []  # subscribed again
    assert split(client, admin_headers, "sms", "flow", [ALICE])["sendable"] == [ALICE]


def test_all_gates_every_category(client, admin_headers, twilio):
    set_scopes(client, admin_headers, sms="all", email="all")
    twilio.message("STOP", sender=ALICE)
    client.put("/api/v1/subscriptions/email/cara@example.com", json={"status": "unsubscribed", "reason": "phone call"},
               headers=admin_headers)
    for category in CATEGORIES:
        assert split(client, admin_headers, "sms", category, [ALICE, BOB])["suppressed"] == [ALICE], category
        assert split(client, admin_headers, "email", category, ["Cara@Example.com"])["suppressed"] == ["cara@example.com"]
    assert gated(client, admin_headers, "sms", ALICE) == ["campaign", "inbox", "flow"]
    put = client.put("/api/v1/subscriptions/sms/" + BOB, json={"status": "unsubscribed", "reason": "asked"},
                     headers=admin_headers)
    assert put.json["gated_categories"] == ["campaign", "inbox", "flow"]  # the PUT answer says it too


def test_the_default_gates_campaigns_only(client, admin_headers, twilio):
    twilio.message("STOP", sender=ALICE)
    assert gated(client, admin_headers, "sms", ALICE) == ["campaign"]
    assert split(client, admin_headers, "sms", "campaign", [ALICE])["suppressed"] == [ALICE]
    for category in ("inbox", "flow"):
        assert split(client, admin_headers, "sms", category, [ALICE])["sendable"] == [ALICE]


@pytest.mark.parametrize("value", ["everything", "ALL", None, 1])
def test_a_bad_scope_is_refused_with_its_path_and_the_running_version_stays(client, admin_headers, value):
    before = client.get("/api/v1/keywords", headers=admin_headers).json
    document = before["document"]
    document["channels"]["sms"]["revocation_scope"] = value
    response = client.put("/api/v1/keywords", json=document, headers=admin_headers)
    assert response.status_code == 422
    (error,) = response.json["errors"]
    assert error["path"] == "channels.sms.revocation_scope"
    assert "is not a revocation scope; use campaign" in error["message"]
    assert client.get("/api/v1/keywords", headers=admin_headers).json["version"] == before["version"]


def test_a_bad_scope_in_yaml_is_refused_too(client, admin_headers):
    text = client.get("/api/v1/keywords", headers={**admin_headers, "Accept": "application/yaml"}).get_data(as_text=True)
    bad = text.replace("revocation_scope: campaign", "revocation_scope: stop-everything", 1)
    response = client.put("/api/v1/keywords", data=bad, headers={**admin_headers, "Content-Type": "application/yaml"})
    assert response.status_code == 422
    assert [e["path"] for e in response.json["errors"]] == ["channels.sms.revocation_scope"]


def test_a_change_of_scope_applies_to_existing_opt_outs_from_that_moment(client, admin_headers, twilio, store):
    twilio.message("STOP", sender=ALICE)
    events = store.event_count()
    assert split(client, admin_headers, "sms", "flow", [ALICE])["sendable"] == [ALICE]
    version = set_scopes(client, admin_headers, sms="automated")
    assert split(client, admin_headers, "sms", "flow", [ALICE])["suppressed"] == [ALICE]
    assert gated(client, admin_headers, "sms", ALICE) == ["campaign", "flow"]
    assert store.event_count() == events  # the consent log is not rewritten
    (event,) = store.history("sms", ALICE)
    assert event.config_version == "1"  # still the version it was matched under
    # Back (a rollback is a version like any other): flows go out again.
    client.post("/api/v1/keywords/versions/1/rollback", headers=admin_headers)
    assert split(client, admin_headers, "sms", "flow", [ALICE])["sendable"] == [ALICE]
    assert version == 2


def test_an_erased_suppressed_contact_reads_as_unsubscribed_under_the_scope(client, admin_headers, twilio):
    set_scopes(client, admin_headers, sms="automated")
    twilio.message("STOP", sender=ALICE)
    assert client.delete(f"/api/v1/contacts/{ALICE}", headers=admin_headers).status_code == 200
    body = client.get(f"/api/v1/subscriptions/sms/{ALICE}", headers=admin_headers).json
    assert (body["status"], body["history"], body["gated_categories"]) == ("unsubscribed", [], ["campaign", "flow"])
    assert split(client, admin_headers, "sms", "flow", [ALICE])["suppressed"] == [ALICE]
    assert split(client, admin_headers, "sms", "inbox", [ALICE])["sendable"] == [ALICE]


def test_the_suppression_list_says_what_it_gates(client, admin_headers, twilio):
    twilio.message("STOP", sender=ALICE)
    listed = client.get("/api/v1/suppressions/sms", headers=admin_headers).json
    assert listed["gated_categories"] == ["campaign"] and [s["address"] for s in listed["suppressions"]] == [ALICE]
    set_scopes(client, admin_headers, sms="automated")
    assert client.get("/api/v1/suppressions/sms", headers=admin_headers).json["gated_categories"] == ["campaign", "flow"]
    assert client.get("/api/v1/suppressions/whatsapp", headers=admin_headers).json["gated_categories"] == ["campaign"]


# -- the CLI ------------------------------------------------------------------------


@pytest.fixture
def cli(database_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"DATABASE_URL": database_url, "SECRET_KEY": SECRET_KEY, "DEFAULT_REGION": "", "KEYWORDS_FILE": ""}

    def invoke(*args: str, input: str | None = None):
        result = CliRunner().invoke(main, list(args), env=env, input=input, catch_exceptions=False)
        assert result.exit_code == 0, result.output + result.stderr
        return result

    return invoke


def test_the_cli_filter_applies_the_channel_scope(cli, client, admin_headers, twilio):
    # The service (same database) records the opt-outs and the scope; the CLI reads both there.
    twilio.message("STOP", sender=ALICE)
    twilio.message("STOP", sender=BOB, whatsapp=True)
    listed = f"phone\n{ALICE}\n{BOB}\n{CARA}\n"

    def sendable(channel: str, category: str) -> list[str]:
        out = cli("audience", "filter", "--channel", channel, "--category", category, "-", "-q", input=listed)
        return [row[0] for row in csv.reader(io.StringIO(out.stdout))][1:]

    assert sendable("sms", "flow") == [ALICE, BOB, CARA]  # the default: campaigns only
    set_scopes(client, admin_headers, sms="automated")
    assert sendable("sms", "campaign") == [BOB, CARA]
    assert sendable("sms", "flow") == [BOB, CARA]
    assert sendable("sms", "inbox") == [ALICE, BOB, CARA]
    assert sendable("whatsapp", "flow") == [ALICE, BOB, CARA]
    assert sendable("whatsapp", "campaign") == [ALICE, CARA]
    set_scopes(client, admin_headers, sms="all")
    assert sendable("sms", "inbox") == [BOB, CARA]


def test_check_shows_each_channel_scope_and_warns_about_marketing_replies(tmp_path):
    runner = CliRunner()
    shipped = runner.invoke(main, ["check", str(PACKAGED_KEYWORDS)])
    assert shipped.exit_code == 0 and "sms (sms, en/fr/es/pt/de, opt-outs stop campaigns)" in shipped.output
    assert "warning" not in shipped.stderr
    widened = tmp_path / "keywords.yaml"
    widened.write_text(PACKAGED_KEYWORDS.read_text(encoding="utf-8").replace(
        "revocation_scope: campaign", "revocation_scope: automated", 1), encoding="utf-8")
    result = runner.invoke(main, ["check", str(widened)])
    assert result.exit_code == 0  # accepted: a warning, not a problem
    assert "opt-outs stop campaigns and flows" in result.output
    assert "warning: channels.sms.opt_out.reply.en: the opt-out reply in English still says \"marketing\"" in result.stderr
    assert "channels.whatsapp" not in result.stderr


def test_the_statistics_list_the_scope_changes_of_the_period(client, admin_headers, cli):
    stats = client.get("/api/v1/stats", headers=admin_headers).json
    assert stats["scope_changes"] == []  # version 1 is the baseline, not a change
    set_scopes(client, admin_headers, sms="automated")
    set_scopes(client, admin_headers, whatsapp="all")
    stats = client.get("/api/v1/stats", headers=admin_headers).json
    changes = [(c["channel"], c["from"], c["to"], c["version"]) for c in stats["scope_changes"]]
    assert changes == [("sms", "campaign", "automated", 2), ("whatsapp", "campaign", "all", 3)]
    assert all(c["at"].endswith("Z") for c in stats["scope_changes"])
    only_sms = client.get("/api/v1/stats?channel=sms", headers=admin_headers).json["scope_changes"]
    assert [c["version"] for c in only_sms] == [2]
    # A period that ended before the changes has none; `unsub stats` prints the same list.
    assert client.get("/api/v1/stats?since=2026-01-01&until=2026-01-31", headers=admin_headers).json["scope_changes"] == []
    printed = json.loads(cli("stats", "--days", "1").stdout)
    assert [(c["channel"], c["version"]) for c in printed["scope_changes"]] == [("sms", 2), ("whatsapp", 3)]


@pytest.mark.parametrize("scope,language,question,done", [
    ("campaign", "en", "Stop marketing e-mails from Example Co to bob@example.com?",
     "Example Co will send no more marketing e-mails to bob@example.com."),
    ("automated", "en", "Stop marketing and automated e-mails from Example Co to bob@example.com?",
     "Example Co will send no more marketing or automated e-mails to bob@example.com."),
    ("automated", "fr", "Ne plus recevoir les e-mails marketing et automatiques de Example Co",
     "n&#39;enverra plus d&#39;e-mails marketing ni automatiques"),
    ("all", "en", "Stop all e-mails from Example Co to bob@example.com?",
     "Example Co will send no more e-mails to bob@example.com."),
    ("all", "es", "¿Dejar de recibir todos los correos de Example Co", "Example Co no enviará más correos a bob@example.com."),
])
def test_the_email_page_says_what_its_scope_stops(client, admin_headers, scope, language, question, done):
    if scope != "campaign":
        set_scopes(client, admin_headers, email=scope)
    token = make_token(SECRET_KEY, "email", "bob@example.com")
    asked = client.get(f"/unsubscribe/{token}?lang={language}").get_data(as_text=True)
    assert question in asked
    answered = client.post(f"/unsubscribe/{token}?lang={language}", data={"action": "unsubscribe"}).get_data(as_text=True)
    assert done in answered
    assert gated(client, admin_headers, "email", "bob@example.com") == {
        "campaign": ["campaign"], "automated": ["campaign", "flow"], "all": ["campaign", "inbox", "flow"]}[scope]
