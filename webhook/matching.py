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

from webhook import typos, wordlists

STOP_SIGN = "\U0001f6d1"  # 🛑
# Characters joined to their neighbours rather than becoming a space ("don't" -> "dont").
APOSTROPHES = frozenset("'’‘ʼ`´")
# A phrase right after one of these is negated ("don't stop sending deals"), in any language.
NEGATIONS = (("dont",), ("do", "not"), ("not",), ("never",), ("didnt",), ("nicht",))
# ... and these, for a phrase of their language only: English "No, stop texting me" is
# an opt-out even when typed without its comma, Spanish "no dejen de enviarme" is not.
LANGUAGE_NEGATIONS = {
    "es": (("no",), ("nunca",), ("jamas",)),
    "pt": (("nao",), ("nunca",), ("jamais",)),
    "fr": (("ne", "pas"), ("jamais",)),
    "de": (("nie",),),
}
# Punctuation that ends a clause: a negation in an earlier clause does not reach a
# phrase ("No, stop texting me"), and the last clause may be a keyword on its own.
_CLAUSE_BREAK = re.compile(r"[.,;:!?¡¿\n]+")
# Reply and forward prefixes of e-mail subjects (en, de, fr, es, pt, nl, nordic).
_REPLY_PREFIX = re.compile(r"^\s*(?:(?:re|fwd?|aw|wg|tr|rv|res|enc|sv|antw)\s*(?:\[\d+\])?\s*:\s*)+", re.IGNORECASE)
# Emoji of delight or laughter: "Stop! That's an amazing price 😍" is excitement, not a
# request. A message with one is never an opt-out by anything but its whole text.
DELIGHT = frozenset("😍🥰😘😻🤩😂🤣😆😄😁😀😃❤♥💕💖💗💞💯🔥👏🙌")
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
    (and ``provider``, set by the consent service for Twilio's own opt-out). A keyword
    with polite words around it ("Baja por favor") or ending the message after a
    sentence ("Not interested. STOP") is a ``keyword`` or ``first_word`` match.
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


# The same folding for plain ASCII text, which most messages are, as one translate call:
# letters and digits stay, apostrophes join, everything else is a word break.
_ASCII_FOLD = str.maketrans(
    {chr(c): ("" if chr(c) in APOSTROPHES else " ") for c in range(128) if not chr(c).isalnum()}
)


def normalise(text: str) -> str:
    """Fold a message for matching: NFKC, case-fold, no accents, words split by single spaces.

    Idempotent; never raises. Punctuation, quotes, emoji and hyphens become word breaks.
    """
    if not text:
        return ""
    if text.isascii():
        return " ".join(text.lower().translate(_ASCII_FOLD).split())
    return _normalise_unicode(text)


def _normalise_unicode(text: str) -> str:
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
    fillers: frozenset[tuple[str, ...]] = frozenset()  # words that may surround a keyword ("pls")
    other_senses: Mapping[str, Sequence[tuple[str, ...]]] = field(default_factory=dict)  # first word -> senses


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


def _compile_sequences(order: Sequence[str], lists: Mapping[str, Sequence[str]]) -> dict[str, list[tuple[str, ...]]]:
    """Word sequences (questions, fillers, other senses) by their first word, longest first."""
    by_first: dict[str, list[tuple[str, ...]]] = {}
    for language in order:
        for text in lists.get(language, ()):
            tokens = tuple(normalise(text).split())
            if tokens:
                by_first.setdefault(tokens[0], []).append(tokens)
    for sequences in by_first.values():
        sequences.sort(key=len, reverse=True)
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
    fillers: Mapping[str, Sequence[str]] | None = None,
    other_senses: Mapping[str, Sequence[str]] | None = None,
    fuzzy: bool = False,
    stretched: bool = False,
) -> ChannelIndex:
    """Compile keyword lists. A word listed in several languages keeps the first language listed.

    ``alone``: everyday words that opt out only as the whole message (PARA, CHEGA): never
    a mention for review. ``wrong_number``: phrases saying the message reached the wrong
    person (kind ``wrong_number``). ``questions``: openers ("how do I") that make a later
    phrase a question about stopping, for review. ``fillers``: words that may surround a
    keyword ("pls", "por favor"). ``other_senses``: sequences that give a keyword another
    meaning ("stop by"), for review. ``fuzzy``: mistyped opt-out keywords sent alone opt
    out (kind ``typo``). ``stretched``: "Stoooop" opts out (kind ``stretched``).
    """
    order = list(languages)
    keywords = _compile_keywords(order, opt_out, opt_in, help)
    whole = {**keywords, **{k: m for k, m in _compile_keywords(order, alone or {}, {}, {}).items() if k not in keywords}}
    leading, first_word_max = _compile_first_words(order, first_word)
    mentions = {k: m for k, m in keywords.items() if m.intent == "opt_out" and " " not in k}
    # Typos are compared with every intent's keywords, so a word as close to HELP or
    # START as to STOP is seen as doubtful; only opt-out keywords are ever matched.
    targets = tuple(k for k in whole if " " not in k) if fuzzy else ()
    return ChannelIndex(
        whole=whole,
        first_word=leading,
        first_word_max=first_word_max,
        phrases=_compile_phrases(order, phrases, wrong_number or {}),
        stop_sign_language=order[0],
        mentions=mentions,
        questions=_compile_sequences(order, questions or {}),
        stretched=_compile_stretched(whole) if stretched else {},
        stretched_first=_compile_stretched(leading) if stretched else {},
        typo_targets=targets,
        typo_whole={k: m for k, m in whole.items() if m.intent == "opt_out" and " " not in k} if fuzzy else {},
        languages=tuple(order),
        fillers=frozenset(seq for seqs in _compile_sequences(order, fillers or {}).values() for seq in seqs),
        other_senses=_compile_sequences(order, other_senses or {}),
    )


