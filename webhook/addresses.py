"""Address normalisation: the one place that turns what people type into stored addresses."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from webhook import nanp

WHATSAPP_PREFIX = "whatsapp:"
# Already E.164: what providers send. Taken as it is unless the caller asks for strict checks.
E164 = re.compile(r"\+[1-9][0-9]{6,14}")


@lru_cache(maxsize=8192)  # sender numbers (To) and active contacts repeat
def normalise_phone(raw: str, region: str | None = None, *, strict: bool = False) -> str | None:
    """E.164 form of a phone number, or None.

    ``strict`` asks libphonenumber whether the number is assigned (for audiences). Without
    it a number already written in E.164 is taken as it is and anything else must be a
    possible number: a contact who texted us exists, whatever the metadata says.
    """
    return _normalise_phone(raw, region, strict)


def strict_normaliser(channel_type: str, region: str | None) -> Callable[[str], str | None]:
    """``normalise_address(channel_type, raw, region, strict=True)`` for a list of distinct
    addresses (the audience filter): the same answers, without the cache, which would only
    miss there."""
    if channel_type == "email":
        return normalise_email
    return lambda raw: _normalise_phone(raw, region, True)


def _normalise_phone(raw: str, region: str | None, strict: bool) -> str | None:
    text = raw.strip()
    if text.lower().startswith(WHATSAPP_PREFIX):
        text = text[len(WHATSAPP_PREFIX):].strip()
    if not text or len(text) > 40:
        return None
    if not strict and E164.fullmatch(text):
        return text  # the webhook's hot path: nothing to normalise, no parse needed
    if text.startswith("00"):
        text = "+" + text[2:]
    if strict:
        known = nanp.e164_or_none(text, region)  # the audience filter's hot path, same answers
        if known is not NotImplemented:
            return known  # type: ignore[return-value]
    return _parsed(text, region, strict)


def _parsed(text: str, region: str | None, strict: bool) -> str | None:
    """What phonenumbers makes of ``text`` (stripped, ``00`` already ``+``)."""
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException:
        return None
    ok = phonenumbers.is_valid_number(number) if strict else phonenumbers.is_possible_number(number)
    if not ok:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str | None:
    """A trimmed, lower-cased e-mail address, or None when it is not one."""
    text = raw.strip()
    if not text or len(text) > 254:
        return None
    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return None
    return text.lower()


def normalise_address(channel_type: str, raw: str, region: str | None = None, *, strict: bool = False) -> str | None:
    """Normalise an address for a channel type (sms, whatsapp: phone; email: e-mail)."""
    if not isinstance(raw, str):
        return None
    if channel_type == "email":
        return normalise_email(raw)
    return normalise_phone(raw, region, strict=strict)
