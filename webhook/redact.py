"""The one place that turns contacts' addresses and secrets into what logs may show.

``mask_address`` masks one address, in any form the service accepts: E.164, national
numbers read with DEFAULT_REGION (``(415) 555-0124``), ``whatsapp:`` and ``00`` prefixes,
letters (``+1-800-FLOWERS``), full-width digits, e-mail addresses. ``mask_url`` masks a
request line, path, query string or referer: by route where the path or query carries an
address or a secret, then by pattern anywhere else (phone-like runs of 7+ digits with
separators, percent-encoded or not, and e-mail addresses).

Every pattern here runs in time linear in its input: these are untrusted URLs, logged for
every request.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote, unquote

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

HIDDEN = "***"
WHATSAPP = "whatsapp:"
# A phone number keeps its last two digits only when at least this many stay hidden
# around them (national part; the country calling code is shown).
MIN_NATIONAL_DIGITS = 6
MIN_PHONE_DIGITS = 7  # E.164 numbers have 7 to 15 digits; fewer is not worth masking as a number

# -- routes whose path or query names an address or a secret ---------------------------

# The address is the rest of the path: `<path:address>` routes take slashes, and the
# decoded path (PATH_INFO) may hold spaces, so it runs to the query, a fragment, or the
# request line's " HTTP/1.1".
_REST = r"(?P<address>(?:(?!\sHTTP/)[^?#])*)"
ADDRESS_ROUTES = re.compile(
    r"(?P<route>/api/v1/subscriptions/[^/?#\s]+/|/api/v1/contacts/|/admin/contacts/[^/?#\s]+/)" + _REST
)
SECRET_ROUTES = re.compile(r"(?P<route>/unsubscribe/|/webhooks/email/sendgrid/)[^/?#\s]+", re.IGNORECASE)
# Query parameters that carry a secret, on any route (a client may send them to the wrong one).
SECRET_PARAMS = re.compile(r"(?:^|(?<=[?&;]))(?P<name>token|secret|key|signature|access_token|api_key|password)="
                           r"[^&#\s]*", re.IGNORECASE)
# Query parameters that carry an address: admin search (q), admin export (address), the
# suppression list's paging cursor (after). At the start of a bare query string too.
ADDRESS_PARAMS = re.compile(r"(?:^|(?<=[?&;]))(?P<name>q|address|after)=(?P<value>[^&#\s]*)")

# -- patterns for everything else ---------------------------------------------------------

# Percent-encodings, also encoded again (%252B) as a URL inside a query (?next=...) has them.
_PCT = r"%(?:25)*"
_PLUS = rf"(?:\+|{_PCT}2[Bb])"
# What people put between digits: space, ( ) . - and + (a space in a query), or their escapes.
_SEPARATOR = rf"(?:[ \t().+-]|{_PCT}(?:20|28|29|2[BbDdEeFf]))"
# A run of digits with at most three separators between two digits: every step eats a
# digit, so a run never ends in a failed match and the scan stays linear.
PHONE_RUN = re.compile(
    # Vanity numbers: country code, area code, then digits and letters (+1-800-FLOWERS).
    rf"(?P<vanity>{_PLUS}[0-9]{{1,3}}{_SEPARATOR}{{0,3}}[0-9]{{2,4}}{_SEPARATOR}{{0,3}}"
    rf"(?=[0-9]*[A-Za-z])[0-9A-Za-z]{{4,8}}(?![0-9A-Za-z]))"
    # A run without a + never starts inside a word: the digits of an id (SMd864ca363a...,
    # a request id) are not a phone number, and operators search logs for those ids.
    rf"|(?:{_PLUS}|(?<![0-9A-Za-z]))[0-9](?:{_SEPARATOR}{{0,3}}[0-9])*"
)
# Dates and IPv4 addresses look like numbers with separators and are left alone.
NOT_A_PHONE = re.compile(
    r"[0-9]{4}[-./][0-9]{1,2}[-./][0-9]{1,2}|[0-9]{1,2}[-./][0-9]{1,2}[-./][0-9]{2,4}|[0-9]{1,3}(?:\.[0-9]{1,3}){3}"
)
# E-mail: a local part from the start of its run (the look-behind: tried from inside the
# run, each start would rescan it), @ or an escape of it, a dotted domain.
_LOCAL = r"[A-Za-z0-9.!#$%'*+^_`{|}~-]"
EMAIL = re.compile(rf"(?<!{_LOCAL})(?P<local>{_LOCAL}+)(?P<at>@|{_PCT}40)(?P<domain>[\w-]+(?:\.[\w-]+)+)")


def _country_code(digits: str) -> str:
    """The country calling code an international number starts with ("" if none fits).

    Calling codes are prefix-free: at most one of the first 1, 2 or 3 digits is one.
    """
    for length in (1, 2, 3):
        if digits[:length].isdigit() and int(digits[:length]) in COUNTRY_CODE_TO_REGION_CODE:
            return digits[:length]
    return ""


def _mask_email(text: str) -> str:
    local, _, domain = text.rpartition("@")
    return f"{local[:1]}{HIDDEN}@{domain}"


def _mask_phone(text: str) -> str:
    value = unicodedata.normalize("NFKC", text)  # full-width digits and plus, as phonenumbers reads them
    symbols = "".join(ch for ch in value if ch.isascii() and ch.isalnum())
    lead = ""
    if value.startswith("+"):
        lead = "+"
    elif value.startswith("00") and symbols.startswith("00"):
        lead, symbols = "00", symbols[2:]
    code = _country_code(symbols) if lead else ""
    national = symbols[len(code):]
    minimum = MIN_NATIONAL_DIGITS if lead else MIN_PHONE_DIGITS
    tail = national[-2:] if len(national) >= minimum else ""
    return f"{lead}{code}{HIDDEN}{tail}"


def mask_address(text: str) -> str:
    """The log-safe form of one address, as any caller wrote it.

    A phone number keeps its international prefix and country calling code and its last
    two digits (``+14155550123`` -> ``+1***23``; ``(415) 555-0123`` -> ``***23``;
    ``whatsapp:+3545512345`` -> ``whatsapp:+354***45``); an e-mail address keeps the first
    character and the domain (``b***@example.com``).
    """
    value = text.strip()
    if "@" in value:
        return _mask_email(value)
    prefix = ""
    if value[: len(WHATSAPP)].lower() == WHATSAPP:
        prefix, value = value[: len(WHATSAPP)], value[len(WHATSAPP):].strip()
    return prefix + _mask_phone(value)


def _mask_encoded(raw: str) -> str:
    """Mask one address as it appears in a URL, keeping it percent-encoded when it was."""
    if not raw:
        return raw
    decoded = raw
    for _ in range(3):  # a URL inside a query (?next=) is encoded twice: %252B is a +
        decoded, before = unquote(decoded), decoded
        if decoded == before:
            break
    masked = mask_address(decoded)
    return quote(masked, safe="*:") if "%" in raw else masked


def _mask_route(found: re.Match[str]) -> str:
    address = found["address"]
    suffix = ""
    if found["route"] == "/api/v1/contacts/" and address.endswith("/export"):
        address, suffix = address[: -len("/export")], "/export"
    return found["route"] + _mask_encoded(address) + suffix


def _mask_param(found: re.Match[str]) -> str:
    return f"{found['name']}={_mask_encoded(found['value'])}"


def _mask_phone_run(found: re.Match[str]) -> str:
    run = found[0]
    if not found["vanity"]:
        decoded = unquote(run)
        if sum(ch.isdigit() for ch in decoded) < MIN_PHONE_DIGITS or NOT_A_PHONE.fullmatch(decoded):
            return run
        if decoded[0] != "+" and found.string[found.end():found.end() + 1].isalnum():
            return run  # the start of an id (3485729abc...), not a number
    return _mask_encoded(run)


def _mask_email_match(found: re.Match[str]) -> str:
    first = found["local"][:1]
    return f"{'' if first == '%' else first}{HIDDEN}{found['at']}{found['domain']}"


def mask_url(text: str) -> str:
    """A request line, path, query string or URL with every address and secret masked.

    ``GET /api/v1/subscriptions/sms/+14155550123 HTTP/1.1`` ->
    ``GET /api/v1/subscriptions/sms/+1***23 HTTP/1.1``; unsubscribe tokens and the
    SendGrid secret become ``***``; addresses elsewhere are masked by pattern.
    """
    text = SECRET_ROUTES.sub(r"\g<route>" + HIDDEN, text)
    text = ADDRESS_ROUTES.sub(_mask_route, text)
    text = ADDRESS_PARAMS.sub(_mask_param, text)
    text = SECRET_PARAMS.sub(r"\g<name>=" + HIDDEN, text)
    text = EMAIL.sub(_mask_email_match, text)
    return PHONE_RUN.sub(_mask_phone_run, text)
