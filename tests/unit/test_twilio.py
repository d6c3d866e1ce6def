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


def test_parse_inbound_sms_and_whatsapp():
    sms = parse_inbound({"MessageSid": "SM1", "From": "+14155550123", "To": "+14155550100", "Body": "STOP"})
    assert (sms.channel_type, sms.address, sms.to, sms.body) == ("sms", "+14155550123", "+14155550100", "STOP")
    wa = parse_inbound({"MessageSid": "SM2", "From": "whatsapp:+447700900123", "To": "whatsapp:+14155550100", "Body": "hi", "ButtonPayload": "STOP", "OptOutType": "stop"})
    assert (wa.channel_type, wa.address, wa.button_payload, wa.provider_intent) == ("whatsapp", "+447700900123", "STOP", "STOP")


@pytest.mark.parametrize(
    "form,needle",
    [
        ({"From": "+14155550123", "Body": "STOP"}, "MessageSid"),
        ({"MessageSid": "SM1", "Body": "STOP"}, "From"),
        ({"MessageSid": "SM1", "From": "not-a-number", "Body": "STOP"}, "From"),
        ({"MessageSid": "SM1", "From": "+14155550123", "To": "x" * 5000}, "longer"),
    ],
)
def test_parse_inbound_refuses_malformed_forms(form, needle):
    with pytest.raises(MalformedRequest, match=needle):
        parse_inbound(form)


def test_legacy_sms_sid_is_accepted():
    assert parse_inbound({"SmsSid": "SM9", "From": "+14155550123"}).message_id == "SM9"


def test_parse_status():
    status = parse_status({"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "21610", "To": "+14155550123", "From": "+14155550100"})
    assert (status.error_code, status.recipient, status.sender, status.is_whatsapp) == ("21610", "+14155550123", "+14155550100", False)


def test_twiml():
    assert twiml(None) == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    assert twiml("A & B") == '<?xml version="1.0" encoding="UTF-8"?><Response><Message>A &amp; B</Message></Response>'
