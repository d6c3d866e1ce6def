"""webhook.redact: the one masking of addresses for logs, in every form the service accepts."""

from __future__ import annotations

import time

import pytest

from webhook.redact import mask_address, mask_url
from webhook.web.webhooks import mask


@pytest.mark.parametrize("address,masked", [
    ("+14155550123", "+1***23"),  # country calling code and the last two digits
    ("+447700900123", "+44***23"),
    ("+3545512345", "+354***45"),  # a short national number still hides 5 digits
    ("whatsapp:+14155550123", "whatsapp:+1***23"),
    ("0044 7700 900123", "0044***23"),
    ("(415) 555-0124", "***24"),  # national, read with DEFAULT_REGION
    ("4155550124", "***24"),
    ("+1-800-FLOWERS", "+1***RS"),
    ("\uff0b\uff11\uff14\uff11\uff15\uff15\uff15\uff15\uff10\uff11\uff12\uff13", "+1***23"),  # full-width
    ("+683 4002", "+683***"),  # too short to show any digit
    ("12345", "***"),
    ("", "***"),
    ("bob@example.com", "b***@example.com"),
    ("Alice.Smith@example.co.uk", "A***@example.co.uk"),
])
def test_mask_address(address, masked):
    assert mask_address(address) == masked


def test_the_webhooks_mask_is_mask_address():
    assert mask("+14155550123") == "+1***23" and mask("whatsapp:+14155550123") == "whatsapp:+1***23"
    assert mask("bob@example.com") == "b***@example.com"


@pytest.mark.parametrize("text", [
    "/x/" + "1" * 200_000, "/x/" + "%20" * 100_000 + "1", "/x/" + "a%40" * 100_000, "/x/a@" + "a." * 100_000,
    "/admin/contacts?" + "q=1&" * 100_000, "/x/" + "+1-800-" * 50_000, "/x/" + "a" * 200_000 + "@",
    "/api/v1/contacts/" + " HTTP" * 100_000,
])
def test_mask_url_reads_long_untrusted_urls_in_linear_time(text):
    started = time.monotonic()
    mask_url(text)
    assert time.monotonic() - started < 5  # sanity bound only: about 0.1 s each


def test_mask_url_was_quadratic_on_long_runs_without_at():
    # The old e-mail pattern rescanned the run from every position: about 2 s for 20,000
    # characters, minutes for a 4 KiB request line repeated in referers of 100,000.
    started = time.monotonic()
    assert mask_url("/x/%2B" + "1" * 100_000 + "x").endswith("***11x")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("line", [
    "twilio message SMd864ca363a64b968f502b0123456789 recorded",
    "request 3485729ab1c2d3e4f5a6b7c8d9e0f1a2 done",
    "wamid.HBgLMTQxNTU1NTAxMjMVAgASGBQzQTNC",
])
def test_ids_that_hold_digit_runs_are_kept_for_operators(line):
    assert mask_url(line) == line


@pytest.mark.parametrize("line, hidden", [
    ("from 4155550123 today", "4155550123"),
    ("id_4155550123", "4155550123"),
    ("to=%2B14155550123&x=1", "4155550123"),
    ("call+14155550123now", "4155550123"),
])
def test_numbers_beside_ids_are_still_masked(line, hidden):
    assert hidden not in mask_url(line)
