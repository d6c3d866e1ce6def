"""The admin Webhooks pages through the Flask client (issue 12): sign-in and CSRF on every
route, add (the secret shown once, in that answer only), enable, disable, delete after a
confirm step, send a test event, the deliveries page and a retry of a failed delivery."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta

import pytest
from flask.sessions import SecureCookieSessionInterface

from tests.conftest import csrf
from webhook import create_app
from webhook.domain import AttemptResult, utcnow

CRM = "https://crm.example.com/unsub-hooks"


def add(client, url: str = CRM, description: str = "CRM"):
    page = client.get("/admin/webhooks")
    return client.post("/admin/webhooks", data={"url": url, "description": description, "csrf_token": csrf(page.data)})


def secret_of(page: bytes) -> str:
    found = re.search(rb'id="secret">(whsec_[A-Za-z0-9+/=]+)<', page)
    assert found, "the answer shows no secret"
    return found.group(1).decode()


def session_of(app, client) -> dict:
    """What the session cookie holds (signed, not encrypted: anyone holding it can read it)."""
    cookie = client.get_cookie("unsub_admin")
    if cookie is None:
        return {}
    return SecureCookieSessionInterface().get_signing_serializer(app).loads(cookie.value)


def fail(store, delivery_id: int, excerpt: str = "<b>down</b> for maintenance") -> None:
    """Make a delivery fail for good, as the worker would after its last attempt."""
    claimed = store.claim_deliveries("test-worker", per_lane=10, limit=10, lease=timedelta(seconds=30), busy_lanes=[])
    body = next(c for c in claimed if c.id == delivery_id).body
    store.finish_attempts([AttemptResult(delivery_id, "failed", utcnow(), "test-worker", 500, 12, excerpt, "HTTP 500",
                                         body=body)])


@pytest.mark.parametrize("method,path", [
    ("get", "/admin/webhooks"), ("post", "/admin/webhooks"), ("post", "/admin/webhooks/1/enabled"),
    ("get", "/admin/webhooks/1/delete"), ("post", "/admin/webhooks/1/delete"), ("post", "/admin/webhooks/1/ping"),
    ("get", "/admin/webhooks/1/deliveries"), ("post", "/admin/webhooks/1/deliveries/1/retry"),
])
def test_every_webhooks_page_needs_a_sign_in(client, store, method, path):
    store.create_endpoint(CRM, "CRM", "whsec_" + "A" * 44)
    token = csrf(client.get("/admin/login").data)  # a valid CSRF token, but no sign-in
    response = getattr(client, method)(path, data={"url": "https://evil.example.com/x", "enabled": "0", "csrf_token": token})
    assert response.status_code == 302 and "/admin/login?next=" in response.location
    assert [(e.url, e.enabled) for e in store.endpoints()] == [(CRM, True)]  # nothing changed


@pytest.mark.parametrize("path,data", [
    ("/admin/webhooks", {"url": "https://evil.example.com/x"}), ("/admin/webhooks/1/enabled", {"enabled": "0"}),
    ("/admin/webhooks/1/delete", {}), ("/admin/webhooks/1/ping", {}), ("/admin/webhooks/1/deliveries/1/retry", {}),
])
def test_every_webhooks_form_needs_its_csrf_token(signed_in, store, path, data):
    made = store.create_endpoint(CRM, "CRM", "whsec_" + "A" * 44)
    store.queue_ping(made.id)
    response = signed_in.post(path, data=data)
    assert response.status_code == 400 and b"CSRF" in response.data
    assert [(e.url, e.enabled) for e in store.endpoints()] == [(CRM, True)]
    assert len(store.deliveries(made.id)) == 1


def test_the_nav_links_to_the_webhooks_page_which_says_when_there_is_none(signed_in):
    assert b'href="/admin/webhooks">Webhooks</a>' in signed_in.get("/admin/dashboard").data
    page = signed_in.get("/admin/webhooks")
    assert page.status_code == 200 and b"No endpoint yet" in page.data
    assert b"retried for 3 d 3 h" in page.data  # the default WEBHOOK_RETRY_SCHEDULE, in words
    assert b"https:// only" in page.data.replace(b"<code>", b"").replace(b"</code>", b"")


def test_adding_shows_the_secret_once_and_never_again(app, signed_in, store):
    answer = add(signed_in)
    assert answer.status_code == 201
    assert answer.headers["Cache-Control"] == "no-store"
    secret = secret_of(answer.data)
    assert b"Copy it now: it is not shown again." in answer.data
    [made] = store.endpoints()
    assert (made.url, made.description, made.enabled, made.secret) == (CRM, "CRM", True, secret)
    # Not in the cookie (signed but readable), nor on any page after this one.
    assert secret not in answer.headers.get("Set-Cookie", "")
    assert secret not in str(session_of(app, signed_in))
    listed = signed_in.get("/admin/webhooks")
    assert CRM.encode() in listed.data and b"CRM" in listed.data and b"Enabled" in listed.data
    for page in (listed, signed_in.get(f"/admin/webhooks/{made.id}/deliveries"),
                 signed_in.get(f"/admin/webhooks/{made.id}/delete")):
        assert secret.encode() not in page.data and b"whsec_" not in page.data


@pytest.mark.parametrize("url,description,needle", [
    ("http://crm.example.com/hooks", "", b"WEBHOOK_ALLOW_HTTP=1"),
    ("", "", b"give the URL"),
    ("crm.example.com/hooks", "", b"absolute https:// URL"),
    ("https://user:pw@crm.example.com/hooks", "", b"user name or password"),
    ("https://crm.example.com/" + "a" * 2000, "", b"at most 2000"),
    (CRM, "d" * 201, b"at most 200 characters"),
])
def test_a_bad_url_or_description_is_refused_with_a_message_and_the_form_kept(signed_in, store, url, description, needle):
    answer = add(signed_in, url, description)
    assert answer.status_code == 422 and needle in answer.data
    assert b'role="alert"' in answer.data and b'aria-invalid="true"' in answer.data
    assert store.endpoints() == []
    if url:
        assert f'value="{url[:60]}'.encode() in answer.data  # what the admin typed stays in the box


def test_http_is_allowed_with_webhook_allow_http(settings):
    app = create_app(replace(settings, allow_http_webhooks=True))
    try:
        client = app.test_client()
        page = client.get("/admin/login")
        client.post("/admin/login", data={"token": settings.admin_token, "csrf_token": csrf(page.data)})
        assert b"WEBHOOK_ALLOW_HTTP=1" in client.get("/admin/webhooks").data
        assert add(client, "http://127.0.0.1:9999/hooks").status_code == 201
    finally:
        app.extensions["unsub"].store.close()


def test_disable_then_enable(signed_in, store):
    made = store.create_endpoint(CRM, "CRM", "whsec_" + "A" * 44)
    token = csrf(signed_in.get("/admin/webhooks").data)
    off = signed_in.post(f"/admin/webhooks/{made.id}/enabled", data={"enabled": "0", "csrf_token": token},
                         follow_redirects=True)
    assert off.status_code == 200 and b"Disabled endpoint 1 (crm.example.com)" in off.data
    endpoint = store.endpoint(made.id)
    assert endpoint is not None and not endpoint.enabled and "by an admin" in (endpoint.disabled_reason or "")
    assert b"Disabled</strong>" in off.data and b"by an admin on" in off.data and b">Enable</button>" in off.data
    on = signed_in.post(f"/admin/webhooks/{made.id}/enabled", data={"enabled": "1", "csrf_token": token},
                        follow_redirects=True)
    assert b"Enabled endpoint 1" in on.data
    endpoint = store.endpoint(made.id)
    assert endpoint is not None and endpoint.enabled and endpoint.disabled_reason is None
    bad = signed_in.post(f"/admin/webhooks/{made.id}/enabled", data={"enabled": "yes", "csrf_token": token})
    assert bad.status_code == 400 and b"enabled must be 1" in bad.data


def test_a_410_disabled_endpoint_shows_why(signed_in, store):
    made = store.create_endpoint(CRM, "CRM", "whsec_" + "A" * 44)
    store.set_endpoint_enabled(made.id, False, "answered 410 Gone at 2026-12-02T09:00:00Z")
    assert b"answered 410 Gone at 2026-12-02T09:00:00Z" in signed_in.get("/admin/webhooks").data


def test_delete_asks_first_then_deletes_the_endpoint_and_its_deliveries(signed_in, store):
    made = store.create_endpoint(CRM, "CRM", "whsec_" + "A" * 44)
    kept = store.create_endpoint("https://warehouse.example.com/in", "", "whsec_" + "B" * 44)
    delivery_id = store.queue_ping(made.id)
    listed = signed_in.get("/admin/webhooks")
    assert f'href="/admin/webhooks/{made.id}/delete"'.encode() in listed.data  # a link to a confirm page, not a button
    confirm = signed_in.get(f"/admin/webhooks/{made.id}/delete")
    assert confirm.status_code == 200 and b"Delete this endpoint?" in confirm.data and CRM.encode() in confirm.data
    assert b"cannot be undone" in confirm.data and b"disable it instead" in confirm.data
    assert len(store.endpoints()) == 2  # looking at the confirm page deletes nothing
    done = signed_in.post(f"/admin/webhooks/{made.id}/delete", data={"csrf_token": csrf(confirm.data)},
                          follow_redirects=True)
    assert done.status_code == 200 and b"Deleted endpoint 1 (crm.example.com)" in done.data
    assert [e.id for e in store.endpoints()] == [kept.id]
    assert store.delivery(delivery_id) is None
    again = signed_in.post(f"/admin/webhooks/{made.id}/delete", data={"csrf_token": csrf(confirm.data)})
    assert again.status_code == 404 and b"no webhook endpoint 1" in again.data


def test_a_test_event_is_queued_and_shown_on_the_deliveries_page(signed_in, store):
    made = store.create_endpoint(CRM, "CRM", "whsec_" + "A" * 44)
    token = csrf(signed_in.get("/admin/webhooks").data)
    answer = signed_in.post(f"/admin/webhooks/{made.id}/ping", data={"csrf_token": token})
    assert answer.status_code == 302 and answer.location.endswith(f"/admin/webhooks/{made.id}/deliveries")
    [delivery] = store.deliveries(made.id)
    assert (delivery.event_type, delivery.state) == ("ping", "pending")
    page = signed_in.get(answer.location)
    assert f"Test event queued as delivery {delivery.id}".encode() in page.data
    assert b"waiting for its first attempt" in page.data and b"Next attempt" in page.data
    assert b"&#34;type&#34;: &#34;ping&#34;" in page.data  # the payload, pretty and escaped
    assert b"Retry</button>" not in page.data  # only a failed delivery is retried
    # A disabled endpoint: queued all the same, with a word that it waits.
    store.set_endpoint_enabled(made.id, False, "by an admin")
    page = signed_in.post(f"/admin/webhooks/{made.id}/ping", data={"csrf_token": token}, follow_redirects=True)
    assert b"This endpoint is disabled: enable it" in page.data


def test_a_failed_delivery_shows_its_attempts_escaped_and_is_retried(signed_in, store):
    made = store.create_endpoint(CRM, "CRM", "whsec_" + "A" * 44)
    delivery_id = store.queue_ping(made.id)
    fail(store, delivery_id)
    page = signed_in.get(f"/admin/webhooks/{made.id}/deliveries")
    assert b"failed</span>" in page.data and b"Gave up" in page.data and b"HTTP 500" in page.data
    assert b"&lt;b&gt;down&lt;/b&gt; for maintenance" in page.data and b"<b>down</b>" not in page.data
    assert b"12 ms" in page.data
    assert f'aria-label="Retry delivery {delivery_id}"'.encode() in page.data
    retried = signed_in.post(f"/admin/webhooks/{made.id}/deliveries/{delivery_id}/retry",
                             data={"csrf_token": csrf(page.data)}, follow_redirects=True)
    assert f"Delivery {delivery_id} goes out again now".encode() in retried.data
    delivery = store.delivery(delivery_id)
    assert delivery is not None and (delivery.state, delivery.attempts) == ("pending", 0)
    again = signed_in.post(f"/admin/webhooks/{made.id}/deliveries/{delivery_id}/retry",
                           data={"csrf_token": csrf(page.data)}, follow_redirects=True)
    assert b"only a failed delivery is retried" in again.data


def test_a_delivery_of_another_endpoint_is_not_retried_through_this_one(signed_in, store):
    made = store.create_endpoint(CRM, "CRM", "whsec_" + "A" * 44)
    other = store.create_endpoint("https://warehouse.example.com/in", "", "whsec_" + "B" * 44)
    delivery_id = store.queue_ping(other.id)
    fail(store, delivery_id)
    token = csrf(signed_in.get("/admin/webhooks").data)
    answer = signed_in.post(f"/admin/webhooks/{made.id}/deliveries/{delivery_id}/retry", data={"csrf_token": token})
    assert answer.status_code == 404
    delivery = store.delivery(delivery_id)
    assert delivery is not None and delivery.state == "failed"


@pytest.mark.parametrize("method,path,status", [
    ("get", "/admin/webhooks/7/deliveries", 404),
    ("get", "/admin/webhooks/0/deliveries", 404),
    ("get", "/admin/webhooks/99999999999999999999999/deliveries", 404),
    ("get", "/admin/webhooks/99999999999999999999999/delete", 404),
    ("get", "/admin/webhooks/1/deliveries?page=0", 400),
    ("get", "/admin/webhooks/1/deliveries?page=99999999999999999999999", 400),
    ("get", "/admin/webhooks/1/deliveries?page=x", 400),
    ("post", "/admin/webhooks/99999999999999999999999/ping", 404),
    ("post", "/admin/webhooks/99999999999999999999999/enabled", 404),
    ("post", "/admin/webhooks/99999999999999999999999/delete", 404),
    ("post", "/admin/webhooks/1/deliveries/99999999999999999999999/retry", 404),
    ("post", "/admin/webhooks/99999999999999999999999/deliveries/1/retry", 404),
    ("post", "/admin/webhooks/1/deliveries/0/retry", 404),
])
def test_ids_and_pages_out_of_range_are_4xx_with_a_message(signed_in, store, method, path, status):
    store.create_endpoint(CRM, "CRM", "whsec_" + "A" * 44)
    token = csrf(signed_in.get("/admin/webhooks").data)
    response = getattr(signed_in, method)(path, data={"csrf_token": token, "enabled": "1"})
    assert response.status_code == status, response.data
    if status == 400:
        assert b"page must be a whole number" in response.data
    else:
        assert b"no webhook endpoint" in response.data or b"no delivery" in response.data


def test_the_deliveries_page_pages_newest_first(signed_in, store):
    made = store.create_endpoint(CRM, "CRM", "whsec_" + "A" * 44)
    ids = [store.queue_ping(made.id) for _ in range(23)]
    first = signed_in.get(f"/admin/webhooks/{made.id}/deliveries")
    assert first.data.index(f'id="delivery-{ids[-1]}"'.encode()) < first.data.index(f'id="delivery-{ids[-2]}"'.encode())
    assert f'id="delivery-{ids[2]}"'.encode() not in first.data and b">Older</a>" in first.data
    second = signed_in.get(f"/admin/webhooks/{made.id}/deliveries?page=2")
    assert f'id="delivery-{ids[0]}"'.encode() in second.data and b">Newer</a>" in second.data
    assert b">Older</a>" not in second.data
    assert signed_in.get(f"/admin/webhooks/{made.id}/deliveries?page=9").status_code == 200


def test_deliveries_due_for_long_ask_whether_the_worker_runs(signed_in, store, monkeypatch):
    from webhook.domain import Backlog

    made = store.create_endpoint(CRM, "CRM", "whsec_" + "A" * 44)
    store.queue_ping(made.id)
    assert b"1 delivery waiting to be sent" in signed_in.get("/admin/webhooks").data
    monkeypatch.setattr(type(store), "outbox_backlog", lambda self: Backlog(3, 600.0, 1))
    page = signed_in.get("/admin/webhooks")
    assert b"3 deliveries waiting to be sent; the oldest has been due for 10 min." in page.data
    assert b"is the worker" in page.data and b"1 failed" in page.data and b"disabled endpoint" not in page.data
    store.set_endpoint_enabled(made.id, False, "by an admin")
    assert b"Deliveries to a disabled endpoint" in signed_in.get("/admin/webhooks").data
