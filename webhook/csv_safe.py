"""The one CSV writer of the product: every cell of every CSV it writes is formula-safe.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula (tab
and CR start one too in some programs), and contacts choose much of what we export: their
words, a mail's Message-Id, even a keyword typed in a message. Such a cell gets a leading
``'``, which spreadsheets show as text. A plain number (``+14155550123``, ``-3``,
``2.5``) cannot run anything and is written as it is, so exported addresses stay
addresses that our own import and other tools read back unchanged.
"""

from __future__ import annotations

import csv
import re
from typing import Any, Iterable, Protocol

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


class _Stream(Protocol):
    def write(self, text: str, /) -> Any: ...


def safe_cell(value: object) -> str:
    """A cell's text, with a leading ' when a spreadsheet would run it as a formula."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    if text.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


class SafeWriter:
    """``csv.writer`` whose every cell goes through ``safe_cell``."""

    def __init__(self, stream: _Stream) -> None:
        self._writer = csv.writer(stream, lineterminator="\n")

    def writerow(self, row: Iterable[object]) -> None:
        # Most cells are text that starts harmlessly: one C-level check each (the audience
        # filter writes a million rows); the rest goes through safe_cell.
        self._writer.writerow([value if type(value) is str and not value.startswith(FORMULA_STARTS) else safe_cell(value)
                               for value in row])

    def writerows(self, rows: Iterable[Iterable[object]]) -> None:
        for row in rows:
            self.writerow(row)
