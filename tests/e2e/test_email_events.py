"""E-mail provider events through the app and a real database (both backends): SendGrid's
Event Webhook and Mailgun's webhooks, their signatures, replays, batches and bad input.
The same flows against the Procfile's process: test_email_events_server.py."""

from __future__ import annotations

import copy
import re
import time

import pytest

from tests.conftest import ADMIN_TOKEN, csrf
from tests.e2e.email_providers import (
    MAILGUN_KEY,
    MAILGUN_PATH,
    SENDGRID_PATH,
    SendGridKeys,
    mailgun_body,
    raw,
    sendgrid_event,
)
from webhook import create_app
from webhook.keywords import load_file, to_yaml
from webhook.providers import mailgun_events
from webhook.settings import PACKAGED_KEYWORDS

BOB, CAROL, DAN = "bob@example.com", "carol@example.com", "dan@example.com"
KEYS = SendGridKeys()


@pytest.fixture
def mail_app(settings):
    app = create_app(settings.with_changes(sendgrid_event_public_key=KEYS.public, mailgun_signing_key=MAILGUN_KEY))
    yield app
    app.extensions["unsub"].store.close()


@pytest.fixture
def grouped(settings, tmp_path):
    """The app with a second e-mail channel, brand-b-mail, bound to SendGrid unsubscribe group 42."""
    document = copy.deepcopy(load_file(PACKAGED_KEYWORDS).document)
    brand_b = copy.deepcopy(document["channels"]["email"])
    brand_b["asm_group_ids"] = [42]
    document["channels"]["brand-b-mail"] = brand_b
    keywords = tmp_path / "keywords.yaml"
    keywords.write_text(to_yaml(document), encoding="utf-8")
    app = create_app(settings.with_changes(sendgrid_event_public_key=KEYS.public, keywords_file=keywords))
    yield app
    app.extensions["unsub"].store.close()


@pytest.fixture
def mail(mail_app):
    return mail_app.test_client()


@pytest.fixture
def mail_store(mail_app):
    return mail_app.extensions["unsub"].store


def conforms_to_the_openapi_document(app, path: str, answer) -> None:
    """Raises unless the API's answer matches its OpenAPI document (schemathesis checks it)."""
    import schemathesis
    from schemathesis.core.transport import Response

    operation = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)[path]["GET"]
    operation.validate_response(Response.from_any(answer))


def sendgrid(client, payload, *, headers: dict | None = None):
    body = raw(payload)
    return client.post(SENDGRID_PATH, data=body, headers=KEYS.headers(body) if headers is None else headers)


def mailgun(client, payload):
    return client.post(MAILGUN_PATH, data=raw(payload), headers={"Content-Type": "application/json"})


def status(store, address: str, channel: str = "email") -> str:
    found = store.subscription(channel, address)
    return found.status if found else "unknown"


def test_a_signed_spam_report_unsubscribes_email_with_source_complaint(mail, mail_store):
    response = sendgrid(mail, [sendgrid_event("spamreport", "Bob@Example.com", campaign="spring-sale", sg_event_id="sg1")])
    assert response.status_code == 200 and b"1 recorded" in response.data
    (event,) = mail_store.history("email", BOB)
    assert (event.action, event.source, event.match_kind, event.campaign, event.message_id) == (
        "opt_out", "complaint", "sendgrid_spamreport", "spring-sale", "sg1")
    assert mail_store.subscription("sms", BOB) is None and mail_store.subscription("whatsapp", BOB) is None


def test_sendgrid_unsubscribes_groups_and_resubscribes(grouped):
    mail, mail_store = grouped.test_client(), grouped.extensions["unsub"].store
    batch = [sendgrid_event("unsubscribe", BOB), sendgrid_event("group_unsubscribe", CAROL, asm_group_id=42),
             sendgrid_event("group_unsubscribe", DAN, asm_group_id=7)]
    assert sendgrid(mail, batch).status_code == 200
    assert status(mail_store, BOB) == "unsubscribed"
    assert (status(mail_store, CAROL, "brand-b-mail"), status(mail_store, CAROL)) == ("unsubscribed", "unknown")
    assert status(mail_store, DAN) == "unsubscribed"  # an unbound group: the default e-mail channel
    assert sendgrid(mail, [sendgrid_event("group_resubscribe", CAROL, asm_group_id=42)]).status_code == 200
    assert status(mail_store, CAROL, "brand-b-mail") == "subscribed"
    assert [e.source for e in mail_store.history("brand-b-mail", CAROL)] == ["provider", "provider"]


