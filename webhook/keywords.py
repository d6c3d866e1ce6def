"""The keyword configuration: schema, loading and validation (pure: no Flask, no database).

A document (``keywords.yaml``, or the same thing as JSON through the API) becomes a
``KeywordConfig`` only when it is entirely valid; otherwise ``KeywordConfigError``
lists every problem with its path in the document (``channels.sms.opt_out.reply.en``).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, NodeEvent

from webhook.gating import DEFAULT_SCOPE, SCOPE_SHORT, is_gated
from webhook.matching import WILDCARD, ChannelIndex, build_index, normalise, phrase_tokens

CHANNEL_TYPES = ("sms", "whatsapp", "email")
INTENTS = ("opt_out", "opt_in", "help")
MAX_REPLY_LENGTH = 320
MAX_DOCUMENT_BYTES = 512 * 1024
# What a stored version may weigh as JSON, and how deep a document may nest (the real one
# nests five levels). Checked before anything else is built from the input.
MAX_STORED_BYTES = 1024 * 1024
MAX_DEPTH = 12
PLACEHOLDERS = frozenset({"brand", "support"})
# Carriers (CTIA) expect these on every SMS program.
SMS_REQUIRED = {"opt_out": "STOP", "opt_in": "START", "help": "HELP"}
# Words that must unsubscribe when sent alone, on every channel of every type: Twilio's and the
# carriers' standard opt-out keywords, which include every word the FCC says revokes consent per
# se (stop, quit, end, revoke, opt out, cancel, unsubscribe). An edit that drops one is refused:
# a contact's STOP must never stop working because of an admin (docs/keywords.md).
OPT_OUT_REQUIRED = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPT OUT")
TYPE_LABELS = {"sms": "SMS", "whatsapp": "WhatsApp", "email": "E-mail"}
REQUIRED_WHY = {
    "sms": "carriers and the FCC treat it as an opt-out",
    "whatsapp": "the FCC treats it as an opt-out, and Meta asks that every request to stop be honoured",
    "email": "CAN-SPAM: a reply that asks to stop must be honoured",
}

# Words an admin reads in problems (paths stay in ConfigProblem.path for the API).
INTENT_WORDS = {"opt_out": "opt-out", "opt_in": "opt-in", "help": "help"}
LANGUAGE_NAMES = {
    "en": "English", "fr": "French", "es": "Spanish", "pt": "Portuguese", "de": "German", "it": "Italian",
    "nl": "Dutch", "pl": "Polish", "sv": "Swedish", "da": "Danish", "nb": "Norwegian", "fi": "Finnish",
    "ca": "Catalan", "ro": "Romanian", "tr": "Turkish", "ar": "Arabic", "zh": "Chinese", "ja": "Japanese",
    "ko": "Korean", "hi": "Hindi", "ru": "Russian", "uk": "Ukrainian", "el": "Greek", "he": "Hebrew",
}


def language_name(code: str) -> str:
    """English, French, pt-BR (Portuguese)...: a language code in words, for admins."""
    base, _, region = code.partition("-")
    name = LANGUAGE_NAMES.get(base)
    if name is None:
        return code
    return f"{name} ({region})" if region else name


LIST_WORDS = {"keywords": "keyword", "first_word": "first word", "phrases": "phrase", "alone": "keyword (alone)",
              "wrong_number": "wrong-number phrase", "questions": "question", "fillers": "filler",
              "other_senses": "other sense"}


def _already(word: str, path: str) -> str:
    """'START is already an opt-out keyword in English' for the path of the entry that owns it."""
    parts = path.split(".")
    intent, kind, language = INTENT_WORDS.get(parts[2], parts[2]), LIST_WORDS.get(parts[3], parts[3]), parts[4]
    article = "an" if intent[0] in "aeiou" else "a"
    return f"{word} is already {article} {intent} {kind} in {language_name(language)}"


LanguageCode = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
MessagingServiceSid = re.compile(r"^MG[0-9a-fA-F]{32}$")
PhoneNumberId = re.compile(r"[0-9]{1,30}")
AsmGroupId = re.compile(r"[1-9][0-9]{0,17}")  # SendGrid's unsubscribe group ids are positive integers


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class OptOutSection(_Model):
    keywords: dict[StrictStr, list[StrictStr]] = Field(default_factory=dict, max_length=50)
    first_word: dict[StrictStr, list[StrictStr]] = Field(default_factory=dict, max_length=50)
    # Everyday words that opt out only as the whole message ("Chega!"), never as a mention.
    alone: dict[StrictStr, list[StrictStr]] = Field(default_factory=dict, max_length=50)
    phrases: dict[StrictStr, list[StrictStr]] = Field(default_factory=dict, max_length=50)
    # Phrases saying the message reached the wrong person: opt-outs of kind wrong_number.
    wrong_number: dict[StrictStr, list[StrictStr]] = Field(default_factory=dict, max_length=50)
    # Openers ("how do I") that turn a later opt-out phrase into a question, for review.
    questions: dict[StrictStr, list[StrictStr]] = Field(default_factory=dict, max_length=50)
    # Polite and filler words that may surround a keyword ("pls stop", "Baja por favor").
    fillers: dict[StrictStr, list[StrictStr]] = Field(default_factory=dict, max_length=50)
    # Sequences that give a keyword in the message another meaning ("stop by"), for review.
    other_senses: dict[StrictStr, list[StrictStr]] = Field(default_factory=dict, max_length=50)
    reply: dict[StrictStr, StrictStr] = Field(default_factory=dict, max_length=50)


class IntentSection(_Model):
    keywords: dict[StrictStr, list[StrictStr]] = Field(default_factory=dict, max_length=50)
    reply: dict[StrictStr, StrictStr] = Field(default_factory=dict, max_length=50)


MAX_FORWARD_TIMEOUT = 12  # seconds: the forward and unsub's own work stay inside Twilio's 15 s


class ForwardModel(_Model):
    """Where a channel's inbound messages are forwarded (the business's existing webhook)."""

    url: StrictStr = Field(min_length=1, max_length=2000)
    # non_consent: only messages unsub does not answer itself; all: every message.
    messages: Literal["all", "non_consent"] = "non_consent"
    timeout_seconds: int = Field(default=8, ge=1, le=MAX_FORWARD_TIMEOUT, strict=True)


class ChannelModel(_Model):
    type: Literal["sms", "whatsapp", "email"]
    languages: list[StrictStr] = Field(min_length=1, max_length=50)
    senders: list[StrictStr] = Field(default_factory=list, max_length=1000)
    messaging_services: list[StrictStr] = Field(default_factory=list, max_length=1000)
    # WhatsApp Cloud API: the phone number ids (metadata.phone_number_id) this channel receives from.
    phone_number_ids: list[StrictStr] = Field(default_factory=list, max_length=1000)
    # Forward inbound Twilio messages to the business's existing webhook, re-signed.
    forward: ForwardModel | None = None
    # SendGrid: the unsubscribe groups (asm_group_id) whose events change this e-mail channel.
    # Numbers as YAML writes them (12345), or the same digits quoted.
    asm_group_ids: list[StrictInt | StrictStr] = Field(default_factory=list, max_length=1000)
    opt_out: OptOutSection
    opt_in: IntentSection = Field(default_factory=IntentSection)
    help: IntentSection = Field(default_factory=IntentSection)
    # A mistyped opt-out keyword sent alone opts out ("Sotp"); doubtful ones go to review.
    fuzzy: StrictBool = True
    # A keyword with letters held down opts out ("Stoooop", "Unsubbbb").
    stretched: StrictBool = True
    # What an opt-out on this channel gates (webhook/gating.py): campaign | automated | all.
    revocation_scope: Literal["campaign", "automated", "all"] = "campaign"


class DocumentModel(_Model):
    brand: StrictStr
    support: StrictStr
    channels: dict[StrictStr, ChannelModel] = Field(max_length=100)


class _TopModel(_Model):
    """The document with channels left unparsed, so each channel's errors are found separately."""

    brand: StrictStr
    support: StrictStr
    channels: dict[StrictStr, dict[str, Any]] = Field(max_length=100)


