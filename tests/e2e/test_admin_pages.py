"""Admin pages through the Flask client: sign-in, CSRF, keywords, contacts, events."""

from __future__ import annotations

import re

import pytest

from tests.conftest import ADMIN_TOKEN, csrf

ALICE = "+14155550123"



@pytest.mark.parametrize("path", ["/admin/", "/admin/keywords", "/admin/contacts?q=x", "/admin/events", "/admin/events.csv", "/admin/keywords/versions"])
def test_pages_without_a_session_redirect_to_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert "/admin/login?next=" in response.location


def test_wrong_token_is_refused(client):
    page = client.get("/admin/login")
    response = client.post("/admin/login", data={"token": "not-the-token-0000", "csrf_token": csrf(page.data)})
    assert response.status_code == 401 and b"That token is not right." in response.data
    assert client.get("/admin/keywords").status_code == 302


def test_forms_without_a_csrf_token_are_refused(client, signed_in, store):
    assert client.post("/admin/login", data={"token": ADMIN_TOKEN}).status_code == 400
    response = signed_in.post(f"/admin/contacts/sms/{ALICE}", data={"status": "unsubscribed", "reason": "phone call"})
    assert response.status_code == 400
    assert store.event_count() == 0


def test_open_redirects_are_not_followed(client):
    page = client.get("/admin/login")
    response = client.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": csrf(page.data), "next": "//evil.example.com/admin"})
    assert response.location.endswith("/admin/dashboard")  # the home page


def test_security_headers_and_cookie_flags(client, signed_in):
    response = signed_in.get("/admin/keywords")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    page = client.get("/admin/login")
    cookie = client.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": csrf(page.data)}).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_contact_status_change_needs_a_reason_and_is_recorded(signed_in, store, twilio):
    twilio.message("STOP", sender=ALICE)
    page = signed_in.get("/admin/contacts?q=%2B14155550123")
    assert b"unsubscribed" in signed_in.get("/admin/contacts?q=14155550123").data
    assert b"unsubscribed" in page.data and b"STOP" in page.data
    token = csrf(page.data)
    refused = signed_in.post(f"/admin/contacts/sms/{ALICE}", data={"status": "subscribed", "reason": "", "csrf_token": token}, follow_redirects=True)
    assert b"give a reason" in refused.data
    signed_in.post(f"/admin/contacts/sms/{ALICE}", data={"status": "subscribed", "reason": "asked by phone", "csrf_token": token})
    last = store.history("sms", ALICE)[-1]
    assert (last.source, last.action) == ("admin", "opt_in") and "asked by phone" in last.reason


def test_keyword_edit_refuses_a_bad_edit_and_lists_the_errors(signed_in, twilio):
    page = signed_in.get("/admin/keywords/sms/en")
    token = csrf(page.data)
    form = {name: value for name, value in re.findall(rb'<textarea id="(\w+)" name="\w+"[^>]*>([^<]*)</textarea>', page.data)}
    form = {k.decode(): v.decode().replace("&#34;", '"').replace("&#39;", "'").replace("&amp;", "&") for k, v in form.items()}
    form["opt_out_keywords"] = form["opt_out_keywords"].replace("STOP\n", "")
    form["help_reply"] = "x" * 400
    response = signed_in.post("/admin/keywords/sms/en", data={**form, "csrf_token": token, "action": "save"})
    assert response.status_code == 422
    assert b"SMS channels must keep STOP" in response.data and b"400 characters" in response.data
    beside = re.search(rb'<ul class="field-errors" id="opt_out_keywords-errors">(.*?)</ul>', response.data)
    assert beside and b"must keep STOP as an opt-out keyword" in beside.group(1)
    assert b"unsubscribed" in twilio.message("STOP", sender=ALICE).data


def test_events_page_filters_and_exports_csv(signed_in, twilio):
    twilio.message("STOP", sender=ALICE)
    twilio.message("STOP", sender="+14155550124", whatsapp=True)
    page = signed_in.get("/admin/events?channel=whatsapp")
    assert b"1 event(s)" in page.data and b"+14155550124" in page.data
    exported = signed_in.get("/admin/events.csv?action=opt_out")
    assert exported.mimetype == "text/csv"
    lines = exported.get_data(as_text=True).strip().splitlines()
    assert lines[0].startswith("at,channel,address") and len(lines) == 3


def test_csv_cells_never_start_a_formula(signed_in, twilio):
    twilio.message("STOP", sender=ALICE)
    twilio.message('=HYPERLINK("http://x","stop") please stop', sender="+14155550124")
    text = signed_in.get("/admin/events.csv").get_data(as_text=True)
    assert "'=HYPERLINK" in text and ",=HYPERLINK" not in text


def test_sign_in_is_rate_limited_per_client(client, monkeypatch):
    from webhook.web import admin

    monkeypatch.setattr(admin, "failed_sign_ins", admin.FailedSignIns(limit=3, window_seconds=60))
    token = csrf(client.get("/admin/login").data)
    for _ in range(3):
        assert client.post("/admin/login", data={"token": "wrong-token-0000000", "csrf_token": token}).status_code == 401
    blocked = client.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": token})
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    assert client.get("/admin/keywords").status_code == 302  # still not signed in


