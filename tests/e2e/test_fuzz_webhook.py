"""Validly signed webhook forms with hostile bodies reach the matcher and never produce a 500;
random forms never produce a 500 either, and unsigned ones are always 403."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook.providers.twilio import EMPTY_TWIML

FIELD_NAMES = st.sampled_from(["MessageSid", "From", "To", "Body", "ButtonPayload", "OptOutType", "MessagingServiceSid", "SmsSid", "NumMedia", "X"])
VALUES = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["STOP", "START", "HELP", "whatsapp:+14155550123", "+14155550123", "+1", "", "stop", "MG" + "a" * 32]),
)
FORMS = st.dictionaries(FIELD_NAMES, VALUES, max_size=8)
SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# What a phone can send, and worse: every Unicode plane, controls (NUL included), RTL marks,
# zero-width joiners, look-alikes, emoji sequences, keywords buried in noise, long texts.
HOSTILE_TEXT = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=1600),
    st.text(alphabet="\x00\x01\x1b\x7f\u200b\u200d\u202e\u2066\ufeff\ufffd🛑🙏 \t\r\n", max_size=50),
    st.builds(lambda a, k, b: a + k + b, st.text(max_size=40),
              st.sampled_from(["STOP", "ＳＴＯＰ", "Arrêt", "stop please", "START", "HELP", "🛑", "unsubscribe me", "STOPP"]),
              st.text(max_size=40)),
)
SID = st.builds(lambda prefix, digits: prefix + digits, st.sampled_from(["SM", "MM"]),
                st.text(alphabet="0123456789abcdef", min_size=32, max_size=32))
NUMBER = st.builds(lambda n: f"+1415555{n:04d}", st.integers(0, 9999))


@st.composite
def messages(draw) -> dict[str, str]:
    whatsapp = draw(st.booleans())
    prefix = "whatsapp:" if whatsapp else ""
    form = {"MessageSid": draw(SID), "AccountSid": "AC" + "0" * 32, "From": prefix + draw(NUMBER),
            "To": prefix + "+14155550100", "Body": draw(HOSTILE_TEXT), "NumMedia": "0"}
    if draw(st.booleans()):
        form["ButtonPayload"] = draw(HOSTILE_TEXT.map(lambda text: text[:200]))
    if draw(st.integers(0, 4)) == 0:
        form["OptOutType"] = draw(st.sampled_from(["STOP", "START", "HELP", "stop", "nonsense"]))
    return form


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(form=messages())
def test_signed_messages_with_hostile_bodies_are_always_answered(twilio, form):
    """Every example is a well-formed, signed message: each one reaches the matcher and the store."""
    response = twilio.post("/webhooks/twilio", form)
    assert response.status_code == 200, (form, response.data)
    assert response.mimetype == "text/xml"
    assert response.data.startswith(b"<?xml") and (response.data == EMPTY_TWIML.encode() or b"<Message>" in response.data)


@SLOW
@given(form=FORMS)
def test_signed_random_forms_never_500(twilio, form):
    for path in ("/webhooks/twilio", "/webhooks/twilio/status"):
        response = twilio.post(path, form)
        assert response.status_code in (200, 204, 400), (path, form, response.data)


@SLOW
@given(form=FORMS, signature=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
def test_unsigned_random_forms_are_403(twilio, store, form, signature):
    response = twilio.post("/webhooks/twilio", form, signature=signature or "x")
    assert response.status_code == 403
    assert store.event_count() == 0
