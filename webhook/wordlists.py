"""Word lists of the shipped languages, so a typo guess never turns a real word into an opt-out.

The lists are pyspellchecker's frequency lists (word -> count in the OpenSubtitles corpus),
installed with the package: nothing is downloaded. Each is read once per process, on the
first message that needs it (the typo and stretched-word paths), and kept folded the way
``matching.normalise`` folds a message, so "arrêté" in a list is "arrete" here.

Pure apart from reading package data; no Flask, no network.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

# pyspellchecker gives every word it took from a spelling dictionary but never saw in
# subtitles the same floor count (50). Those ~900,000 entries are mostly rare inflections
# and a good share of typos ("stpo" is one in German), and holding them costs ~100 MB per
# process: a word counts as known only when it was actually seen more often than that.
DICTIONARY_FLOOR = 50
# The this-many most frequent words of a language are everyday words: a message that is
# one of them ("Step", "Shop", "Stoop") meant that word, so it is neither matched nor
# queued for review. A rarer known word near a keyword ("Strop") is queued for review.
EVERYDAY_RANK = 20_000
# Words shorter than this are never compared with keywords, so they need not be kept.
MIN_WORD_LENGTH = 4


@dataclass(frozen=True)
class WordList:
    """One language's known words (folded), and the everyday ones among them."""

    language: str
    known: frozenset[str]
    everyday: frozenset[str]


def _resource(language: str):
    return resources.files("spellchecker") / "resources" / f"{language}.json.gz"


def base_language(language: str) -> str:
    """The list a language code uses: ``pt-BR`` -> ``pt``."""
    return language.split("-", 1)[0].lower()


@lru_cache(maxsize=None)
def has_word_list(language: str) -> bool:
    """True when a word list ships for this language (``en``, ``fr``, ``es``, ``pt``, ``de``, ...)."""
    try:
        return _resource(base_language(language)).is_file()
    except (ModuleNotFoundError, FileNotFoundError):
        return False


@lru_cache(maxsize=1)
def _latin_folds() -> dict[int, str]:
    """Latin letters with accents -> what ``normalise`` makes of them (é -> e, ß -> ss)."""
    from webhook.matching import normalise  # here: matching imports this module

    return {cp: normalise(chr(cp)) for cp in range(0xC0, 0x250) if chr(cp).isalpha()}


def _fold(word: str) -> str:
    """``normalise(word)`` without spaces, fast for list words (a third of French ones have accents)."""
    if not (word.isascii() and word.isalpha() and word.islower()):
        folded = word.translate(_latin_folds())
        if folded.isascii() and folded.isalpha() and folded.islower():
            return folded
        from webhook.matching import normalise

        return normalise(word).replace(" ", "")
    return word


def word_list(language: str) -> WordList | None:
    """The language's word list, read once per process; None when none ships for it."""
    return _load(base_language(language))


@lru_cache(maxsize=None)
def _load(base: str) -> WordList | None:
    if not has_word_list(base):
        return None
    with _resource(base).open("rb") as raw, gzip.open(raw, "rt", encoding="utf-8") as text:
        document = text.read()
    counts = _seen_words(document)
    seen = sorted(((n, w) for w, n in counts.items() if n > DICTIONARY_FLOOR and len(w) >= MIN_WORD_LENGTH), reverse=True)
    known = [_fold(word) for _, word in seen]
    return WordList(base, frozenset(known), frozenset(known[:EVERYDAY_RANK]))


# One entry of the JSON object, skipping the dictionary-floor ones without building them:
# parsing the whole document (1.1 million entries) takes 0.7 s and 90 MB more at its peak;
# this takes 0.2 s and keeps only the ~190,000 seen words.
_SEEN_ENTRY = re.compile(r'"([^"\\]{%d,})": (?!%d[,}])(\d+)' % (MIN_WORD_LENGTH, DICTIONARY_FLOOR))


def _seen_words(document: str) -> dict[str, int]:
    """Word -> count of the entries above the floor; the full JSON parse if the layout differs."""
    counts = {word: int(count) for word, count in _SEEN_ENTRY.findall(document)}
    if counts:
        return counts
    parsed: dict[str, int] = json.loads(document)  # another layout than '"word": count'
    return parsed
