"""The one CSV writer: no cell a spreadsheet would run as a formula, plain numbers kept."""

from __future__ import annotations

import csv
import io

import pytest

from webhook.csv_safe import SafeWriter, safe_cell


@pytest.mark.parametrize("value,written", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
    ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    ("+14155550123", "+14155550123"),  # an E.164 address is a number, not a formula
    ("-3", "-3"),
    ("2.5", "2.5"),
    ("STOP", "STOP"),
    ("", ""),
    (None, ""),
    (12, "12"),
])
def test_safe_cell(value, written):
    assert safe_cell(value) == written


def test_every_column_of_every_row_goes_through_it():
    out = io.StringIO()
    SafeWriter(out).writerows([["=a", "b"], ["c", "@d"]])
    assert list(csv.reader(io.StringIO(out.getvalue()))) == [["'=a", "b"], ["c", "'@d"]]