@dataclass(frozen=True)
class ConfigProblem:
    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class KeywordConfigError(Exception):
    """The document is not a valid keyword configuration; ``problems`` lists every error."""

    def __init__(self, problems: list[ConfigProblem], source: str = "keyword configuration") -> None:
        self.problems = problems
        self.source = source
        lines = [f"{source}: {p.path or '(document)'}: {p.message}" for p in problems]
        super().__init__("\n".join(lines))


@dataclass(frozen=True)
class Channel:
    """One named channel: its type, languages and bindings, with its compiled matcher."""

    name: str
    type: str
    languages: tuple[str, ...]
    senders: frozenset[str]
    messaging_services: frozenset[str]
    index: ChannelIndex
    replies: dict[tuple[str, str], str]  # (intent, language) -> rendered reply
    phone_number_ids: frozenset[str] = frozenset()
    forward: ForwardModel | None = None
    revocation_scope: str = DEFAULT_SCOPE
    asm_group_ids: frozenset[str] = frozenset()

    def reply(self, intent: str, language: str) -> str | None:
        return self.replies.get((intent, language)) or self.replies.get((intent, self.languages[0]))

    @property
    def identities(self) -> list[tuple[str, str]]:
        """(kind, value) of every sender identity bound to this channel (domain.IDENTITY_KINDS)."""
        return ([("number", s) for s in sorted(self.senders)] + [("messaging_service", s) for s in sorted(self.messaging_services)]
                + [("phone_number_id", s) for s in sorted(self.phone_number_ids)]
                + [("asm_group_id", s) for s in sorted(self.asm_group_ids, key=int)])

    def gates(self, category: str) -> bool:
        """True when an unsubscribed contact must not get a ``category`` message on this channel."""
        return is_gated(self.revocation_scope, category)


