"""Consent use cases: plain values in, plain values out, a ``Store`` port. No Flask here."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Sequence

from webhook.addresses import normalise_address
from webhook.analytics import reason_in
from webhook.domain import (
    ACTION_OF_STATUS,
    MESSAGE_STAGES,
    CampaignMessage,
    ConsentEvent,
    Erasure,
    Feedback,
    InboundMail,
    InboundMessage,
    Recorded,
    ReviewItem,
    Subscription,
    iso,
    utcnow,
)
from webhook.keywords import Channel, KeywordConfig
from webhook.matching import Match, match, review_reason
from webhook.store import Store

CATEGORIES = ("campaign", "inbox", "flow")
MAX_RAW_TEXT = 2000
# Characters a text column should not hold (PostgreSQL refuses NUL): C0 controls but tab/newline.
_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Twilio OptOutType -> our intent.
PROVIDER_INTENTS = {"STOP": "opt_out", "START": "opt_in", "HELP": "help"}
# The first message within this time after an opt-out is kept as its reason.
FEEDBACK_WINDOW = timedelta(hours=24)
# A campaign id as it may appear in a StatusCallback URL or the API: what people name
# campaigns ("Spring sale 2026"), without control characters, "/" (a URL path segment
# in the API) or surrounding spaces.
CAMPAIGN_ID = re.compile(r"[^\x00-\x1f\x7f/]{1,100}")

# hash_for(channel, address): the keyed hash an erased, suppressed address is kept as.
AddressHash = Callable[[str, str], str]


def address_hasher(secret_key: str) -> AddressHash:
    """HMAC-SHA256 of channel and address under a key derived from SECRET_KEY.

    Without the key nobody can test whether a given person is in the erased list;
    with it the service can still tell that an address it is asked about was erased.
    """
    key = hmac.new(secret_key.encode("utf-8"), b"unsub erased-address v1", hashlib.sha256).digest()

    def hash_for(channel: str, address: str) -> str:
        return hmac.new(key, f"{channel}\x00{address}".encode("utf-8"), hashlib.sha256).hexdigest()

    return hash_for


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
    kept: str | None = None  # "feedback" or "review" when an ordinary message was kept


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
        return Outcome(channel.name, None, None, None, _keep_ordinary(msg, channel, store))
    recorded = None
    if found.intent in ("opt_out", "opt_in"):
        recorded = store.record(
            _matched_event(channel, msg.address, found, "keyword", text, msg.message_id, config, msg.received_at)
        )
        if found.intent == "opt_out" and reason_in(text, found):
            # "STOP too many texts": the opt-out is recorded above; the words are its reason.
            store.add_feedback(Feedback(channel.name, msg.address, "with_opt_out", safe_text(text) or "",
                                        msg.received_at, msg.message_id))
    # With OptOutType the provider has already sent its confirmation: send none.
    reply = None if msg.provider_intent else channel.reply(found.intent, found.language)
    return Outcome(channel.name, found, recorded, reply)


def _keep_ordinary(msg: InboundMessage, channel: Channel, store: Store) -> str | None:
    """Keep an ordinary message (no reply either way) as feedback or for review.

    The first message within FEEDBACK_WINDOW after an opt-out is its reason. Otherwise a
    message that mentions an opt-out keyword without clearly opting out ("Cancel my
    order, it's late") waits for an admin in the review queue.
    """
    text = safe_text(msg.body.strip())
    if not text:
        return None
    current = store.subscription(channel.name, msg.address)
    if current is not None and current.status == "unsubscribed":
        # Already out on this channel: nothing to review; soon after the opt-out, a reason.
        if current.updated_at is not None and msg.received_at - FEEDBACK_WINDOW <= current.updated_at <= msg.received_at:
            item = Feedback(channel.name, msg.address, "after_opt_out", text, msg.received_at, msg.message_id)
            if store.add_feedback_after_opt_out(item, FEEDBACK_WINDOW):
                return "feedback"
        return None
    if review_reason(text, channel.index) is not None:
        store.add_review_item(ReviewItem(channel.name, msg.address, text, msg.received_at, msg.message_id))
        return "review"
    return None


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


def named_channel(config: KeywordConfig, channel_name: str) -> Channel:
    """The channel of that name, or UnknownChannel naming the ones there are."""
    channel = config.channel(channel_name)
    if channel is None:
        raise UnknownChannel(f"unknown channel {channel_name!r}; channels: {', '.join(sorted(config.channels))}")
    return channel


def resolve(config: KeywordConfig, channel_name: str, raw_address: str, region: str | None = None) -> tuple[Channel, str]:
    """The named channel and the normalised address, or UnknownChannel / InvalidAddress."""
    channel = named_channel(config, channel_name)
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


def audience_channel(config: KeywordConfig, channel_name: str, category: str) -> Channel:
    """The channel an audience is for, or UnknownChannel / ValueError for a bad category."""
    channel = named_channel(config, channel_name)
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; use one of {', '.join(CATEGORIES)}")
    return channel


def erased(store: Store, channel: str, address: str, hash_for: AddressHash) -> bool:
    """True for an address erased on the channel (kept only as a hash) that has not come back since."""
    if not store.has_erasures(channel) or store.subscription(channel, address) is not None:
        return False
    return bool(store.erased_among(channel, [hash_for(channel, address)]))


def suppressed_among(store: Store, channel: str, addresses: Sequence[str], hash_for: AddressHash) -> set[str]:
    """Which of these normalised addresses must not get a campaign on the channel.

    Unsubscribed ones, and erased ones that were unsubscribed (kept only as a keyed
    hash) unless they have consented again since.
    """
    statuses = store.statuses_among(channel, addresses)
    blocked = {address for address, status in statuses.items() if status == "unsubscribed"}
    if store.has_erasures(channel):
        unknown = {hash_for(channel, a): a for a in addresses if a not in statuses}
        blocked.update(unknown[h] for h in store.erased_among(channel, unknown))
    return blocked


def audience(
    config: KeywordConfig,
    store: Store,
    channel_name: str,
    category: str,
    addresses: Sequence[object],
    hash_for: AddressHash,
    region: str | None = None,
) -> Audience:
    """Split addresses into sendable, suppressed and invalid for a channel and category.

    Only ``campaign`` is gated by unsubscribes. Addresses come back normalised, in input
    order, each once; invalid entries come back as given.
    """
    channel = audience_channel(config, channel_name, category)
    normal: list[str] = []
    invalid: list[str] = []
    for raw in addresses:
        address = normalise_address(channel.type, raw, region, strict=True) if isinstance(raw, str) else None
        if address is None:
            invalid.append(raw if isinstance(raw, str) else repr(raw))
        else:
            normal.append(address)
    unique = list(dict.fromkeys(normal))
    blocked = suppressed_among(store, channel.name, unique, hash_for) if category == "campaign" else set()
    return Audience(
        sendable=[a for a in unique if a not in blocked],
        suppressed=[a for a in unique if a in blocked],
        invalid=invalid,
    )


def lookup(
    config: KeywordConfig, store: Store, channel_name: str, raw_address: str, hash_for: AddressHash,
    region: str | None = None,
) -> tuple[str, str, Subscription | None, list[ConsentEvent]]:
    """Current status and history of one address on one channel.

    An erased address that had unsubscribed reads as unsubscribed (since its erasure),
    with no history.
    """
    channel, address = resolve(config, channel_name, raw_address, region)
    current = store.subscription(channel.name, address)
    if current is None and store.has_erasures(channel.name):
        erased = store.erased_among(channel.name, [hash_for(channel.name, address)])
        if erased:
            current = Subscription(channel.name, address, "unsubscribed", next(iter(erased.values())))
    return channel.name, address, current, store.history(channel.name, address)


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
    if action == "opt_out" and reason and reason.strip():
        # The page's optional "why": summarised on the dashboard with the texts' reasons.
        store.add_feedback(Feedback(channel.name, address, "page", safe_text(reason.strip(), 500) or "", utcnow()))
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


# -- campaigns ------------------------------------------------------------------------

def check_campaign_id(value: str) -> str:
    """A campaign id as given, or ValueError saying what is allowed."""
    if not CAMPAIGN_ID.fullmatch(value) or value != value.strip():
        raise ValueError(
            f"campaign id {value[:120]!r} is not allowed: use 1-100 characters without '/', control "
            "characters or spaces around it"
        )
    return value


def campaign_message_from_status(
    config: KeywordConfig, campaign: str, *, message_id: str, status: str, recipient: str, sender: str | None,
    messaging_service_sid: str | None, whatsapp: bool, at: datetime | None = None,
) -> CampaignMessage | None:
    """The campaign message a Twilio status callback reports, or None for a status we do not track."""
    if status not in MESSAGE_STAGES:
        return None
    channel = config.channel_for("whatsapp" if whatsapp else "sms", sender, messaging_service_sid)
    return CampaignMessage(message_id, campaign, channel.name, recipient, status, at or utcnow())


@dataclass(frozen=True)
class Send:
    """A campaign send reported by another tool (API or CLI)."""

    address: str
    message_id: str | None = None
    status: str = "delivered"
    at: datetime | None = None


def record_sends(
    config: KeywordConfig, store: Store, campaign: str, channel_name: str, sends: Sequence[Send], region: str | None = None,
) -> tuple[int, list[str]]:
    """Record sends made by other tools: (how many were new, the addresses that were invalid).

    Without a message id, one is made from campaign, channel and address, so reporting
    the same send twice records it once.
    """
    check_campaign_id(campaign)
    channel = named_channel(config, channel_name)
    messages: list[CampaignMessage] = []
    invalid: list[str] = []
    now = utcnow()
    for send in sends:
        address = normalise_address(channel.type, send.address, region, strict=True)
        if address is None:
            invalid.append(send.address)
            continue
        if send.status not in MESSAGE_STAGES:
            raise ValueError(f"unknown message status {send.status!r}; use one of {', '.join(MESSAGE_STAGES)}")
        message_id = send.message_id or f"{campaign}:{channel.name}:{address}"
        messages.append(CampaignMessage(message_id, campaign, channel.name, address, send.status, send.at or now))
    return store.record_campaign_messages(messages), invalid


# -- the review queue ---------------------------------------------------------------

class NotOpen(ValueError):
    """The review item does not exist or was decided already."""


def decide_review(config: KeywordConfig, store: Store, item_id: int, decision: str, actor: str) -> ReviewItem:
    """Confirm (record the opt-out, source ``admin``, kind ``review``) or dismiss an open item.

    A confirmed opt-out takes the time of the message, so a later opt-in still wins.
    """
    item = store.review_item(item_id)
    if item is None or item.status != "open":
        raise NotOpen(f"review item {item_id} is not open" if item else f"no review item {item_id}")
    if decision not in ("confirm", "dismiss"):
        raise ValueError("decision must be 'confirm' or 'dismiss'")
    if decision == "confirm":
        store.record(ConsentEvent(
            channel=item.channel, address=item.address, action="opt_out", source="admin", occurred_at=item.received_at,
            match_kind="review", raw_text=item.text, message_id=f"review:{item_id}", config_version=config.version,
            reason=safe_text(f"{actor}: confirmed from the review queue", 500),
        ))
    if not store.decide_review_item(item_id, "confirmed" if decision == "confirm" else "dismissed", actor):
        other = store.review_item(item_id)
        by = f" by {other.decided_by}" if other and other.decided_by else ""
        kept = "; the opt-out is recorded all the same (change the status by hand to undo it)" if decision == "confirm" else ""
        raise NotOpen(f"review item {item_id} was {other.status if other else 'decided'}{by} meanwhile{kept}")
    decided = store.review_item(item_id)
    assert decided is not None
    return decided


# -- erasure and audit export (GDPR Art. 17 and 7(1)) --------------------------------

def contact_address(raw: str, region: str | None = None) -> str:
    """A contact's address as stored: an e-mail address, else a phone number in E.164."""
    kind = "email" if "@" in raw else "sms"
    address = normalise_address(kind, raw, region)
    if address is None:
        what = "an e-mail address" if kind == "email" else "a phone number in international format (+14155550123)"
        raise InvalidAddress(f"{raw!r} is not {what}")
    return address


def erase_contact(store: Store, raw_address: str, hash_for: AddressHash, region: str | None = None) -> Erasure:
    """Delete everything about a contact on every channel, keeping a keyed hash where they had left."""
    return store.erase(contact_address(raw_address, region), hash_for)


def contact_record(store: Store, raw_address: str, region: str | None = None) -> dict:
    """Everything the service holds about a contact's consent, for an auditor or the contact."""
    address = contact_address(raw_address, region)
    events = store.contact_events(address)
    return {
        "address": address,
        "exported_at": iso(utcnow()),
        "events": [event_record(e) for e in events],
        "feedback": [
            {"channel": f.channel, "kind": f.kind, "text": f.text, "message_id": f.message_id, "at": iso(f.received_at)}
            for f in store.contact_feedback(address)
        ],
    }


def event_record(event: ConsentEvent) -> dict:
    """One consent event as exported (JSON and CSV share these keys)."""
    return {
        "channel": event.channel, "action": event.action, "source": event.source, "keyword": event.keyword,
        "language": event.language, "match_kind": event.match_kind, "raw_text": event.raw_text,
        "message_id": event.message_id, "config_version": event.config_version, "reason": event.reason,
        "at": iso(event.occurred_at), "recorded_at": iso(event.recorded_at) if event.recorded_at else None,
    }


EXPORT_FIELDS = ("channel", "action", "source", "keyword", "language", "match_kind", "raw_text", "message_id",
                 "config_version", "reason", "at", "recorded_at")
# Contacts' own words: a spreadsheet must not run them as formulas.
FREE_TEXT_FIELDS = frozenset({"raw_text", "reason"})


def spreadsheet_safe(text: str | None) -> str | None:
    """Text in a CSV cell that a spreadsheet will not run as a formula (=, +, -, @, tab, CR)."""
    return "'" + text if text and text[0] in "=+-@\t\r" else text


def contact_csv(record: dict) -> str:
    """A contact_record's events as CSV (one row per event, the address first)."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("address",) + EXPORT_FIELDS)
    for event in record["events"]:
        writer.writerow([record["address"]] + [
            (spreadsheet_safe(event[name]) if name in FREE_TEXT_FIELDS else event[name]) or "" for name in EXPORT_FIELDS
        ])
    return out.getvalue()
