"""How people actually say it (docs/matching.md): everyday forms in each shipped language,
wrong-number replies, requests with a verb in front, and questions about stopping."""

from __future__ import annotations

import pytest

from webhook.keywords import load_file
from webhook.matching import match, review_reason
from webhook.settings import PACKAGED_KEYWORDS

CONFIG = load_file(PACKAGED_KEYWORDS)


def result(text: str, channel: str = "sms") -> tuple[str, str, str] | None:
    found = match(text, CONFIG.channels[channel].index)
    return (found.intent, found.language, found.kind) if found else None


@pytest.mark.parametrize(
    "text,language",
    [
        ("stop svp", "fr"), ("STOP merci", "fr"), ("ça suffit", "fr"), ("Ca suffit !", "fr"),
        ("laissez-moi tranquille", "fr"), ("Laisse moi tranquille svp", "fr"), ("Arrêtez de m'écrire", "fr"),
        ("je ne veux plus recevoir vos sms", "fr"), ("désinscription", "fr"),
        ("ya no", "es"), ("Basta", "es"), ("basta!", "es"), ("ya no quiero mensajes", "es"), ("Ya basta", "es"),
        ("no más mensajes por favor", "es"), ("déjenme en paz", "es"), ("ALTO", "es"),
        ("chega", "pt"), ("Chega!!", "pt"), ("não quero mais", "pt"), ("nao quero mais", "pt"), ("Para!", "pt"),
        ("para de mandar mensagem", "pt"), ("me tira da lista", "pt"), ("chega de mensagens", "pt"),
        ("aufhören", "de"), ("Aufhören bitte", "de"), ("lasst mich in Ruhe", "de"), ("Lassen Sie mich in Ruhe!", "de"),
        ("abbestellen", "de"), ("keine Werbung mehr", "de"),
    ],
)
def test_everyday_forms_in_each_language_opt_out(text, language):
    found = result(text)
    assert found is not None and found[:2] == ("opt_out", language), found


@pytest.mark.parametrize(
    "text",
    [
        "chega amanhã",  # "arrives tomorrow"
        "O pedido chega amanhã?",
        "basta con enviar el código?",  # "it's enough to send the code?"
        "ya no hay stock?",  # "is there no stock any more?"
        "Ya no me llegó el paquete",
        "Quero desconto para amanhã",  # "para" = "for"
        "es muy alto",
        "remove the item from my cart",
        "Assez grand ?",
        "Genug Platz?",
        "Enough for two?",
    ],
)
def test_everyday_words_inside_a_sentence_change_nothing_and_are_not_reviewed(text):
    assert result(text) is None
    assert review_reason(text, CONFIG.channels["sms"].index) is None


@pytest.mark.parametrize(
    "text,language",
    [
        ("you've got the wrong number", "en"),
        ("Sorry, wrong number", "en"),
        ("this isn't Maria's phone", "en"),
        ("This is not John's number anymore", "en"),
        ("número equivocado", "es"),
        ("Se equivocó de número", "es"),
        ("mauvais numéro", "fr"),
        ("Vous vous êtes trompé de numéro", "fr"),
        ("falsche Nummer", "de"),
        ("número errado", "pt"),
        ("Foi engano, não conheço ninguém com esse nome", "pt"),
        ("I never signed up for this", "en"),  # no consent, whoever they are
        ("no soy Carlos", "es"),  # a "*" ending a phrase is the last word
        ("je ne suis pas Julie", "fr"),
    ],
)
def test_wrong_number_opts_out_with_its_own_kind(text, language):
    assert result(text) == ("opt_out", language, "wrong_number")


def test_wrong_number_outranks_an_opt_out_phrase_in_the_same_message():
    assert result("Please stop, wrong number") == ("opt_out", "en", "wrong_number")


@pytest.mark.parametrize(
    "text",
    ["can I be removed from this", "we want to unsubscribe", "can you stop these", "I'd like to opt out",
     "Could you please remove my number", "My husband and I want off this list"],
)
def test_a_request_with_a_verb_in_front_opts_out(text):
    assert result(text) == ("opt_out", "en", "phrase")


@pytest.mark.parametrize(
    "text",
    [
        "how do I stop these messages", "how can I unsubscribe?", "How to opt out?",
        "Comment faire pour me désabonner ?", "¿Cómo puedo darme de baja?", "Wie kann ich mich abmelden?",
        "Como faço para sair da lista?",
    ],
)
def test_a_question_about_stopping_is_reviewed_not_honoured(text):
    assert result(text) is None
    assert review_reason(text, CONFIG.channels["sms"].index) == "asks how to stop messages"


def test_a_request_before_a_question_still_opts_out():
    assert result("Please stop. How did you get my number?") == ("opt_out", "en", "phrase")
    assert result("Stop texting me, how do I get off this list") == ("opt_out", "en", "first_word")


@pytest.mark.parametrize("text", ["Unsub", "u n s u b", "Unsubbbb", "UNSUB me"])
def test_unsub_is_an_opt_out_keyword(text):
    found = result(text)
    assert found is not None and found[:2] == ("opt_out", "en")


