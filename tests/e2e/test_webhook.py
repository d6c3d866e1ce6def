"""POST /webhooks/twilio and /webhooks/twilio/status through the real app and database."""

from __future__ import annotations

import socket
import time

import pytest

from tests.conftest import AUTH_TOKEN, new_sid
from webhook import create_app

ALICE = "+14155550123"
EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response />'


def test_signed_stop_by_sms_unsubscribes_sms_only(twilio, status_of, store):
    response = twilio.message("STOP", sender=ALICE)
    assert response.status_code == 200
    assert response.mimetype == "text/xml"
    assert b"<Response><Message>Example Co: You are unsubscribed from SMS" in response.data
    assert status_of("sms", ALICE) == "unsubscribed"
    assert status_of("whatsapp", ALICE) == "unknown"
    assert status_of("email", "alice@example.com") == "unknown"
    assert store.event_count() == 1


def test_stop_by_whatsapp_unsubscribes_whatsapp_only(twilio, status_of):
    response = twilio.message("stop", sender=ALICE, whatsapp=True)
    assert b"WhatsApp marketing" in response.data
    assert status_of("whatsapp", ALICE) == "unsubscribed"
    assert status_of("sms", ALICE) == "unknown"


def test_start_resubscribes(twilio, status_of):
    twilio.message("STOP", sender=ALICE)
    response = twilio.message("START", sender=ALICE)
    assert b"resubscribed" in response.data
    assert status_of("sms", ALICE) == "subscribed"


def test_help_answers_and_changes_nothing(twilio, status_of, store):
    response = twilio.message("HELP", sender=ALICE)
    assert b"support@example.com" in response.data and b"STOP" in response.data
    assert status_of("sms", ALICE) == "unknown"
    assert store.event_count() == 0


def test_french_keyword_gets_a_french_reply(twilio):
    assert "Répondez".encode() in twilio.message("Arrêt", sender=ALICE).data


def test_ordinary_message_gets_empty_twiml_and_changes_nothing(twilio, store):
    response = twilio.message("What time do you open?", sender=ALICE)
    assert (response.status_code, response.data) == (200, EMPTY)
    assert store.event_count() == 0


def test_forged_signature_gets_403_and_records_nothing(twilio, store, status_of):
    params = {"MessageSid": new_sid(), "From": ALICE, "To": "+14155550100", "Body": "STOP"}
    assert twilio.post("/webhooks/twilio", params, token="wrong-token-0123456789").status_code == 403
    assert twilio.post("/webhooks/twilio", params, signature="").status_code == 403
    assert twilio.client.post("/webhooks/twilio", data=params).status_code == 403
    assert store.event_count() == 0
    assert status_of("sms", ALICE) == "unknown"


def test_signature_is_checked_before_the_form_is_read(twilio):
    # Malformed and unsigned: 403, not 400.
    assert twilio.client.post("/webhooks/twilio", data={"Body": "STOP"}).status_code == 403


def test_malformed_signed_request_gets_400(twilio):
    response = twilio.post("/webhooks/twilio", {"Body": "STOP", "From": ALICE})
    assert response.status_code == 400
    assert b"MessageSid" in response.data
    assert twilio.post("/webhooks/twilio", {"MessageSid": new_sid(), "From": "garbage", "Body": "STOP"}).status_code == 400


def test_wrong_content_type_is_not_a_500(twilio):
    response = twilio.client.post("/webhooks/twilio", data=b"\xff\xfe", content_type="application/json")
    assert response.status_code == 403


