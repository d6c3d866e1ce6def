"""Bad input to the admin pages and the keyword API gets a 4xx with a clear message, never a 500
(issue 11 item 8), and random query strings on every admin page never give a 500 either."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ADMIN_TOKEN, csrf

PAGES = ["/admin/dashboard", "/admin/review", "/admin/keywords", "/admin/keywords/versions", "/admin/contacts",
         "/admin/events", "/admin/events.csv", "/admin/contacts/export", "/admin/keywords/sms/en", "/admin/login",
         # the Webhooks pages, endpoint 1 made by the an_endpoint fixture (and one that is not there)
         "/admin/webhooks", "/admin/webhooks/1/deliveries", "/admin/webhooks/1/delete", "/admin/webhooks/2/deliveries",
         "/admin/webhooks/99999999999999999999999/deliveries"]
NAMES = st.sampled_from(["page", "to", "from", "channel", "action", "source", "q", "days", "status", "next", "format",
                         "address", "lang", "x", "url", "enabled"])
VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["9999-12-31", "0001-01-01", "2026-02-30", "99999999999999999999999", "-1", "0", "1e9", "²", "١٢",
                     "\r\nSet-Cookie: x=1", "%00", "+14155550123", "/admin/events\r\n", "//evil.example", "30"]),
)


@pytest.mark.parametrize("path,needle", [
    ("/admin/events?page=99999999999999999999999", b"page must be a whole number"),
    ("/admin/review?page=99999999999999999999999", b"page must be a whole number"),
    ("/admin/events?page=%C2%B2", b"page must be a whole number"),
    ("/admin/events?to=9999-12-31", b"to must be a date between 1970 and 9000"),
    ("/admin/events?from=yesterday", b"from must be a date like 2026-11-26"),
    ("/admin/webhooks/1/deliveries?page=99999999999999999999999", b"page must be a whole number"),
    ("/admin/webhooks/1/deliveries?page=-1", b"page must be a whole number"),
])
def test_out_of_range_query_values_are_400_with_a_message(signed_in, an_endpoint, path, needle):
    response = signed_in.get(path)
    assert response.status_code == 400 and needle in response.data


@pytest.mark.parametrize("path", ["/admin/webhooks/99999999999999999999999/deliveries", "/admin/webhooks/2/delete",
                                  "/admin/webhooks/0/deliveries"])
def test_an_endpoint_id_out_of_range_is_404_with_a_message(signed_in, an_endpoint, path):
    response = signed_in.get(path)
    assert response.status_code == 404 and b"no webhook endpoint" in response.data


@pytest.fixture
def an_endpoint(store) -> int:
    """Endpoint 1, with a test event waiting, so the deliveries page has something to show."""
    made = store.create_endpoint("https://crm.example.com/hooks", "CRM", "whsec_" + "A" * 44)
    store.queue_ping(made.id)
    return made.id


def test_a_page_past_the_end_is_an_empty_page(signed_in):
    response = signed_in.get("/admin/events?page=1000000")
    assert response.status_code == 200


def test_a_sign_in_next_with_cr_lf_is_not_followed(client):
    page = client.get("/admin/login?next=/admin/events%0D%0ASet-Cookie:%20x=1")
    assert page.status_code == 200
    response = client.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": csrf(page.data),
                                                 "next": "/admin/events\r\nSet-Cookie: x=1"})
    assert response.status_code == 302 and response.location.endswith("/admin/dashboard")
    assert "x=1" not in response.headers.get("Set-Cookie", "")


DEEP_JSON = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize("path,body", [
    ("/api/v1/keywords", DEEP_JSON),
    ("/api/v1/keywords/try", json.dumps({"text": "STOP", "document": {}})[:-1] + ', "x": ' + DEEP_JSON + "}"),
    ("/api/v1/audience", DEEP_JSON),
])
def test_deep_json_is_400_not_a_500(client, admin_headers, path, body):
    method = client.put if path == "/api/v1/keywords" else client.post
    response = method(path, data=body, content_type="application/json", headers=admin_headers)
    assert response.status_code == 400 and "deeper than" in response.json["message"]


def test_deep_yaml_is_refused_with_every_problem_and_nothing_stored(client, admin_headers, store):
    before = store.latest_keyword_version_number()
    response = client.put("/api/v1/keywords", data="a: " + "[" * 5000 + "]" * 5000,
                          content_type="application/yaml", headers=admin_headers)
    assert response.status_code == 422 and "deeper than" in response.json["errors"][0]["message"]
    assert store.latest_keyword_version_number() == before


@pytest.mark.parametrize("anchor", ["x", ".a", "-", "a.b"])
def test_yaml_aliases_are_refused_whatever_the_anchor_is_called(client, admin_headers, store, anchor):
    """Issue 11 item 4: an anchor named &.a passed a regex; a 4 KB document expanded to 21 MB."""
    before = store.latest_keyword_version_number()
    bomb = f"brand: Example\nsupport: x@example.com\nl0: &{anchor} [a, a, a, a, a, a, a, a]\n"
    bomb += "".join(f"l{i}: &{anchor}{i} [*{anchor if i == 1 else anchor + str(i - 1)}, *{anchor if i == 1 else anchor + str(i - 1)}]\n"
                    for i in range(1, 30))
    response = client.put("/api/v1/keywords", data=bomb, content_type="application/yaml", headers=admin_headers)
    assert response.status_code == 422
    assert "aliases" in response.json["errors"][0]["message"]
    assert store.latest_keyword_version_number() == before


SLOW = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@SLOW
@given(path=st.sampled_from(PAGES), query=st.dictionaries(NAMES, VALUES, max_size=4))
def test_admin_pages_never_answer_500_to_any_query_string(signed_in, an_endpoint, path, query):
    response = signed_in.get(path, query_string=query)
    assert response.status_code < 500, (path, query, response.data[:300])


URLS = st.one_of(st.text(max_size=60), st.builds(lambda rest: "https://" + rest, st.text(max_size=60)),
                 st.sampled_from(["https://crm.example.com/h?x=1#y", "https://[::1]:8443/h", "https://xn--bcher-kva.example/",
                                  "https://a.example/\r\nx", "https://a.example/\x00", "https://:0/", "https://a:b@c/"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(url=URLS, description=st.text(max_size=220))
def test_the_add_endpoint_form_never_answers_500(signed_in, url, description):
    token = csrf(signed_in.get("/admin/webhooks").data)
    response = signed_in.post("/admin/webhooks", data={"url": url, "description": description, "csrf_token": token})
    assert response.status_code in (201, 422), (url, description, response.data[:300])
    if response.status_code == 422:
        assert b"Not added:" in response.data