@pytest.mark.parametrize("channel", ["sms", "whatsapp", "email"])
def test_every_channel_ships_the_same_new_lists(channel):
    entry = CONFIG.document["channels"][channel]
    sms = CONFIG.document["channels"]["sms"]
    for key in ("alone", "wrong_number", "questions", "phrases", "first_word"):
        assert entry["opt_out"][key] == sms["opt_out"][key], key
    for language, words in sms["opt_out"]["keywords"].items():
        extra = [w for w in entry["opt_out"]["keywords"][language] if w not in words]
        assert entry["opt_out"]["keywords"][language][:len(words)] == words, language
        # WhatsApp also ships Meta's localised "Stop promotions" button of marketing templates.
        assert all(("PROMO" in w or "STOPPEN" in w) for w in extra) and bool(extra) == (channel == "whatsapp"), extra
    assert entry["fuzzy"] is True and entry["stretched"] is True


@pytest.mark.parametrize(
    "text,language",
    [("pls stop", "en"), ("ugh stop", "en"), ("Enough already!", "en"), ("Baja por favor", "es"), ("paren ya", "es"),
     ("para pfv", "pt"), ("arrêtez svp", "fr"), ("bitte entfernen", "de"), ("Schluss jetzt", "de")],
)
def test_polite_and_filler_words_around_a_keyword_keep_it_an_opt_out(text, language):
    found = result(text)
    assert found is not None and found[:2] == ("opt_out", language), found


@pytest.mark.parametrize("text", ["yes please", "start pls", "help please", "ok help", "no basta?", "não para não!"])
def test_fillers_never_make_an_opt_in_help_or_negated_opt_out(text):
    found = result(text)
    assert found is None or found[0] != "opt_in" and found[0] != "help"
    if text in ("no basta?", "não para não!"):
        assert found is None


@pytest.mark.parametrize("text", ["not interested. stop", "Pas intéressé, stop", "Got it, thanks. UNSUBSCRIBE"])
def test_a_first_word_keyword_as_the_last_sentence_opts_out(text):
    found = result(text)
    assert found is not None and found[0] == "opt_out" and found[2] == "first_word"


def test_only_unambiguous_keywords_count_as_the_last_sentence():
    assert result("The blue one arrived broken. Cancel") is None  # CANCEL: order or messages?
    assert review_reason("The blue one arrived broken. Cancel", CONFIG.channels["sms"].index) == "mentions the opt-out keyword CANCEL"


@pytest.mark.parametrize(
    "text,sense",
    [("stop by the store", "stop by"), ("Stop & Shop has it cheaper", "stop shop"), ("arrêt de bus", "arret de bus"),
     ("Can I unsubscribe from texts but still get emails?", "but still"), ("Stopp an der Ecke?", "stopp an")],
)
def test_a_keyword_in_another_sense_is_reviewed_not_honoured(text, sense):
    assert result(text) is None
    reason = review_reason(text, CONFIG.channels["sms"].index)
    assert reason is not None and f'("{sense}")' in reason


@pytest.mark.parametrize("text", ["Stop! That's an amazing price 😍", "Stopp! Das ist ja günstig 😍", "please stop 😂 you're too funny"])
def test_delight_or_laughter_sends_a_longer_message_to_review(text):
    assert result(text) is None
    assert "emoji of delight" in review_reason(text, CONFIG.channels["sms"].index)


def test_a_keyword_alone_stays_an_opt_out_whatever_the_emoji():
    assert result("STOP 😂") == ("opt_out", "en", "keyword")


@pytest.mark.parametrize(
    "text,expected",
    [("Re: STOP", ("opt_out", "en", "keyword")), ("RE: unsubscribe", ("opt_out", "en", "keyword")),
     ("Fwd: Re: arrêt", ("opt_out", "fr", "keyword")), ("Re: Stop by our new location!", None),
     ("AW: Ende der Aktion", None)],
)
def test_after_a_reply_prefix_only_a_whole_keyword_counts(text, expected):
    assert result(text, "email") == expected
    if expected is None:
        assert review_reason(text, CONFIG.channels["email"].index) is None  # our own subject, quoted


@pytest.mark.parametrize(
    "text",
    ["no dejen de enviarme ofertas", "Não me tira da lista, gosto das promoções", "ne pas me désabonner svp", "nie abmelden"],
)
def test_a_phrase_negated_in_its_own_language_is_not_an_opt_out(text):
    found = result(text)
    assert found is None or found[0] != "opt_out"


def test_a_negation_in_an_earlier_sentence_does_not_reach_the_phrase():
    assert result("No, dejen de enviarme mensajes") == ("opt_out", "es", "phrase")
    assert result("No stop texting me") == ("opt_out", "en", "phrase")  # "no" negates Spanish and Portuguese only


def test_a_final_wildcard_is_the_last_word_only():
    assert result("no soy de aquí pero me gusta la tienda") is None
    assert result("no soy Carlos") == ("opt_out", "es", "wrong_number")
