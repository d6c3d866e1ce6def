"""Contact and suppression-list files: layouts of real exports, user overrides, errors people can act on, streaming."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import datetime, timezone

import pytest

from webhook.contact_files import (
    SAMPLE_CHARS,
    ContactFileError,
    detect_layout,
    normalise_header,
    open_rows,
    parse_when,
)

UTC = timezone.utc

# Klaviyo: "Email" and "Phone Number" are the names its import docs use; the suppression
# columns follow its UI labels.
KLAVIYO = (
    '"Email","Phone Number","First Name","Last Name","Suppression Reason","Suppression Date"\r\n'
    '"ann@example.com","+14155550100","Ann","Lee","Unsubscribe","2024-03-01 10:00:00"\r\n'
    '"bob@example.com","","Bob","Ray","Hard Bounce","2024-03-02T11:30:00+00:00"\r\n'
)
# Mailchimp's unsubscribed_members export: merge fields, then its fixed columns.
MAILCHIMP_HEADER = (
    '"Email Address","First Name","Last Name",MEMBER_RATING,OPTIN_TIME,OPTIN_IP,CONFIRM_TIME,CONFIRM_IP,'
    "LATITUDE,LONGITUDE,GMTOFF,DSTOFF,TIMEZONE,CC,REGION,UNSUB_TIME,UNSUB_CAMPAIGN_TITLE,UNSUB_CAMPAIGN_ID,"
    "UNSUB_REASON,UNSUB_REASON_OTHER,LEID,EUID,NOTES,TAGS"
)
MAILCHIMP = (
    MAILCHIMP_HEADER + "\r\n"
    'ann@example.com,Ann,Lee,2,"2023-01-05 09:00:00",,"2023-01-05 09:01:00",1.2.3.4,,,,,,US,CA,'
    '"2024-02-29 23:15:07","Spring sale, part 2",abc123,"I no longer want to receive these emails",,111,222,,\r\n'
    'bob@example.com,Bob,Ray,2,,,,,,,,,,,,"2024-03-01 08:00:00","Newsletter",def456,Other,"Too many, honestly",112,223,,\r\n'
)


def rows_of(text: str, channel_type: str = "sms", column: str | None = None) -> tuple:
    layout, rows = open_rows(io.StringIO(text, newline=""), channel_type=channel_type, column=column)
    return layout, list(rows)


def test_normalise_header_strips_bom_quotes_case_and_separators():
    assert normalise_header('\ufeff "Phone Number" ') == "phone_number"
    assert normalise_header("E-Mail") == "e_mail"
    assert normalise_header("UNSUB_TIME") == "unsub_time"
    assert normalise_header("phone  -  number") == "phone_number"


# Klaviyo


def test_klaviyo_export_for_sms_takes_the_phone_column_and_the_suppression_columns():
    layout, rows = rows_of(KLAVIYO, "sms")
    assert layout.has_header
    assert layout.header[layout.address_index] == "Phone Number"
    assert layout.header[layout.reason_index] == "Suppression Reason"
    assert layout.header[layout.date_index] == "Suppression Date"
    assert [r[layout.address_index] for r in rows] == ["+14155550100", ""]


def test_klaviyo_export_for_email_takes_the_email_column():
    layout, rows = rows_of(KLAVIYO, "email")
    assert layout.address_index == 0
    assert [r[0] for r in rows] == ["ann@example.com", "bob@example.com"]
    assert parse_when(rows[1][layout.date_index]) == datetime(2024, 3, 2, 11, 30, tzinfo=UTC)


# Mailchimp


def test_mailchimp_unsubscribed_export_uses_unsub_time_and_reason_not_optin_columns():
    layout, rows = rows_of(MAILCHIMP, "email")
    header = layout.header
    assert header[layout.address_index] == "Email Address"
    assert header[layout.date_index] == "UNSUB_TIME"
    assert header[layout.reason_index] == "UNSUB_REASON"
    assert len(rows) == 2 and all(len(r) == len(header) for r in rows)  # quoted commas stay inside their field
    assert rows[0][header.index("UNSUB_CAMPAIGN_TITLE")] == "Spring sale, part 2"
    assert parse_when(rows[0][layout.date_index]) == datetime(2024, 2, 29, 23, 15, 7, tzinfo=UTC)
    assert rows[1][header.index("UNSUB_REASON_OTHER")] == "Too many, honestly"


def test_mailchimp_export_without_a_phone_column_is_refused_for_sms_with_the_reason():
    with pytest.raises(ContactFileError) as caught:
        detect_layout(MAILCHIMP, channel_type="sms")
    message = str(caught.value)
    assert "an e-mail address column ('Email Address') but no phone number column" in message
    assert "'UNSUB_TIME'" in message  # lists the file's columns
    assert "--column NAME" in message


# Twilio


def test_twilio_message_log_takes_to_and_the_sent_date():
    text = "From,To,Body,Status,SentDate\n+18885550000,+14155550100,STOP,received,2024-01-02T03:04:05Z\n"
    layout, rows = rows_of(text, "sms")
    assert layout.header[layout.address_index] == "To"
    assert layout.header[layout.date_index] == "SentDate"
    assert layout.reason_index is None
    assert rows == [["+18885550000", "+14155550100", "STOP", "received", "2024-01-02T03:04:05Z"]]


def test_twilio_style_opt_out_list_prefers_the_last_update_of_an_entry():
    text = "PhoneNumber,MessagingServiceSid,DateCreated,DateUpdated\n+14155550100,MG1,2023-01-01,2024-01-01\n"
    layout = detect_layout(text, channel_type="whatsapp")
    assert (layout.address_index, layout.date_index) == (0, 3)  # CamelCase names match the lists
    assert detect_layout(text, channel_type="sms", column="Phone Number").address_index == 0


def test_specific_names_beat_generic_ones_and_earlier_list_entries_win():
    layout = detect_layout("To,Mobile,Phone\n1,2,3\n", channel_type="sms")
    assert layout.header[layout.address_index] == "Phone"
    layout = detect_layout("To,Name\nann@example.com,Ann\n", channel_type="email")
    assert layout.address_index == 0


# Plain lists


def test_plain_headerless_list_of_numbers_keeps_every_row():
    text = "+1 415 555 0100\r\n\r\n(415) 555-0101\r\n  \r\nwhatsapp:+14155550102\r\n"
    layout, rows = rows_of(text, "sms")
    assert not layout.has_header and layout.header == []
    assert layout.address_index == 0
    assert rows == [["+1 415 555 0100"], ["(415) 555-0101"], ["  "], ["whatsapp:+14155550102"]]


def test_plain_list_with_a_header_skips_it_even_under_an_unknown_name():
    layout, rows = rows_of("Subscribers\n+14155550100\n", "sms")
    assert layout.has_header and layout.header == ["Subscribers"]
    assert rows == [["+14155550100"]]


def test_plain_list_of_emails_without_header():
    layout, rows = rows_of("ann@example.com\nbob@example.com\n", "email")
    assert not layout.has_header
    assert rows == [["ann@example.com"], ["bob@example.com"]]


def test_one_column_of_the_wrong_kind_is_refused():
    with pytest.raises(ContactFileError, match="a phone number column \\('Phone'\\) but no e-mail address column"):
        detect_layout("Phone\n+14155550100\n", channel_type="email")


# Delimiters


def test_semicolon_file_with_decimal_commas():
    text = "Mobile;Name;Spend;Opt-out date\n+4915112345678;Müller, Anna;12,50;31.12.2024\n+4915112345679;Ben;3,00;01.01.2025\n"
    layout, rows = rows_of(text, "sms")
    assert layout.dialect.delimiter == ";"
    assert layout.header[layout.date_index] == "Opt-out date"
    assert rows[0] == ["+4915112345678", "Müller, Anna", "12,50", "31.12.2024"]
    assert parse_when(rows[0][3]) == datetime(2024, 12, 31, tzinfo=UTC)


def test_tab_separated_file():
    layout, rows = rows_of("email\treason\nann@example.com\tspam, apparently\n", "email")
    assert layout.dialect.delimiter == "\t"
    assert rows == [["ann@example.com", "spam, apparently"]]


def test_comma_file_with_semicolons_inside_quoted_fields_stays_comma():
    text = 'phone,notes\n+14155550100,"a;b;c"\n+14155550101,"d"\n+14155550102,"e;f"\n'
    assert detect_layout(text, channel_type="sms").dialect.delimiter == ","


# --column


def test_column_by_name_ignores_case_and_spaces_and_wins_over_detection():
    text = "Phone,Mobile Number,Name\n+14155550100,+14155550199,Ann\n"
    layout, rows = rows_of(text, "sms", column="  mobile_NUMBER ")
    assert layout.address_index == 1
    assert rows == [["+14155550100", "+14155550199", "Ann"]]


def test_column_by_number_is_one_based_with_and_without_header():
    assert detect_layout("Name,Cell\nAnn,+14155550100\n", channel_type="sms", column="2").address_index == 1
    layout = detect_layout("Ann,+14155550100,VIP\n", channel_type="sms", column="2")
    assert not layout.has_header and layout.address_index == 1


def test_column_given_overrides_the_wrong_kind_check():
    assert detect_layout("Phone\nann@example.com\n", channel_type="email", column="Phone").address_index == 0


@pytest.mark.parametrize(
    "text,column,expected",
    [
        ("Name,Cell\nAnn,1\n", "Mobile", "--column 'Mobile' is not a column of this file. Its columns are: 'Name', 'Cell'"),
        ("Name,Cell\nAnn,1\n", "3", "--column 3 is out of range: the file has 2 column(s): 'Name', 'Cell'"),
        ("Name,Cell\nAnn,1\n", "0", "Column numbers start at 1"),
        ("Ann,+14155550100\n", "Phone", "--column 'Phone' names a column, but the file has no header row"),
        ("Ann,+14155550100\n", "5", "--column 5 is out of range: the file's first row has 2 column(s)"),
    ],
)
def test_bad_column_option_says_what_to_give(text, column, expected):
    with pytest.raises(ContactFileError) as caught:
        detect_layout(text, channel_type="sms", column=column)
    assert expected in str(caught.value)


# Errors


def test_headerless_file_with_several_columns_needs_a_column_number():
    with pytest.raises(ContactFileError) as caught:
        detect_layout("+14155550100,Ann,Lee\n", channel_type="sms")
    message = str(caught.value)
    assert "no header row" in message and "3 columns" in message and "--column N" in message
    assert "'+14155550100', 'Ann', 'Lee'" in message


def test_header_without_an_address_column_lists_the_columns():
    with pytest.raises(ContactFileError) as caught:
        detect_layout("Name,City,Notes\nAnn,Paris,\n", channel_type="sms")
    message = str(caught.value)
    assert "No phone number column found" in message
    assert "'Name', 'City', 'Notes'" in message and "--column NAME" in message


@pytest.mark.parametrize("text", ["", "\n\n", "\ufeff", ",,\n"])
def test_empty_file_is_an_error(text):
    with pytest.raises(ContactFileError, match="empty"):
        open_rows(io.StringIO(text), channel_type="sms")


def test_unknown_channel_type_is_an_error_and_a_value_error():
    with pytest.raises(ValueError, match="use one of sms, whatsapp, email"):
        detect_layout("+14155550100\n", channel_type="fax")


def test_text_that_is_not_utf8_is_an_error_naming_the_fix():
    stream = io.TextIOWrapper(io.BytesIO(b"phone\n\xff\xfe+1415\n"), encoding="utf-8", newline="")
    with pytest.raises(ContactFileError, match="CSV UTF-8"):
        open_rows(stream, channel_type="sms")


# Encoding, line endings, odd rows


def test_bom_left_in_the_text_breaks_neither_header_nor_data():
    layout, _ = rows_of("\ufeffEmail,Phone\nann@example.com,+14155550100\n", "email")
    assert layout.header == ["Email", "Phone"] and layout.address_index == 0
    layout, rows = rows_of("\ufeff+14155550100\n+14155550101\n", "sms")
    assert not layout.has_header and rows[0] == ["+14155550100"]


def test_quoted_fields_with_commas_quotes_and_newlines():
    text = 'phone,note\r\n+14155550100,"said ""stop"", then\r\nleft"\r\n+14155550101,plain\r\n'
    _, rows = rows_of(text)
    assert rows == [["+14155550100", 'said "stop", then\r\nleft'], ["+14155550101", "plain"]]


def test_blank_and_all_empty_rows_are_skipped_short_rows_are_kept():
    text = "name,phone\n\nAnn,+14155550100\n,\n,,\nBob\n\n"
    layout, rows = rows_of(text)
    assert layout.address_index == 1
    assert rows == [["Ann", "+14155550100"], ["Bob"]]  # the caller finds Bob's address missing


def test_rows_are_what_csv_reader_makes():
    text = MAILCHIMP * 3
    _, rows = rows_of(text, "email")
    assert rows == [r for r in csv.reader(io.StringIO(text, newline="")) if r][1:]


# Streaming


def test_a_line_across_the_sample_boundary_is_not_split():
    line = "+14155550100,Someone With A Long Name\r\n"
    body = [line] * (SAMPLE_CHARS // len(line) + 50)
    text = "phone,name\r\n" + "".join(body)
    assert any(0 < SAMPLE_CHARS - k < len(line) for k in range(len("phone,name\r\n"), len(text), len(line)))
    _, rows = rows_of(text)
    assert len(rows) == len(body)
    assert all(r == ["+14155550100", "Someone With A Long Name"] for r in rows)


def test_open_rows_on_200k_rows_reads_only_the_sample_for_the_first_row():
    text = "phone,name\n" + "".join(f"+1415{i:07d},Ann\n" for i in range(200_000))
    stream = io.StringIO(text, newline="")
    _, rows = open_rows(stream, channel_type="sms")
    assert next(rows) == ["+14150000000", "Ann"]
    assert stream.tell() < SAMPLE_CHARS + 100 < len(text) // 10


class _Generated(io.RawIOBase):
    """A pipe that makes its bytes as they are read, and fails when read past ``limit``."""

    def __init__(self, chunks: Iterator[bytes], limit: int):
        self._chunks, self._pending, self.sent, self._limit = chunks, b"", 0, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            if self.sent >= self._limit:
                raise AssertionError(f"read past {self._limit:,} bytes: the file was not streamed")
            self._pending = next(self._chunks, b"")
            if not self._pending:
                return 0
            self.sent += len(self._pending)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def test_open_rows_streams_an_endless_pipe():
    def endless() -> Iterator[bytes]:
        yield b"\xef\xbb\xbfPhone Number,Email\n"
        i = 0
        while True:
            yield f"+1415{i:07d},p{i}@example.com\n".encode()
            i += 1

    raw = _Generated(endless(), limit=1_000_000)
    stream = io.TextIOWrapper(io.BufferedReader(raw), encoding="utf-8-sig", newline="")
    layout, rows = open_rows(stream, channel_type="sms")
    assert layout.header == ["Phone Number", "Email"]
    first = [next(rows) for _ in range(10_000)]
    assert first[0] == ["+14150000000", "p0@example.com"] and first[-1][0] == "+14150009999"
    assert raw.sent < 1_000_000


# parse_when


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T05:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02T03:04:05.250", datetime(2024, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)),
        ("2024-01-02 03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),  # Mailchimp UNSUB_TIME
        ("  2024-01-02 03:04:05 UTC ", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2024-01-02", datetime(2024, 1, 2, tzinfo=UTC)),
        ("20240102", datetime(2024, 1, 2, tzinfo=UTC)),
        ("1704164645", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("1704164645.5", datetime(2024, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)),
        ("1704164645000", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("Tue, 02 Jan 2024 05:04:05 +0200", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("02 Jan 2024 03:04:05 GMT", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("01/02/2024", datetime(2024, 1, 2, tzinfo=UTC)),
        ("1/2/2024 15:04", datetime(2024, 1, 2, 15, 4, tzinfo=UTC)),
        ("01/02/2024 3:04 PM", datetime(2024, 1, 2, 15, 4, tzinfo=UTC)),
        ("01/02/2024 12:04:05 am", datetime(2024, 1, 2, 0, 4, 5, tzinfo=UTC)),
        ("8/6/08 10:20", datetime(2008, 8, 6, 10, 20, tzinfo=UTC)),
        ("02.01.2024 03:04", datetime(2024, 1, 2, 3, 4, tzinfo=UTC)),
    ],
)
def test_parse_when_reads_export_formats_as_utc(text, expected):
    parsed = parse_when(text)
    assert parsed == expected
    assert parsed is not None and parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    "text",
    ["", "   ", "never", "N/A", "13/01/2024", "01/02/2024 13:00 PM", "02/30/2024", "12345", "2024-13-01", "99999999999999999999"],
)
def test_parse_when_gives_none_for_what_it_cannot_read(text):
    assert parse_when(text) is None


# Cells are untrusted text of up to csv's 128 KiB field limit: every check reads them in linear time.


def test_a_long_run_of_spaces_in_a_first_row_cell_is_read_in_linear_time():
    started = time.monotonic()
    layout = detect_layout("whatsapp:" + " " * 120_000 + "x,Phone\n+14155550100,+14155550101\n", channel_type="sms")
    assert layout.has_header and layout.address_index == 1
    assert time.monotonic() - started < 10  # sanity bound only: it took minutes before


@pytest.mark.parametrize("text", ["2024-01-02" + " " * 120_000 + "x", "2024-01-02T03:04:05" + " " * 120_000 + "UTC"])
def test_parse_when_reads_a_long_cell_in_linear_time(text):
    started = time.monotonic()
    assert parse_when(text) is None  # longer than any date format
    assert time.monotonic() - started < 10


def test_a_column_number_too_long_for_int_is_out_of_range_not_a_crash():
    with pytest.raises(ContactFileError) as caught:
        detect_layout("Name,Cell\nAnn,1\n", channel_type="sms", column="9" * 5000)
    assert "out of range" in str(caught.value)
