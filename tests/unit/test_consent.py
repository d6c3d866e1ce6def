"""Consent rules (docs/product.md) on the pure core, with an in-memory store."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from tests.unit.fakes import FakeStore
from webhook import consent
from webhook.domain import InboundMessage, PreferenceChange, StatusReport, utcnow
from webhook.keywords import load_file, parse_document
from webhook.settings import PACKAGED_KEYWORDS

CONFIG = load_file(PACKAGED_KEYWORDS)
ALICE = "+14155550123"
BOB = "+14155550124"
HASH = consent.address_hasher("unit-test-secret-key-0123456789")


def inbound(body: str, channel_type: str = "sms", sid: str = "SM1", **extra) -> InboundMessage:
    return InboundMessage(channel_type=channel_type, address=ALICE, body=body, message_id=sid,
                          identities=(("number", "+14155550100"),), **extra)


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


def status(store: FakeStore, channel: str) -> str:
    sub = store.subscription(channel, ALICE)
    return sub.status if sub else "unknown"


def test_stop_by_sms_unsubscribes_sms_only(store):
    outcome = consent.handle_inbound(inbound("STOP"), CONFIG, store)
    assert outcome.channel == "sms"
    assert outcome.recorded.created
    assert "unsubscribed" in outcome.reply
    assert [status(store, c) for c in ("sms", "whatsapp", "email")] == ["unsubscribed", "unknown", "unknown"]


def test_stopall_still_changes_only_the_channel_it_came_on(store):
    consent.handle_inbound(inbound("STOPALL", "whatsapp"), CONFIG, store)
    assert [status(store, c) for c in ("sms", "whatsapp", "email")] == ["unknown", "unsubscribed", "unknown"]


def test_event_records_how_the_opt_out_happened(store):
    consent.handle_inbound(inbound("arrêt s'il vous plaît"), CONFIG, store)
    (event,) = store.events
    assert (event.action, event.source, event.keyword, event.language, event.match_kind) == ("opt_out", "keyword", "ARRÊT", "fr", "first_word")
    assert event.raw_text == "arrêt s'il vous plaît"
    assert event.config_version == CONFIG.version
    assert event.message_id == "SM1"


def test_start_resubscribes_and_help_changes_nothing(store):
    consent.handle_inbound(inbound("STOP", sid="SM1"), CONFIG, store)
    help_outcome = consent.handle_inbound(inbound("HELP", sid="SM2"), CONFIG, store)
    assert help_outcome.recorded is None and "support@example.com" in help_outcome.reply
    assert status(store, "sms") == "unsubscribed"
    consent.handle_inbound(inbound("START", sid="SM3"), CONFIG, store)
    assert status(store, "sms") == "subscribed"
    assert [e.action for e in store.events] == ["opt_out", "opt_in"]


def test_ordinary_message_gets_no_reply_and_changes_nothing(store):
    outcome = consent.handle_inbound(inbound("what time do you open?"), CONFIG, store)
    assert outcome.reply is None and outcome.match is None
    assert store.events == []


def test_repeated_message_id_records_once_and_answers_the_same(store):
    first = consent.handle_inbound(inbound("STOP"), CONFIG, store)
    again = consent.handle_inbound(inbound("STOP"), CONFIG, store)
    assert first.recorded.created and not again.recorded.created
    assert first.reply == again.reply
    assert len(store.events) == 1


def test_button_payload_wins_over_body(store):
    outcome = consent.handle_inbound(inbound("Yes, more offers", "whatsapp", button_payload="STOP"), CONFIG, store)
    assert outcome.match.intent == "opt_out"
    assert status(store, "whatsapp") == "unsubscribed"


def test_body_still_counts_when_the_payload_is_opaque(store):
    outcome = consent.handle_inbound(inbound("Stop promotions", "whatsapp", button_payload="btn_7f3a"), CONFIG, store)
    assert outcome.match.intent == "opt_out"


def test_provider_opt_out_is_recorded_without_a_second_reply(store):
    outcome = consent.handle_inbound(inbound("STOP", provider_intent="STOP"), CONFIG, store)
    assert outcome.reply is None
    assert status(store, "sms") == "unsubscribed"


def test_provider_keyword_we_do_not_know_is_still_honoured(store):
    outcome = consent.handle_inbound(inbound("HALT", provider_intent="STOP"), CONFIG, store)
    assert (outcome.match.intent, outcome.match.kind, outcome.reply) == ("opt_out", "provider", None)
    assert status(store, "sms") == "unsubscribed"


def test_nul_and_control_characters_are_stripped_from_raw_text(store):
    consent.handle_inbound(inbound("STOP\x00\x07 now"), CONFIG, store)
    assert store.events[0].raw_text == "STOP now"


def test_a_bound_sender_keeps_a_separate_subscription(store):
    document = copy.deepcopy(CONFIG.document)
    brand_b = copy.deepcopy(document["channels"]["sms"])
    brand_b["senders"] = ["+14155550999"]
    document["channels"]["brand-b"] = brand_b
    config = parse_document(document)
    msg = InboundMessage(channel_type="sms", address=ALICE, body="STOP", message_id="SM9",
                         identities=(("number", "+14155550999"),))
    assert consent.handle_inbound(msg, config, store).channel == "brand-b"
    assert status(store, "brand-b") == "unsubscribed"
    assert status(store, "sms") == "unknown"


def test_a_provider_saying_the_recipient_blocks_us_is_an_opt_out_of_that_channel(store):
    report = StatusReport("sms", "SMout1", ALICE, "undelivered", error_code="21610", recipient_blocked=True)
    outcome = consent.handle_status(report, CONFIG, store, HASH)
    assert outcome.recorded is not None and outcome.recorded.created
    assert (store.events[0].source, store.events[0].channel, store.events[0].message_id) == ("carrier", "sms", "SMout1")
    assert not consent.handle_status(report, CONFIG, store, HASH).recorded.created
    ordinary = StatusReport("sms", "SMout2", BOB, "undelivered", error_code="30003")
    assert consent.handle_status(ordinary, CONFIG, store, HASH).recorded is None and len(store.events) == 1


def test_a_marketing_preference_changed_in_the_providers_settings_is_recorded_once(store):
    change = PreferenceChange("whatsapp", ALICE, "opt_out", key="15551234567:1764666000:stop", detail="stop")
    first = consent.handle_preference(change, CONFIG, store)
    assert first.created and (store.events[0].source, store.events[0].channel) == ("provider", "whatsapp")
    assert not consent.handle_preference(change, CONFIG, store).created
    assert status(store, "sms") == "unknown"


def email_change(**fields) -> PreferenceChange:
    values = dict(channel_type="email", address="bob@example.com", action="opt_out", key="sg1", id_namespace="sendgrid-event",
                  match_kind="sendgrid_spamreport", source="complaint", campaign="spring-sale", message_id="sg1")
    return PreferenceChange(**{**values, **fields})


def test_a_spam_complaint_opts_out_of_email_with_source_complaint_and_its_campaign(store):
    first = consent.handle_preference(email_change(), CONFIG, store)
    assert first.created and first.status == "unsubscribed"
    (event,) = store.events
    assert (event.channel, event.source, event.match_kind, event.campaign, event.message_id, event.dedupe_key) == (
        "email", "complaint", "sendgrid_spamreport", "spring-sale", "sg1", "sendgrid-event:sg1")
    assert not consent.handle_preference(email_change(), CONFIG, store).created  # SendGrid redelivers: once
    # The same id from the other provider is another event (namespaces never collide).
    assert consent.handle_preference(email_change(id_namespace="mailgun-event"), CONFIG, store).created


def test_a_campaign_is_kept_only_for_opt_outs_and_only_when_the_api_could_name_it(store):
    for n, campaign in enumerate(["x" * 101, "a/b", " padded", "tab\there", ""]):
        consent.handle_preference(email_change(key=f"k{n}", campaign=campaign), CONFIG, store)
    consent.handle_preference(email_change(key="in", action="opt_in", source="provider", campaign="spring-sale"), CONFIG, store)
    assert [e.campaign for e in store.events] == [None] * 6
    assert [e.action for e in store.events][-1] == "opt_in"  # still recorded, without a campaign


def test_a_group_event_changes_the_channel_bound_to_its_group(store):
    document = copy.deepcopy(CONFIG.document)
    brand_b = copy.deepcopy(document["channels"]["email"])
    brand_b["asm_group_ids"] = [42]
    document["channels"]["brand-b-mail"] = brand_b
    config = parse_document(document)
    consent.handle_preference(email_change(key="g", identities=(("asm_group_id", "42"),)), config, store)
    consent.handle_preference(email_change(key="u", identities=(("asm_group_id", "43"),)), config, store)
    assert [(e.channel, e.dedupe_key) for e in store.events] == [("brand-b-mail", "sendgrid-event:g"), ("email", "sendgrid-event:u")]


def test_only_provider_and_complaint_are_a_providers_sources(store):
    with pytest.raises(ValueError):
        consent.handle_preference(email_change(source="admin"), CONFIG, store)
    assert store.events == []


def test_an_older_event_never_overrides_a_newer_status(store):
    now = utcnow()
    consent.handle_inbound(inbound("STOP", sid="SMnew", received_at=now), CONFIG, store)
    consent.handle_inbound(inbound("START", sid="SMold", received_at=now - timedelta(hours=1)), CONFIG, store)
    assert status(store, "sms") == "unsubscribed"


def test_admin_status_change_needs_a_known_channel_and_address(store):
    with pytest.raises(consent.UnknownChannel):
        consent.set_status(CONFIG, store, "fax", ALICE, "unsubscribed", "asked by phone")
    with pytest.raises(consent.InvalidAddress):
        consent.set_status(CONFIG, store, "sms", "bob@example.com", "unsubscribed", "asked by phone")
    found = consent.set_status(CONFIG, store, "email", " Bob@Example.com ", "unsubscribed", "asked by phone")
    assert (found.channel, found.address, found.subscription.status, found.history[-1].source) == (
        "email", "bob@example.com", "unsubscribed", "admin")
    assert "asked by phone" in found.history[-1].reason


def test_audience_gates_campaigns_only(store):
    consent.handle_inbound(inbound("STOP"), CONFIG, store)
    addresses = ["+1 415 555 0123", "+14155550124", "nonsense", ALICE, "+14155550124"]
    campaign = consent.audience(CONFIG, store, "sms", "campaign", addresses, HASH)
    assert campaign.sendable == ["+14155550124"]
    assert campaign.suppressed == [ALICE]
    assert campaign.invalid == ["nonsense"]
    for category in ("inbox", "flow"):
        other = consent.audience(CONFIG, store, "sms", category, addresses, HASH)
        assert other.sendable == [ALICE, "+14155550124"] and other.suppressed == []
    # An SMS opt-out does not suppress WhatsApp.
    assert consent.audience(CONFIG, store, "whatsapp", "campaign", [ALICE], HASH).sendable == [ALICE]


def test_audience_reads_national_numbers_with_a_default_region(store):
    assert consent.audience(CONFIG, store, "sms", "campaign", ["(415) 555-0124"], HASH, region="US").sendable == ["+14155550124"]
    assert consent.audience(CONFIG, store, "sms", "campaign", ["(415) 555-0124"], HASH).invalid == ["(415) 555-0124"]


def test_raw_text_is_the_text_that_matched(store):
    consent.handle_inbound(inbound("Stop promotions", "whatsapp", sid="SMa", button_payload="btn_7f3a"), CONFIG, store)
    consent.handle_inbound(inbound("Keep me posted", "whatsapp", sid="SMb", button_payload="STOP"), CONFIG, store)
    assert [e.raw_text for e in store.events] == ["Stop promotions", "STOP"]


def test_words_with_an_opt_out_are_its_reason_and_a_bare_stop_has_none(store):
    consent.handle_inbound(inbound("STOP too many texts", sid="SMr1"), CONFIG, store)
    consent.handle_inbound(inbound("STOP", "whatsapp", sid="SMr2"), CONFIG, store)
    assert [(f.channel, f.kind, f.text) for f in store.feedback] == [("sms", "with_opt_out", "STOP too many texts")]


def test_first_message_after_an_opt_out_is_kept_once_without_a_reply(store):
    consent.handle_inbound(inbound("STOP", sid="SMa1"), CONFIG, store)
    first = consent.handle_inbound(inbound("why so many?", sid="SMa2"), CONFIG, store)
    second = consent.handle_inbound(inbound("hello?", sid="SMa3"), CONFIG, store)
    assert (first.kept, first.reply, second.kept, second.reply) == ("feedback", None, None, None)
    assert [f.text for f in store.feedback] == ["why so many?"]
    # Another channel's opt-out window says nothing about this one.
    other = consent.handle_inbound(inbound("why so many?", "whatsapp", sid="SMa4"), CONFIG, store)
    assert other.kept is None


def test_a_message_a_day_later_is_not_a_reason(store):
    consent.handle_inbound(inbound("STOP", sid="SMb1", received_at=utcnow() - timedelta(hours=25)), CONFIG, store)
    late = consent.handle_inbound(inbound("why so many?", sid="SMb2"), CONFIG, store)
    assert late.kept is None and store.feedback == []


def test_keywords_keep_their_meaning_after_an_opt_out(store):
    consent.handle_inbound(inbound("STOP", sid="SMc1"), CONFIG, store)
    assert consent.handle_inbound(inbound("HELP", sid="SMc2"), CONFIG, store).reply
    restart = consent.handle_inbound(inbound("START", sid="SMc3"), CONFIG, store)
    assert restart.recorded.status == "subscribed" and store.feedback == []


def test_messages_that_mention_an_opt_out_word_wait_for_review(store):
    queued = consent.handle_inbound(inbound("Cancel my order, it's late", sid="SMd1"), CONFIG, store)
    plain = consent.handle_inbound(inbound("see you at the bus stop", sid="SMd2"), CONFIG, store)
    assert (queued.kept, queued.reply, status(store, "sms")) == ("review", None, "unknown")
    assert plain.kept is None or plain.kept == "review"
    item = store.reviews[0]
    decided = consent.decide_review(store, item.id, "confirm", "ana")
    assert decided.status == "confirmed" and status(store, "sms") == "unsubscribed"
    event = store.history("sms", ALICE)[-1]
    assert (event.source, event.match_kind, event.occurred_at) == ("admin", "review", item.received_at)
    with pytest.raises(consent.NotOpen):
        consent.decide_review(store, item.id, "dismiss", "ana")


def test_the_email_page_reason_is_feedback(store):
    consent.set_email_preference(CONFIG, store, "email", "bob@example.com", "opt_out", "page", "too_many: daily")
    consent.set_email_preference(CONFIG, store, "email", "cy@example.com", "opt_out", "one_click")
    assert [(f.address, f.kind, f.text) for f in store.feedback] == [("bob@example.com", "page", "too_many: daily")]


def test_an_erased_address_stays_suppressed_until_it_opts_in_again(store):
    hashed = HASH("sms", ALICE)
    store.erased[("sms", hashed)] = utcnow()
    assert consent.audience(CONFIG, store, "sms", "campaign", [ALICE], HASH).suppressed == [ALICE]
    assert consent.audience(CONFIG, store, "whatsapp", "campaign", [ALICE], HASH).sendable == [ALICE]
    assert consent.lookup(CONFIG, store, "sms", ALICE, HASH).subscription.status == "unsubscribed"
    consent.handle_inbound(inbound("START", sid="SMe1"), CONFIG, store)
    assert consent.audience(CONFIG, store, "sms", "campaign", [ALICE], HASH).sendable == [ALICE]
    # The hash depends on the key: another SECRET_KEY cannot recognise her.
    assert consent.address_hasher("another-secret-key-0123456789")("sms", ALICE) != hashed


def test_contact_csv_keeps_contacts_words_from_running_as_formulas():
    event = {name: None for name in consent.EXPORT_FIELDS} | {
        "channel": "sms", "action": "opt_out", "raw_text": "=HYPERLINK(\"http://x\") STOP", "reason": "+cmd|' /C calc'!A0",
        "at": "2026-11-26T10:00:00Z"}
    lines = consent.contact_csv({"address": ALICE, "events": [event]}).splitlines()
    assert lines[0].startswith("address,channel,action")
    assert lines[1].startswith(f"{ALICE},sms,opt_out")  # the address itself stays as it is
    assert "'=HYPERLINK" in lines[1] and "'+cmd" in lines[1]


def test_an_unsubscribed_contact_is_never_queued_for_review(store):
    consent.handle_inbound(inbound("STOP", sid="SMf1"), CONFIG, store)
    first = consent.handle_inbound(inbound("cancel everything", sid="SMf2"), CONFIG, store)
    retried = consent.handle_inbound(inbound("cancel everything", sid="SMf2"), CONFIG, store)  # Twilio retries
    later = consent.handle_inbound(inbound("quit it", sid="SMf3"), CONFIG, store)
    assert (first.kept, retried.kept, later.kept) == ("feedback", None, None)
    assert store.reviews == [] and len(store.feedback) == 1


def test_a_provider_time_in_the_future_is_recorded_as_now_on_every_path(store):
    """Whatever the provider: a future time would outrank the contact's next real change."""
    future = utcnow() + timedelta(days=3650)
    consent.handle_inbound(inbound("START", received_at=future), CONFIG, store)
    consent.handle_status(StatusReport(channel_type="sms", message_id="SM9", recipient=ALICE, status="failed",
                                       error_code="21610", recipient_blocked=True, at=future), CONFIG, store, HASH)
    consent.handle_preference(PreferenceChange(channel_type="whatsapp", address=ALICE, action="opt_in", key="k1",
                                               at=future, id_namespace="whatsapp-pref", match_kind="whatsapp_settings"),
                              CONFIG, store)
    events = store.history("sms", ALICE) + store.history("whatsapp", ALICE)
    assert len(events) == 3 and all(event.occurred_at <= utcnow() for event in events)
    consent.handle_inbound(inbound("STOP", channel_type="whatsapp", sid="SM2"), CONFIG, store)
    assert status(store, "whatsapp") == "unsubscribed"