class KeywordConfig:
    """A validated keyword configuration. Build it with ``parse_document`` or ``load_file``."""

    def __init__(self, document: dict[str, Any], model: DocumentModel, version: str) -> None:
        self.document = document
        self.model = model
        self.version = version
        self.brand = model.brand
        self.support = model.support
        self.channels: dict[str, Channel] = {
            name: _compile_channel(name, ch, model) for name, ch in model.channels.items()
        }
        # (channel type, identity kind, value) -> channel name
        self._bound: dict[tuple[str, str, str], str] = {
            (ch.type, kind, value): name for name, ch in self.channels.items() for kind, value in ch.identities
        }

    def channel(self, name: str) -> Channel | None:
        return self.channels.get(name)

    def channel_for(self, channel_type: str, identities: Sequence[tuple[str, str]] = ()) -> Channel:
        """The one place that decides an inbound message's channel.

        ``identities``: who the message was sent to, as the provider names it, most specific
        first (Twilio: our number, then the Messaging Service; WhatsApp Cloud: the phone number
        id, then the number; SendGrid: the unsubscribe group). The first one bound to a channel
        of the type wins, else the default channel named after the type.
        """
        for kind, value in identities:
            name = self._bound.get((channel_type, kind, value))
            if name:
                return self.channels[name]
        return self.channels[channel_type]


def _render(template: str, model: DocumentModel) -> str:
    return template.format(brand=model.brand, support=model.support).strip()


