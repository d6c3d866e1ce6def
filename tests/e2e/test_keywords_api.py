"""Versioned keyword configuration through the admin API (both backends)."""

from __future__ import annotations

import copy
import time

import pytest

from webhook import configuration, create_app

ALICE = "+14155550123"


@pytest.fixture
def current(client, admin_headers):
    def get() -> dict:
        response = client.get("/api/v1/keywords", headers=admin_headers)
        assert response.status_code == 200
        return response.json

    return get


def test_start_up_records_the_file_as_version_1(current):
    body = current()
    assert (body["version"], body["source"], body["author"]) == (1, "file", "deploy")
    assert set(body["document"]["channels"]) == {"sms", "whatsapp", "email"}


def test_yaml_export_keeps_the_admins_comments(client, admin_headers):
    response = client.get("/api/v1/keywords", headers={**admin_headers, "Accept": "application/yaml"})
    assert response.mimetype == "application/yaml"
    assert "# How to edit this file" in response.get_data(as_text=True)
    assert response.headers["X-Keywords-Version"] == "1"


def test_put_json_makes_a_new_version_that_webhooks_use(client, admin_headers, current, twilio, store):
    document = copy.deepcopy(current()["document"])
    document["channels"]["whatsapp"]["opt_out"]["keywords"]["en"].append("PLONK")
    response = client.put("/api/v1/keywords?note=add%20PLONK&author=maria", json=document, headers=admin_headers)
    assert response.status_code == 200
    assert (response.json["version"], response.json["created"], response.json["author"]) == (2, True, "maria")
    assert '+        en: ["STOP"' in response.json["diff"] and '"PLONK"]' in response.json["diff"]
    # The saved YAML keeps the comments and quoting of the file.
    yaml_text = client.get("/api/v1/keywords", headers={**admin_headers, "Accept": "application/yaml"}).get_data(as_text=True)
    assert "# How to edit this file" in yaml_text and '"STOP PROMOTIONS", "PLONK"]' in yaml_text
    reply = twilio.message("plonk", sender=ALICE, whatsapp=True)
    assert b"unsubscribed" in reply.data
    assert store.history("whatsapp", ALICE)[-1].config_version == "2"
    # SMS did not get the keyword.
    assert twilio.message("plonk", sender=ALICE).data.endswith(b"<Response />")


def test_unchanged_document_keeps_the_version(client, admin_headers, current):
    response = client.put("/api/v1/keywords", json=current()["document"], headers=admin_headers)
    assert (response.json["version"], response.json["created"]) == (1, False)


def test_invalid_configuration_is_refused_with_every_error_and_the_old_one_keeps_answering(client, admin_headers, current, twilio):
    document = copy.deepcopy(current()["document"])
    document["channels"]["sms"]["opt_out"]["keywords"]["en"].remove("STOP")
    document["channels"]["sms"]["opt_out"]["first_word"]["en"].remove("STOP")
    document["channels"]["whatsapp"]["help"]["keywords"]["en"].append("STOP")
    document["channels"]["email"]["opt_out"]["reply"]["en"] = "x" * 400
    response = client.put("/api/v1/keywords", json=document, headers=admin_headers)
    assert response.status_code == 422
    assert response.json["error"] == "invalid keyword configuration"
    paths = {e["path"] for e in response.json["errors"]}
    assert {"channels.sms.opt_out.keywords", "channels.whatsapp.help.keywords.en.2", "channels.email.opt_out.reply.en"} <= paths
    assert current()["version"] == 1
    assert b"unsubscribed" in twilio.message("STOP", sender=ALICE).data


@pytest.mark.parametrize("channel", ["whatsapp", "email", "sms"])
def test_an_edit_that_drops_stop_is_refused_on_every_channel(client, admin_headers, current, twilio, channel):
    document = copy.deepcopy(current()["document"])
    for kind in ("keywords", "first_word"):
        document["channels"][channel]["opt_out"][kind]["en"].remove("STOP")
    response = client.put("/api/v1/keywords", json=document, headers=admin_headers)
    assert response.status_code == 422
    problems = {p["path"]: p["message"] for p in response.json["errors"]}
    assert "must keep STOP as an opt-out keyword" in problems[f"channels.{channel}.opt_out.keywords"]
    assert current()["version"] == 1
    if channel != "email":
        assert b"unsubscribed" in twilio.message("STOP", sender=ALICE, whatsapp=channel == "whatsapp").data


