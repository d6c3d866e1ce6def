"""Contact and suppression-list CSV files, read as streams.

Two commands read these files: ``unsub audience filter`` (a contact list of any size, copied
row by row, so the hot path is csv.reader itself and nothing per row is built here) and
``unsub suppressions import`` (lists exported from Twilio, Klaviyo, Mailchimp, or a bare column
of numbers or e-mails). This module only decides the layout (delimiter, header, which column
holds the address, the opt-out time and the reason) and hands back plain lists; normalising
the addresses is the caller's job (:mod:`webhook.addresses`).

Rows are yielded as csv.reader makes them. A row shorter than the address column is yielded
too: the caller treats its address as missing (invalid). Blank lines and rows whose cells are
all empty are skipped.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TextIO

__all__ = [
    "ADDRESS_HEADERS_EMAIL",
    "ADDRESS_HEADERS_PHONE",
    "DATE_HEADERS",
    "REASON_HEADERS",
    "ContactFileError",
    "Layout",
    "detect_layout",
    "normalise_header",
    "open_rows",
    "parse_when",
]


class ContactFileError(ValueError):
    """A file we cannot read as a contact list; the message says what to change."""


# Header names as normalise_header() leaves them, best first: when a file has several, the
# earlier entry wins (a Klaviyo export has both "Email" and "Phone Number").
# Names that say nothing of the kind of address: they count for every channel, and only
# when no specific name is there (Twilio message logs and e-mail suppression exports both use "To").
_GENERIC_ADDRESS = ("address", "to", "recipient", "contact")  # "address": our own suppression export
_PHONE_ONLY = (
    "phone_number",  # Klaviyo and Mailchimp ("Phone Number"), Twilio exports
    "phone",
    "phonenumber",  # Twilio ("PhoneNumber")
    "mobile_number",
    "mobile",
    "mobile_phone",
    "mobilephone",
    "cell_phone",
    "cellphone",
    "cell",
    "msisdn",
    "whatsapp_number",
    "whatsapp",
    "wa_id",  # WhatsApp Cloud API
    "telephone",
    "tel",
    "number",
)
_EMAIL_ONLY = (
    "email",  # Klaviyo ("Email")
    "email_address",  # Mailchimp ("Email Address")
    "emailaddress",
    "e_mail",
    "e_mail_address",
    "mail",
)
ADDRESS_HEADERS_PHONE: tuple[str, ...] = _PHONE_ONLY + _GENERIC_ADDRESS
ADDRESS_HEADERS_EMAIL: tuple[str, ...] = _EMAIL_ONLY + _GENERIC_ADDRESS

# When the opt-out happened. Names that only mean an opt-out come first; of the generic ones
# the last change of a suppression entry is the opt-out now in force, so "updated" beats "created".
DATE_HEADERS: tuple[str, ...] = (
    "unsub_time",  # Mailchimp unsubscribed export
    "opted_out_at",
    "opt_out_date",
    "optout_date",
    "opt_out_time",
    "unsubscribed_at",
    "unsubscribe_date",
    "unsubscribed_date",
    "unsubscribe_time",
    "suppression_date",
    "date_suppressed",
    "suppressed_at",
    "suppressed_on",
    "suppressed_date",
    "timestamp",  # Klaviyo's API calls the suppression time this
    "date_updated",  # Twilio resources
    "updated_at",
    "last_changed",  # Mailchimp
    "date_created",
    "created_at",
    "created",
    "date",
    "date_sent",  # Twilio message logs: when the STOP arrived
    "sent_date",
    "sentdate",
)
REASON_HEADERS: tuple[str, ...] = (
    "unsub_reason",  # Mailchimp
    "suppression_reason",  # Klaviyo
    "opt_out_reason",
    "optout_reason",
    "unsubscribe_reason",
    "reason",
    "unsub_reason_other",  # Mailchimp's free text, when there is no UNSUB_REASON
)

CHANNEL_TYPES = ("sms", "whatsapp", "email")
SAMPLE_CHARS = 64 * 1024
_SNIFF_ROWS = 50

_BOM = "\ufeff"
_SEPARATORS = re.compile(r"[\s\-]+")
_EMAIL_LIKE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# A phone number as people write it: optional whatsapp:/tel: prefix, +, digits and the usual separators.
# The spaces after the prefix are taken possessively (*+): given back one at a time to the
# class, which takes spaces too, a long run of them cost quadratic time.
_PHONE_LIKE = re.compile(r"(?:whatsapp:|tel:)?\s*+\+?[\d\s().\-/]{6,}", re.IGNORECASE)


class _Semicolon(csv.excel):
    """Excel's CSV with ';', as spreadsheets write it where ',' is the decimal mark."""

    delimiter = ";"