def _compile_channel(name: str, ch: ChannelModel, model: DocumentModel) -> Channel:
    replies: dict[tuple[str, str], str] = {}
    for intent in INTENTS:
        section = getattr(ch, intent)
        for language, template in section.reply.items():
            replies[(intent, language)] = _render(template, model)
    index = build_index(
        languages=ch.languages,
        opt_out=ch.opt_out.keywords,
        alone=ch.opt_out.alone,
        first_word=ch.opt_out.first_word,
        phrases=ch.opt_out.phrases,
        opt_in=ch.opt_in.keywords,
        help=ch.help.keywords,
        wrong_number=ch.opt_out.wrong_number,
        questions=ch.opt_out.questions,
        fillers=ch.opt_out.fillers,
        other_senses=ch.opt_out.other_senses,
        fuzzy=ch.fuzzy,
        stretched=ch.stretched,
    )
    return Channel(
        name=name,
        type=ch.type,
        languages=tuple(ch.languages),
        senders=frozenset(_normal_sender(s) or s for s in ch.senders),
        messaging_services=frozenset(ch.messaging_services),
        index=index,
        replies=replies,
        phone_number_ids=frozenset(ch.phone_number_ids),
        forward=ch.forward,
        revocation_scope=ch.revocation_scope,
        asm_group_ids=frozenset(str(group) for group in ch.asm_group_ids),
    )


def _normal_sender(raw: str) -> str | None:
    text = raw.strip()
    if text.startswith("whatsapp:"):
        text = text[len("whatsapp:"):]
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def forward_url_problems(ch: ChannelModel) -> list[str]:
    """What is wrong with a channel's forward URL as a document (the https-only rule and the
    loop check need the service's settings: webhook/forwarding.py)."""
    from urllib.parse import urlsplit

    assert ch.forward is not None
    url = ch.forward.url
    if ch.type == "email":
        return ["e-mail channels cannot forward messages (only Twilio's SMS and WhatsApp messages are forwarded)"]
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or not url.isprintable() or " " in url:
        return [f"{url[:100]!r} is not an https:// URL"]
    if parts.username or parts.password:
        return ["the forward URL must not carry a user name or password"]
    return []


