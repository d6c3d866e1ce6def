"""Property-based checks of the pure core: any Unicode in, never an exception, never a wrong opt-in."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook.keywords import load_file
from webhook.matching import match, normalise
from webhook.settings import PACKAGED_KEYWORDS

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


@given(TEXT, st.sampled_from(sorted(CONFIG.channels)))
@settings(max_examples=500)
def test_match_never_raises_and_only_opts_in_on_a_whole_opt_in_keyword(text, channel):
    found = match(text, CONFIG.channels[channel].index)
    if found is not None and found.intent == "opt_in":
        folded = normalise(text)
        assert folded in OPT_IN_WORDS or folded.replace(" ", "") in OPT_IN_WORDS
        assert found.kind == "keyword"


@given(st.sampled_from(["STOP", "stop", "Arrêt", "STOPP"]), st.text(alphabet=" .!?'\"«»🙏😡", max_size=5), st.text(alphabet=" .!?'\"«»🙏😡", max_size=5))
@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
def test_stop_keyword_survives_surrounding_punctuation_and_emoji(keyword, before, after):
    found = match(before + keyword + after, CONFIG.channels["sms"].index)
    assert found is not None and found.intent == "opt_out"