_DIALECTS: dict[str, type[csv.Dialect]] = {",": csv.excel, ";": _Semicolon, "\t": csv.excel_tab}


def normalise_header(name: str) -> str:
    """One spelling for a header, so "Phone Number", "phone-number" and "PHONE_NUMBER" match."""
    text = name.replace(_BOM, "").strip().strip("\"'").strip().lower()
    return _SEPARATORS.sub("_", text)


@dataclass(frozen=True)
class Layout:
    """How a file is laid out: what detect_layout decided, for the caller to index rows with."""

    has_header: bool
    header: list[str]  # as written in the file ([] when no header)
    address_index: int
    date_index: int | None
    reason_index: int | None
    dialect: type[csv.Dialect] | csv.Dialect


def _nonblank_rows(sample: str, dialect: type[csv.Dialect] | csv.Dialect) -> Iterator[list[str]]:
    """The rows open_rows would yield for this text, so detection sees what reading sees."""
    return filter(any, csv.reader(io.StringIO(sample, newline=""), dialect))


def _sniff_dialect(sample: str) -> type[csv.Dialect]:
    """Comma, semicolon or tab: the one that splits the first rows into the same, largest width.

    csv.Sniffer guesses quote characters and spacing too, and guesses wrong on one-column
    files; the only real choice in these exports is the delimiter.
    """
    best: tuple[float, int] = (0.0, 1)
    chosen = ","
    for delimiter, dialect in _DIALECTS.items():
        try:
            widths = [len(row) for row in itertools.islice(_nonblank_rows(sample, dialect), _SNIFF_ROWS)]
        except csv.Error:
            continue
        if not widths:
            continue
        mode = max(set(widths), key=lambda w: (widths.count(w), w))
        score = (widths.count(mode) / len(widths), mode)
        if mode > 1 and score > best:
            best, chosen = score, delimiter
    return _DIALECTS[chosen]


def _looks_like_address(cell: str) -> bool:
    text = cell.strip()
    if _EMAIL_LIKE.fullmatch(text):
        return True
    return bool(_PHONE_LIKE.fullmatch(text)) and sum(c.isdigit() for c in text) >= 6


def _quoted(cells: list[str], limit: int = 40) -> str:
    shown = ", ".join(repr(c) for c in cells[:limit])
    return shown + (f", … ({len(cells)} in all)" if len(cells) > limit else "")


def _kind(channel_type: str) -> str:
    return "e-mail address" if channel_type == "email" else "phone number"


def _compact(name: str) -> str:
    """A normalised name without underscores: "PhoneNumber", "phone_number" and "DateUpdated" match the lists."""
    return name.replace("_", "")


def _ranks(names: tuple[str, ...]) -> dict[str, int]:
    ranks: dict[str, int] = {}
    for rank, name in enumerate(names):
        ranks.setdefault(_compact(name), rank)
    return ranks


_RANKS = {
    "phone": _ranks(ADDRESS_HEADERS_PHONE),
    "email": _ranks(ADDRESS_HEADERS_EMAIL),
    "phone_only": _ranks(_PHONE_ONLY),
    "email_only": _ranks(_EMAIL_ONLY),
    "date": _ranks(DATE_HEADERS),
    "reason": _ranks(REASON_HEADERS),
}


def _a(noun: str) -> str:
    return ("an " if noun[0] in "aeiou" else "a ") + noun


def _pick(names: list[str], wanted: str, skip: int | None = None) -> int | None:
    """Index of the column whose name comes first in the ``wanted`` list (the leftmost on a tie)."""
    ranks = _RANKS[wanted]
    best: tuple[int, int] | None = None
    for index, name in enumerate(names):
        rank = ranks.get(_compact(name))
        if index == skip or rank is None:
            continue
        if best is None or (rank, index) < best:
            best = (rank, index)
    return None if best is None else best[1]


def _column_number(column: str) -> int | None:
    text = column.strip()
    if re.fullmatch(r"[+-]?\d+", text):
        # No file has a billion columns; int() refuses 4,300 digits and more with ValueError.
        return int(text) if len(text) <= 10 else 10**10
    return None


