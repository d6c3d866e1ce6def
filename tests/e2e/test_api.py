"""The admin API's fixed part (docs/contract.md) through the real app and database."""

from __future__ import annotations

import re

import pytest

from webhook import create_app

ALICE = "+14155550123"


def test_requires_the_bearer_token(client, admin_headers):
    path = f"/api/v1/subscriptions/sms/{ALICE}"
    assert client.get(path).status_code == 401
    wrong = client.get(path, headers={"Authorization": "Bearer not-the-token-at-all"})
    assert wrong.status_code == 401 and wrong.json["error"] == "unauthorized"
    assert client.get(path, headers={"Authorization": admin_headers["Authorization"].replace("Bearer", "Basic")}).status_code == 401
    assert client.get(path, headers=admin_headers).status_code == 200


def test_without_admin_token_the_api_is_disabled(settings):
    client = create_app(settings.with_changes(admin_token=None)).test_client()
    response = client.get(f"/api/v1/subscriptions/sms/{ALICE}", headers={"Authorization": "Bearer "})
    assert response.status_code == 401 and "ADMIN_TOKEN" in response.json["message"]


def test_unknown_address_is_unknown(client, admin_headers):
    body = client.get(f"/api/v1/subscriptions/sms/{ALICE}", headers=admin_headers).json
    assert body == {"channel": "sms", "address": ALICE, "status": "unknown", "updated_at": None, "history": [],
                    "gated_categories": []}


def test_address_in_the_path_is_normalised(client, admin_headers, twilio):
    twilio.message("STOP", sender=ALICE)
    body = client.get("/api/v1/subscriptions/whatsapp/whatsapp:+14155550123", headers=admin_headers).json
    assert body["address"] == ALICE and body["status"] == "unknown"
    assert client.get("/api/v1/subscriptions/sms/+1 (415) 555-0123", headers=admin_headers).json["status"] == "unsubscribed"


def test_put_records_an_admin_change_with_reason(client, admin_headers):
    path = "/api/v1/subscriptions/email/Bob@Example.com"
    response = client.put(path, json={"status": "unsubscribed", "reason": "asked on the phone"}, headers=admin_headers)
    assert response.status_code == 200
    body = response.json
    assert (body["address"], body["status"]) == ("bob@example.com", "unsubscribed")
    assert body["updated_at"].endswith("Z")
    (event,) = body["history"]
    assert (event["action"], event["source"], event["keyword"]) == ("opt_out", "admin", None)
    assert "asked on the phone" in event["reason"]


@pytest.mark.parametrize(
    "payload,path",
    [
        ({"status": "gone", "reason": "x"}, "status"),
        ({"status": "subscribed"}, "reason"),
        ({"status": "subscribed", "reason": ""}, "reason"),
        ({"status": "subscribed", "reason": "x", "extra": 1}, "extra"),
    ],
)
def test_put_validation_lists_problems(client, admin_headers, payload, path):
    response = client.put(f"/api/v1/subscriptions/sms/{ALICE}", json=payload, headers=admin_headers)
    assert response.status_code == 422
    assert response.json["error"] == "invalid_request"
    assert path in [e["path"] for e in response.json["errors"]]


def test_put_without_json_is_400(client, admin_headers):
    response = client.put(f"/api/v1/subscriptions/sms/{ALICE}", data="status=x", headers=admin_headers)
    assert response.status_code == 400 and response.json["error"] == "bad_request"


def test_unknown_channel_and_bad_address(client, admin_headers):
    assert client.get(f"/api/v1/subscriptions/fax/{ALICE}", headers=admin_headers).json["error"] == "unknown_channel"
    response = client.get("/api/v1/subscriptions/sms/not-a-number", headers=admin_headers)
    assert response.status_code == 400 and response.json["error"] == "invalid_address"


def test_audience_gates_campaign_only(client, admin_headers, twilio):
    twilio.message("STOP", sender=ALICE)
    addresses = [ALICE, "+14155550124", "nope"]
    campaign = client.post("/api/v1/audience", json={"channel": "sms", "category": "campaign", "addresses": addresses}, headers=admin_headers).json
    assert campaign == {"sendable": ["+14155550124"], "suppressed": [ALICE], "invalid": ["nope"]}
    for category in ("inbox", "flow"):
        other = client.post("/api/v1/audience", json={"channel": "sms", "category": category, "addresses": addresses}, headers=admin_headers).json
        assert other["sendable"] == [ALICE, "+14155550124"] and other["suppressed"] == []
    whatsapp = client.post("/api/v1/audience", json={"channel": "whatsapp", "category": "campaign", "addresses": [ALICE]}, headers=admin_headers).json
    assert whatsapp["sendable"] == [ALICE]


def test_audience_validation(client, admin_headers):
    too_many = ["+14155550124"] * 10_001
    response = client.post("/api/v1/audience", json={"channel": "sms", "category": "campaign", "addresses": too_many}, headers=admin_headers)
    assert response.status_code == 422
    bad = client.post("/api/v1/audience", json={"channel": "sms", "category": "newsletter", "addresses": []}, headers=admin_headers)
    assert bad.status_code == 422 and bad.json["errors"][0]["path"] == "category"
    unknown = client.post("/api/v1/audience", json={"channel": "fax", "category": "campaign", "addresses": []}, headers=admin_headers)
    assert unknown.status_code == 404


def test_unknown_api_route_is_json_404(client, admin_headers):
    response = client.get("/api/v1/nothing-here", headers=admin_headers)
    assert response.status_code == 404 and response.json["error"] == "not_found"


def test_openapi_document_describes_every_api_route(app, client):
    document = client.get("/api/v1/openapi.json").json
    assert document["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in document["paths"].items() for method in ops if method != "parameters"}
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule[len("/api/v1"):])
            for method in rule.methods - {"HEAD", "OPTIONS"}:
                routes.add((path, method))
    assert routes == documented