def test_oversized_body_is_refused(twilio):
    response = twilio.client.post("/webhooks/twilio", data={"Body": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 413


def test_duplicate_delivery_records_one_event_and_gets_the_same_answer(twilio, store):
    sid = new_sid()
    first = twilio.message("STOP", sender=ALICE, sid=sid)
    second = twilio.message("STOP", sender=ALICE, sid=sid)
    assert first.data == second.data and second.status_code == 200
    assert store.event_count() == 1


def test_opt_out_type_records_but_does_not_reply_twice(twilio, status_of):
    response = twilio.message("STOP", sender=ALICE, OptOutType="STOP")
    assert response.data == EMPTY
    assert status_of("sms", ALICE) == "unsubscribed"


def test_button_payload_takes_precedence(twilio, status_of):
    response = twilio.message("Keep me posted", sender=ALICE, whatsapp=True, ButtonPayload="STOP", ButtonText="Stop promotions")
    assert b"unsubscribed" in response.data
    assert status_of("whatsapp", ALICE) == "unsubscribed"


def test_body_with_nul_and_emoji_is_stored(twilio, client, admin_headers):
    response = twilio.message("STOP\x00 🛑 now", sender=ALICE)
    assert response.status_code == 200
    history = client.get(f"/api/v1/subscriptions/sms/{ALICE}", headers=admin_headers).json["history"]
    assert history[0]["text"] == "STOP 🛑 now"


def test_public_base_url_rebuilds_the_signed_url_behind_a_proxy(settings):
    app = create_app(settings.with_changes(public_base_url="https://unsub.example.com"))
    from tests.conftest import Twilio

    twilio = Twilio(app.test_client(), base="https://unsub.example.com")
    assert twilio.message("STOP", sender=ALICE).status_code == 200
    # Signed for the internal URL the app sees: refused, since Twilio never calls that.
    local = Twilio(app.test_client(), base="http://localhost")
    assert local.message("STOP", sender=ALICE).status_code == 403


def test_without_an_auth_token_every_request_is_refused(settings):
    app = create_app(settings.with_changes(twilio_auth_token=None))
    from tests.conftest import Twilio

    assert Twilio(app.test_client()).message("STOP", sender=ALICE).status_code == 403


def test_status_callback_21610_records_a_carrier_opt_out(twilio, status_of, client, admin_headers):
    params = {"MessageSid": new_sid(), "MessageStatus": "undelivered", "ErrorCode": "21610", "To": ALICE, "From": "+14155550100"}
    assert twilio.post("/webhooks/twilio/status", params).status_code == 204
    assert twilio.post("/webhooks/twilio/status", params).status_code == 204
    assert status_of("sms", ALICE) == "unsubscribed"
    history = client.get(f"/api/v1/subscriptions/sms/{ALICE}", headers=admin_headers).json["history"]
    assert [h["source"] for h in history] == ["carrier"]


def test_other_status_callbacks_change_nothing(twilio, store):
    params = {"MessageSid": new_sid(), "MessageStatus": "delivered", "To": ALICE, "From": "+14155550100"}
    assert twilio.post("/webhooks/twilio/status", params).status_code == 204
    assert twilio.post("/webhooks/twilio/status", {**params, "ErrorCode": "21610", "To": "whatsapp:" + ALICE}).status_code == 204
    assert store.event_count() == 0


def test_status_callback_needs_a_signature(twilio, store):
    params = {"MessageSid": new_sid(), "ErrorCode": "21610", "To": ALICE}
    assert twilio.post("/webhooks/twilio/status", params, signature="nope").status_code == 403
    assert store.event_count() == 0


@pytest.mark.parametrize("path", ["/webhooks/twilio", "/webhooks/twilio/status"])
def test_get_is_not_allowed(client, path):
    assert client.get(path).status_code == 405


def test_healthz(client, store):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["status"] == "ok" and response.json["database"] == store.kind


def test_token_constant_is_used():
    assert len(AUTH_TOKEN) >= 16


def test_status_callback_url_with_a_percent_encoded_query_is_verified_as_sent(twilio, store):
    params = {"MessageSid": new_sid(), "MessageStatus": "undelivered", "ErrorCode": "21610", "To": ALICE, "From": "+14155550100"}
    path = "/webhooks/twilio/status?campaign=spring%20sale&rc=3"
    assert twilio.post(path, params).status_code == 204
    assert store.event_count() == 1


def test_a_form_with_too_many_fields_is_refused_before_parsing_further(twilio):
    params = {f"F{i}": "x" for i in range(300)}
    assert twilio.post("/webhooks/twilio", params).status_code == 403


def test_a_request_that_waited_too_long_in_front_of_the_app_is_shed(twilio, store):


    from tests.conftest import new_sid
    from webhook.providers.twilio import SIGNATURE_HEADER, signature_for

    params = {"MessageSid": new_sid(), "From": ALICE, "To": "+14155550100", "Body": "STOP"}
    headers = {SIGNATURE_HEADER: signature_for(AUTH_TOKEN, "http://localhost/webhooks/twilio", params)}
    late = twilio.client.post("/webhooks/twilio", data=params, headers={**headers, "X-Request-Start": str(int((time.time() - 12) * 1000))})
    assert late.status_code == 503 and late.headers["Retry-After"]
    assert store.event_count() == 0  # Twilio retries it
    fresh = twilio.client.post("/webhooks/twilio", data=params, headers={**headers, "X-Request-Start": f"t={time.time() - 0.5:.3f}"})
    assert fresh.status_code == 200 and store.event_count() == 1


def test_kernel_queued_seconds_reads_when_the_request_arrived():
    from webhook.web.webhooks import kernel_queued_seconds

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        with socket.create_connection(listener.getsockname()) as client:
            client.sendall(b"POST /webhooks/twilio HTTP/1.1\r\n\r\n")
            time.sleep(0.3)  # the request waits in the backlog
            accepted, _ = listener.accept()
            with accepted:
                assert kernel_queued_seconds(accepted) == pytest.approx(0.3, abs=0.1)
    left, right = socket.socketpair()  # not TCP: unknown
    with left, right:
        assert kernel_queued_seconds(left) is None
    assert kernel_queued_seconds(None) is None


def test_queued_seconds_reads_heroku_and_nginx_headers():
    from webhook.web.webhooks import queued_seconds

    now = 1_764_151_200.0
    assert queued_seconds(str(int((now - 2) * 1000)), now) == pytest.approx(2)  # Heroku: ms
    assert queued_seconds("t=1764151190.5", now) == pytest.approx(9.5)  # nginx: s.ms
    assert queued_seconds(str(int((now - 3) * 1_000_000)), now) == pytest.approx(3)  # microseconds
    assert queued_seconds("garbage", now) is None and queued_seconds(None, now) is None
    assert queued_seconds("12", now) is None  # not a time near now: ignored


def test_invalid_utf8_body_is_refused_not_a_500(twilio, store):
    body = b"MessageSid=SM1&From=%2B14155550123&Body=\xff\xfe\xfa"
    response = twilio.client.post("/webhooks/twilio", data=body, content_type="application/x-www-form-urlencoded",
                                  headers={"X-Twilio-Signature": "x"})
    assert response.status_code == 403 and store.event_count() == 0


def test_a_replay_with_a_shifted_signature_boundary_cannot_resubscribe(twilio, client, store):
    """Issue 11 item 2: Twilio signs names and values run together, so moving NumMedia's
    "NumMedia0" into MessageSid keeps the signature valid. The SID's shape is checked."""
    from tests.conftest import AUTH_TOKEN
    from webhook.providers.twilio import SIGNATURE_HEADER, signature_for

    start = {"MessageSid": "SM" + "b" * 32, "From": ALICE, "To": "+14155550100", "Body": "START", "NumMedia": "0"}
    signature = signature_for(AUTH_TOKEN, "http://localhost/webhooks/twilio", start)
    assert client.post("/webhooks/twilio", data=start, headers={SIGNATURE_HEADER: signature}).status_code == 200
    assert twilio.message("STOP", sender=ALICE).status_code == 200
    shifted = {k: v for k, v in start.items() if k != "NumMedia"} | {"MessageSid": start["MessageSid"] + "NumMedia0"}
    assert signature_for(AUTH_TOKEN, "http://localhost/webhooks/twilio", shifted) == signature  # still "valid"
    replay = client.post("/webhooks/twilio", data=shifted, headers={SIGNATURE_HEADER: signature})
    assert replay.status_code == 400 and b"MessageSid" in replay.data
    assert store.subscription("sms", ALICE).status == "unsubscribed"
    # And the plain replay of the captured START records nothing: same SID.
    again = client.post("/webhooks/twilio", data=start, headers={SIGNATURE_HEADER: signature})
    assert again.status_code == 200 and store.subscription("sms", ALICE).status == "unsubscribed"