@pytest.mark.parametrize("broad", ["unsubscribe", "spamreport", "group_unsubscribe_7"])
def test_rejoining_one_group_does_not_undo_a_broader_opt_out(mail, mail_store, broad):
    """A contact who unsubscribed from all mail, reported spam, or left another group stays
    unsubscribed when they rejoin group 42: opt-in is strict, and narrower is not broader."""
    now = int(time.time())
    first = (sendgrid_event("group_unsubscribe", CAROL, asm_group_id=7, timestamp=now - 60) if broad.startswith("group")
             else sendgrid_event(broad, CAROL, timestamp=now - 60))
    assert sendgrid(mail, [first]).status_code == 200
    assert sendgrid(mail, [sendgrid_event("group_resubscribe", CAROL, asm_group_id=42, timestamp=now - 30)]).status_code == 200
    assert status(mail_store, CAROL) == "unsubscribed"
    assert [e.action for e in mail_store.history("email", CAROL)] == ["opt_out"]
    # Rejoining the group they left does re-subscribe them.
    if broad.startswith("group"):
        assert sendgrid(mail, [sendgrid_event("group_resubscribe", CAROL, asm_group_id=7, timestamp=now - 10)]).status_code == 200
        assert status(mail_store, CAROL) == "subscribed"


def test_a_redelivered_sendgrid_event_counts_once(mail, mail_store):
    batch = [sendgrid_event("spamreport", BOB, sg_event_id="same-id")]
    assert sendgrid(mail, batch).status_code == 200
    again = sendgrid(mail, batch)  # SendGrid redelivers (often): signed afresh, same event
    assert again.status_code == 200 and b"1 already recorded" in again.data
    assert len(mail_store.history("email", BOB)) == 1


def test_other_sendgrid_events_are_accepted_and_ignored(mail, mail_store):
    batch = [sendgrid_event(kind, BOB) for kind in ("processed", "delivered", "open", "click", "bounce", "dropped", "deferred")]
    response = sendgrid(mail, batch)
    assert response.status_code == 200 and b"7 ignored" in response.data
    assert mail_store.event_count() == 0


def test_forged_or_unsigned_sendgrid_batches_change_nothing(mail, mail_store):
    body = raw([sendgrid_event("spamreport", BOB)])
    good = KEYS.headers(body)
    forged = SendGridKeys().headers(body)  # signed with another key pair
    for headers in (forged, {}, {**good, "X-Twilio-Email-Event-Webhook-Signature": ""},
                    {k: v for k, v in good.items() if k != "X-Twilio-Email-Event-Webhook-Timestamp"},
                    {**good, "X-Twilio-Email-Event-Webhook-Timestamp": str(int(time.time()) + 1)}):
        assert mail.post(SENDGRID_PATH, data=body, headers=headers).status_code == 403
    # A signed batch with another body under its signature.
    other = raw([sendgrid_event("spamreport", CAROL)])
    assert mail.post(SENDGRID_PATH, data=other, headers=good).status_code == 403
    assert mail_store.event_count() == 0


def test_sendgrid_without_its_key_refuses_everything(client, store):
    body = raw([sendgrid_event("spamreport", BOB)])
    assert client.post(SENDGRID_PATH, data=body, headers=KEYS.headers(body)).status_code == 403
    assert store.event_count() == 0


@pytest.mark.parametrize("body", [b"not json", b"{}", b'{"event": "spamreport"}', b"null", b"\xff\xfe", b"[" * 5000 + b"]" * 5000,
                                  b"[" + b"9" * 5000 + b"]"])
def test_sendgrid_nonsense_bodies_get_400(mail, mail_store, body):
    response = mail.post(SENDGRID_PATH, data=body, headers=KEYS.headers(body))
    assert response.status_code == 400, response.data
    assert mail_store.event_count() == 0


