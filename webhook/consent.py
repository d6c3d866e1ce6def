"""Consent use cases: plain values in, plain values out, a ``Store`` port. No Flask here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from webhook.addresses import normalise_address
from webhook.domain import (
    ACTION_OF_STATUS,
    ConsentEvent,
    InboundMail,
    InboundMessage,
    Recorded,
    Subscription,
    utcnow,
)
from webhook.keywords import Channel, KeywordConfig
from webhook.matching import Match, match
from webhook.store import Store

CATEGORIES = ("campaign", "inbox", "flow")
MAX_RAW_TEXT = 2000
# Characters a text column should not hold (PostgreSQL refuses NUL): C0 controls but tab/newline.
_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Twilio OptOutType -> our intent.
PROVIDER_INTENTS = {"STOP": "opt_out", "START": "opt_in", "HELP": "help"}


class UnknownChannel(ValueError):
    pass


class InvalidAddress(ValueError):
    pass


@dataclass(frozen=True)
class DryRun:
    """What a message would do on a channel, with nothing recorded."""

    channel: str
    match: Match | None
    reply: str | None

    def as_dict(self) -> dict[str, object]:
        found = self.match
        return {
            "channel": self.channel,
            "intent": found.intent if found else None,
            "keyword": found.keyword if found else None,
            "language": found.language if found else None,
            "kind": found.kind if found else None,
            "reply": self.reply,
            "changes_subscription": bool(found and found.intent in ("opt_out", "opt_in")),
        }


def dry_run(channel: Channel, text: str) -> DryRun:
    """Match a message on a channel and pick its reply, recording nothing (CLI, API, admin pages)."""
    found = match(text, channel.index)
    return DryRun(channel.name, found, channel.reply(found.intent, found.language) if found else None)


@dataclass(frozen=True)
class Outcome:
    """What an inbound message did: the channel, the match, whether a change was recorded, the reply."""

    channel: str
    match: Match | None
    recorded: Recorded | None
    reply: str | None


def safe_text(text: str | None, limit: int = MAX_RAW_TEXT) -> str | None:
    """Raw text as the database can hold it: control characters dropped, length bounded."""
    if text is None:
        return None
    return _UNSAFE.sub("", text)[:limit]


def _decide(msg: InboundMessage, channel: Channel) -> tuple[Match | None, str]:
    """The match and the text it was found in (the button payload, else the body)."""
    # A WhatsApp quick-reply's payload is what the business defined: it wins over Body.
    found, text = None, msg.body
    if msg.button_payload:
        found = match(msg.button_payload, channel.index)
        if found is not None:
            text = msg.button_payload
    if found is None:
        found = match(msg.body, channel.index)
    hint = PROVIDER_INTENTS.get((msg.provider_intent or "").upper())
    if hint and (found is None or found.intent != hint):
        # The provider matched it with its own list: trust it, we have the raw text.
        found = Match(hint, text.strip()[:40] or hint, channel.languages[0], "provider")
    return found, text


def _matched_event(
    channel: Channel, address: str, found: Match, source: str, text: str, message_id: str | None,
    config: KeywordConfig, at: datetime,
) -> ConsentEvent:
    """The consent event a matched opt-out or opt-in message records."""
    return ConsentEvent(
        channel=channel.name,
        address=address,
        action=found.intent,  # type: ignore[arg-type]
        source=source,
        occurred_at=at,
        keyword=found.keyword,
        language=found.language,
        match_kind=found.kind,
        raw_text=safe_text(text),
        message_id=message_id,
        config_version=config.version,
    )


def handle_inbound(msg: InboundMessage, config: KeywordConfig, store: Store) -> Outcome:
    """Match an inbound message on its channel, record an opt-out/opt-in, and choose the reply.

    Only the channel the message arrived on changes. The change is committed before this
    returns; a repeated message id records nothing new and gets the same reply.
    """
    channel = config.channel_for(msg.channel_type, msg.to, msg.messaging_service_sid)
    found, text = _decide(msg, channel)
    if found is None:
        return Outcome(channel.name, None, None, None)
    recorded = None
    if found.intent in ("opt_out", "opt_in"):
        recorded = store.record(
            _matched_event(channel, msg.address, found, "keyword", text, msg.message_id, config, msg.received_at)
        )
    # With OptOutType the provider has already sent its confirmation: send none.
    reply = None if msg.provider_intent else channel.reply(found.intent, found.language)
    return Outcome(channel.name, found, recorded, reply)


def record_carrier_opt_out(
    config: KeywordConfig,
    store: Store,
    *,
    address: str,
    message_id: str,
    sender: str | None = None,
    messaging_service_sid: str | None = None,
    error_code: str = "21610",
    at: datetime | None = None,
) -> Recorded:
    """The carrier blocks this number for our sender (Twilio 21610): record an SMS opt-out."""
    channel = config.channel_for("sms", sender, messaging_service_sid)
    return store.record(
        ConsentEvent(
            channel=channel.name,
            address=address,
            action="opt_out",
            source="carrier",
            occurred_at=at or utcnow(),
            match_kind="carrier",
            message_id=f"{message_id}:{error_code}",
            config_version=config.version,
            reason=f"provider error {error_code}",
        )
    )


def resolve(config: KeywordConfig, channel_name: str, raw_address: str, region: str | None = None) -> tuple[Channel, str]:
    """The named channel and the normalised address, or UnknownChannel / InvalidAddress."""
    channel = config.channel(channel_name)
    if channel is None:
        raise UnknownChannel(f"unknown channel {channel_name!r}; channels: {', '.join(sorted(config.channels))}")
    address = normalise_address(channel.type, raw_address, region)
    if address is None:
        kind = "an e-mail address" if channel.type == "email" else "a phone number in international format (+14155550123)"
        raise InvalidAddress(f"{raw_address!r} is not {kind}")
    return channel, address


def set_status(
    config: KeywordConfig,
    store: Store,
    channel_name: str,
    raw_address: str,
    status: str,
    reason: str,
    region: str | None = None,
    actor: str = "admin",
) -> tuple[str, str, Subscription | None, list[ConsentEvent]]:
    """An admin changes a status by hand; recorded with source ``admin`` and the reason."""
    channel, address = resolve(config, channel_name, raw_address, region)
    action = ACTION_OF_STATUS[status]
    store.record(
        ConsentEvent(
            channel=channel.name,
            address=address,
            action=action,
            source="admin",
            occurred_at=utcnow(),
            match_kind="admin",
            config_version=config.version,
            reason=safe_text(f"{actor}: {reason}", 500),
        )
    )
    return channel.name, address, store.subscription(channel.name, address), store.history(channel.name, address)


@dataclass(frozen=True)
class Audience:
    sendable: list[str]
    suppressed: list[str]
    invalid: list[str]


def audience(
    config: KeywordConfig,
    store: Store,
    channel_name: str,
    category: str,
    addresses: Sequence[object],
    region: str | None = None,
) -> Audience:
    """Split addresses into sendable, suppressed and invalid for a channel and category.

    Only ``campaign`` is gated by unsubscribes. Addresses come back normalised, in input
    order, each once; invalid entries come back as given.
    """
    channel = config.channel(channel_name)
    if channel is None:
        raise UnknownChannel(f"unknown channel {channel_name!r}; channels: {', '.join(sorted(config.channels))}")
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; use one of {', '.join(CATEGORIES)}")
    normal: list[str] = []
    invalid: list[str] = []
    for raw in addresses:
        address = normalise_address(channel.type, raw, region, strict=True) if isinstance(raw, str) else None
        if address is None:
            invalid.append(raw if isinstance(raw, str) else repr(raw))
        else:
            normal.append(address)
    unique = list(dict.fromkeys(normal))
    blocked = store.unsubscribed_among(channel.name, unique) if category == "campaign" else set()
    return Audience(
        sendable=[a for a in unique if a not in blocked],
        suppressed=[a for a in unique if a in blocked],
        invalid=invalid,
    )


def lookup(config: KeywordConfig, store: Store, channel_name: str, raw_address: str, region: str | None = None) -> tuple[str, str, Subscription | None, list[ConsentEvent]]:
    """Current status and history of one address on one channel."""
    channel, address = resolve(config, channel_name, raw_address, region)
    return channel.name, address, store.subscription(channel.name, address), store.history(channel.name, address)


def email_channel(config: KeywordConfig, channel_name: str) -> Channel:
    """The e-mail channel a token or mail belongs to; the default one if it no longer exists.

    Unsubscribe links never expire, so a link minted for a channel removed since must
    still unsubscribe the contact from e-mail.
    """
    channel = config.channel(channel_name)
    if channel is None or channel.type != "email":
        channel = config.channels["email"]
    return channel


def set_email_preference(
    config: KeywordConfig,
    store: Store,
    channel_name: str,
    address: str,
    action: str,
    source: str,
    reason: str | None = None,
) -> tuple[str, Recorded | None]:
    """Unsubscribe or re-subscribe an address from a link or page (sources ``one_click``, ``page``).

    Idempotent: when the status already is what the action asks for, nothing is
    recorded (mailbox providers may repeat a one-click POST). Returns the channel name
    and what was recorded.
    """
    channel = email_channel(config, channel_name)
    current = store.subscription(channel.name, address)
    wanted = "unsubscribed" if action == "opt_out" else "subscribed"
    if current is not None and current.status == wanted:
        return channel.name, None
    recorded = store.record(
        ConsentEvent(
            channel=channel.name,
            address=address,
            action=action,  # type: ignore[arg-type]
            source=source,
            occurred_at=utcnow(),
            match_kind=source,
            config_version=config.version,
            reason=safe_text(reason, 500) if reason else None,
        )
    )
    return channel.name, recorded


def handle_inbound_mail(mail: InboundMail, config: KeywordConfig, store: Store) -> Match | None:
    """A mail whose subject or first line is an opt-out unsubscribes its sender from e-mail.

    Only opt-outs count by mail: nobody is re-subscribed by a message we cannot answer.
    """
    channel = config.channels["email"]
    for text in (mail.subject, mail.first_line):
        found = match(text, channel.index)
        if found is not None and found.intent == "opt_out":
            store.record(_matched_event(channel, mail.sender, found, "inbound_mail", text, mail.message_id, config, utcnow()))
            return found
    return None
