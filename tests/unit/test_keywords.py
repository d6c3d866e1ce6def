"""Keyword configuration: the shipped file is valid, and each kind of bad edit is refused with its path."""

from __future__ import annotations

import copy

import pytest

from webhook.keywords import KeywordConfigError, load_file, parse_document, parse_yaml
from webhook.settings import PACKAGED_KEYWORDS

SHIPPED = load_file(PACKAGED_KEYWORDS)


def doc() -> dict:
    return copy.deepcopy(SHIPPED.document)


def problems(document) -> list[tuple[str, str]]:
    with pytest.raises(KeywordConfigError) as caught:
        parse_document(document)
    return [(p.path, p.message) for p in caught.value.problems]


def test_shipped_file_has_every_language_on_every_channel():
    assert set(SHIPPED.channels) == {"sms", "whatsapp", "email"}
    for channel in SHIPPED.channels.values():
        assert channel.languages == ("en", "fr", "es", "pt", "de")
        assert channel.type == channel.name


def test_version_is_a_content_hash():
    assert parse_document(doc()).version == SHIPPED.version
    changed = doc()
    changed["brand"] = "Other Co"
    assert parse_document(changed).version != SHIPPED.version


def test_duplicate_keyword_across_intents_is_refused():
    d = doc()
    d["channels"]["sms"]["help"]["keywords"]["en"].append("Stop")
    found = problems(d)
    assert any(path == "channels.sms.help.keywords.en.2" and "already an opt-out keyword in English" in msg for path, msg in found)


def test_empty_and_long_replies_are_refused():
    d = doc()
    d["channels"]["sms"]["opt_out"]["reply"]["en"] = "  "
    d["channels"]["whatsapp"]["help"]["reply"]["fr"] = "x" * 321
    found = problems(d)
    assert ("channels.sms.opt_out.reply.en", "reply is empty") in found
    assert any(path == "channels.whatsapp.help.reply.fr" and "321 characters" in msg for path, msg in found)


def test_unknown_channel_type_and_unknown_keys_are_refused():
    d = doc()
    d["channels"]["telegram"] = copy.deepcopy(d["channels"]["whatsapp"])
    d["channels"]["telegram"]["type"] = "telegram"
    d["channels"]["sms"]["colour"] = "blue"
    found = dict(problems(d))
    assert "unknown channel type" in found["channels.telegram.type"]
    assert found["channels.sms.colour"] == "unknown key"


def test_every_error_is_listed_at_once():
    d = doc()
    d["channels"]["sms"]["opt_out"]["reply"]["en"] = ""
    d["channels"]["email"]["opt_out"]["reply"]["de"] = "{brand} {unknown}"
    d["brand"] = ""
    paths = {path for path, _ in problems(d)}
    assert {"brand", "channels.sms.opt_out.reply.en", "channels.email.opt_out.reply.de"} <= paths


def test_help_reply_must_name_brand_support_and_how_to_stop():
    d = doc()
    d["channels"]["sms"]["help"]["reply"]["en"] = "We are here to help."
    messages = [msg for path, msg in problems(d) if path == "channels.sms.help.reply.en"]
    assert len(messages) == 3
    assert any("how to stop" in m for m in messages)


def _drop(document: dict, channel: str, word: str) -> None:
    """Remove ``word`` (and its compact spelling: STOPALL with STOP ALL) from every opt-out list."""
    from webhook.matching import normalise

    compact = normalise(word).replace(" ", "")
    for kind in ("keywords", "first_word", "alone"):
        for words in document["channels"][channel]["opt_out"].get(kind, {}).values():
            words[:] = [w for w in words if normalise(w).replace(" ", "") != compact]


def test_sms_must_keep_stop_start_and_help():
    d = doc()
    _drop(d, "sms", "STOP")
    d["channels"]["sms"]["opt_in"]["keywords"]["en"].remove("START")
    d["channels"]["sms"]["help"]["keywords"]["en"].remove("HELP")
    found = problems(d)
    assert any(path == "channels.sms.opt_out.keywords" and msg.startswith("SMS channels must keep STOP as an opt-out keyword")
               for path, msg in found)
    assert ("channels.sms.opt_in.keywords", "SMS channels must keep START (carriers require it)") in found
    assert ("channels.sms.help.keywords", "SMS channels must keep HELP (carriers require it)") in found


