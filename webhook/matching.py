"""Keyword matching: ``normalise(text)`` and ``match(text, index)``. Pure: no I/O.

The rules (docs/product.md, "Matching rules"): opt-out is generous (a whole-message
keyword, a message starting with an unambiguous keyword, or a configured phrase
stated anywhere), opt-in is strict (whole message only), HELP is whole message.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Mapping, Sequence

STOP_SIGN = "\U0001f6d1"  # 🛑
# Characters joined to their neighbours rather than becoming a space ("don't" -> "dont").
APOSTROPHES = frozenset("'’‘ʼ`´")
# A phrase right after one of these is negated ("don't stop sending deals").
NEGATIONS = (("dont",), ("do", "not"), ("not",), ("never",), ("didnt",), ("nicht",))
# Emoji modifiers that may sit beside the stop sign.
EMOJI_EXTRAS = frozenset("\ufe0f\ufe0e\u200d ")


@dataclass(frozen=True)
class Match:
    """What a message asks for. ``kind``: keyword, first_word, phrase or emoji."""

    intent: str  # opt_out | opt_in | help
    keyword: str  # the configured keyword or phrase that matched, as written in the config
    language: str
    kind: str


def _fold_char(ch: str) -> str:
    if ch in APOSTROPHES:
        return ""
    category = unicodedata.category(ch)
    if category == "Mn":  # combining accent left by NFKD: ARRÊT -> ARRET
        return ""
    if category[0] in "LN":
        return ch
    return " "  # punctuation, symbols, emoji, hyphens, controls, spaces


def normalise(text: str) -> str:
    """Fold a message for matching: NFKC, case-fold, no accents, words split by single spaces.

    Idempotent; never raises. Punctuation, quotes, emoji and hyphens become word breaks.
    """
    if not text:
        return ""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    words = "".join(map(_fold_char, folded)).split()
    # Recompose what NFKD split and the accent strip did not remove (Hangul, for one).
    return unicodedata.normalize("NFC", " ".join(words))


@dataclass(frozen=True)
class ChannelIndex:
    """A channel's keywords compiled for matching (built once per configuration version)."""

    whole: Mapping[str, Match]  # compact form -> match
    first_word: Mapping[str, Match]  # compact form of the leading words -> match
    first_word_max: int
    phrases: Sequence[tuple[tuple[str, ...], Match]]
    stop_sign_language: str
    mentions: frozenset[str] = field(default=frozenset())


def build_index(
    *,
    languages: Sequence[str],
    opt_out: Mapping[str, Sequence[str]],
    first_word: Mapping[str, Sequence[str]],
    phrases: Mapping[str, Sequence[str]],
    opt_in: Mapping[str, Sequence[str]],
    help: Mapping[str, Sequence[str]],
) -> ChannelIndex:
    """Compile keyword lists. A word listed in several languages keeps the first language listed."""
    whole: dict[str, Match] = {}
    leading: dict[str, Match] = {}
    phrase_list: list[tuple[tuple[str, ...], Match]] = []
    first_word_max = 1
    order = list(languages)
    # Keyed by the normal form and by the compact form ("stop all", "stopall"), so the
    # keyword reported is the one written the way the contact wrote it.
    for compact in (False, True):
        for intent, by_language in (("opt_out", opt_out), ("opt_in", opt_in), ("help", help)):
            for language in order:
                for word in by_language.get(language, ()):
                    norm = normalise(word)
                    if norm:
                        key = norm.replace(" ", "") if compact else norm
                        whole.setdefault(key, Match(intent, word, language, "keyword"))
    for compact in (False, True):
        for language in order:
            for word in first_word.get(language, ()):
                norm = normalise(word)
                if norm:
                    key = norm.replace(" ", "") if compact else norm
                    leading.setdefault(key, Match("opt_out", word, language, "first_word"))
                    first_word_max = max(first_word_max, len(norm.split()))
    for language in order:
        for phrase in phrases.get(language, ()):
            tokens = tuple(normalise(phrase).split())
            if tokens:
                phrase_list.append((tokens, Match("opt_out", phrase, language, "phrase")))
    # Longer phrases first, so the most specific one is reported.
    phrase_list.sort(key=lambda item: -len(item[0]))
    mentions = frozenset(k for k, m in whole.items() if m.intent == "opt_out" and " " not in k)
    return ChannelIndex(whole, leading, first_word_max, tuple(phrase_list), order[0], mentions)


def _is_stop_sign_only(text: str) -> bool:
    stripped = [ch for ch in text if ch not in EMOJI_EXTRAS and not ch.isspace()]
    return bool(stripped) and all(ch == STOP_SIGN for ch in stripped)


def _negated(tokens: Sequence[str], start: int) -> bool:
    for negation in NEGATIONS:
        n = len(negation)
        if start >= n and tuple(tokens[start - n:start]) == negation:
            return True
    return False


def _find_phrase(tokens: Sequence[str], index: ChannelIndex) -> Match | None:
    count = len(tokens)
    for phrase, found in index.phrases:
        n = len(phrase)
        first = phrase[0]
        for start in range(count - n + 1):
            if tokens[start] == first and tuple(tokens[start:start + n]) == phrase and not _negated(tokens, start):
                return found
    return None


def match(text: str, index: ChannelIndex) -> Match | None:
    """Decide what a message asks for on one channel, or None for an ordinary message."""
    norm = normalise(text)
    if not norm:
        if _is_stop_sign_only(text):
            return Match("opt_out", STOP_SIGN, index.stop_sign_language, "emoji")
        return None
    whole = index.whole.get(norm) or index.whole.get(norm.replace(" ", ""))
    if whole is not None:
        return whole
    tokens = norm.split()
    for n in range(min(index.first_word_max, len(tokens)), 0, -1):
        leading = index.first_word.get(" ".join(tokens[:n])) or index.first_word.get("".join(tokens[:n]))
        if leading is not None:
            return leading
    return _find_phrase(tokens, index)


def review_reason(text: str, index: ChannelIndex) -> str | None:
    """Why a message that did not match should be reviewed by an admin, or None.

    A message that still contains an opt-out keyword as a word ("Cancel my order, it's
    late") is a candidate: the reason names the keyword, in the words an admin reads.
    """
    for token in normalise(text).split():
        if token in index.mentions:
            return f"mentions the opt-out keyword {index.whole[token].keyword}"
    return None


def mentions_opt_out(text: str, index: ChannelIndex) -> bool:
    """True when a message that did not match still contains an opt-out keyword as a word."""
    return review_reason(text, index) is not None