def test_the_log_reads_in_event_time_everywhere(signed_in, client, store, admin_headers):
    """Issue 11 item 13: the events page sorted by recording time but showed event time, and
    exports put a later-recorded but earlier event after a later one."""
    from datetime import timedelta

    from webhook.domain import ConsentEvent, utcnow

    now = utcnow().replace(microsecond=0)
    stop = ConsentEvent("sms", ALICE, "opt_out", "keyword", now - timedelta(hours=1), keyword="STOP")
    store.record(stop)
    # Recorded afterwards, but it happened earlier (an import dated the day before), and a tie.
    store.import_events([
        ConsentEvent("sms", ALICE, "opt_out", "import", now - timedelta(days=1), reason="list.csv"),
        ConsentEvent("sms", ALICE, "opt_in", "admin", now - timedelta(hours=1), reason="tie, recorded later"),
    ])
    expected = ["import", "keyword", "admin"]  # event time, ties in the order recorded
    page = signed_in.get("/admin/events").get_data(as_text=True)
    shown = re.findall(r"<td>(imported list|message|admin)</td>", page)
    assert shown == ["admin", "message", "imported list"], shown  # newest first
    exported = signed_in.get("/admin/events.csv").get_data(as_text=True).splitlines()[1:]
    assert [line.split(",")[4] for line in exported] == expected[::-1]
    record = client.get(f"/api/v1/contacts/{ALICE}/export", headers=admin_headers).json
    assert [e["source"] for e in record["events"]] == expected
    history = client.get(f"/api/v1/subscriptions/sms/{ALICE}", headers=admin_headers).json["history"]
    assert [h["source"] for h in history] == expected


def _edit_form(signed_in, path: str) -> dict[str, str]:
    """The keyword page's form as a browser would send it back unchanged."""
    import html

    page = signed_in.get(path).get_data(as_text=True)
    form = {name: html.unescape(value) for name, value in re.findall(r'<textarea id="(\w+)" name="\w+"[^>]*>([^<]*)</textarea>', page)}
    form.update({name: html.unescape(value) for name, value in re.findall(r'<input type="\w+" (?:id="\w+" )?name="(\w+)"[^>]*? value="([^"]*)"', page)})
    form.update({name: value for name, value in re.findall(r'<select id="\w+" name="(\w+)"[^>]*>.*?<option value="(\w+)" selected', page, re.S)})
    form["csrf_token"] = csrf(page.encode())
    return form


def test_the_keyword_page_shows_and_sets_a_channels_forward(signed_in, client, admin_headers):
    """Issue 18: forward is validated, versioned and shown on the keyword page like every field."""
    form = _edit_form(signed_in, "/admin/keywords/sms/fr")
    assert form["forward_url"] == "" and form["forward_messages"] == "non_consent"
    saved = signed_in.post("/admin/keywords/sms/fr", data={**form, "forward_url": "https://helpdesk.example.com/in",
                                                           "forward_messages": "all", "action": "save"})
    assert saved.status_code == 302
    document = client.get("/api/v1/keywords", headers=admin_headers).json["document"]
    assert document["channels"]["sms"]["forward"] == {"url": "https://helpdesk.example.com/in", "messages": "all",
                                                      "timeout_seconds": 8}
    # Another language's page shows it, and saving it unchanged keeps it.
    english = _edit_form(signed_in, "/admin/keywords/sms/en")
    assert english["forward_url"] == "https://helpdesk.example.com/in" and english["forward_messages"] == "all"
    english["help_keywords"] += "\nSUPPORT"
    assert signed_in.post("/admin/keywords/sms/en", data={**english, "action": "save"}).status_code == 302
    assert client.get("/api/v1/keywords", headers=admin_headers).json["document"]["channels"]["sms"]["forward"]["url"] == \
        "https://helpdesk.example.com/in"
    # A bad one is refused beside its field, in words.
    bad = signed_in.post("/admin/keywords/sms/en", data={**_edit_form(signed_in, "/admin/keywords/sms/en"),
                                                         "forward_url": "http://127.0.0.1:9/x", "action": "save"})
    assert bad.status_code == 422
    assert b'id="forward_url-errors"' in bad.data and b"must be https://" in bad.data
    slow = signed_in.post("/admin/keywords/sms/en", data={**_edit_form(signed_in, "/admin/keywords/sms/en"),
                                                          "forward_timeout": "30", "action": "save"})
    assert slow.status_code == 422 and b'id="forward_timeout-errors"' in slow.data
    # Emptied: no forwarding.
    cleared = signed_in.post("/admin/keywords/sms/en", data={**_edit_form(signed_in, "/admin/keywords/sms/en"),
                                                             "forward_url": "", "action": "save"})
    assert cleared.status_code == 302
    assert "forward" not in client.get("/api/v1/keywords", headers=admin_headers).json["document"]["channels"]["sms"]


def test_a_rollback_the_rules_refuse_is_explained_not_a_500(signed_in, twilio, admin_headers):
    import copy

    document = signed_in.get("/api/v1/keywords", headers=admin_headers).json["document"]
    with_b = copy.deepcopy(document)
    with_b["channels"]["brand-b"] = {**copy.deepcopy(document["channels"]["sms"]), "senders": ["+14155550999"]}
    assert signed_in.put("/api/v1/keywords", json=with_b, headers=admin_headers).status_code == 200
    twilio.message("STOP", sender=ALICE, to="+14155550999")
    page = signed_in.get("/admin/keywords/versions")
    response = signed_in.post("/admin/keywords/versions/1/rollback", data={"csrf_token": csrf(page.data)}, follow_redirects=True)
    assert response.status_code == 200
    assert b"Not rolled back to version 1" in response.data and b"brand-b" in response.data
    assert signed_in.get("/api/v1/keywords", headers=admin_headers).json["version"] == 2