def _is_stop_sign_only(text: str) -> bool:
    stripped = [ch for ch in text if ch not in EMOJI_EXTRAS and not ch.isspace()]
    return bool(stripped) and all(ch == STOP_SIGN for ch in stripped)


@dataclass(frozen=True)
class _Message:
    """A message as the rules read it: its text and its folded words; clauses on demand."""

    text: str
    tokens: tuple[str, ...]

    def clause_starts(self) -> frozenset[int]:
        """Indices of the words that start a clause (after . , ! ? and the like)."""
        starts, count = set(), 0
        for clause in _CLAUSE_BREAK.split(self.text):
            starts.add(count)
            count += len(normalise(clause).split())
        return frozenset(starts)

    def last_clause(self) -> tuple[str, ...]:
        """The words of the last clause that has any ("Not interested. STOP!" -> stop)."""
        for clause in reversed(_CLAUSE_BREAK.split(self.text)):
            words = normalise(clause).split()
            if words:
                return tuple(words)
        return ()


def _starts_with(tokens: Sequence[str], start: int, sequences: Mapping[str, Sequence[tuple[str, ...]]]) -> tuple[str, ...] | None:
    """The longest configured sequence starting at ``start``, if any."""
    if start >= len(tokens):
        return None
    for sequence in sequences.get(tokens[start], ()):
        if tuple(tokens[start:start + len(sequence)]) == sequence:
            return sequence
    return None


def _find_sequence(tokens: Sequence[str], sequences: Mapping[str, Sequence[tuple[str, ...]]]) -> tuple[int, tuple[str, ...]] | None:
    for start in range(len(tokens)):
        found = _starts_with(tokens, start, sequences)
        if found is not None:
            return start, found
    return None


def _without_fillers(tokens: Sequence[str], index: ChannelIndex) -> tuple[str, ...]:
    """The words left once polite and filler words are taken off both ends ("pls stop")."""
    start, end = 0, len(tokens)
    longest = max(map(len, index.fillers), default=0)
    while start < end and (n := _filler_length(tokens[start:start + longest], index, at_end=False)):
        start += n
    while start < end and (n := _filler_length(tokens[max(start, end - longest):end], index, at_end=True)):
        end -= n
    return tuple(tokens[start:end])


def _filler_length(window: Sequence[str], index: ChannelIndex, *, at_end: bool) -> int:
    """How many words of ``window`` (its start, or its end) are one filler; 0 when none."""
    for n in range(len(window), 0, -1):
        if tuple(window[-n:] if at_end else window[:n]) in index.fillers:
            return n
    return 0


def _negated(message: _Message, start: int, language: str) -> bool:
    tokens = message.tokens
    for negation in NEGATIONS + LANGUAGE_NEGATIONS.get(wordlists.base_language(language), ()):
        n = len(negation)
        if start >= n and tuple(tokens[start - n:start]) == negation:
            return start not in message.clause_starts()
    return False


