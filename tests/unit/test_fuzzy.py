"""Typos and stretched keywords (docs/matching.md, "Typos" and "Stretched and spaced words").

Generous where the evidence is strong (a non-word one edit from exactly one opt-out
keyword, sent alone), and otherwise a reason for review, never an opt-out.
"""

from __future__ import annotations

import copy

import pytest

from webhook.keywords import load_file, parse_document
from webhook.matching import match, review_reason
from webhook.settings import PACKAGED_KEYWORDS
from webhook.wordlists import word_list

CONFIG = load_file(PACKAGED_KEYWORDS)
SMS = CONFIG.channels["sms"].index


def found(text: str, index=SMS) -> tuple[str, str, str] | None:
    result = match(text, index)
    return (result.intent, result.keyword, result.kind) if result else None


def with_channel(**changes):
    document = copy.deepcopy(CONFIG.document)
    document["channels"]["sms"].update(changes)
    return parse_document(document).channels["sms"].index


@pytest.mark.parametrize(
    "text,keyword",
    [
        ("Sotp", "STOP"),  # two neighbours swapped
        ("stpo", "STOP"),
        ("Unsubscrbe", "UNSUBSCRIBE"),  # a letter missing
        ("Unsusbcribe", "UNSUBSCRIBE"),
        ("Unsubscrible", "UNSUBSCRIBE"),  # a letter extra
        ("Unsibscribe", "UNSUBSCRIBE"),  # a letter wrong
        ("Cancle", "CANCEL"),
        ("Cancle!", "CANCEL"),
        ("opt uot", "OPTOUT"),  # two words read as one
        ("Stpo pls", "STOP"),  # a first-word keyword, mistyped, then one more word
        ("Desinscirre", "DÉSINSCRIRE"),
    ],
)
def test_a_mistyped_keyword_sent_alone_opts_out(text, keyword):
    assert found(text) == ("opt_out", keyword, "typo")


@pytest.mark.parametrize(
    "text",
    [
        "Step", "Shop", "Stoop", "Top", "Stomp", "Quiet", "Quite", "Said",  # real words
        "Cancel my order", "Stopped by the store", "Stop by at five",  # sentences (review at most)
        "Cancle my order",  # more than two words: no typo tolerance
        "Cancle order",  # CANCEL alone opts out, but not as a first word, mistyped or not
        "Sotp it now please",
        "Stp", "Sop", "Spo",  # shorter than four letters
    ],
)
def test_typo_tolerance_never_opts_out_a_real_word_or_a_sentence(text):
    result = match(text, SMS)
    assert result is None or result.kind not in ("typo", "stretched"), result


@pytest.mark.parametrize("text", ["Strat", "Stat", "Hepl", "Hlep", "Ifno", "Unstpo", "UNSOTP", "Ayuad"])
def test_opt_in_and_help_never_match_fuzzily(text):
    assert match(text, SMS) is None


@pytest.mark.parametrize(
    "text,reason",
    [
        ("Strop", 'looks like a typo of STOP ("Strop"), but it is also a word'),  # a rare word
        ("Unsbscrbe", 'might be a typo of UNSUBSCRIBE ("Unsbscrbe")'),  # two edits
        ("Cancle order", 'looks like a typo of CANCEL ("Cancle order")'),  # CANCEL is no first word
    ],
)
def test_a_doubtful_typo_goes_to_review_with_its_reason(text, reason):
    assert match(text, SMS) is None
    assert review_reason(text, SMS) == reason


def test_a_slip_away_from_keywords_of_two_intents_is_reviewed():
    document = copy.deepcopy(CONFIG.document)
    document["channels"]["sms"]["help"]["keywords"]["es"].append("CAJA")
    index = parse_document(document).channels["sms"].index
    # V touches both B and C: BAJA (opt out) or CAJA (help)? An admin decides.
    assert match("Vaja", index) is None
    assert review_reason("Vaja", index) == 'looks like a typo of BAJA or CAJA ("Vaja")'
    assert found("Vaja") == ("opt_out", "BAJA", "typo")  # the shipped config has no CAJA


