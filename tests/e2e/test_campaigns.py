"""Campaign sends, attribution of opt-outs and the statistics, through the real app and database."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.conftest import new_sid
from webhook.domain import iso, utcnow

A, B, C, D, E, F, G = (f"+1415555020{i}" for i in range(7))
SENDER = "+14155550100"


def callback(twilio, sid: str, status: str, to: str, *, campaign: str = "spring-sale", whatsapp: bool = False):
    prefix = "whatsapp:" if whatsapp else ""
    params = {"MessageSid": sid, "MessageStatus": status, "To": prefix + to, "From": prefix + SENDER}
    return twilio.post(f"/webhooks/twilio/status?campaign={campaign}", params)


def deliver(twilio, to: str, *, whatsapp: bool = False, statuses=("queued", "sent", "delivered"), campaign="spring-sale"):
    sid = new_sid()
    for status in statuses:
        assert callback(twilio, sid, status, to, whatsapp=whatsapp, campaign=campaign).status_code == 204
    return sid


def api_sends(client, admin_headers, campaign: str, addresses: list[str], hours_ago: float):
    at = iso(utcnow() - timedelta(hours=hours_ago))
    response = client.post(f"/api/v1/campaigns/{campaign}/sends", headers=admin_headers,
                           json={"channel": "sms", "sends": [{"address": a, "at": at} for a in addresses]})
    assert response.status_code == 200, response.json
    return response.json


def stats(client, admin_headers, **params) -> dict:
    response = client.get("/api/v1/stats", headers=admin_headers, query_string=params)
    assert response.status_code == 200, response.json
    return response.json


def rows(report: dict) -> dict[tuple[str, str], tuple[int, int, float | None]]:
    return {(c["campaign"], c["channel"]): (c["delivered"], c["opt_outs"], c["opt_out_rate"]) for c in report["campaigns"]}


def test_campaign_opt_out_rate_from_status_callbacks_and_opt_outs(twilio, client, admin_headers):
    for to in (A, B):
        deliver(twilio, to)
    deliver(twilio, C, statuses=("delivered", "sent", "queued"))  # out of order: stays delivered
    deliver(twilio, D, statuses=("queued", "sent", "undelivered"))  # never delivered
    for to in (A, E):
        deliver(twilio, to, whatsapp=True)
    # Sends another tool made: "summer" 10 hours ago (inside the 72 h window), "autumn" 5 days ago (outside).
    api_sends(client, admin_headers, "summer", [G, B], hours_ago=10)
    api_sends(client, admin_headers, "autumn", [F], hours_ago=5 * 24)

    for number in (A, B, F, G):
        assert twilio.message("STOP", sender=number).status_code == 200
    assert twilio.message("hello", sender=C).status_code == 200
    # A STOP on SMS says nothing about WhatsApp: nobody opted out there.

    report = stats(client, admin_headers)
    assert rows(report) == {
        ("summer", "sms"): (2, 1, 0.5),  # G; B's latest delivered message was spring-sale
        ("spring-sale", "sms"): (3, 2, pytest.approx(2 / 3, abs=1e-6)),  # A and B of A, B, C (D undelivered)
        ("spring-sale", "whatsapp"): (2, 0, 0.0),
        ("autumn", "sms"): (1, 0, 0.0),  # F opted out 5 days after: outside the window
    }
    # Worst first; equal rates by opt-outs, then by name.
    assert [(c["campaign"], c["channel"]) for c in report["campaigns"]][:2] == [("spring-sale", "sms"), ("summer", "sms")]
    assert report["totals"]["opt_outs"] == 4 and report["attribution_window_hours"] == 72
    assert {r["channel"]: r["opt_outs"] for r in report["channels"]} == {"sms": 4}
    assert report["keywords"] == [{"keyword": "STOP", "language": "en", "opt_outs": 4}]
    assert report["kinds"] == [{"kind": "keyword", "opt_outs": 4}]
    assert report["daily"] == [{"day": report["until"][:10], "channel": "sms", "opt_outs": 4, "opt_ins": 0}]

    # Per channel, and a period without the sends.
    whatsapp = stats(client, admin_headers, channel="whatsapp")
    assert rows(whatsapp) == {("spring-sale", "whatsapp"): (2, 0, 0.0)}
    old = stats(client, admin_headers, since="2020-01-01", until="2020-01-31")
    assert old["campaigns"] == [] and old["totals"]["opt_outs"] == 0


def test_repeated_callbacks_and_sends_count_once(twilio, client, admin_headers):
    sid = deliver(twilio, A)
    assert callback(twilio, sid, "delivered", A).status_code == 204
    first = api_sends(client, admin_headers, "summer", [B, "+1 415 555 0205", "not a number"], hours_ago=1)
    again = api_sends(client, admin_headers, "summer", [B], hours_ago=1)
    assert (first["recorded"], first["invalid"], again["recorded"], again["repeated"]) == (2, ["not a number"], 0, 1)
    assert rows(stats(client, admin_headers))[("spring-sale", "sms")] == (1, 0, 0.0)
    assert rows(stats(client, admin_headers))[("summer", "sms")] == (2, 0, 0.0)


def test_a_bad_campaign_id_is_refused_with_a_clear_answer(twilio, client, admin_headers):
    response = callback(twilio, new_sid(), "delivered", A, campaign="spring%0Asale")
    assert response.status_code == 400 and b"campaign id" in response.data
    bad = client.post(f"/api/v1/campaigns/{'x' * 101}/sends", headers=admin_headers, json={"channel": "sms", "sends": []})
    assert bad.status_code == 400 and "campaign id" in bad.json["message"]
    unknown = client.post("/api/v1/campaigns/x/sends", headers=admin_headers, json={"channel": "fax", "sends": []})
    assert unknown.status_code == 404
    newline = client.post("/api/v1/campaigns/spring%0A/sends", headers=admin_headers, json={"channel": "sms", "sends": []})
    assert newline.status_code == 400
    ancient = client.post("/api/v1/campaigns/x/sends", headers=admin_headers,
                          json={"channel": "sms", "sends": [{"address": A, "at": "0001-01-01T00:00:00+01:00"}]})
    assert ancient.status_code == 422 and ancient.json["errors"][0]["path"] == "sends.0.at"


def test_stats_period_must_make_sense(client, admin_headers):
    assert client.get("/api/v1/stats?since=yesterday", headers=admin_headers).status_code == 400
    assert client.get("/api/v1/stats?since=2026-02-01&until=2026-01-01", headers=admin_headers).status_code == 400
    assert client.get("/api/v1/stats?since=2020-01-01&until=2026-01-01", headers=admin_headers).status_code == 400
    assert client.get("/api/v1/stats?channel=fax", headers=admin_headers).status_code == 404
    # Far from datetime's limits, where arithmetic on the period would overflow (found by schemathesis).
    for query in ("until=9999-12-31", "until=0001-01-01", "since=0001-01-01T00:00:00%2B01:00&until=0001-01-02"):
        assert client.get(f"/api/v1/stats?{query}", headers=admin_headers).status_code == 400, query
    assert client.get("/api/v1/review?offset=99999999999999999999", headers=admin_headers).status_code == 400
    assert client.get("/api/v1/stats").status_code == 401