def _placeholders(template: str) -> list[str] | None:
    try:
        return [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError:
        return None


def _semantic_problems(model: DocumentModel, unparsed: frozenset[str] = frozenset()) -> list[ConfigProblem]:
    problems: list[ConfigProblem] = []
    add = lambda path, message: problems.append(ConfigProblem(path, message))  # noqa: E731

    if not model.brand.strip():
        add("brand", "brand is empty; replies name the business")
    if not model.support.strip():
        add("support", "support is empty; HELP replies must give a support contact")

    for required in CHANNEL_TYPES:
        ch = model.channels.get(required)
        if required in unparsed:
            continue
        if ch is None:
            add(f"channels.{required}", f"channel {required!r} is missing; it is the default {required} channel")
        elif ch.type != required:
            add(f"channels.{required}.type", f"the default channel {required!r} must have type {required!r}")

    bound_senders: dict[tuple[str, str], str] = {}
    bound_services: dict[tuple[str, str], str] = {}
    for name, ch in model.channels.items():
        base = f"channels.{name}"
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,39}", name):
            add(base, "channel names use lower-case letters, digits, '-' and '_' (at most 40)")
        seen_lang: set[str] = set()
        for i, language in enumerate(ch.languages):
            if not LanguageCode.match(language):
                add(f"{base}.languages.{i}", f"{language!r} is not a language code such as en, fr or pt-BR")
            if language in seen_lang:
                add(f"{base}.languages.{i}", f"language {language!r} is listed twice")
            seen_lang.add(language)

        if ch.type == "email" and (ch.senders or ch.messaging_services):
            add(base, "e-mail channels cannot be bound to sender numbers or Messaging Services")
        if ch.forward is not None:
            problems.extend(ConfigProblem(f"{base}.forward.url", message) for message in forward_url_problems(ch))
        if ch.phone_number_ids and ch.type != "whatsapp":
            add(f"{base}.phone_number_ids", "only WhatsApp channels receive from WhatsApp Cloud phone number ids")
        for i, number_id in enumerate(ch.phone_number_ids):
            if not PhoneNumberId.fullmatch(number_id):
                add(f"{base}.phone_number_ids.{i}", f"{number_id!r} is not a WhatsApp Cloud phone number id (digits)")
                continue
            other = bound_services.setdefault(("phone_number_id", number_id), name)
            if other != name:
                add(f"{base}.phone_number_ids.{i}", f"{number_id} is already bound to channel {other!r}")
        if ch.asm_group_ids and ch.type != "email":
            add(f"{base}.asm_group_ids", "only e-mail channels are bound to SendGrid unsubscribe groups")
        for i, group in enumerate(ch.asm_group_ids):
            if not AsmGroupId.fullmatch(str(group)):
                add(f"{base}.asm_group_ids.{i}", f"{group!r} is not a SendGrid unsubscribe group id (a positive number)")
                continue
            other = bound_services.setdefault(("asm_group_id", str(group)), name)
            if other != name:
                add(f"{base}.asm_group_ids.{i}", f"group {group} is already bound to channel {other!r}")
        for i, sender in enumerate(ch.senders):
            normal = _normal_sender(sender)
            if normal is None:
                add(f"{base}.senders.{i}", f"{sender!r} is not a phone number in international format (+14155550123)")
                continue
            other = bound_senders.setdefault((ch.type, normal), name)
            if other != name:
                add(f"{base}.senders.{i}", f"{normal} is already bound to channel {other!r}")
        for i, sid in enumerate(ch.messaging_services):
            if not MessagingServiceSid.match(sid):
                add(f"{base}.messaging_services.{i}", f"{sid!r} is not a Messaging Service SID (MG + 32 hex digits)")
                continue
            other = bound_services.setdefault((ch.type, sid), name)
            if other != name:
                add(f"{base}.messaging_services.{i}", f"{sid} is already bound to channel {other!r}")

        # keyword (compact form) -> (intent, path) on this channel
        owner: dict[str, tuple[str, str]] = {}
        # (what the word means, where it is listed, the lists by language)
        word_lists = [
            ("opt_out", "opt_out.keywords", ch.opt_out.keywords),
            ("opt_out", "opt_out.alone", ch.opt_out.alone),
            ("opt_in", "opt_in.keywords", ch.opt_in.keywords),
            ("help", "help.keywords", ch.help.keywords),
            ("opt_out", "opt_out.phrases", ch.opt_out.phrases),
            ("opt_out", "opt_out.wrong_number", ch.opt_out.wrong_number),
            # A question opener only means "ask an admin", and a filler nothing at all:
            # neither may also be a keyword or phrase.
            ("review", "opt_out.questions", ch.opt_out.questions),
            ("filler", "opt_out.fillers", ch.opt_out.fillers),
            # Other senses contain keywords by nature ("stop by"): no clash to check.
            (None, "opt_out.other_senses", ch.opt_out.other_senses),
        ]
        for intent, where, by_language in word_lists:
            kind = where.rsplit(".", 1)[1]
            for language, words in by_language.items():
                lpath = f"{base}.{where}.{language}"
                if language not in seen_lang:
                    add(lpath, f"language {language!r} is not in {base}.languages")
                if len(words) > 500:
                    add(lpath, "at most 500 entries per language")
                for i, word in enumerate(words):
                    path = f"{lpath}.{i}"
                    limit = 40 if kind in ("keywords", "alone") else 100
                    norm = normalise(word)
                    if not norm:
                        add(path, f"{word!r} has no letters or digits left after normalisation")
                        continue
                    if len(word) > limit:
                        add(path, f"{word!r} is longer than {limit} characters")
                    wildcard = _wildcard_problem(word, kind)
                    if wildcard:
                        add(path, wildcard)
                    compact = norm.replace(" ", "")
                    if intent is None:
                        continue
                    previous = owner.get(compact)
                    if previous and previous[0] != intent:
                        add(path, f"{_already(word, previous[1])}; a word can mean only one thing on a channel")
                    elif not previous:
                        owner[compact] = (intent, path)

        for language, words in ch.opt_out.first_word.items():
            lpath = f"{base}.opt_out.first_word.{language}"
            own = {normalise(w).replace(" ", "") for w in ch.opt_out.keywords.get(language, [])}
            for i, word in enumerate(words):
                if normalise(word).replace(" ", "") not in own:
                    add(f"{lpath}.{i}", f"{word} is not an opt-out keyword in {language_name(language)}; add it to "
                                        "the opt-out keywords too (a first word must also opt out alone)")

        problems.extend(_required_problems(base, ch))

        for intent in INTENTS:
            section = getattr(ch, intent)
            needed = set(section.keywords)
            if intent == "opt_out":
                needed |= set(ch.opt_out.alone) | set(ch.opt_out.phrases) | set(ch.opt_out.wrong_number)
            for language in sorted(needed - set(section.reply)):
                add(f"{base}.{intent}.reply", f"there is no {INTENT_WORDS[intent]} reply in {language_name(language)}, "
                                              f"which has {INTENT_WORDS[intent]} keywords")
            for language, template in section.reply.items():
                rpath = f"{base}.{intent}.reply.{language}"
                if language not in seen_lang:
                    add(rpath, f"language {language!r} is not in {base}.languages")
                if not template.strip():
                    add(rpath, "reply is empty")
                    continue
                fields = _placeholders(template)
                if fields is None or any(f not in PLACEHOLDERS for f in fields):
                    add(rpath, "reply may only use the placeholders {brand} and {support} (write {{ and }} for braces)")
                    continue
                text = _render(template, model)
                if len(text) > MAX_REPLY_LENGTH:
                    add(rpath, f"reply is {len(text)} characters; keep it at most {MAX_REPLY_LENGTH}")
                if intent == "help":
                    problems.extend(_help_reply_problems(rpath, text, model, ch, language))
    return problems