def test_a_sendgrid_batch_with_bad_items_records_the_rest(mail, mail_store):
    batch = ["junk", sendgrid_event("spamreport", "not an address"), sendgrid_event("spamreport", BOB, sg_event_id=None),
             sendgrid_event("spamreport", CAROL)]
    response = sendgrid(mail, batch)
    assert response.status_code == 200 and b"3 skipped" in response.data
    assert (status(mail_store, BOB), status(mail_store, CAROL)) == ("unknown", "unsubscribed")


def test_the_sendgrid_events_route_is_not_the_inbound_parse_url(mail, settings):
    # /webhooks/email/sendgrid/{secret} is SendGrid Inbound Parse; "events" is never a secret
    # (16+ characters), and the events route wins the match.
    response = mail.post(SENDGRID_PATH, data=b"from=bob@example.com&subject=stop",
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 403 and b"X-Twilio-Email-Event-Webhook-Signature" in response.data


def test_mailgun_complained_unsubscribes_with_source_complaint(mail, mail_store):
    response = mailgun(mail, mailgun_body("complained", "Bob@Example.com", campaign="black-friday", event_id="mg1"))
    assert response.status_code == 200
    (event,) = mail_store.history("email", BOB)
    assert (event.source, event.match_kind, event.campaign, event.message_id) == (
        "complaint", "mailgun_complained", "black-friday", "mg1")
    assert mailgun(mail, mailgun_body("unsubscribed", CAROL)).status_code == 200
    assert [e.source for e in mail_store.history("email", CAROL)] == ["provider"]
    assert mailgun(mail, mailgun_body("delivered", DAN)).status_code == 200
    assert status(mail_store, DAN) == "unknown"


def test_a_redelivered_mailgun_event_counts_once(mail, mail_store):
    for _ in range(2):  # Mailgun retries with a fresh signature, the same event id
        assert mailgun(mail, mailgun_body("complained", BOB, event_id="mg-same")).status_code == 200
    assert len(mail_store.history("email", BOB)) == 1


def test_a_bad_or_stale_mailgun_signature_is_refused(mail, mail_store):
    forged = mailgun_body("complained", BOB, key="another-signing-key-0123456789")
    stale = mailgun_body("complained", BOB, timestamp=int(time.time()) - mailgun_events.MAX_AGE_SECONDS - 60)
    unsigned = {"event-data": mailgun_body("complained", BOB)["event-data"]}
    for body in (forged, stale, unsigned, b"not json", b"[]", b"\xff"):
        assert mailgun(mail, body).status_code == 403
    assert mail_store.event_count() == 0


def test_a_captured_mailgun_signature_cannot_carry_another_body(mail, mail_store):
    first = mailgun_body("delivered", BOB)
    assert mailgun(mail, first).status_code == 200
    # The signature covers timestamp + token only: the same one under a forged complaint.
    forged = {"signature": first["signature"], "event-data": mailgun_body("complained", CAROL)["event-data"]}
    response = mailgun(mail, forged)
    assert response.status_code == 403 and b"used before" in response.data
    assert status(mail_store, CAROL) == "unknown"


def test_a_mailgun_token_used_on_one_route_is_refused_on_the_other(mail, mail_store):
    signed = mailgun_body("delivered", BOB)
    assert mailgun(mail, signed).status_code == 200
    form = {**signed["signature"], "sender": CAROL, "subject": "STOP", "body-plain": ""}
    assert mail.post("/webhooks/email/mailgun", data=form).status_code == 403  # inbound mail: same token
    assert status(mail_store, CAROL) == "unknown"


def test_the_inbound_mail_route_refuses_a_reused_token_too(mail, mail_store):
    signature = mailgun_body("delivered", BOB)["signature"]
    form = {**signature, "sender": BOB, "subject": "STOP", "body-plain": ""}
    assert mail.post("/webhooks/email/mailgun", data=form).status_code == 200
    replay = {**form, "sender": CAROL}  # a captured request, another sender under its signature
    assert mail.post("/webhooks/email/mailgun", data=replay).status_code == 403
    assert (status(mail_store, BOB), status(mail_store, CAROL)) == ("unsubscribed", "unknown")


@pytest.mark.parametrize("event_data", [None, "complained", [], 3])
def test_a_signed_mailgun_body_that_is_not_mailguns_shape_gets_400(mail, mail_store, event_data):
    body = mailgun_body("complained", BOB)
    body["event-data"] = event_data
    assert mailgun(mail, body).status_code == 400
    assert mail_store.event_count() == 0


def test_a_mailgun_event_without_a_usable_recipient_is_skipped_not_retried(mail, mail_store):
    response = mailgun(mail, mailgun_body("complained", "nobody"))
    assert response.status_code == 200 and b"1 skipped" in response.data
    assert mail_store.event_count() == 0


def test_mailgun_without_its_key_refuses_everything(client, store):
    assert mailgun(client, mailgun_body("complained", BOB)).status_code == 403
    assert store.event_count() == 0


def test_a_complaint_is_in_the_history_the_stats_and_the_dashboard(mail, mail_store, admin_headers):
    sends = {"channel": "email", "sends": [{"address": f"r{i}@example.com"} for i in range(400)]}
    assert mail.post("/api/v1/campaigns/spring-sale/sends", json=sends, headers=admin_headers).status_code == 200
    batch = [sendgrid_event("spamreport", "r1@example.com", campaign="spring-sale"),
             sendgrid_event("spamreport", "r2@example.com", unique_args={"campaign": "spring-sale"}),
             sendgrid_event("unsubscribe", "r3@example.com", campaign="spring-sale"),
             sendgrid_event("spamreport", BOB, campaign="never-reported")]
    assert sendgrid(mail, batch).status_code == 200
    found = mail.get("/api/v1/subscriptions/email/r1@example.com", headers=admin_headers).json
    assert found["status"] == "unsubscribed" and [h["source"] for h in found["history"]] == ["complaint"]
    answer = mail.get("/api/v1/stats", headers=admin_headers)
    conforms_to_the_openapi_document(mail.application, "/stats", answer)
    stats = answer.json
    rows = {row["campaign"]: row for row in stats["campaigns"]}
    spring = rows["spring-sale"]
    assert (spring["delivered"], spring["opt_outs"], spring["complaints"]) == (400, 3, 2)
    assert (spring["complaint_rate"], spring["complaint_level"]) == (0.005, "over_limit")
    assert (rows["never-reported"]["delivered"], rows["never-reported"]["complaints"]) == (0, 1)
    assert rows["never-reported"]["complaint_rate"] is None and rows["never-reported"]["complaint_level"] is None
    assert stats["totals"]["complaints"] == 3 and {"kind": "complaint", "opt_outs": 3} in stats["kinds"]

    page = mail.get("/admin/login")
    mail.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": csrf(page.data)})
    html = mail.get("/admin/dashboard").get_data(as_text=True)
    assert re.search(r'id="total-complaints">3<', html)
    assert re.search(r'<td class="complaints over_limit">0\.50%\s*<strong>0\.3 % or more</strong>', html)
    assert "Complaint rate" in html and "never-reported" in html


def test_a_future_dated_sendgrid_resubscribe_cannot_hide_a_later_unsubscribe(grouped):
    mail, mail_store = grouped.test_client(), grouped.extensions["unsub"].store
    ten_years = int(time.time()) + 10 * 365 * 86400
    sendgrid(mail, [sendgrid_event("group_unsubscribe", CAROL, asm_group_id=42, timestamp=int(time.time()) - 60)])
    sendgrid(mail, [sendgrid_event("group_resubscribe", CAROL, asm_group_id=42, timestamp=ten_years)])
    assert status(mail_store, CAROL, "brand-b-mail") == "subscribed"
    time.sleep(1.1)  # SendGrid's times are whole seconds: an unsubscribe a second later
    later = sendgrid_event("group_unsubscribe", CAROL, asm_group_id=42, timestamp=int(time.time()))
    assert sendgrid(mail, [later]).status_code == 200
    assert status(mail_store, CAROL, "brand-b-mail") == "unsubscribed"
    assert all(e.occurred_at.timestamp() <= time.time() for e in mail_store.history("brand-b-mail", CAROL))