def _phrase_at(tokens: Sequence[str], start: int, phrase: Sequence[str | None]) -> bool:
    end = start + len(phrase)
    if end > len(tokens) or (phrase[-1] is None and end != len(tokens)):
        return False  # a "*" ending a phrase is the message's last word ("no soy *")
    return all(want is None or want == tokens[start + i] for i, want in enumerate(phrase))


def _find_phrase(message: _Message, index: ChannelIndex) -> tuple[int, Match] | None:
    """The best-ranked phrase stated in the message (not negated), with where it starts."""
    best: tuple[int, Phrase] | None = None
    tokens = message.tokens
    for start in range(len(tokens)):
        for phrase in index.phrases.get(tokens[start], ()):
            if (best is None or phrase.rank < best[1].rank) and _phrase_at(tokens, start, phrase.tokens):
                if not _negated(message, start, phrase.found.language):
                    best = (start, phrase)
    return (best[0], best[1].found) if best else None


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
class _Verdict:
    """What a rule made of a message: a match, or a reason to review it, or neither."""

    found: Match | None = None
    reason: str | None = None


def _keywords_named(keys: Sequence[str], index: ChannelIndex) -> str:
    names: list[str] = []
    for key in keys:
        name = index.whole[key].keyword.upper()
        if name not in names:
            names.append(name)
    return " or ".join(names)


def _typo_of(word: str, eligible: Mapping[str, Match], index: ChannelIndex, typed: str) -> _Verdict:
    """Judge one word against the keywords; ``eligible`` are those it may opt out as."""
    if len(word) < TYPO_MIN_LENGTH or not word.isalpha():
        return _Verdict()
    near = typos.near_keywords(word, index.typo_targets)
    slips = [n.keyword for n in near if n.plausible]
    if any(index.whole[key].intent == "opt_out" for key in slips):
        named = _keywords_named(slips, index)
        lists = _word_lists(index)
        if any(words is not None and word in words.everyday for words in lists):
            return _Verdict()  # "Step", "Shop": the word they meant
        if any(words is not None and word in words.known for words in lists):
            return _Verdict(reason=f'looks like a typo of {named} ("{typed}"), but it is also a word')
        # One slip from several opt-out keywords (STOP and STOPP) is still an opt-out;
        # from keywords of different intents (STOP and a help word) it is a guess.
        if len({index.whole[key].intent for key in slips}) > 1 or not any(key in eligible for key in slips):
            return _Verdict(reason=f'looks like a typo of {named} ("{typed}")')
        if None in lists:
            missing = ", ".join(lang for lang, words in zip(index.languages, lists, strict=True) if words is None)
            return _Verdict(reason=f'looks like a typo of {named} ("{typed}"); no word list for {missing}')
        found = eligible[next(key for key in slips if key in eligible)]
        return _Verdict(found=Match("opt_out", found.keyword, found.language, "typo"))
    guesses = [n.keyword for n in near if len(n.keyword) >= TYPO_GUESS_MIN_LENGTH and index.whole[n.keyword].intent == "opt_out"]
    if not slips and guesses and not _is_known_word(word, index):
        return _Verdict(reason=f'might be a typo of {_keywords_named(guesses, index)} ("{typed}")')
    return _Verdict()


def _typo(tokens: Sequence[str], index: ChannelIndex, typed: str) -> _Verdict:
    """A mistyped opt-out keyword as the whole message, or first of two words ("Stpo pls")."""
    if not index.typo_targets:
        return _Verdict()
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
    return _Verdict(reason=reason)


def _quoted(text: str) -> str:
    """The message as the contact typed it, short enough to quote in a review reason."""
    typed = " ".join(text.split())
    return typed if len(typed) <= 40 else typed[:39] + "…"


def _whole(tokens: Sequence[str], index: ChannelIndex) -> Match | None:
    norm = " ".join(tokens)
    return index.whole.get(norm) or index.whole.get(norm.replace(" ", ""))


def _first_word(tokens: Sequence[str], index: ChannelIndex) -> Match | None:
    for n in range(min(index.first_word_max, len(tokens)), 0, -1):
        leading = index.first_word.get(" ".join(tokens[:n])) or index.first_word.get("".join(tokens[:n]))
        if leading is not None:
            return leading
    return None


