"""Dashboard, review queue, audit export and erasure on the admin pages (Flask client and Chromium)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

import pytest

from tests.browser import browser_page  # noqa: F401 (fixture)
from tests.conftest import ADMIN_TOKEN, csrf, new_sid
from tests.e2e.servers import gunicorn

ALICE = "+14155550401"
BOB = "+14155550402"



@pytest.fixture
def admin(client):
    page = client.get("/admin/login")
    assert client.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": csrf(page.data)}).status_code == 302
    return client


def test_home_is_the_dashboard_with_charts_numbers_and_reasons(admin, twilio):
    params = {"MessageSid": new_sid(), "MessageStatus": "delivered", "To": ALICE, "From": "+14155550100"}
    assert twilio.post("/webhooks/twilio/status?campaign=black-friday", params).status_code == 204
    twilio.message("STOP too many texts <b>", sender=ALICE)
    twilio.message("ARRET", sender=BOB)

    assert admin.get("/admin/").location.endswith("/admin/dashboard")
    page = admin.get("/admin/dashboard")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert re.search(r'id="total-opt-outs">2<', html)
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(svgs) == 4
    for svg in svgs:
        ET.fromstring(svg)  # well-formed
    assert "style=" not in html
    assert "black-friday · sms" in html and "100.00%" in html  # 1 opt-out of 1 delivered
    assert "STOP too many texts &lt;b&gt;" in html and "too many texts <b>" not in html  # escaped
    assert "too many" in html  # the reason's category
    assert ">fr<" in html or "fr: 1" in html
    only_whatsapp = admin.get("/admin/dashboard?channel=whatsapp&days=7").get_data(as_text=True)
    assert re.search(r'id="total-opt-outs">0<', only_whatsapp)


def test_review_queue_on_the_admin_pages(admin, twilio, status_of):
    twilio.message("cancel my order please", sender=ALICE)
    twilio.message("I will quit my job", sender=BOB)
    page = admin.get("/admin/review")
    html = page.get_data(as_text=True)
    assert "cancel my order please" in html and "I will quit my job" in html
    ids = [int(n) for n in re.findall(r'action="/admin/review/(\d+)"', html)]
    token = csrf(page.data)
    assert admin.post(f"/admin/review/{ids[0]}", data={"decision": "confirm"}).status_code == 400  # no CSRF token
    done = admin.post(f"/admin/review/{ids[0]}", data={"decision": "confirm", "csrf_token": token}, follow_redirects=True)
    assert f"{ALICE} is now unsubscribed on sms." in done.get_data(as_text=True)
    admin.post(f"/admin/review/{ids[1]}", data={"decision": "dismiss", "csrf_token": token})
    assert (status_of("sms", ALICE), status_of("sms", BOB)) == ("unsubscribed", "unknown")
    again = admin.post(f"/admin/review/{ids[1]}", data={"decision": "confirm", "csrf_token": token}, follow_redirects=True)
    assert "is not open" in again.get_data(as_text=True)
    assert "Nothing open." in admin.get("/admin/review").get_data(as_text=True)
    assert "by admin page" in admin.get("/admin/review?status=confirmed").get_data(as_text=True)


def test_export_and_erase_a_contact_from_the_contacts_page(admin, twilio, status_of, client, admin_headers):
    twilio.message("STOP", sender=ALICE)
    page = admin.get(f"/admin/contacts?q={ALICE}")
    html = page.get_data(as_text=True)
    assert "/admin/contacts/export?address=%2B14155550401&amp;format=json" in html
    exported = admin.get("/admin/contacts/export", query_string={"address": ALICE, "format": "json"})
    assert exported.headers["Content-Disposition"].startswith("attachment")
    assert [e["action"] for e in json.loads(exported.data)["events"]] == ["opt_out"]
    as_csv = admin.get("/admin/contacts/export", query_string={"address": ALICE, "format": "csv"}).get_data(as_text=True)
    assert as_csv.splitlines()[1].startswith(f"{ALICE},sms,opt_out,keyword")

    token = csrf(page.data)
    wrong = admin.post("/admin/contacts/erase", data={"address": ALICE, "confirm": "yes", "csrf_token": token},
                       follow_redirects=True)
    assert "Nothing erased" in wrong.get_data(as_text=True)
    assert len(client.get(f"/api/v1/subscriptions/sms/{ALICE}", headers=admin_headers).json["history"]) == 1
    done = admin.post("/admin/contacts/erase", data={"address": ALICE, "confirm": ALICE, "csrf_token": token},
                      follow_redirects=True)
    assert "still suppressed on sms" in done.get_data(as_text=True)
    lookup = client.get(f"/api/v1/subscriptions/sms/{ALICE}", headers=admin_headers).json
    assert (lookup["status"], lookup["history"]) == ("unsubscribed", [])
    after = admin.get(f"/admin/contacts?q={ALICE}").get_data(as_text=True)
    assert re.search(r'SMS: \+14155550401</h2>\s*<p>Status: <strong class="status">unsubscribed</strong>', after)


@pytest.mark.slow
def test_dashboard_in_a_browser_shows_charts_without_csp_errors(browser_page, database_url, tmp_path):  # noqa: F811
    page = browser_page
    errors: list[str] = []
    # Anything the page's Content-Security-Policy refused (an inline style in a chart, say).
    page.on("console", lambda message: errors.append(message.text) if "Content Security Policy" in message.text else None)
    server = gunicorn(database_url, tmp_path, workers=1)
    try:
        server.send("STOP too many messages", "+14155550409")
        page.goto(f"{server.base}/admin/dashboard")
        page.get_by_label("Admin token").fill(ADMIN_TOKEN)
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"{server.base}/admin/dashboard")
        assert page.get_by_role("heading", name="Dashboard").is_visible()
        charts = page.get_by_role("img")
        assert charts.count() == 4
        box = charts.first.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100
        assert "too many messages" in page.inner_text("#reasons")
        page.get_by_label("Period", exact=True).select_option("7")
        page.get_by_role("button", name="Show").click()
        assert "days=7" in page.url
        assert errors == []
    finally:
        server.stop()