def _compact(word: str) -> str:
    return normalise(word).replace(" ", "")


def _required_problems(base: str, ch: ChannelModel) -> list[ConfigProblem]:
    """The keywords the law and the carriers require that this channel no longer has: each
    opt-out word of OPT_OUT_REQUIRED must opt out as the whole message (a keyword or an
    ``alone`` word, in any of the channel's languages), and an SMS channel keeps START and HELP.
    A word listed under another intent is refused by the one-meaning rule, so being listed
    here is enough for the matcher to honour it."""
    found: list[ConfigProblem] = []
    label = TYPE_LABELS[ch.type]
    opting_out = {_compact(w) for lists in (ch.opt_out.keywords, ch.opt_out.alone) for words in lists.values() for w in words}
    for word in OPT_OUT_REQUIRED:
        if _compact(word) not in opting_out:
            found.append(ConfigProblem(f"{base}.opt_out.keywords",
                                       f"{label} channels must keep {word} as an opt-out keyword ({REQUIRED_WHY[ch.type]}): "
                                       f"a contact who sends {word} must always be unsubscribed"))
    if ch.type == "sms":
        for intent in ("opt_in", "help"):
            word = SMS_REQUIRED[intent]
            if _compact(word) not in {_compact(w) for words in getattr(ch, intent).keywords.values() for w in words}:
                found.append(ConfigProblem(f"{base}.{intent}.keywords", f"SMS channels must keep {word} (carriers require it)"))
    return found


def scope_warnings(config: KeywordConfig, channel: str | None = None) -> list[ConfigProblem]:
    """Replies that still say "marketing" on a channel whose opt-outs stop more than campaigns
    (``revocation_scope`` automated or all): accepted, but no longer accurate. ``channel``:
    only that one. The wording that fits each scope is in docs/keywords.md."""
    found: list[ConfigProblem] = []
    for name, ch in config.model.channels.items():
        if (channel is not None and name != channel) or ch.revocation_scope == DEFAULT_SCOPE:
            continue
        for intent in INTENTS:
            for language, template in getattr(ch, intent).reply.items():
                if "marketing" in template.casefold():
                    found.append(ConfigProblem(
                        f"channels.{name}.{intent}.reply.{language}",
                        f"the {INTENT_WORDS[intent]} reply in {language_name(language)} still says \"marketing\", but an "
                        f"opt-out on this channel stops {SCOPE_SHORT[ch.revocation_scope]} "
                        f"(revocation scope {ch.revocation_scope}): say what is stopped",
                    ))
    return found


