"""GET /metrics and the request id, in process on both backends (the Procfile's process with
several workers: test_metrics_server.py)."""

from __future__ import annotations

import re
from datetime import datetime, timezone

import pytest

from tests.conftest import ADMIN_TOKEN, make_settings
from webhook import consent, create_app
from webhook.keywords import load_file
from webhook.settings import PACKAGED_KEYWORDS

TOKEN = "metrics-token-0123456789"


@pytest.fixture
def metered(database_url):
    app = create_app(make_settings(database_url).with_changes(metrics_token=TOKEN))
    yield app
    app.extensions["unsub"].store.close()


def scrape(client, token: str = TOKEN) -> str:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.data
    return response.get_data(as_text=True)


def value(text: str, family: str, **labels: str) -> float:
    """The sample of ``family`` with these labels (0 when absent)."""
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, rest = re.match(r"([a-z_]+)(.*)", line).groups()
        if name == family and all(f'{k}="{v}"' in rest for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_without_the_setting_there_is_no_metrics_route(client):
    assert client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 404


def test_a_missing_or_wrong_token_is_refused(metered):
    client = metered.test_client()
    assert client.get("/metrics").status_code == 401
    refused = client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"})
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    assert b"unsub_" not in refused.data


def test_stops_imports_and_requests_are_counted_with_patterns_not_paths(metered):
    from tests.conftest import Twilio

    client = metered.test_client()
    before = scrape(client)
    twilio = Twilio(client)
    for n in range(3):
        assert twilio.message("STOP", sender=f"+1415555{n:04d}", sid=f"SM{'a' * 31}{n}").status_code == 200
    assert twilio.message("STOP", sender="+14155550000", sid=f"SM{'a' * 31}0").status_code == 200  # redelivered
    assert twilio.message("hello there", sender="+14155550009").status_code == 200
    svc = metered.extensions["unsub"]
    channel = svc.config.channels["sms"]
    events = [consent.import_event(channel, f"+1415555100{n}", None, datetime.now(timezone.utc), "list.csv", "", svc.config)
              for n in range(2)]
    assert consent.import_opt_outs(svc.store, events + events) == 2  # the repeats record (and count) nothing
    client.get("/api/v1/subscriptions/sms/+14155550123", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    client.get("/no/such/+14155550123")
    after = scrape(client)

    def delta(family: str, **labels: str) -> float:
        return value(after, family, **labels) - value(before, family, **labels)

    assert delta("unsub_consent_changes_total", channel="sms", action="opt_out", source="keyword") == 3
    assert delta("unsub_consent_changes_total", channel="sms", action="opt_out", source="import") == 2
    assert delta("unsub_inbound_messages_total", provider="twilio", channel="sms", intent="opt_out") == 3
    assert delta("unsub_inbound_messages_total", provider="twilio", channel="sms", intent="duplicate") == 1
    assert delta("unsub_http_request_duration_seconds_count", route="/webhooks/twilio", method="POST", status="200") == 5
    assert delta("unsub_http_request_duration_seconds_count", route="/api/v1/subscriptions/<channel>/<path:address>",
                 method="GET", status="200") == 1
    assert delta("unsub_http_request_duration_seconds_count", route="unmatched", method="GET", status="404") == 1
    assert "4155550123" not in after and "/no/such" not in after  # labels never hold a path
    assert value(after, "unsub_keyword_config_version") == float(svc.keywords.version.number)
    assert value(after, "unsub_build_info", version="0.1.0") == 1
    assert value(after, "unsub_outbox_pending") == 0 and "unsub_outbox_oldest_due_seconds 0.0" in after


def test_the_outbox_gauges_are_read_at_scrape_time(metered):
    client = metered.test_client()
    store = metered.extensions["unsub"].store
    endpoint = store.create_endpoint("https://hooks.example.com/in", "test", "whsec_" + "A" * 32)
    assert store.queue_ping(endpoint.id) is not None
    text = scrape(client)
    assert value(text, "unsub_outbox_pending") == 1
    assert value(text, "unsub_outbox_oldest_due_seconds") >= 0


def test_every_answer_carries_a_request_id_and_error_bodies_name_it(client, admin_headers):
    made = client.get("/healthz")
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["X-Request-Id"])
    kept = client.get("/api/v1/subscriptions/nope/+14155550123", headers={**admin_headers, "X-Request-Id": "router-42"})
    assert kept.status_code == 404 and kept.headers["X-Request-Id"] == "router-42"
    assert kept.json["request_id"] == "router-42"
    bad = client.get("/api/v1/subscriptions/sms/x", headers={"X-Request-Id": "evil\u2028id"})
    assert bad.status_code == 401 and bad.json["request_id"] == bad.headers["X-Request-Id"] != "evil\u2028id"


def test_an_invalid_keyword_file_answer_names_the_request(client, admin_headers):
    document = load_file(PACKAGED_KEYWORDS).document
    broken = {**document, "channels": "not a mapping"}
    answer = client.put("/api/v1/keywords", json=broken, headers={**admin_headers, "X-Request-Id": "kw-1"})
    assert answer.status_code == 422 and answer.json["request_id"] == "kw-1" and answer.json["errors"]