def test_put_yaml_text(client, admin_headers):
    yaml_text = client.get("/api/v1/keywords", headers={**admin_headers, "Accept": "application/yaml"}).get_data(as_text=True)
    edited = yaml_text.replace('brand: "Example Co"', 'brand: "Acme"  # renamed')
    response = client.put("/api/v1/keywords", data=edited, content_type="application/yaml", headers=admin_headers)
    assert response.status_code == 200 and response.json["document"]["brand"] == "Acme"
    bad = client.put("/api/v1/keywords", data="brand: [unclosed", content_type="application/yaml", headers=admin_headers)
    assert bad.status_code == 422 and "not valid YAML" in bad.json["errors"][0]["message"]


def test_dry_run_under_a_proposed_configuration(client, admin_headers, current, store):
    document = copy.deepcopy(current()["document"])
    document["channels"]["sms"]["opt_out"]["keywords"]["en"].append("PLONK")
    proposed = client.post("/api/v1/keywords/try", json={"text": "plonk", "channel": "sms", "document": document}, headers=admin_headers)
    assert (proposed.json["intent"], proposed.json["changes_subscription"]) == ("opt_out", True)
    running = client.post("/api/v1/keywords/try", json={"text": "plonk", "channel": "sms"}, headers=admin_headers)
    assert (running.json["intent"], running.json["version"]) == (None, "1")
    # The service's own decision, review queue included (issue 11 item 14).
    review = client.post("/api/v1/keywords/try", json={"text": "Cancel my order, it's late"}, headers=admin_headers)
    assert (review.json["intent"], review.json["changes_subscription"]) == ("review", False)
    assert "CANCEL" in review.json["review_reason"]
    assert store.event_count() == 0 and current()["version"] == 1


def test_versions_history_and_rollback(client, admin_headers, current, twilio):
    document = copy.deepcopy(current()["document"])
    document["channels"]["sms"]["opt_out"]["keywords"]["en"].append("PLONK")
    client.put("/api/v1/keywords", json=document, headers=admin_headers)
    assert b"unsubscribed" in twilio.message("plonk", sender=ALICE).data
    versions = client.get("/api/v1/keywords/versions", headers=admin_headers).json
    assert [v["version"] for v in versions["versions"]] == [2, 1] and versions["current"] == 2
    rolled = client.post("/api/v1/keywords/versions/1/rollback", headers=admin_headers)
    assert rolled.status_code == 200 and (rolled.json["version"], rolled.json["source"]) == (3, "rollback")
    assert twilio.message("plonk", sender="+14155550124").data.endswith(b"<Response />")
    assert client.get("/api/v1/keywords/versions/2", headers=admin_headers).json["document"] == document
    assert client.post("/api/v1/keywords/versions/99/rollback", headers=admin_headers).status_code == 404


def test_another_process_picks_up_a_new_version_within_seconds(settings, monkeypatch):
    monkeypatch.setattr(configuration, "RELOAD_SECONDS", 0.2)
    first, second = create_app(settings), create_app(settings)
    headers = {"Authorization": f"Bearer {settings.admin_token}"}
    document = first.test_client().get("/api/v1/keywords", headers=headers).json["document"]
    document["brand"] = "Acme Outdoor"
    assert first.test_client().put("/api/v1/keywords", json=document, headers=headers).json["version"] == 2
    deadline = time.monotonic() + 5
    while second.extensions["unsub"].config.brand != "Acme Outdoor":
        assert time.monotonic() < deadline, "the second process never saw version 2"
        time.sleep(0.05)
    assert second.extensions["unsub"].keywords.version.number == 2


def test_restart_with_the_same_file_keeps_the_admins_version(settings):
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {settings.admin_token}"}
    document = app.test_client().get("/api/v1/keywords", headers=headers).json["document"]
    document["brand"] = "Acme Outdoor"
    app.test_client().put("/api/v1/keywords", json=document, headers=headers)
    restarted = create_app(settings)
    assert restarted.extensions["unsub"].config.brand == "Acme Outdoor"


def test_a_changed_file_at_deploy_becomes_a_new_version(settings, tmp_path):
    create_app(settings)
    edited = tmp_path / "keywords.yaml"
    edited.write_text(settings.keywords_file.read_text(encoding="utf-8").replace('brand: "Example Co"', 'brand: "Deployed Co"'), encoding="utf-8")
    app = create_app(settings.with_changes(keywords_file=edited))
    version = app.extensions["unsub"].keywords.version
    assert (version.number, version.source, app.extensions["unsub"].config.brand) == (2, "file", "Deployed Co")
    assert '-brand: "Example Co"' in version.diff