def _wildcard_problem(text: str, kind: str) -> str | None:
    """A ``*`` (any one word) is for phrases, after a word: "this isn't * phone", "no soy *"."""
    tokens = phrase_tokens(text)
    if None not in tokens:
        return None
    if kind not in ("phrases", "wrong_number"):
        return f"{WILDCARD} (any one word) is only allowed in phrases"
    if tokens[0] is None:
        return f"{WILDCARD} (any one word) cannot start a phrase"
    return None


def _help_reply_problems(path: str, text: str, model: DocumentModel, ch: ChannelModel, language: str) -> list[ConfigProblem]:
    found: list[ConfigProblem] = []
    norm = f" {normalise(text)} "
    if normalise(model.brand) not in norm:
        found.append(ConfigProblem(path, "HELP reply must name the brand (use {brand})"))
    if normalise(model.support) not in norm:
        found.append(ConfigProblem(path, "HELP reply must give the support contact (use {support})"))
    stop_words = ch.opt_out.keywords.get(language) or [w for ws in ch.opt_out.keywords.values() for w in ws]
    if not any(f" {normalise(w)} " in norm for w in stop_words):
        found.append(ConfigProblem(path, "HELP reply must say how to stop (name an opt-out keyword such as STOP)"))
    return found


def _pydantic_problems(error: ValidationError, prefix: tuple[str, ...] = ()) -> list[ConfigProblem]:
    problems = []
    for item in error.errors():
        path = ".".join(str(part) for part in prefix + tuple(item["loc"]))
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key"
        elif item["type"] == "literal_error" and item["loc"][-1:] == ("revocation_scope",):
            message = (f"{item.get('input')!r} is not a revocation scope; use campaign (an opt-out stops campaigns), "
                       "automated (campaigns and flows) or all (every message)")
        elif item["type"] == "literal_error":
            message = f"unknown channel type {item.get('input')!r}; use one of sms, whatsapp, email"
        problems.append(ConfigProblem(path, message))
    return problems


def config_version(document: dict[str, Any]) -> str:
    """A short content hash: the same document always has the same version."""
    canonical = json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:12]


def parse_document(document: Any, source: str = "keyword configuration", version: str | None = None) -> KeywordConfig:
    """Validate a plain document (dicts and lists). Raises KeywordConfigError listing every problem."""
    if not isinstance(document, dict):
        raise KeywordConfigError([ConfigProblem("", "the document must be a mapping with brand, support and channels")], source)
    try:
        top = _TopModel.model_validate(document)
    except ValidationError as error:
        raise KeywordConfigError(_pydantic_problems(error), source) from None
    # Each channel is parsed on its own, so that one broken channel does not hide the
    # problems of the others: every error is listed at once.
    problems: list[ConfigProblem] = []
    channels: dict[str, ChannelModel] = {}
    for name, raw in top.channels.items():
        try:
            channels[name] = ChannelModel.model_validate(raw)
        except ValidationError as error:
            problems.extend(_pydantic_problems(error, prefix=("channels", name)))
    model = DocumentModel.model_construct(brand=top.brand, support=top.support, channels=channels)
    problems.extend(_semantic_problems(model, frozenset(top.channels) - frozenset(channels)))
    if problems:
        raise KeywordConfigError(problems, source)
    encoded = json.dumps(document)
    if len(encoded) > MAX_STORED_BYTES:
        raise KeywordConfigError([ConfigProblem("", f"the document is larger than {MAX_STORED_BYTES // 1024} KiB")], source)
    plain = json.loads(encoded)
    return KeywordConfig(plain, model, version or config_version(plain))