@pytest.mark.parametrize("channel", ["sms", "whatsapp", "email"])
@pytest.mark.parametrize("word", ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPT OUT"])
def test_every_channel_must_keep_the_required_opt_out_keywords(channel, word):
    """An admin cannot make a contact's STOP (or QUIT, REVOKE...) stop working, on any channel."""
    d = doc()
    _drop(d, channel, word)
    found = problems(d)
    assert [path for path, msg in found] == [f"channels.{channel}.opt_out.keywords"]
    assert f"must keep {word} as an opt-out keyword" in found[0][1]


def test_a_required_keyword_may_move_to_another_language_or_the_alone_list():
    d = doc()
    d["channels"]["whatsapp"]["opt_out"]["keywords"]["en"].remove("QUIT")
    d["channels"]["whatsapp"]["opt_out"]["keywords"]["fr"].append("Quit")
    d["channels"]["email"]["opt_out"]["keywords"]["en"].remove("END")
    d["channels"]["email"]["opt_out"]["alone"]["en"].append("end")
    config = parse_document(d)
    from webhook.matching import match

    assert match("QUIT", config.channels["whatsapp"].index).intent == "opt_out"
    assert match("End", config.channels["email"].index).intent == "opt_out"


def test_a_required_keyword_cannot_be_turned_into_an_opt_in():
    d = doc()
    _drop(d, "whatsapp", "END")
    d["channels"]["whatsapp"]["opt_in"]["keywords"]["en"].append("END")
    paths = {path for path, _ in problems(d)}
    assert "channels.whatsapp.opt_out.keywords" in paths


def test_default_channels_are_required():
    d = doc()
    del d["channels"]["email"]
    assert any(path == "channels.email" for path, _ in problems(d))


def test_first_word_keyword_must_be_a_keyword():
    d = doc()
    d["channels"]["sms"]["opt_out"]["first_word"]["en"].append("HALT")
    last = len(d["channels"]["sms"]["opt_out"]["first_word"]["en"]) - 1
    assert any(path == f"channels.sms.opt_out.first_word.en.{last}" for path, _ in problems(d))


def test_sender_bindings_are_checked():
    d = doc()
    brand_b = copy.deepcopy(d["channels"]["sms"])
    brand_b["senders"] = ["+14155550999", "not a number"]
    brand_b["messaging_services"] = ["MGxyz"]
    d["channels"]["sms"]["senders"] = ["+1 415 555 0999"]
    d["channels"]["brand-b"] = brand_b
    found = dict(problems(d))
    assert "already bound" in found["channels.brand-b.senders.0"]
    assert "international format" in found["channels.brand-b.senders.1"]
    assert "Messaging Service SID" in found["channels.brand-b.messaging_services.0"]


def test_channel_for_routes_bound_senders_and_defaults():
    d = doc()
    brand_b = copy.deepcopy(d["channels"]["sms"])
    brand_b["senders"] = ["+14155550999"]
    brand_b["messaging_services"] = ["MG" + "a" * 32]
    d["channels"]["brand-b"] = brand_b
    config = parse_document(d)
    assert config.channel_for("sms", [("number", "+14155550999")]).name == "brand-b"
    assert config.channel_for("sms", [("number", "+14155550100"), ("messaging_service", "MG" + "a" * 32)]).name == "brand-b"
    assert config.channel_for("sms", [("number", "+14155550100")]).name == "sms"
    assert config.channel_for("whatsapp", [("number", "+14155550999")]).name == "whatsapp"
    assert config.channel_for("sms", [("phone_number_id", "+14155550999")]).name == "sms"  # kinds do not mix


def test_whatsapp_cloud_phone_number_ids_bind_whatsapp_channels_only():
    d = doc()
    brand_b = copy.deepcopy(d["channels"]["whatsapp"])
    brand_b["phone_number_ids"] = ["106540352242922"]
    d["channels"]["brand-b-wa"] = brand_b
    config = parse_document(d)
    assert config.channel_for("whatsapp", [("phone_number_id", "106540352242922")]).name == "brand-b-wa"
    assert config.channel_for("whatsapp", [("phone_number_id", "999")]).name == "whatsapp"
    d["channels"]["sms"]["phone_number_ids"] = ["12x"]
    d["channels"]["whatsapp"]["phone_number_ids"] = ["106540352242922"]
    found = dict(problems(d))
    assert "only WhatsApp channels" in found["channels.sms.phone_number_ids"]
    assert "already bound to channel 'whatsapp'" in found["channels.brand-b-wa.phone_number_ids.0"]


def test_sendgrid_asm_group_ids_bind_email_channels_only():
    d = doc()
    brand_b = copy.deepcopy(d["channels"]["email"])
    brand_b["asm_group_ids"] = [12345, "678"]  # YAML reads 12345 as a number; quoted digits too
    d["channels"]["brand-b-mail"] = brand_b
    config = parse_document(d)
    assert config.channels["brand-b-mail"].identities == [("asm_group_id", "678"), ("asm_group_id", "12345")]
    assert config.channel_for("email", [("asm_group_id", "12345")]).name == "brand-b-mail"
    assert config.channel_for("email", [("asm_group_id", "678")]).name == "brand-b-mail"
    assert config.channel_for("email", [("asm_group_id", "999")]).name == "email"  # an unbound group: the default
    assert config.channel_for("email", []).name == "email"
    assert config.channel_for("sms", [("asm_group_id", "12345")]).name == "sms"  # kinds and types do not mix
    d["channels"]["sms"]["asm_group_ids"] = [1]
    d["channels"]["email"]["asm_group_ids"] = ["12345", 0, "12x", -4]
    found = dict(problems(d))
    assert "only e-mail channels" in found["channels.sms.asm_group_ids"]
    assert "already bound to channel 'email'" in found["channels.brand-b-mail.asm_group_ids.0"]
    for bad in (1, 2, 3):
        assert "not a SendGrid unsubscribe group id" in found[f"channels.email.asm_group_ids.{bad}"]
    d["channels"]["email"]["asm_group_ids"] = [True]  # YAML's yes is not a group
    assert any(path.startswith("channels.email.asm_group_ids.0") for path, _ in problems(d))


def test_yaml_errors_name_the_line():
    with pytest.raises(KeywordConfigError) as caught:
        parse_yaml("brand: x\nchannels: [\n", "k.yaml")
    assert "not valid YAML at line" in str(caught.value)
    assert str(caught.value).startswith("k.yaml: ")


def test_yaml_aliases_and_duplicate_keys_are_refused():
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\nbrand: *b\n"
    with pytest.raises(KeywordConfigError, match="aliases"):
        parse_yaml(bomb)
    with pytest.raises(KeywordConfigError, match="not valid YAML"):
        parse_yaml("brand: a\nbrand: b\n")


def test_not_a_mapping_is_refused():
    with pytest.raises(KeywordConfigError, match="must be a mapping"):
        parse_yaml("- just\n- a list\n")


def test_unreadable_file_is_named(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(KeywordConfigError) as caught:
        load_file(missing)
    assert str(missing) in str(caught.value)


def test_huge_documents_are_refused_before_parsing():
    with pytest.raises(KeywordConfigError, match="larger than 512 KiB"):
        parse_yaml("brand: x\n" + "# padding\n" * 60_000)


def test_new_channel_switches_must_be_booleans():
    d = doc()
    d["channels"]["sms"]["fuzzy"] = "yes"
    d["channels"]["whatsapp"]["stretched"] = 1
    found = dict(problems(d))
    assert "valid boolean" in found["channels.sms.fuzzy"]
    assert "valid boolean" in found["channels.whatsapp.stretched"]


def test_wrong_number_and_questions_are_checked_like_phrases():
    d = doc()
    opt_out = d["channels"]["sms"]["opt_out"]
    opt_out["wrong_number"]["en"].append("help")  # a help keyword cannot also opt out
    opt_out["wrong_number"]["it"] = ["numero sbagliato"]  # not a language of the channel
    opt_out["questions"]["en"].append("stop")  # an opt-out keyword cannot be a question
    opt_out["questions"]["de"].append("x" * 101)
    found = problems(d)
    paths = dict(found)
    last = len(opt_out["wrong_number"]["en"]) - 1
    assert "is already a help keyword in English" in paths[f"channels.sms.opt_out.wrong_number.en.{last}"]
    assert "not in channels.sms.languages" in paths["channels.sms.opt_out.wrong_number.it"]
    assert any(path.startswith("channels.sms.opt_out.questions.en.") and "is already an opt-out" in msg for path, msg in found)
    assert any(path.startswith("channels.sms.opt_out.questions.de.") and "longer than 100" in msg for path, msg in found)


def test_wrong_number_entries_are_lists_of_text():
    d = doc()
    d["channels"]["sms"]["opt_out"]["wrong_number"]["fr"] = "mauvais numéro"
    d["channels"]["whatsapp"]["opt_out"]["questions"]["en"] = [1]
    found = dict(problems(d))
    assert found["channels.sms.opt_out.wrong_number.fr"] == "Input should be a valid list"
    assert "valid string" in found["channels.whatsapp.opt_out.questions.en.0"]


def test_unknown_keys_under_opt_out_are_refused():
    d = doc()
    d["channels"]["email"]["opt_out"]["wrong_numbers"] = {"en": ["wrong number"]}
    assert ("channels.email.opt_out.wrong_numbers", "unknown key") in problems(d)


@pytest.mark.parametrize(
    "kind,text,message",
    [
        ("phrases", "* stop texting", "cannot start a phrase"),
        ("wrong_number", "* isn't my phone", "cannot start a phrase"),
        ("keywords", "STOP * ALL", "only allowed in phrases"),
    ],
)
def test_a_wildcard_follows_a_word_of_a_phrase(kind, text, message):
    d = doc()
    d["channels"]["sms"]["opt_out"][kind]["en"].append(text)
    last = len(d["channels"]["sms"]["opt_out"][kind]["en"]) - 1
    assert any(path == f"channels.sms.opt_out.{kind}.en.{last}" and message in msg for path, msg in problems(d))


def test_a_wildcard_between_words_is_accepted():
    d = doc()
    d["channels"]["sms"]["opt_out"]["wrong_number"]["en"].append("this is not * * phone")
    assert parse_document(d).channels["sms"].index.phrases["this"]


def test_a_wrong_number_language_needs_an_opt_out_reply():
    d = doc()
    d["channels"]["sms"]["languages"].append("it")
    d["channels"]["sms"]["opt_out"]["wrong_number"]["it"] = ["numero sbagliato"]
    assert ("channels.sms.opt_out.reply", "there is no opt-out reply in Italian, which has opt-out keywords") in problems(d)


def test_fillers_and_other_senses_are_checked():
    d = doc()
    opt_out = d["channels"]["whatsapp"]["opt_out"]
    opt_out["fillers"]["en"].append("stop")  # a filler cannot also be a keyword
    opt_out["other_senses"]["it"] = ["fermata del bus"]  # not a language of the channel
    opt_out["other_senses"]["fr"].append("arrêt * bus")  # "*" is for phrases only
    found = problems(d)
    last_filler = len(opt_out["fillers"]["en"]) - 1
    last_sense = len(opt_out["other_senses"]["fr"]) - 1
    assert any(p == f"channels.whatsapp.opt_out.fillers.en.{last_filler}" and "is already an opt-out" in m for p, m in found)
    assert any(p == "channels.whatsapp.opt_out.other_senses.it" and "not in channels.whatsapp.languages" in m for p, m in found)
    assert any(p == f"channels.whatsapp.opt_out.other_senses.fr.{last_sense}" and "only allowed in phrases" in m for p, m in found)


def test_other_senses_may_contain_keywords():
    d = doc()
    d["channels"]["sms"]["opt_out"]["other_senses"]["en"].append("stop watch")
    assert parse_document(d).channels["sms"].index.other_senses["stop"]
