"""Twilio: signature checks, form -> InboundMessage, reply -> TwiML. No Flask imports."""

from __future__ import annotations

import hmac
import re
from functools import lru_cache
from typing import Mapping
from urllib.parse import parse_qsl, quote

from twilio.request_validator import (
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    get_signature_algorithm,
)
from twilio.twiml.messaging_response import MessagingResponse
from werkzeug.datastructures import MultiDict

from webhook.addresses import WHATSAPP_PREFIX, normalise_phone
from webhook.domain import InboundMessage, StatusReport, utcnow

SIGNATURE_HEADER = "X-Twilio-Signature"
MAX_FIELD = 4096
PATH_SAFE = "/:@!$&'()*+,;=-._~"
# A message's SID: SM (SMS, WhatsApp) or MM (MMS) and 32 hex digits. Twilio signs the
# fields' names and values run together, so a replay can shift text across a boundary
# ("MessageSid=SM..NumMedia0" for "MessageSid=SM..", "NumMedia=0") and keep a valid
# signature; checking the SID's exact shape leaves such a replay the same SID, which
# records nothing new (docs/security.md, "Replayed webhooks").
MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")
SID_FIELDS = ("MessageSid", "SmsMessageSid", "SmsSid")
EMPTY_TWIML = str(MessagingResponse())


class TwilioForm(MultiDict):
    """A webhook's form fields. twilio's validator asks for ``getall`` first; answering it
    saves an AttributeError raised and caught per field on every request."""

    getall = MultiDict.getlist


def parse_form(body: bytes, max_fields: int = 200) -> TwilioForm:
    """Parse a form-encoded body (what werkzeug's form parser does for this one content
    type, at a fifth of its cost). ValueError when it has more than ``max_fields`` fields."""
    text = body.decode("utf-8", errors="replace")
    return TwilioForm(parse_qsl(text, keep_blank_values=True, max_num_fields=max_fields))


class MalformedRequest(ValueError):
    """The request is signed but not a message we can read (400)."""


# Twilio's policy: error 21610 on an SMS means the carrier blocks the number for us (the
# contact texted STOP to Twilio itself): an SMS opt-out. (WhatsApp's "marketing not
# delivered", 63049, is not a revocation.)
RECIPIENT_BLOCKED_CODES = frozenset({"21610"})


class SignatureChecker:
    """Checks ``X-Twilio-Signature``. Fails closed: without a token nothing is valid."""

    def __init__(self, auth_token: str | None) -> None:
        self._validator = RequestValidator(auth_token) if auth_token else None

    def is_valid(self, url: str, params: Mapping[str, object], signature: str | None, settings_header: str | None = None) -> bool:
        if self._validator is None or not signature:
            return False
        if settings_header is None:
            # The common case, one HMAC: the URL exactly as Twilio called it, compared in
            # constant time. Anything else gets the validator's full check below (with
            # and without the port, other algorithms).
            expected = self._validator.compute_signature(url, params)
            if hmac.compare_digest(expected.encode(), signature.encode()):
                return True
        algorithm = get_signature_algorithm(settings_header)
        return bool(self._validator.validate(url, params, signature, algorithm))


def signed_url(base_url: str, path: str, query_string: str) -> str:
    """The URL Twilio signed: the base URL (public, or the request's own) plus path and query.

    The query string is used as it arrived (still percent-encoded), as Twilio signs it.
    """
    return base_url + quote(path, safe=PATH_SAFE) + (f"?{query_string}" if query_string else "")


def signature_for(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    """Sign a request as Twilio does (for the simulator and tests)."""
    return RequestValidator(auth_token).compute_signature(url, params)


def _field(form: Mapping[str, str], name: str, *, required: bool = False) -> str | None:
    value = form.get(name)
    if value is None or value == "":
        if required:
            raise MalformedRequest(f"missing {name}")
        return None
    if len(value) > MAX_FIELD:
        raise MalformedRequest(f"{name} is longer than {MAX_FIELD} characters")
    return value


def message_sid(form: Mapping[str, str]) -> str:
    """The message's SID, or MalformedRequest unless every SID field present has the real shape
    and they agree (Twilio sends the same value in each)."""
    found = {name: form.get(name) for name in SID_FIELDS if form.get(name)}
    if not found:
        raise MalformedRequest("missing MessageSid")
    for name, value in found.items():
        if not MESSAGE_SID.fullmatch(value or ""):
            raise MalformedRequest(f"{name} is not a message SID (SM or MM and 32 hex digits)")
    if len(set(found.values())) > 1:
        raise MalformedRequest(f"{' and '.join(found)} differ")
    return next(iter(found.values())) or ""


def parse_inbound(form: Mapping[str, str]) -> InboundMessage:
    """An inbound message webhook's form as an InboundMessage, or MalformedRequest."""
    message_id = message_sid(form)
    sender = _field(form, "From", required=True) or ""
    address = normalise_phone(sender)
    if address is None:
        raise MalformedRequest("From is not a phone number")
    return InboundMessage(
        channel_type="whatsapp" if sender.lower().startswith(WHATSAPP_PREFIX) else "sms",
        address=address,
        # Twilio's bodies are at most 1,600 characters; nothing longer is matched or stored.
        body=(form.get("Body") or "")[:MAX_FIELD],
        message_id=message_id,
        identities=_identities(_field(form, "To"), _field(form, "MessagingServiceSid")),
        button_payload=_field(form, "ButtonPayload"),
        provider_intent=(_field(form, "OptOutType") or "").upper() or None,
        received_at=utcnow(),
    )


def _identities(our_number: str | None, messaging_service: str | None) -> tuple[tuple[str, str], ...]:
    """Who a message was sent to (inbound: To) or from (status: From), as channel bindings see it."""
    found: list[tuple[str, str]] = []
    number = normalise_phone(our_number) if our_number else None
    if number:
        found.append(("number", number))
    if messaging_service:
        found.append(("messaging_service", messaging_service))
    return tuple(found)


def parse_status(form: Mapping[str, str]) -> StatusReport:
    """A status callback of a message we sent, as a provider-neutral report (Twilio's own
    policy decides what blocks the recipient)."""
    message_id = message_sid(form)
    recipient_raw = _field(form, "To", required=True) or ""
    recipient = normalise_phone(recipient_raw)
    if recipient is None:
        raise MalformedRequest("To is not a phone number")
    whatsapp = recipient_raw.lower().startswith(WHATSAPP_PREFIX)
    error_code = _field(form, "ErrorCode")
    return StatusReport(
        channel_type="whatsapp" if whatsapp else "sms",
        message_id=message_id,
        recipient=recipient,
        status=(_field(form, "MessageStatus") or _field(form, "SmsStatus") or "").lower(),
        identities=_identities(_field(form, "From"), _field(form, "MessagingServiceSid")),
        error_code=error_code,
        recipient_blocked=error_code in RECIPIENT_BLOCKED_CODES and not whatsapp,
    )


@lru_cache(maxsize=1024)
def twiml(reply: str | None) -> str:
    """TwiML for a reply; built once per distinct reply text."""
    if not reply:
        return EMPTY_TWIML
    response = MessagingResponse()
    response.message(reply)
    return str(response)


__all__ = [
    "SIGNATURE_HEADER",
    "SIGNATURE_SETTINGS_HEADER",
    "MalformedRequest",
    "SignatureChecker",
    "parse_inbound",
    "parse_status",
    "signature_for",
    "signed_url",
    "twiml",
]