def detect_layout(sample: str, *, channel_type: str, column: str | None = None) -> Layout:
    """Decide from the first few KB of the file which column holds the addresses.

    channel_type is 'sms', 'whatsapp' or 'email'. ``column`` (a header name, case- and
    space-insensitive, or a 1-based column number from the user) wins over detection.
    Without a header (the first row has a cell that looks like a phone number or an e-mail)
    a one-column file is that column, and a wider one needs ``column``. With a header, the
    column named in the phone list (sms, whatsapp) or the e-mail list (email) is taken,
    the earlier list entry first; a one-column file with an unknown header name is taken as
    it is. A phone column is never taken for an e-mail channel, nor the reverse, unless the
    user names it.
    """
    if channel_type not in CHANNEL_TYPES:
        raise ContactFileError(f"Unknown channel type {channel_type!r}: use one of {', '.join(CHANNEL_TYPES)}.")
    if sample.startswith(_BOM):
        sample = sample[1:]
    dialect = _sniff_dialect(sample)
    try:
        first = next(_nonblank_rows(sample, dialect), None)
    except csv.Error as exc:
        raise ContactFileError(f"The file is not readable as CSV ({exc}). Save it from your spreadsheet as CSV (UTF-8).") from exc
    if first is None:
        raise ContactFileError("The file is empty: it has no rows. Export the list again, or check you chose the right file.")
    names = [normalise_header(cell) for cell in first]
    number = _column_number(column) if column is not None else None
    # Column names never look like a phone number or an e-mail; a row of data nearly always has one that does.
    has_header = not any(_looks_like_address(cell) for cell in first)

    if not has_header:
        return Layout(False, [], _headerless_index(first, channel_type, column, number), None, None, dialect)

    header = list(first)
    if column is not None:
        address = _named_index(header, names, column, number)
    else:
        address = _detected_index(header, names, channel_type)
    return Layout(
        True,
        header,
        address,
        _pick(names, "date", skip=address),
        _pick(names, "reason", skip=address),
        dialect,
    )


def _headerless_index(first: list[str], channel_type: str, column: str | None, number: int | None) -> int:
    described = f"its first row ({_quoted(first)}) looks like data, not column names"
    if column is None:
        if len(first) == 1:
            return 0
        raise ContactFileError(
            f"The file has no header row ({described}) and {len(first)} columns, so which one holds the "
            f"{_kind(channel_type)}s is not known. Give its number with --column N (1 for the first column)."
        )
    if number is None:
        raise ContactFileError(
            f"--column {column!r} names a column, but the file has no header row ({described}). "
            "Give the column's number instead, e.g. --column 1 for the first column."
        )
    if not 1 <= number <= len(first):
        raise ContactFileError(
            f"--column {number} is out of range: the file's first row has {len(first)} column(s) ({_quoted(first)}). "
            f"Column numbers start at 1."
        )
    return number - 1


def _named_index(header: list[str], names: list[str], column: str, number: int | None) -> int:
    if number is not None:
        if not 1 <= number <= len(header):
            raise ContactFileError(
                f"--column {number} is out of range: the file has {len(header)} column(s): {_quoted(header)}. "
                "Column numbers start at 1."
            )
        return number - 1
    wanted = _compact(normalise_header(column))
    compact = [_compact(name) for name in names]
    if wanted in compact:
        return compact.index(wanted)
    raise ContactFileError(
        f"--column {column!r} is not a column of this file. Its columns are: {_quoted(header)}. "
        "Give one of those names (case and spaces do not matter) or a column number, e.g. --column 2."
    )


def _detected_index(header: list[str], names: list[str], channel_type: str) -> int:
    if channel_type == "email":
        wanted, other, other_kind = "email", "phone_only", "phone number"
    else:
        wanted, other, other_kind = "phone", "email_only", "e-mail address"
    found = _pick(names, wanted)
    if found is not None:
        return found
    kind = _kind(channel_type)
    wrong = _pick(names, other)
    if wrong is not None:
        raise ContactFileError(
            f"The file has {_a(other_kind)} column ({header[wrong]!r}) but no {kind} column, and channel type "
            f"{channel_type} needs {kind}s. Its columns are: {_quoted(header)}. Import it into a channel of the right type, "
            f"or if another column holds the {kind}s, name it with --column NAME."
        )
    if len(header) == 1:
        return 0  # one column under a name we don't know ("Subscribers"): nothing else it could be
    raise ContactFileError(
        f"No {kind} column found: none of the file's columns has a name we know for it. Its columns are: "
        f"{_quoted(header)}. Name the column that holds the {kind}s with --column NAME (or its number, e.g. --column 2)."
    )