def _stated(message: _Message, index: ChannelIndex) -> _Verdict:
    """The rules that find an opt-out inside a longer message, most specific first."""
    tokens = message.tokens
    found = _first_word(tokens, index)
    if found is not None:
        return _Verdict(found)
    stated = _find_phrase(message, index)
    if stated is not None:
        start, found = stated
        question = _find_sequence(tokens[:start], index.questions)
        if found.kind == "wrong_number" or question is None:
            return _Verdict(found)
        return _Verdict(reason="asks how to stop messages")
    bare = _without_fillers(tokens, index)
    if bare and bare != tokens:
        found = _whole(bare, index)
        if found is not None and found.intent == "opt_out":
            return _Verdict(found)  # "pls stop", "Baja por favor"
        found = _first_word(bare, index)
        if found is not None:
            return _Verdict(found)  # "ok stop sending me these"
    last = _without_fillers(message.last_clause(), index)
    if last and len(last) < len(tokens):
        found = index.first_word.get(" ".join(last)) or index.first_word.get("".join(last))
        if found is not None:
            return _Verdict(found)  # "Not interested. STOP": the keyword is a sentence of its own
    if index.stretched or index.stretched_first:
        held = _stretched(tokens, index)
        if held is not None:
            return _Verdict(held)
    return _typo(tokens, index, _quoted(message.text))


def _doubt(message: _Message, found: Match, index: ChannelIndex) -> str | None:
    """Why an opt-out found inside a longer message may mean something else, if it may."""
    sense = _find_sequence(message.tokens, index.other_senses)
    if sense is not None:
        return f'"{found.keyword}" may mean something else here ("{" ".join(sense[1])}")'
    if any(ch in DELIGHT for ch in message.text):
        return f'"{found.keyword}" comes with an emoji of delight or laughter'
    return None


def _judge(text: str, index: ChannelIndex, *, explain: bool) -> _Verdict:
    """The match for a message, or (with ``explain``) why it should be reviewed."""
    norm = normalise(text)
    if not norm:
        if _is_stop_sign_only(text):
            return _Verdict(Match("opt_out", STOP_SIGN, index.stop_sign_language, "emoji"))
        return _Verdict()
    exact = _whole(norm.split(), index)
    if exact is not None:
        return _Verdict(exact)
    prefix = _REPLY_PREFIX.match(text)
    if prefix:
        # A reply to an e-mail: what follows "Re:" is our own subject unless it is a keyword.
        return _Verdict(_whole(normalise(text[prefix.end():]).split(), index))
    message = _Message(text, tuple(norm.split()))
    verdict = _stated(message, index)
    if verdict.found is not None:
        doubt = _doubt(message, verdict.found, index)
        return verdict if doubt is None else _Verdict(reason=doubt)
    if not explain or verdict.reason is not None:
        return verdict
    return _Verdict(reason=_mention_reason(message, index))


def _mention_reason(message: _Message, index: ChannelIndex) -> str | None:
    tokens = message.tokens
    mentioned = _mentioned(tokens, index)
    if mentioned is None:
        return None
    question = _find_sequence(tokens, index.questions)
    if question is not None and _mentioned(tokens[question[0]:], index) is not None:
        return "asks how to stop messages"
    return f"mentions the opt-out keyword {mentioned.keyword.upper()}"


def _mentioned(tokens: Sequence[str], index: ChannelIndex) -> Match | None:
    """The first opt-out keyword the message contains as a word, or as two ("opt out")."""
    for i, token in enumerate(tokens):
        mentioned = index.mentions.get(token) or index.mentions.get("".join(tokens[i:i + 2]))
        if mentioned is not None:
            return mentioned
    return None


def match(text: str, index: ChannelIndex) -> Match | None:
    """Decide what a message asks for on one channel, or None for an ordinary message.

    Never returns a review: for a message it does not match, ``review_reason`` says
    whether an admin should look at it.
    """
    return _judge(text, index, explain=False).found


def load_word_lists(indexes: Sequence[ChannelIndex]) -> None:
    """Read the word lists the typo and stretched paths of these channels need, now (at
    start-up, before gunicorn forks its workers), so no webhook waits for them."""
    for index in indexes:
        if index.typo_whole or index.stretched or index.stretched_first:
            _word_lists(index)


def judge(text: str, index: ChannelIndex) -> tuple[Match | None, str | None]:
    """``match`` and, when it finds nothing, ``review_reason``, in one pass over the message."""
    verdict = _judge(text, index, explain=True)
    return verdict.found, None if verdict.found is not None else verdict.reason


def review_reason(text: str, index: ChannelIndex) -> str | None:
    """Why an admin should review a message that ``match`` did not match, or None.

    A short English sentence for the review queue: "asks how to stop messages",
    'looks like a typo of STOP ("Stpo")', "mentions the opt-out keyword CANCEL".
    """
    return _judge(text, index, explain=True).reason
