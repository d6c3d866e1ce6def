"""The webhook endpoints' admin API through the Flask client, on both backends: ids beyond any
database integer are 404s (a ping to one was a 500 on SQLite), the secret is in the 201 answer
only, and a retry is refused for what has not failed."""

from __future__ import annotations

import pytest

HUGE = "99999999999999999999999"
CRM = "https://crm.example.com/unsub-hooks"


@pytest.mark.parametrize("method,path", [
    ("post", f"/api/v1/webhook-endpoints/{HUGE}/ping"),
    ("post", "/api/v1/webhook-endpoints/9223372036854775808/ping"),
    ("post", "/api/v1/webhook-endpoints/0/ping"),
    ("get", f"/api/v1/webhook-endpoints/{HUGE}"),
    ("patch", f"/api/v1/webhook-endpoints/{HUGE}"),
    ("delete", f"/api/v1/webhook-endpoints/{HUGE}"),
    ("get", f"/api/v1/webhook-endpoints/{HUGE}/deliveries"),
    ("post", f"/api/v1/webhook-endpoints/1/deliveries/{HUGE}/retry"),
    ("post", f"/api/v1/webhook-endpoints/{HUGE}/deliveries/1/retry"),
])
def test_ids_beyond_any_database_integer_are_404(client, admin_headers, store, method, path):
    store.create_endpoint(CRM, "CRM", "whsec_" + "A" * 44)
    response = getattr(client, method)(path, headers=admin_headers, json={"enabled": True} if method == "patch" else None)
    assert response.status_code == 404 and response.json["error"] == "not_found"


def test_the_secret_is_in_the_201_answer_only(client, admin_headers):
    created = client.post("/api/v1/webhook-endpoints", json={"url": CRM, "description": "CRM"}, headers=admin_headers)
    assert created.status_code == 201 and created.headers["Cache-Control"] == "no-store"
    secret = created.json["secret"]
    assert secret.startswith("whsec_")
    endpoint_id = created.json["id"]
    answers = [
        client.get("/api/v1/webhook-endpoints", headers=admin_headers),
        client.get(f"/api/v1/webhook-endpoints/{endpoint_id}", headers=admin_headers),
        client.patch(f"/api/v1/webhook-endpoints/{endpoint_id}", json={"enabled": False}, headers=admin_headers),
        client.post(f"/api/v1/webhook-endpoints/{endpoint_id}/ping", headers=admin_headers),
        client.get(f"/api/v1/webhook-endpoints/{endpoint_id}/deliveries", headers=admin_headers),
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 202, 200]
    assert all(secret not in a.get_data(as_text=True) and "whsec_" not in a.get_data(as_text=True) for a in answers)


def test_a_retry_of_what_has_not_failed_is_409_and_a_delete_is_204_then_404(client, admin_headers, store):
    made = store.create_endpoint(CRM, "CRM", "whsec_" + "A" * 44)
    delivery_id = store.queue_ping(made.id)
    retried = client.post(f"/api/v1/webhook-endpoints/{made.id}/deliveries/{delivery_id}/retry", headers=admin_headers)
    assert retried.status_code == 409 and retried.json["error"] == "not_failed"
    assert client.delete(f"/api/v1/webhook-endpoints/{made.id}", headers=admin_headers).status_code == 204
    assert client.delete(f"/api/v1/webhook-endpoints/{made.id}", headers=admin_headers).status_code == 404
