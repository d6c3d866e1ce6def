"""Random, validly signed webhook forms never produce a 500 (and unsigned ones are always 403)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIELD_NAMES = st.sampled_from(["MessageSid", "From", "To", "Body", "ButtonPayload", "OptOutType", "MessagingServiceSid", "SmsSid", "NumMedia", "X"])
VALUES = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["STOP", "START", "HELP", "whatsapp:+14155550123", "+14155550123", "+1", "", "stop", "MG" + "a" * 32]),
)
FORMS = st.dictionaries(FIELD_NAMES, VALUES, max_size=8)
SLOW = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


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