def open_rows(
    stream: io.TextIOBase | TextIO, *, channel_type: str, column: str | None = None
) -> tuple[Layout, Iterator[list[str]]]:
    """The file's layout and a lazy iterator of its data rows (header skipped), as csv.reader makes them.

    The first SAMPLE_CHARS characters (completed to the end of their line) are read to decide
    the layout, then put back in front of the rest, so the stream is read once, front to back:
    stdin and pipes work, and memory stays constant whatever the file's size. Open the file
    with ``newline=""`` (and ``encoding="utf-8-sig"``); a BOM left in the text is dropped anyway.
    A csv.Error or UnicodeDecodeError past the sample comes out of the iterator as it is.
    """
    try:
        sample = stream.read(SAMPLE_CHARS)
        if len(sample) == SAMPLE_CHARS and not sample.endswith("\n"):
            sample += stream.readline()  # never split a line between the sample and the rest
    except UnicodeDecodeError as exc:
        raise ContactFileError(
            "The file is not UTF-8 text. If it is an Excel workbook, save it as 'CSV UTF-8'; "
            "otherwise convert it to UTF-8 first."
        ) from exc
    if sample.startswith(_BOM):
        sample = sample[1:]
    layout = detect_layout(sample, channel_type=channel_type, column=column)
    lines = itertools.chain(io.StringIO(sample, newline=""), stream)
    # filter(any, …) drops blank lines and all-empty rows in C: no Python frame per row.
    rows: Iterator[list[str]] = filter(any, csv.reader(lines, layout.dialect))
    if layout.has_header:
        next(rows, None)
    return layout, rows


_MONTHS = {m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)}
# Only from the start of a run of spaces (the look-behind): tried from inside the run too,
# each position scanned the rest of it, quadratic in its length.
_ZONE_SUFFIX = re.compile(r"(?<!\s)\s*(?:UTC|GMT|Z)$", re.IGNORECASE)
# The longest format above is about 35 characters; a longer cell is not a date.
MAX_DATE_CHARS = 64
# RFC 2822, as Twilio's API writes dates: "Tue, 02 Jan 2024 03:04:05 +0000".
_RFC2822 = re.compile(
    r"(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([+-]\d{4}|UTC|GMT|UT|Z)?",
)
# US: 12/31/2024, 12/31/24, 12/31/2024 23:59, 12/31/2024 11:59:59 PM
_US = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4}|\d{2})(?:[ T,]+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s*([AaPp])\.?[Mm]?\.?)?)?",
)
# Day first with dots (31.12.2024 23:59): unambiguous, the way semicolon-separated files write dates.
_DOTTED = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?)?")


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def _year(text: str) -> int:
    return 2000 + int(text) if len(text) == 2 else int(text)


def parse_when(text: str) -> datetime | None:
    """An opt-out time as these exports write it, as an aware UTC datetime; None when empty or unreadable.

    Accepted: ISO 8601 (with Z, an offset, or none, which means UTC; also YYYYMMDD), Mailchimp's
    'YYYY-MM-DD HH:MM:SS' (UTC), 'YYYY-MM-DD', unix epoch seconds (9-10 digits) or
    milliseconds (12-13 digits), RFC 2822, US 'MM/DD/YYYY' (or YY) with optional 'HH:MM[:SS]'
    and AM/PM, and 'DD.MM.YYYY'. Times without a zone are taken as UTC. 'DD/MM/YYYY' is not
    guessed: a day above 12 there gives None rather than a wrong date.
    """
    value = text.strip()
    if not value or len(value) > MAX_DATE_CHARS:
        return None
    try:
        return _parse(value)
    except (ValueError, OverflowError, OSError):
        return None


def _parse(value: str) -> datetime | None:
    if re.fullmatch(r"\d+(?:\.\d+)?", value):
        digits = len(value.split(".")[0])
        if digits in (9, 10):
            return datetime.fromtimestamp(float(value), timezone.utc)
        if digits in (12, 13):
            return datetime.fromtimestamp(float(value) / 1000, timezone.utc)
        if digits == 8 and "." not in value:
            return datetime.strptime(value, "%Y%m%d").replace(tzinfo=timezone.utc)
        return None
    try:
        return _utc(datetime.fromisoformat(_ZONE_SUFFIX.sub("", value)))
    except ValueError:
        pass
    if match := _RFC2822.fullmatch(value):
        day, month, year, hour, minute, second, zone = match.groups()
        parsed = datetime(int(year), _MONTHS[month.lower()], int(day), int(hour), int(minute), int(second or 0))
        if zone and zone[0] in "+-":
            sign = 1 if zone[0] == "+" else -1
            parsed -= sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5]))
        return parsed.replace(tzinfo=timezone.utc)
    if match := _US.fullmatch(value):
        month_s, day_s, year_s, hour_s, minute_s, second_s, half = match.groups()
        hour = int(hour_s or 0)
        if half:
            if not 1 <= hour <= 12:
                return None
            hour = hour % 12 + (12 if half in "Pp" else 0)
        minute, second = int(minute_s or 0), int(second_s or 0)
        return datetime(_year(year_s), int(month_s), int(day_s), hour, minute, second, tzinfo=timezone.utc)
    if match := _DOTTED.fullmatch(value):
        day_s, month_s, year_s, hour_s, minute_s, second_s = match.groups()
        clock = (int(hour_s or 0), int(minute_s or 0), int(second_s or 0))
        return datetime(int(year_s), int(month_s), int(day_s), *clock, tzinfo=timezone.utc)
    return None