def test_a_file_at_deploy_that_drops_a_required_keyword_is_refused(settings, tmp_path):
    from webhook.settings import SettingsError

    create_app(settings)
    edited = tmp_path / "keywords.yaml"
    text = settings.keywords_file.read_text(encoding="utf-8")
    # The e-mail channel's opt-out keywords without QUIT.
    head, _, tail = text.partition("  email:")
    edited.write_text(head + "  email:" + tail.replace('"END", "QUIT", ', '"END", ', 1), encoding="utf-8")
    with pytest.raises(SettingsError, match="channels.email.opt_out.keywords: E-mail channels must keep QUIT"):
        create_app(settings.with_changes(keywords_file=edited))
    assert create_app(settings).extensions["unsub"].keywords.version.number == 1


def _with_brand_b(document: dict) -> dict:
    document = copy.deepcopy(document)
    brand_b = copy.deepcopy(document["channels"]["sms"])
    brand_b["senders"] = ["+14155550999"]
    document["channels"]["brand-b"] = brand_b
    return document


def test_a_channel_with_statuses_cannot_be_dropped(client, admin_headers, current, twilio, store):
    original = current()["document"]
    assert client.put("/api/v1/keywords", json=_with_brand_b(original), headers=admin_headers).status_code == 200
    assert b"unsubscribed" in twilio.message("STOP", sender=ALICE, to="+14155550999").data
    twilio.message("START", sender="+14155550124", to="+14155550999")
    response = client.put("/api/v1/keywords", json=original, headers=admin_headers)
    assert response.status_code == 422
    [problem] = response.json["errors"]
    assert problem["path"] == "channels.brand-b"
    assert "'brand-b' cannot be removed" in problem["message"] and "2 contact(s)" in problem["message"]
    assert current()["version"] == 2
    # A rollback to the version before the channel is refused the same way.
    assert client.post("/api/v1/keywords/versions/1/rollback", headers=admin_headers).status_code == 422
    assert store.subscription("brand-b", ALICE).status == "unsubscribed"


def test_a_channel_without_statuses_can_be_dropped(client, admin_headers, current):
    original = current()["document"]
    client.put("/api/v1/keywords", json=_with_brand_b(original), headers=admin_headers)
    response = client.put("/api/v1/keywords", json=original, headers=admin_headers)
    assert (response.status_code, response.json["version"]) == (200, 3)


def test_a_file_at_deploy_that_drops_a_channel_with_statuses_is_refused(settings, tmp_path):
    from tests.conftest import Twilio
    from webhook.keywords import to_yaml
    from webhook.settings import SettingsError

    with_b = tmp_path / "with_b.yaml"
    app = create_app(settings)
    with_b.write_text(to_yaml(_with_brand_b(app.extensions["unsub"].config.document)), encoding="utf-8")
    app = create_app(settings.with_changes(keywords_file=with_b))
    assert b"unsubscribed" in Twilio(app.test_client()).message("STOP", sender=ALICE, to="+14155550999").data
    with pytest.raises(SettingsError, match="channels.brand-b: channel 'brand-b' cannot be removed"):
        create_app(settings)
    # The same file as recorded keeps starting.
    assert "brand-b" in create_app(settings.with_changes(keywords_file=with_b)).extensions["unsub"].config.channels


def test_a_stored_version_that_breaks_a_newer_rule_stops_start_up_with_one_line_and_the_file_mends_it(settings, tmp_path):
    """An admin's version saved before a rule existed (here: without QUIT on WhatsApp) is not run."""
    import json

    from webhook.domain import NewKeywordVersion
    from webhook.keywords import config_version, to_yaml
    from webhook.settings import SettingsError
    from webhook.store import open_store

    app = create_app(settings)
    document = copy.deepcopy(app.extensions["unsub"].config.document)
    document["channels"]["whatsapp"]["opt_out"]["keywords"]["en"].remove("QUIT")
    store = open_store(settings.database_url)
    store.add_keyword_version(NewKeywordVersion(content_hash=config_version(document), document=json.dumps(document),
                                                yaml=to_yaml(document), source="api", author="old", note=None, diff=None))
    store.close()
    with pytest.raises(SettingsError, match=r"cannot start \(keyword version 2\): channels.whatsapp.opt_out.keywords"):
        create_app(settings)
    edited = tmp_path / "keywords.yaml"
    edited.write_text(settings.keywords_file.read_text(encoding="utf-8").replace('brand: "Example Co"', 'brand: "Mended Co"'),
                      encoding="utf-8")
    assert create_app(settings.with_changes(keywords_file=edited)).extensions["unsub"].keywords.version.number == 3