@pytest.mark.parametrize(
    "text,keyword",
    [("Stopo", "STOP"), ("Stpp", "STOP"), ("Arrte", "ARRÊT"), ("Cancelr", "CANCEL")],
)
def test_a_slip_away_from_two_opt_out_keywords_opts_out_as_the_first_listed(text, keyword):
    assert found(text) == ("opt_out", keyword, "typo")


@pytest.mark.parametrize(
    "text",
    [
        "Stopa",  # a surname: A is nowhere near P
        "Jaja",  # laughter: J does not touch B (BAJA)
        "Topp", "Top merci",  # a lost first letter is no slip (STOPP, STOP MERCI)
        "Endo",  # O does not touch E (ENDE); END is too short to guess from
    ],
)
def test_short_keywords_need_a_keyboard_slip(text):
    assert match(text, SMS) is None


def test_ordinary_words_have_no_review_reason():
    for text in ["Step", "Shop", "Thanks!", "See you at 5", "Stoop"]:
        assert review_reason(text, SMS) is None, text


@pytest.mark.parametrize(
    "text,keyword",
    [
        ("Stoooop", "STOP"),
        ("STOOOOOOP!!!", "STOP"),
        ("stopppp", "STOP"),
        ("Stoooop texting me", "STOP"),  # a stretched first-word keyword
        ("s t o o o p", "STOP"),
        ("Canceeeel", "CANCEL"),
        ("Desabonnnnner", "DÉSABONNER"),  # a keyword with its own double letter
        ("Arrrrêt", "ARRÊT"),
    ],
)
def test_a_stretched_keyword_opts_out(text, keyword):
    assert found(text) == ("opt_out", keyword, "stretched")


@pytest.mark.parametrize("text,keyword", [("s.t.o.p", "STOP"), ("S T O P", "STOP"), ("o p t o u t", "OPTOUT")])
def test_a_keyword_spelt_out_letter_by_letter_opts_out(text, keyword):
    assert found(text) == ("opt_out", keyword, "keyword")


@pytest.mark.parametrize("text", ["Stoop", "Staaart", "Heeelp", "Sooo", "Cancel my ordeeer", "Tooop"])
def test_stretching_needs_an_opt_out_keyword_and_no_real_word(text):
    result = match(text, SMS)
    assert result is None or result.kind != "stretched", result


def test_fuzzy_false_turns_typos_off_and_stretched_false_stretching():
    no_typos = with_channel(fuzzy=False)
    assert match("Sotp", no_typos) is None
    assert review_reason("Stopa", no_typos) is None
    assert found("Stoooop", no_typos) == ("opt_out", "STOP", "stretched")
    no_stretch = with_channel(stretched=False)
    assert found("Sotp", no_stretch) == ("opt_out", "STOP", "typo")
    result = match("Stoooop", no_stretch)
    assert result is None or result.kind != "stretched"


def test_a_channel_language_without_word_list_sends_typos_to_review():
    document = copy.deepcopy(CONFIG.document)
    document["channels"]["sms"]["languages"].append("sw")
    index = parse_document(document).channels["sms"].index
    assert match("Sotp", index) is None
    assert review_reason("Sotp", index) == 'looks like a typo of STOP ("Sotp"); no word list for sw'


def test_word_lists_are_folded_like_messages_and_keep_only_seen_words():
    french = word_list("fr")
    assert french is not None
    assert "arrete" in french.known and "arrêté" not in french.known
    assert "step" in word_list("en").everyday
    assert "stpo" not in word_list("de").known  # a dictionary-floor entry, not a seen word
    assert word_list("pt-BR") is word_list("pt")
    assert word_list("sw") is None


def test_word_list_entries_are_read_in_either_json_layout():
    from webhook.wordlists import _seen_words

    assert _seen_words('{"stop": 1019739, "stpo": 50, "arrêt": 11029}') == {"stop": 1019739, "arrêt": 11029}
    assert _seen_words('{"stop":1019739,"stpo":50}') == {"stop": 1019739, "stpo": 50}  # parsed; the floor is applied later
