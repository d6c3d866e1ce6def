"""A fast, exact check of North American numbers (+1), for the audience filter.

Most rows of a contact list are North American numbers, written in E.164 (``+14155550123``)
or a common national form (``(415) 555-0123``). For each, ``phonenumbers`` spends about
8 µs parsing and 8 µs validating: ``is_valid_number`` tries the patterns of the 25 NANP
regions against the 10 national digits. This module gives the same answer without that:

- **Parsing.** A cell of ASCII digits and the separators `` ().-`` (nothing else: no letters,
  no extension, no other plus) with 10 digits starting 2-9, or 11 starting with 1 then 2-9,
  has only one reading: country code 1 and those 10 national digits. Any other cell goes to
  phonenumbers.
- **Validating.** Which of the +1 regions' patterns match a 10-digit string is decided by
  walking one automaton that runs all of them at once (every pattern ``is_valid_number``
  may consult: each region's number descriptions, matched whole, and its leading digits,
  matched as a prefix), built from phonenumbers' own regular expressions the first time a
  state is reached. Two numbers that end in the same state match exactly the same
  patterns, so phonenumbers' answer for the first number to reach a final state is the
  answer for every other: it is asked once per final state, and cached.

The automaton's states are shared by every number whose digits lead through the same
pattern positions (after an area code and exchange, most patterns only ask for "any four
digits"), so a list of a million numbers reaches a few thousand states. Should a pattern use
a construct this module does not model, the automaton is not built and every number goes
to phonenumbers: slower, never different. ``tests/unit/test_nanp.py`` compares both on
generated and real-format numbers.
"""

from __future__ import annotations

import importlib
import re
import threading
from collections.abc import Iterable
from typing import Any

import phonenumbers
from phonenumbers import PhoneMetadata
from phonenumbers.phonemetadata import PhoneNumberDesc

# The parser behind re (Python 3.11+: re._parser; sre_parse is its deprecated alias). Internal:
# should it change shape, building the automaton fails and every number goes to phonenumbers.
sre_parse: Any = importlib.import_module("re._parser")
sre_c: Any = importlib.import_module("re._constants")

__all__ = ["NATIONAL_REGIONS", "e164_or_none", "national_digits"]

DIGITS = "0123456789"
# Regions whose national numbers read the same way: national prefix 1, no rewriting.
NATIONAL_REGIONS = frozenset({"US", "CA"})
MAX_STATES = 200_000  # then the automaton starts again: a bound on memory, never a wrong answer

_SHAPE = re.compile(r"\+?[0-9 ().\-]+")
_SEPARATORS = str.maketrans("", "", " ().-")


class _Unsupported(Exception):
    """A regular expression construct the automaton does not model."""


