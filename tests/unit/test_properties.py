"""Property-based checks of the pure core: any Unicode in, never an exception, never a wrong opt-in."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rapidfuzz.distance import OSA

from webhook.keywords import load_file
from webhook.matching import _normalise_unicode, match, normalise, review_reason
from webhook.settings import PACKAGED_KEYWORDS
from webhook.wordlists import WordList, word_list

CONFIG = load_file(PACKAGED_KEYWORDS)
# Keys of the whole-message index that mean opt-in, in spaced and compact forms.
OPT_IN_WORDS = {key for channel in CONFIG.channels.values() for key, found in channel.index.whole.items() if found.intent == "opt_in"}
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=200)


@given(TEXT)
@settings(max_examples=500)
def test_normalise_never_raises_and_is_idempotent(text):
    once = normalise(text)
    assert normalise(once) == once
    assert once == once.strip() and "  " not in once


@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=60))
@settings(max_examples=500)
def test_the_ascii_fast_path_folds_like_the_unicode_one(text):
    assert normalise(text) == _normalise_unicode(text)


@given(TEXT, st.sampled_from(sorted(CONFIG.channels)))
@settings(max_examples=500)
def test_match_never_raises_and_only_opts_in_on_a_whole_opt_in_keyword(text, channel):
    found = match(text, CONFIG.channels[channel].index)
    if found is not None and found.intent == "opt_in":
        folded = normalise(text)
        assert folded in OPT_IN_WORDS or folded.replace(" ", "") in OPT_IN_WORDS
        assert found.kind == "keyword"


# Opt-in keywords of any channel, in context: alone (with punctuation or emoji around), or
# inside a longer message. Random text never happens to be "START", so the property above
# alone would never see an opt-in: this strategy makes real ones, and near misses.
OPT_IN_KEYWORDS = sorted({found.keyword for channel in CONFIG.channels.values()
                          for found in channel.index.whole.values() if found.intent == "opt_in"})
AROUND = st.one_of(
    st.just(""),
    st.text(alphabet=" .!?'\"«»🙏😊\u00a0", max_size=4),
    st.sampled_from(["please ", "yes ", "I said ", "start the ", "don't ", "ok "]),
)
AFTER = st.one_of(AROUND, st.sampled_from([" now", " the engine", " again!", " 2 tickets", " me", " plz"]))


@given(AROUND, st.sampled_from(OPT_IN_KEYWORDS), AFTER, st.sampled_from(sorted(CONFIG.channels)),
       st.sampled_from([str.upper, str.lower, str.title, lambda word: word]))
@settings(max_examples=500)
def test_an_opt_in_keyword_opts_in_alone_and_never_in_context(before, keyword, after, channel, case):
    text = before + case(keyword) + after
    found = match(text, CONFIG.channels[channel].index)
    own = {key for key, m in CONFIG.channels[channel].index.whole.items() if m.intent == "opt_in"}
    folded = normalise(text)
    if folded in own or folded.replace(" ", "") in own:
        assert found is not None and (found.intent, found.kind) == ("opt_in", "keyword"), text
    else:
        assert found is None or found.intent != "opt_in", (text, found)


@given(st.sampled_from(["STOP", "stop", "Arrêt", "STOPP"]), st.text(alphabet=" .!?'\"«»🙏😡", max_size=5), st.text(alphabet=" .!?'\"«»🙏😡", max_size=5))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_stop_keyword_survives_surrounding_punctuation_and_emoji(keyword, before, after):
    found = match(before + keyword + after, CONFIG.channels["sms"].index)
    assert found is not None and found.intent == "opt_out"


# -- the fuzzy paths (docs/matching.md, "Typos", "Stretched and spaced words") ---------------

EMPTY = WordList("none", frozenset(), frozenset())
SMS = CONFIG.channels["sms"].index
LANGUAGES = CONFIG.channels["sms"].languages
KNOWN_WORDS = sorted({w for language in LANGUAGES for w in (word_list(language) or EMPTY).known})
STRICT_WORDS = sorted(
    {found.keyword for channel in CONFIG.channels.values() for found in channel.index.whole.values() if found.intent != "opt_out"}
)
WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyzäéñ", min_size=1, max_size=9)


def one_edit(word: str, data) -> str:
    """``word`` with one random letter wrong, missing, extra, or two neighbours swapped."""
    i = data.draw(st.integers(0, len(word) - 1))
    letter = data.draw(st.sampled_from("abcdefghijklmnopqrstuvwxyz"))
    how = data.draw(st.sampled_from(["wrong", "missing", "extra", "swap"]))
    if how == "wrong":
        return word[:i] + letter + word[i + 1:]
    if how == "missing":
        return word[:i] + word[i + 1:]
    if how == "extra":
        return word[:i] + letter + word[i:]
    return word[:i] + word[i + 1:i + 2] + word[i] + word[i + 2:]


@given(st.sampled_from(KNOWN_WORDS), st.sampled_from(["", "!", " ?", " :)"]))
@settings(max_examples=500)
def test_a_word_of_the_channel_languages_is_never_a_fuzzy_opt_out(word, tail):
    found = match(word + tail, SMS)
    assert found is None or found.kind not in ("typo", "stretched"), (word, found)


@given(st.sampled_from(STRICT_WORDS), st.data(), st.sampled_from(sorted(CONFIG.channels)))
@settings(max_examples=500)
def test_opt_in_and_help_never_match_a_mistyped_or_stretched_keyword(keyword, data, channel):
    typed = one_edit(keyword, data)
    stretched = typed + typed[-1] * data.draw(st.integers(0, 4))
    index = CONFIG.channels[channel].index
    for text in (typed, stretched):
        found = match(text, index)
        if found is not None and found.intent != "opt_out":
            assert found.kind == "keyword" and normalise(text).replace(" ", "") in index.whole, (text, found)


@given(st.lists(WORDS.filter(lambda w: len(w) > 1), min_size=3, max_size=6))
@settings(max_examples=300)
def test_a_typo_needs_a_message_of_at_most_two_words(words):
    found = match(" ".join(words), SMS)
    assert found is None or found.kind != "typo"


@given(TEXT, st.sampled_from(sorted(CONFIG.channels)))
@settings(max_examples=300)
def test_review_reason_never_raises_and_match_never_reviews(text, channel):
    index = CONFIG.channels[channel].index
    found = match(text, index)
    reason = review_reason(text, index)
    assert found is None or found.intent in ("opt_out", "opt_in", "help")
    assert found is None or reason is None  # a matched message is never also queued
    assert reason is None or (isinstance(reason, str) and reason)


@given(st.sampled_from(sorted(k for k, m in SMS.whole.items() if m.intent == "opt_out" and " " not in k and len(k) >= 4)), st.data())
@settings(max_examples=300)
def test_a_typo_opt_out_is_at_most_one_edit_from_the_keyword_it_names(keyword, data):
    typed = one_edit(keyword, data)
    found = match(typed, SMS)
    if found is not None and found.kind == "typo":
        assert OSA.distance(normalise(typed).replace(" ", ""), normalise(found.keyword).replace(" ", "")) == 1
