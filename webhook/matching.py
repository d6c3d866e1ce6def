"""Keyword matching: ``normalise(text)``, ``match(text, index)`` and ``review_reason(text, index)``.

Pure: no Flask, no network; the only thing read is the packaged word lists
(``webhook.wordlists``), once per process, on the first message that needs them.

The rules (docs/product.md, "Matching rules"; docs/matching.md): opt-out is generous (a
whole-message keyword, a message starting with an unambiguous keyword, a configured
phrase or wrong-number phrase stated anywhere, a stretched or mistyped keyword sent
alone), opt-in is strict (whole message only, never fuzzy), HELP is whole message.
Anything doubtful is not matched; ``review_reason`` says why an admin should look at it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from itertools import groupby
from typing import Mapping, Sequence

from rapidfuzz import process
from rapidfuzz.distance import OSA

from webhook import wordlists

STOP_SIGN = "\U0001f6d1"  # 🛑
# Characters joined to their neighbours rather than becoming a space ("don't" -> "dont").
APOSTROPHES = frozenset("'’‘ʼ`´")
# A phrase right after one of these is negated ("don't stop sending deals").
NEGATIONS = (("dont",), ("do", "not"), ("not",), ("never",), ("didnt",), ("nicht",))
# Emoji modifiers that may sit beside the stop sign.
EMOJI_EXTRAS = frozenset("\ufe0f\ufe0e\u200d ")
# In a phrase, a "*" standing alone is any one word ("this isn't * phone").
WILDCARD = "*"
_WILDCARD_SPLIT = re.compile(r"(?<!\S)\*(?!\S)")

# Typo tolerance (docs/matching.md, "Typos"). A guess needs evidence: a word of at least
# four letters, a message of at most two words, and one edit (a letter wrong, missing,
# extra, or two neighbours swapped) from exactly one opt-out keyword.
TYPO_MIN_LENGTH = 4
TYPO_MAX_WORDS = 2
# Two edits are only worth an admin's look on a long keyword: two edits of STOP is half of it.
TYPO_GUESS_MIN_LENGTH = 6


@dataclass(frozen=True)
class Match:
    """What a message asks for.

    ``kind``: keyword, first_word, phrase, emoji, wrong_number, stretched or typo
    (and ``provider``, set by the consent service for Twilio's own opt-out).
    """

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


def phrase_tokens(phrase: str) -> tuple[str | None, ...]:
    """A configured phrase as words to match; None stands for a ``*`` (any one word)."""
    tokens: list[str | None] = []
    for i, part in enumerate(_WILDCARD_SPLIT.split(phrase)):
        if i:
            tokens.append(None)
        tokens.extend(normalise(part).split())
    return tuple(tokens)


def collapse_runs(word: str) -> str:
    """Each run of one repeated letter as one letter: "stooop" -> "stop", "unsubbbb" -> "unsub"."""
    return "".join(letter for letter, _ in groupby(word))


@dataclass(frozen=True)
class Phrase:
    """A compiled phrase: its words (None = any word), what it means, and its rank (lower wins)."""

    tokens: tuple[str | None, ...]
    found: Match
    rank: int


@dataclass(frozen=True)
class ChannelIndex:
    """A channel's keywords compiled for matching (built once per configuration version)."""

    whole: Mapping[str, Match]  # compact form -> match
    first_word: Mapping[str, Match]  # compact form of the leading words -> match
    first_word_max: int
    phrases: Mapping[str, Sequence[Phrase]]  # first word -> phrases (and wrong-number phrases)
    stop_sign_language: str
    mentions: Mapping[str, Match] = field(default_factory=dict)  # one-word opt-out keyword -> its match
    questions: Mapping[str, Sequence[tuple[str, ...]]] = field(default_factory=dict)  # first word -> openers
    stretched: Mapping[str, Match] = field(default_factory=dict)  # collapsed whole opt-out keyword -> match
    stretched_first: Mapping[str, Match] = field(default_factory=dict)  # collapsed first-word keyword -> match
    typo_targets: Sequence[str] = ()  # compact keywords of every intent a typo is compared with
    typo_whole: Mapping[str, Match] = field(default_factory=dict)  # compact opt-out keyword -> match
    languages: Sequence[str] = ()  # the channel's languages, whose word lists rule out real words


def _compile_keywords(
    order: Sequence[str],
    opt_out: Mapping[str, Sequence[str]],
    opt_in: Mapping[str, Sequence[str]],
    help: Mapping[str, Sequence[str]],
) -> dict[str, Match]:
    whole: dict[str, Match] = {}
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
    return whole


def _compile_first_words(order: Sequence[str], first_word: Mapping[str, Sequence[str]]) -> tuple[dict[str, Match], int]:
    leading: dict[str, Match] = {}
    longest = 1
    for compact in (False, True):
        for language in order:
            for word in first_word.get(language, ()):
                norm = normalise(word)
                if norm:
                    key = norm.replace(" ", "") if compact else norm
                    leading.setdefault(key, Match("opt_out", word, language, "first_word"))
                    longest = max(longest, len(norm.split()))
    return leading, longest


def _compile_phrases(
    order: Sequence[str], phrases: Mapping[str, Sequence[str]], wrong_number: Mapping[str, Sequence[str]]
) -> dict[str, list[Phrase]]:
    # Wrong-number phrases rank first (their own kind in the statistics), then longer
    # phrases before shorter ones, then the order of the configuration.
    ranked: list[tuple[int, int, int, tuple[str | None, ...], Match]] = []
    for priority, (kind, by_language) in enumerate((("wrong_number", wrong_number), ("phrase", phrases))):
        for language in order:
            for text in by_language.get(language, ()):
                tokens = phrase_tokens(text)
                if tokens and tokens[0] is not None:
                    ranked.append((priority, -len(tokens), len(ranked), tokens, Match("opt_out", text, language, kind)))
    by_first: dict[str, list[Phrase]] = {}
    for rank, (_, _, _, tokens, found) in enumerate(sorted(ranked)):
        by_first.setdefault(str(tokens[0]), []).append(Phrase(tokens, found, rank))
    return by_first


def _compile_questions(order: Sequence[str], questions: Mapping[str, Sequence[str]]) -> dict[str, list[tuple[str, ...]]]:
    by_first: dict[str, list[tuple[str, ...]]] = {}
    for language in order:
        for text in questions.get(language, ()):
            tokens = tuple(normalise(text).split())
            if tokens:
                by_first.setdefault(tokens[0], []).append(tokens)
    return by_first


def _compile_stretched(keys: Mapping[str, Match]) -> dict[str, Match]:
    """Opt-out keywords by their collapsed compact form ("desabonner" -> "desaboner")."""
    collapsed: dict[str, Match] = {}
    for key, found in keys.items():
        if found.intent == "opt_out" and " " not in key:
            collapsed.setdefault(collapse_runs(key), Match("opt_out", found.keyword, found.language, "stretched"))
    return collapsed


def build_index(
    *,
    languages: Sequence[str],
    opt_out: Mapping[str, Sequence[str]],
    first_word: Mapping[str, Sequence[str]],
    phrases: Mapping[str, Sequence[str]],
    opt_in: Mapping[str, Sequence[str]],
    help: Mapping[str, Sequence[str]],
    alone: Mapping[str, Sequence[str]] | None = None,
    wrong_number: Mapping[str, Sequence[str]] | None = None,
    questions: Mapping[str, Sequence[str]] | None = None,
    fuzzy: bool = False,
    stretched: bool = False,
) -> ChannelIndex:
    """Compile keyword lists. A word listed in several languages keeps the first language listed.

    ``alone``: everyday words that opt out only as the whole message (PARA, CHEGA): never
    a mention for review, never guessed from a typo. ``wrong_number``: phrases saying the
    message reached the wrong person (kind ``wrong_number``). ``questions``: openers
    ("how do I") that make a later phrase a question about stopping, for review.
    ``fuzzy``: mistyped opt-out keywords sent alone opt out (kind ``typo``).
    ``stretched``: "Stoooop" opts out (kind ``stretched``).
    """
    order = list(languages)
    keywords = _compile_keywords(order, opt_out, opt_in, help)
    whole = {**_compile_keywords(order, alone or {}, {}, {}), **keywords}
    leading, first_word_max = _compile_first_words(order, first_word)
    mentions = {k: m for k, m in keywords.items() if m.intent == "opt_out" and " " not in k}
    # Typos are compared with every intent's keywords, so a word as close to HELP or
    # START as to STOP is seen as doubtful; only opt-out keywords are ever matched.
    targets = tuple(k for k in keywords if " " not in k) if fuzzy else ()
    return ChannelIndex(
        whole=whole,
        first_word=leading,
        first_word_max=first_word_max,
        phrases=_compile_phrases(order, phrases, wrong_number or {}),
        stop_sign_language=order[0],
        mentions=mentions,
        questions=_compile_questions(order, questions or {}),
        stretched=_compile_stretched(whole) if stretched else {},
        stretched_first=_compile_stretched(leading) if stretched else {},
        typo_targets=targets,
        typo_whole=mentions if fuzzy else {},
        languages=tuple(order),
    )


def _is_stop_sign_only(text: str) -> bool:
    stripped = [ch for ch in text if ch not in EMOJI_EXTRAS and not ch.isspace()]
    return bool(stripped) and all(ch == STOP_SIGN for ch in stripped)


def _negated(tokens: Sequence[str], start: int) -> bool:
    for negation in NEGATIONS:
        n = len(negation)
        if start >= n and tuple(tokens[start - n:start]) == negation:
            return True
    return False


def _phrase_at(tokens: Sequence[str], start: int, phrase: Sequence[str | None]) -> bool:
    if start + len(phrase) > len(tokens):
        return False
    return all(want is None or want == tokens[start + i] for i, want in enumerate(phrase))


def _find_phrase(tokens: Sequence[str], index: ChannelIndex) -> tuple[int, Match] | None:
    """The best-ranked phrase stated in the message (not negated), with where it starts."""
    best: tuple[int, Phrase] | None = None
    for start, token in enumerate(tokens):
        for phrase in index.phrases.get(token, ()):
            if (best is None or phrase.rank < best[1].rank) and _phrase_at(tokens, start, phrase.tokens):
                if not _negated(tokens, start):
                    best = (start, phrase)
    return (best[0], best[1].found) if best else None


def _question_start(tokens: Sequence[str], index: ChannelIndex) -> int | None:
    """Where the first configured question opener ("how do i") starts, if any."""
    for start, token in enumerate(tokens):
        for opener in index.questions.get(token, ()):
            if tuple(tokens[start:start + len(opener)]) == opener:
                return start
    return None


def _word_lists(index: ChannelIndex) -> list[wordlists.WordList | None]:
    return [wordlists.word_list(language) for language in index.languages]


def _is_known_word(word: str, index: ChannelIndex) -> bool:
    return any(words is not None and word in words.known for words in _word_lists(index))


def _whole_candidate(tokens: Sequence[str]) -> str | None:
    """The message as one word for the fuzzy paths: one or two words ("un subscibe"), or
    single letters spelt out ("s t o o p")."""
    if len(tokens) <= TYPO_MAX_WORDS or all(len(token) == 1 for token in tokens):
        return "".join(tokens)
    return None


def _stretched(tokens: Sequence[str], index: ChannelIndex) -> Match | None:
    """A keyword with letters held down ("Stoooop", "Unsubbbb please"), never a real word ("Stoop")."""
    candidates = [(_whole_candidate(tokens), index.stretched), (tokens[0], index.stretched_first)]
    for word, table in candidates:
        if word and word != collapse_runs(word):
            found = table.get(collapse_runs(word))
            if found is not None and not _is_known_word(word, index):
                return found
    return None


@dataclass(frozen=True)
class _TypoVerdict:
    found: Match | None = None
    reason: str | None = None


def _keywords_named(keys: Sequence[str], index: ChannelIndex) -> str:
    names: list[str] = []
    for key in keys:
        name = index.whole[key].keyword.upper()
        if name not in names:
            names.append(name)
    return " or ".join(names)


def _typo_of(word: str, eligible: Mapping[str, Match], index: ChannelIndex, typed: str) -> _TypoVerdict:
    """Judge one word against the keywords; ``eligible`` are those it may opt out as."""
    if len(word) < TYPO_MIN_LENGTH or not word.isalpha():
        return _TypoVerdict()
    near = process.extract(word, index.typo_targets, scorer=OSA.distance, score_cutoff=2, limit=None)
    one = [key for key, distance, _ in near if distance == 1]
    two = [key for key, distance, _ in near if distance == 2 and len(key) >= TYPO_GUESS_MIN_LENGTH]
    opt_out_one = [key for key in one if index.whole[key].intent == "opt_out"]
    lists = _word_lists(index)
    if opt_out_one:
        named = _keywords_named(one, index)
        if any(words is not None and word in words.everyday for words in lists):
            return _TypoVerdict()  # "Step", "Shop": the word they meant
        if any(words is not None and word in words.known for words in lists):
            return _TypoVerdict(reason=f'looks like a typo of {named} ("{typed}"), but it is also a word')
        if len(one) > 1 or one[0] not in eligible:
            return _TypoVerdict(reason=f'looks like a typo of {named} ("{typed}")')
        if None in lists:
            missing = ", ".join(lang for lang, words in zip(index.languages, lists, strict=True) if words is None)
            return _TypoVerdict(reason=f'looks like a typo of {named} ("{typed}"); no word list for {missing}')
        found = eligible[one[0]]
        return _TypoVerdict(found=Match("opt_out", found.keyword, found.language, "typo"))
    opt_out_two = [key for key in two if index.whole[key].intent == "opt_out"]
    if not one and opt_out_two and not _is_known_word(word, index):
        return _TypoVerdict(reason=f'might be a typo of {_keywords_named(opt_out_two, index)} ("{typed}")')
    return _TypoVerdict()


def _typo(tokens: Sequence[str], index: ChannelIndex, typed: str) -> _TypoVerdict:
    """A mistyped opt-out keyword as the whole message, or first of two words ("Stpo pls")."""
    if not index.typo_targets:
        return _TypoVerdict()
    candidates: list[tuple[str, Mapping[str, Match]]] = []
    whole = _whole_candidate(tokens)
    if whole:
        candidates.append((whole, index.typo_whole))
    if len(tokens) == TYPO_MAX_WORDS:
        candidates.append((tokens[0], index.first_word))
    reason = None
    for word, eligible in candidates:
        verdict = _typo_of(word, eligible, index, typed)
        if verdict.found is not None:
            return verdict
        reason = reason or verdict.reason
    return _TypoVerdict(reason=reason)


def _quoted(text: str) -> str:
    """The message as the contact typed it, short enough to quote in a review reason."""
    typed = " ".join(text.split())
    return typed if len(typed) <= 40 else typed[:39] + "…"


def match(text: str, index: ChannelIndex) -> Match | None:
    """Decide what a message asks for on one channel, or None for an ordinary message.

    Never returns a review: for a message it does not match, ``review_reason`` says
    whether an admin should look at it.
    """
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
    stated = _find_phrase(tokens, index)
    if stated is not None:
        start, found = stated
        question = _question_start(tokens, index)
        if found.kind == "wrong_number" or question is None or question > start:
            return found
        return None  # "how do I stop these messages?": a question, for review
    if index.stretched or index.stretched_first:
        held = _stretched(tokens, index)
        if held is not None:
            return held
    return _typo(tokens, index, _quoted(text)).found


def review_reason(text: str, index: ChannelIndex) -> str | None:
    """Why an admin should review a message that ``match`` did not match, or None.

    A short English sentence for the review queue: "asks how to stop messages",
    'looks like a typo of STOP ("Stpo")', "mentions the opt-out keyword CANCEL".
    """
    tokens = normalise(text).split()
    if not tokens:
        return None
    question = _question_start(tokens, index)
    if question is not None:
        later = tokens[question:]
        if _find_phrase(later, index) is not None or _mentioned(later, index) is not None:
            return "asks how to stop messages"
    typo = _typo(tokens, index, _quoted(text))
    if typo.reason is not None:
        return typo.reason
    mentioned = _mentioned(tokens, index)
    if mentioned is not None:
        return f"mentions the opt-out keyword {mentioned.keyword.upper()}"
    return None


def _mentioned(tokens: Sequence[str], index: ChannelIndex) -> Match | None:
    """The first opt-out keyword the message contains as a word, or as two ("opt out")."""
    for i, token in enumerate(tokens):
        mentioned = index.mentions.get(token) or index.mentions.get("".join(tokens[i:i + 2]))
        if mentioned is not None:
            return mentioned
    return None