class _Nfa:
    """One pattern as a nondeterministic automaton over the ten digits (Thompson's construction)."""

    def __init__(self, pattern: str, *, prefix: bool) -> None:
        self.edges: list[list[tuple[frozenset[str], int]]] = []
        self.empty: list[list[int]] = []  # epsilon moves
        self.start = self._state()
        self.final = self._state()
        self._sequence(list(sre_parse.parse(pattern)), self.start, self.final)
        if prefix:  # re.match: any continuation of a match matches
            self.edges[self.final].append((frozenset(DIGITS), self.final))
        self.begin = self.closure({self.start})

    def _state(self) -> int:
        self.edges.append([])
        self.empty.append([])
        return len(self.edges) - 1

    def _sequence(self, items: list, start: int, end: int) -> None:
        here = start
        for position, item in enumerate(items):
            after = end if position == len(items) - 1 else self._state()
            self._item(item, here, after)
            here = after
        if not items:
            self.empty[start].append(end)

    def _item(self, item: tuple, start: int, end: int) -> None:
        op, value = item
        if op in (sre_c.LITERAL, sre_c.NOT_LITERAL, sre_c.IN, sre_c.ANY):
            self.edges[start].append((_charset(op, value), end))
        elif op is sre_c.SUBPATTERN:
            self._sequence(list(value[-1]), start, end)
        elif op is sre_c.BRANCH:
            for alternative in value[1]:
                self._sequence(list(alternative), start, end)
        elif op is sre_c.MAX_REPEAT or op is sre_c.MIN_REPEAT:  # greedy or lazy: the same strings
            low, high, body = value
            here = start
            for _ in range(low):
                after = self._state()
                self._sequence(list(body), here, after)
                here = after
            if high is sre_c.MAXREPEAT:
                loop = self._state()
                self.empty[here].append(loop)
                self._sequence(list(body), loop, loop)
                self.empty[loop].append(end)
            else:
                for _ in range(high - low):
                    after = self._state()
                    self.empty[here].append(end)
                    self._sequence(list(body), here, after)
                    here = after
                self.empty[here].append(end)
        else:
            raise _Unsupported(str(op))

    def closure(self, states: Iterable[int]) -> frozenset[int]:
        seen = set(states)
        todo = list(seen)
        while todo:
            for nxt in self.empty[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return frozenset(seen)

    def step(self, states: frozenset[int], digit: str) -> frozenset[int]:
        moved = {nxt for state in states for chars, nxt in self.edges[state] if digit in chars}
        return self.closure(moved) if moved else frozenset()


def _charset(op: object, value: object) -> frozenset[str]:
    if op is sre_c.ANY:
        return frozenset(DIGITS)
    if op is sre_c.LITERAL:
        return frozenset(DIGITS) & {chr(value)}  # type: ignore[arg-type]
    if op is sre_c.NOT_LITERAL:
        return frozenset(DIGITS) - {chr(value)}  # type: ignore[arg-type]
    chars: set[str] = set()
    negate = False
    for kind, item in value:  # type: ignore[attr-defined]
        if kind is sre_c.NEGATE:
            negate = True
        elif kind is sre_c.LITERAL:
            chars.add(chr(item))
        elif kind is sre_c.RANGE:
            chars.update(chr(c) for c in range(item[0], item[1] + 1))
        elif kind is sre_c.CATEGORY and item is sre_c.CATEGORY_DIGIT:
            chars.update(DIGITS)
        elif kind is sre_c.CATEGORY and item is sre_c.CATEGORY_NOT_DIGIT:
            pass  # no digit
        else:
            raise _Unsupported(f"{kind} in a character class")
    found = frozenset(DIGITS) & chars
    return frozenset(DIGITS) - found if negate else found


def _patterns() -> list[_Nfa]:
    """Every pattern phonenumbers' is_valid_number may consult for a +1 number."""
    automata = []
    for region in phonenumbers.COUNTRY_CODE_TO_REGION_CODE[1]:
        metadata = PhoneMetadata.metadata_for_region(region)
        if metadata is None:
            continue
        if metadata.leading_digits:
            automata.append(_Nfa(metadata.leading_digits, prefix=True))
        for desc in vars(metadata).values():
            if isinstance(desc, PhoneNumberDesc) and desc.national_number_pattern:
                automata.append(_Nfa(desc.national_number_pattern, prefix=False))
    return automata


class _Automaton:
    """All the patterns run together, determinised as numbers need its states."""

    def __init__(self) -> None:
        self.nfas = _patterns()
        self.lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        # States are numbered: a number walks from dictionary to dictionary by int, never
        # hashing the (pattern, positions) sets a state stands for.
        self.ids: dict[tuple, int] = {}
        self.states: list[tuple] = []
        self.moves: list[dict[str, int]] = []
        self.answers: dict[int, bool] = {}
        self._number(tuple((index, nfa.begin) for index, nfa in enumerate(self.nfas) if nfa.begin))

    def _number(self, state: tuple) -> int:
        found = self.ids.get(state)
        if found is None:
            found = self.ids[state] = len(self.states)
            self.states.append(state)
            self.moves.append({})
        return found

    def _step(self, number: int, digit: str) -> int:
        nxt = []
        for index, states in self.states[number]:
            after = self.nfas[index].step(states, digit)
            if after:
                nxt.append((index, after))
        return self._number(tuple(nxt))

    def e164(self, national: str) -> str | None:
        moves, state = self.moves, 0
        try:
            for digit in national:  # the hot path: ten dictionary look-ups
                state = moves[state][digit]
            valid = self.answers[state]
        except KeyError:
            return self._e164_building(national)
        return "+1" + national if valid else None

    def _e164_building(self, national: str) -> str | None:
        """The walk that adds the states and answers it meets (once per new state)."""
        with self.lock:
            if len(self.states) >= MAX_STATES:
                self._reset()
            state = 0
            for digit in national:
                row = self.moves[state]
                nxt = row.get(digit)
                if nxt is None:
                    nxt = row[digit] = self._step(state, digit)
                state = nxt
            valid = self.answers.get(state)
            if valid is None:
                number = phonenumbers.PhoneNumber(country_code=1, national_number=int(national))
                valid = self.answers[state] = phonenumbers.is_valid_number(number)
        return "+1" + national if valid else None


_automaton: _Automaton | None = None
_unsupported = False


def _shared() -> _Automaton | None:
    global _automaton, _unsupported
    if _automaton is None and not _unsupported:
        try:
            _automaton = _Automaton()
        except (_Unsupported, re.error, TypeError, ValueError, AttributeError):
            _unsupported = True  # phonenumbers' metadata uses something new: always ask it
    return _automaton


def national_digits(text: str, region: str | None) -> str | None:
    """The 10 national digits of a +1 number written in one of the plain forms, else None.

    ``text`` is stripped, without a ``whatsapp:`` prefix, with ``00`` already turned into
    ``+``. None means "not a plain form": the caller asks phonenumbers.
    """
    if not _SHAPE.fullmatch(text):
        return None
    if text[0] == "+":
        digits = text[1:].translate(_SEPARATORS)
        if len(digits) == 11 and digits[0] == "1" and digits[1] in "23456789":
            return digits[1:]
        return None
    digits = text.translate(_SEPARATORS)
    if region not in NATIONAL_REGIONS:
        return None
    if len(digits) == 10 and digits[0] in "23456789":
        return digits
    if len(digits) == 11 and digits[0] == "1" and digits[1] in "23456789":
        return digits[1:]
    return None


def e164_or_none(text: str, region: str | None) -> object:
    """``+1…`` or None as phonenumbers' strict check would answer, or ``NotImplemented`` when
    this module cannot tell (not a plain +1 form): then ask phonenumbers."""
    national = national_digits(text, region)
    if national is None:
        return NotImplemented
    automaton = _shared()
    if automaton is None:
        return NotImplemented
    return automaton.e164(national)
