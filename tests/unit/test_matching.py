"""The matching rules of docs/product.md, as a table of messages and the intent each must get."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from webhook.keywords import load_file
from webhook.matching import match, normalise, review_reason
from webhook.settings import PACKAGED_KEYWORDS

CORPUS = Path(__file__).parent.parent / "data" / "inbound_messages.tsv"
CONFIG = load_file(PACKAGED_KEYWORDS)


def corpus_rows() -> list:
    with CORPUS.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [pytest.param(r["channel"], r["body"] or "", r["expect"], id=f"{r['channel']}:{r['body']!r}") for r in rows]


def intent(text: str, channel: str = "sms") -> str:
    found = match(text, CONFIG.channels[channel].index)
    return found.intent if found else "none"


def test_corpus_is_large_and_covers_every_intent():
    rows = corpus_rows()
    assert len(rows) >= 200
    assert {p.values[2] for p in rows} == {"opt_out", "opt_in", "help", "none"}


@pytest.mark.parametrize("channel,body,expected", corpus_rows())
def test_corpus_message_gets_its_intent(channel, body, expected):
    assert intent(body, channel) == expected


@pytest.mark.parametrize(
    "raw,normal",
    [
        ("ＳＴＯＰ", "stop"),
        ("ARRÊT", "arret"),
        ("  'Stop!' ", "stop"),
        ("Opt-Out", "opt out"),
        ("don’t  text\tme", "dont text me"),
        ("STOP 🛑🙏", "stop"),
        ("Straße", "strasse"),
        ("", ""),
        ("🛑", ""),
    ],
)
def test_normalise(raw, normal):
    assert normalise(raw) == normal


def test_normalise_is_idempotent_on_samples():
    for sample in ["ARRÊT!!", "Ｓｔｏｐ　ｐｌｅａｓｅ", "한국어 멈춰", "ǅemal", "İstanbul", "ﬁn"]:
        once = normalise(sample)
        assert normalise(once) == once


@pytest.mark.parametrize(
    "text,keyword,language,kind",
    [
        ("STOP", "STOP", "en", "keyword"),
        ("stop all", "STOP ALL", "en", "keyword"),
        ("Stop texting me", "STOP", "en", "first_word"),
        ("Opt out please", "OPT OUT", "en", "first_word"),
        ("arrêt", "ARRÊT", "fr", "keyword"),
        ("PARAR", "PARAR", "es", "keyword"),  # shared with pt: the first language listed wins
        ("CANCELAR", "CANCELAR", "es", "keyword"),
        ("please remove me from this list", "remove me", "en", "phrase"),
        ("🛑", "🛑", "en", "emoji"),
    ],
)
def test_match_reports_keyword_language_and_kind(text, keyword, language, kind):
    found = match(text, CONFIG.channels["sms"].index)
    assert found is not None
    assert (found.keyword, found.language, found.kind) == (keyword, language, kind)


def test_yes_opts_in_on_sms_only():
    assert intent("YES", "sms") == "opt_in"
    assert intent("YES", "whatsapp") == "none"
    assert intent("YES", "email") == "none"


@pytest.mark.parametrize("text", ["don't stop sending deals", "never stop texting me", "please do not unsubscribe me"])
def test_negated_phrase_is_not_an_opt_out(text):
    assert intent(text) == "none"


def test_everyday_keyword_as_first_word_is_only_a_mention():
    index = CONFIG.channels["sms"].index
    assert intent("Cancel my order, it's late") == "none"
    assert review_reason("Cancel my order, it's late", index) == "mentions the opt-out keyword CANCEL"
    assert review_reason("hello there", index) is None


def test_replies_go_out_in_the_language_of_the_keyword():
    sms = CONFIG.channels["sms"]
    assert "Répondez" in sms.reply("opt_out", "fr")
    assert "STOP" in sms.reply("help", "en")
    assert "ARRET" in sms.reply("help", "fr")
    # A language without its own opt-in reply falls back to the channel's first language.
    assert sms.reply("opt_in", "de") == sms.reply("opt_in", "en")
