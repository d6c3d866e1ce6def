"""The Twilio adapter: pinned signature vectors, form parsing, TwiML."""

from __future__ import annotations

import pytest

from webhook.providers.twilio import (
    MalformedRequest,
    SignatureChecker,
    parse_inbound,
    parse_status,
    signature_for,
    signed_url,
    twiml,
)

# twilio-python's own pinned vector (tests/unit/test_request_validator.py).
VECTOR_TOKEN = "12345"
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
VECTOR_PARAMS = {"From": "+14158675309", "To": "+18005551212", "CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234"}
VECTOR_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_pinned_vector_is_valid():
    assert signature_for(VECTOR_TOKEN, VECTOR_URL, VECTOR_PARAMS) == VECTOR_SIGNATURE
    assert SignatureChecker(VECTOR_TOKEN).is_valid(VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE)


def test_pinned_vector_with_explicit_port_is_valid():
    assert SignatureChecker(VECTOR_TOKEN).is_valid("https://mycompany.com:443/myapp.php?foo=1&bar=2", VECTOR_PARAMS, VECTOR_SIGNATURE)


@pytest.mark.parametrize(
    "token,url,params,signature",
    [
        ("54321", VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE),  # other token
        (VECTOR_TOKEN, VECTOR_URL.replace("https", "http"), VECTOR_PARAMS, VECTOR_SIGNATURE),  # scheme changed by a proxy
        (VECTOR_TOKEN, VECTOR_URL, {**VECTOR_PARAMS, "Digits": "1235"}, VECTOR_SIGNATURE),  # tampered param
        (VECTOR_TOKEN, VECTOR_URL, VECTOR_PARAMS, ""),  # missing
        (VECTOR_TOKEN, VECTOR_URL, VECTOR_PARAMS, None),
    ],
)
def test_wrong_signatures_fail(token, url, params, signature):
    assert not SignatureChecker(token).is_valid(url, params, signature)


def test_without_a_token_nothing_is_valid():
    assert not SignatureChecker(None).is_valid(VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE)
    assert not SignatureChecker("").is_valid(VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE)


def test_signed_url_keeps_the_query_string_as_it_arrived():
    assert signed_url("http://10.0.0.5:8000", "/webhooks/twilio", "") == "http://10.0.0.5:8000/webhooks/twilio"
    assert signed_url("https://unsub.example.com", "/webhooks/twilio/status", "campaign=spring%20sale&x=1") == (
        "https://unsub.example.com/webhooks/twilio/status?campaign=spring%20sale&x=1"
    )


def test_signature_header_settings_fall_back_to_the_full_check():
    checker = SignatureChecker(VECTOR_TOKEN)
    assert checker.is_valid(VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE, "key=abc,algorithm=HMAC_SHA1")
    assert not checker.is_valid(VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE, "key=abc,algorithm=HMAC_SHA256")
    assert not checker.is_valid(VECTOR_URL, VECTOR_PARAMS, VECTOR_SIGNATURE, "algorithm=MD5")


SID1, SID2, SID9 = "SM" + "1" * 32, "SM" + "2" * 32, "SM" + "9" * 32


def test_parse_inbound_sms_and_whatsapp():
    sms = parse_inbound({"MessageSid": SID1, "From": "+14155550123", "To": "+14155550100", "Body": "STOP"})
    assert (sms.channel_type, sms.address, sms.identities, sms.body) == ("sms", "+14155550123", (("number", "+14155550100"),), "STOP")
    wa = parse_inbound({"MessageSid": SID2, "From": "whatsapp:+447700900123", "To": "whatsapp:+14155550100", "Body": "hi", "ButtonPayload": "STOP", "OptOutType": "stop"})
    assert (wa.channel_type, wa.address, wa.button_payload, wa.provider_intent) == ("whatsapp", "+447700900123", "STOP", "STOP")


@pytest.mark.parametrize(
    "form,needle",
    [
        ({"From": "+14155550123", "Body": "STOP"}, "MessageSid"),
        ({"MessageSid": SID1, "Body": "STOP"}, "From"),
        ({"MessageSid": SID1, "From": "not-a-number", "Body": "STOP"}, "From"),
        ({"MessageSid": SID1, "From": "+14155550123", "To": "x" * 5000}, "longer"),
    ],
)
def test_parse_inbound_refuses_malformed_forms(form, needle):
    with pytest.raises(MalformedRequest, match=needle):
        parse_inbound(form)


@pytest.mark.parametrize("fields,needle", [
    ({"MessageSid": "SM1"}, "not a message SID"),
    ({"MessageSid": SID1 + "NumMedia0"}, "not a message SID"),  # a signature-boundary shift
    ({"MessageSid": SID1[:-1]}, "not a message SID"),
    ({"MessageSid": "XX" + "1" * 32}, "not a message SID"),
    ({"MessageSid": SID1, "SmsSid": SID2}, "differ"),
    ({"SmsMessageSid": "SM" + "g" * 32}, "not a message SID"),
])
def test_message_sids_must_have_their_real_shape(fields, needle):
    with pytest.raises(MalformedRequest, match=needle):
        parse_inbound({**fields, "From": "+14155550123", "Body": "START"})
    with pytest.raises(MalformedRequest, match=needle):
        parse_status({**fields, "To": "+14155550123", "MessageStatus": "delivered"})


def test_mms_sids_are_message_sids():
    assert parse_inbound({"MessageSid": "MM" + "a" * 32, "From": "+14155550123"}).message_id == "MM" + "a" * 32


def test_legacy_sms_sid_is_accepted():
    assert parse_inbound({"SmsSid": SID9, "From": "+14155550123"}).message_id == SID9


def test_parse_status():
    status = parse_status({"MessageSid": SID1, "MessageStatus": "undelivered", "ErrorCode": "21610", "To": "+14155550123", "From": "+14155550100"})
    assert (status.error_code, status.recipient, status.identities, status.channel_type) == (
        "21610", "+14155550123", (("number", "+14155550100"),), "sms")
    assert status.recipient_blocked  # Twilio's policy: 21610 on an SMS


def test_21610_on_whatsapp_does_not_block():
    status = parse_status({"MessageSid": SID1, "MessageStatus": "undelivered", "ErrorCode": "21610",
                           "To": "whatsapp:+14155550123"})
    assert status.channel_type == "whatsapp" and not status.recipient_blocked


def test_twiml():
    assert twiml(None) == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    assert twiml("A & B") == '<?xml version="1.0" encoding="UTF-8"?><Response><Message>A &amp; B</Message></Response>'
