"""The admin keyword page sets a channel's revocation scope (issue 15) through the Flask client:
from any language's page, keeping a scope the page did not change, refusing a bad one beside
its select, warning about replies that still say "marketing"; the Keywords list and the
Contacts page show it."""

from __future__ import annotations

import re

from tests.e2e.test_revocation_scope import ALICE, set_scopes, split


def page_form(page: bytes) -> dict[str, str]:
    """What the keyword page's form would post as it stands: its boxes, the scope select and the hidden fields."""
    text = page.decode()
    unescape = lambda v: v.replace("&#34;", '"').replace("&#39;", "'").replace("&amp;", "&")  # noqa: E731
    form = {name: unescape(value) for name, value in re.findall(r'<textarea id="(\w+)" name="\w+"[^>]*>([^<]*)</textarea>', text)}
    form.update(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', text))
    select = re.search(r'<select id="revocation_scope".*?</select>', text, re.S)
    assert select, "the page has no revocation scope select"
    (form["revocation_scope"],) = re.findall(r'<option value="(\w+)" selected>', select.group(0))
    return form


def scope_of(client, headers, channel: str) -> str | None:
    return client.get("/api/v1/keywords", headers=headers).json["document"]["channels"][channel].get("revocation_scope")


def test_the_admin_page_changes_the_channel_scope_from_any_language(signed_in, client, admin_headers, twilio):
    listing = signed_in.get("/admin/keywords").get_data(as_text=True)
    assert listing.count("campaigns (<code>campaign</code>)") == 3
    french = signed_in.get("/admin/keywords/sms/fr")
    text = french.get_data(as_text=True)
    assert "47 CFR 64.1200(a)(10)" in text and "2027-01-31" in text
    assert 'id="scope-summary"' in text and "stops <strong>campaigns</strong>" in text
    assert 'id="scope-warnings"' not in text
    form = page_form(french.data)
    assert (form["revocation_scope"], form["revocation_scope_was"]) == ("campaign", "campaign")
    saved = signed_in.post("/admin/keywords/sms/fr", data={**form, "revocation_scope": "automated", "action": "save"},
                           follow_redirects=True)
    assert b"Saved as version 2." in saved.data
    assert (scope_of(client, admin_headers, "sms"), scope_of(client, admin_headers, "whatsapp")) == ("automated", "campaign")

    # The English page shows the channel's scope, and warns about replies that still say "marketing".
    english = signed_in.get("/admin/keywords/sms/en").get_data(as_text=True)
    assert "stops <strong>campaigns and flows</strong>" in english
    assert page_form(english.encode())["revocation_scope"] == "automated"
    warnings = re.search(r'<div class="flash warning" role="status" id="scope-warnings">(.*?)</div>', english, re.S)
    assert warnings and "still say \"marketing\"" in warnings.group(1)
    assert "opt-out reply: English, French, Spanish, Portuguese, German" in warnings.group(1)
    assert "opt-in reply: English<" in warnings.group(1)
    assert "campaigns and flows (<code>automated</code>)" in signed_in.get("/admin/keywords").get_data(as_text=True)

    # It is live: a STOP now holds back flows.
    twilio.message("STOP", sender=ALICE)
    assert split(client, admin_headers, "sms", "flow", [ALICE])["suppressed"] == [ALICE]
    contact = signed_in.get(f"/admin/contacts?q={ALICE}").get_data(as_text=True)
    assert 'Not to be sent: <span class="gated">campaign, flow</span>' in contact


def test_saving_a_language_page_keeps_a_scope_it_did_not_change(signed_in, client, admin_headers):
    stale = page_form(signed_in.get("/admin/keywords/sms/en").data)  # opened while the scope is campaign
    set_scopes(client, admin_headers, sms="all")  # someone else widens it meanwhile
    edited = {**stale, "opt_out_keywords": stale["opt_out_keywords"] + "\nPLONK", "action": "save"}
    assert b"Saved as version 3." in signed_in.post("/admin/keywords/sms/en", data=edited, follow_redirects=True).data
    assert scope_of(client, admin_headers, "sms") == "all"  # the stale select did not undo it
    # A form without the select (an older page, a script) keeps it too; "Nothing changed" is still possible.
    fresh = page_form(signed_in.get("/admin/keywords/sms/en").data)
    del fresh["revocation_scope"], fresh["revocation_scope_was"]
    again = signed_in.post("/admin/keywords/sms/en", data={**fresh, "action": "save"}, follow_redirects=True)
    assert b"Nothing changed." in again.data and scope_of(client, admin_headers, "sms") == "all"
    # And a page whose select the admin did change sets it back.
    fresh = page_form(signed_in.get("/admin/keywords/sms/de").data)
    signed_in.post("/admin/keywords/sms/de", data={**fresh, "revocation_scope": "campaign", "action": "save"})
    assert scope_of(client, admin_headers, "sms") == "campaign"


def test_the_admin_page_refuses_a_bad_scope_beside_the_select(signed_in, client, admin_headers):
    form = page_form(signed_in.get("/admin/keywords/whatsapp/en").data)
    refused = signed_in.post("/admin/keywords/whatsapp/en", data={**form, "revocation_scope": "everything", "action": "save"})
    assert refused.status_code == 422
    text = refused.get_data(as_text=True)
    errors = re.search(r'<ul class="field-errors" id="revocation_scope-errors">(.*?)</ul>', text, re.S)
    assert errors and "&#39;everything&#39; is not a revocation scope" in errors.group(1)
    assert "channels.whatsapp" not in text
    assert scope_of(client, admin_headers, "whatsapp") == "campaign"
    # A refused form that had no select shows the channel's scope, not an empty choice.
    set_scopes(client, admin_headers, whatsapp="all")
    bare = {k: v for k, v in form.items() if not k.startswith("revocation_scope")}
    refused = signed_in.post("/admin/keywords/whatsapp/en", data={**bare, "opt_out_reply": "", "action": "save"})
    assert refused.status_code == 422
    shown = page_form(refused.data)
    assert (shown["revocation_scope"], shown["revocation_scope_was"]) == ("all", "all")


def test_the_dashboard_and_events_page_show_when_the_scope_changed(signed_in, client, admin_headers, twilio):
    twilio.message("STOP", sender=ALICE)
    assert 'id="scope-changes"' not in signed_in.get("/admin/dashboard").get_data(as_text=True)
    assert 'id="scope-changes"' not in signed_in.get("/admin/events").get_data(as_text=True)
    set_scopes(client, admin_headers, sms="automated")

    def changes(path: str) -> str:
        found = re.search(r'<section aria-labelledby="h-scope-changes" id="scope-changes">(.*?)</section>',
                          signed_in.get(path).get_data(as_text=True), re.S)
        return found.group(1) if found else ""

    for path in ("/admin/dashboard", "/admin/events", "/admin/events?channel=sms", "/admin/dashboard?channel=sms"):
        shown = changes(path)
        assert "sms: campaigns (<code>campaign</code>)" in shown, path
        assert "→ campaigns and flows (<code>automated</code>)" in shown and 'href="/admin/keywords/versions/2">version 2<' in shown
        assert " UTC, sms" in shown
    assert changes("/admin/events?channel=whatsapp") == ""
    assert changes("/admin/dashboard?channel=whatsapp") == ""
    assert changes("/admin/events?to=2026-01-31") == ""  # the filtered dates end before the change