def _yaml_loader() -> YAML:
    yaml = YAML(typ="safe", pure=True)
    yaml.allow_duplicate_keys = False
    return yaml


def _check_events(text: str) -> None:
    """Refuse anchors, aliases and deep nesting from the parser's own events, before the
    document is built: an alias can expand a few KiB into megabytes (a "billion laughs"),
    whatever the anchor is named, and the loader's time grows with the square of the depth.
    Raises KeywordConfigError (YAMLError for text that is not YAML)."""
    depth = 0
    for event in _yaml_loader().parse(io.StringIO(text)):
        if isinstance(event, AliasEvent) or (isinstance(event, NodeEvent) and event.anchor is not None):
            raise KeywordConfigError([ConfigProblem(
                "", "YAML anchors and aliases (&name, *name) are not allowed; write each list out"
            )])
        if isinstance(event, CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise KeywordConfigError([ConfigProblem("", f"the document nests deeper than {MAX_DEPTH} levels")])
        elif isinstance(event, CollectionEndEvent):
            depth -= 1


def parse_yaml(text: str, source: str = "keyword configuration") -> KeywordConfig:
    """Parse YAML text and validate it. Anchors and aliases are refused (no billion-laughs
    documents), and so are documents over MAX_DOCUMENT_BYTES or nested deeper than MAX_DEPTH."""
    if len(text) > MAX_DOCUMENT_BYTES or len(text.encode("utf-8")) > MAX_DOCUMENT_BYTES:
        raise KeywordConfigError([ConfigProblem("", f"the document is larger than {MAX_DOCUMENT_BYTES // 1024} KiB")], source)
    try:
        try:
            _check_events(text)
        except KeywordConfigError as error:
            raise KeywordConfigError(error.problems, source) from None
        document = _yaml_loader().load(io.StringIO(text))
    except YAMLError as error:
        where = ""
        mark = getattr(error, "problem_mark", None)
        if mark is not None:
            where = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise KeywordConfigError([ConfigProblem("", f"not valid YAML{where}: {problem}")], source) from None
    return parse_document(document, source)


def load_file(path: Path) -> KeywordConfig:
    """Read and validate a keywords file; errors name the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise KeywordConfigError([ConfigProblem("", f"cannot read the file: {error}")], str(path)) from None
    return parse_yaml(text, str(path))


def _round_trip_yaml() -> YAML:
    yaml = YAML(typ="rt", pure=True)
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a reply across lines
    yaml.indent(mapping=2, sequence=4, offset=2)
    return yaml


def _merge(target: Any, source: Any) -> Any:
    """``source``'s values in ``target``'s commented structure: keys kept keep their
    comments and order, removed keys go, new keys are appended."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    if isinstance(target, CommentedMap) and isinstance(source, dict):
        for key in [k for k in target if k not in source]:
            del target[key]
        for key, value in source.items():
            target[key] = _merge(target[key], value) if key in target else value
        return target
    if isinstance(target, CommentedSeq) and isinstance(source, list):
        # Replaced in place, so a list written inline ([STOP, END]) stays inline, and new
        # items are quoted like the list's first item.
        like = target[0] if len(target) else None
        target[:] = [_styled(item, like) for item in source]
        return target
    return _styled(source, target)


def _styled(value: Any, like: Any) -> Any:
    """A new string value written in the quote style of the one it replaces."""
    from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

    if isinstance(value, str) and isinstance(like, (DoubleQuotedScalarString, SingleQuotedScalarString)):
        return type(like)(value)
    return value


def to_yaml(document: dict[str, Any], template: str | None = None) -> str:
    """The document as YAML. With ``template`` (the previous version's YAML), its
    comments, key order and list style are kept (ruamel.yaml round trip)."""
    yaml = _round_trip_yaml()
    data: Any = document
    if template:
        try:
            data = _merge(yaml.load(io.StringIO(template)), document)
        except YAMLError:
            data = document
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()
