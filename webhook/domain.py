"""Plain values shared by the core, the stores and the edges (frozen dataclasses, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

Action = Literal["opt_out", "opt_in"]
Status = Literal["subscribed", "unsubscribed", "unknown"]
STATUS_OF_ACTION: dict[str, Status] = {"opt_out": "unsubscribed", "opt_in": "subscribed"}
ACTION_OF_STATUS: dict[str, Action] = {"unsubscribed": "opt_out", "subscribed": "opt_in"}
# Where a consent event came from.
# ``provider``: the contact acted in the provider's own settings (WhatsApp's "Offers and
# announcements"), or the provider relayed an unsubscribe it handled itself (SendGrid's and
# Mailgun's own unsubscribe links and groups).
# ``complaint``: the recipient reported the message as spam and the mailbox provider told the
# sender (a feedback loop relayed by SendGrid or Mailgun): the strongest opt-out there is.
SOURCES = ("keyword", "carrier", "admin", "import", "one_click", "page", "inbound_mail", "provider", "complaint")
# Namespaces of the ids that make a change idempotent (``dedupe_key``). Each is chosen by
# the code path that records, never by the input, so the same text sent as a Twilio
# MessageSid and as a mail's Message-Id can never collide, and no provider can forge an
# id of one of the service's own changes (a review confirmation, an import row).
ID_NAMESPACES = ("twilio", "twilio-status", "mail", "review", "import", "whatsapp", "whatsapp-status",
                 "whatsapp-pref", "sendgrid-event", "mailgun-event")
# Who a message was sent to, as a provider names it, so the configuration can bind it to a
# channel: our number (E.164), a Twilio Messaging Service SID, a WhatsApp Cloud phone number id,
# a SendGrid unsubscribe group (ASM group id) an e-mail was sent with.
IDENTITY_KINDS = ("number", "messaging_service", "phone_number_id", "asm_group_id")


def dedupe_key(namespace: str, provider_id: str | None) -> str | None:
    """The internal idempotency key of a provider's id: ``namespace:id`` (None without an id)."""
    if provider_id is None:
        return None
    if namespace not in ID_NAMESPACES:
        raise ValueError(f"unknown id namespace {namespace!r}")
    return f"{namespace}:{provider_id}"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, to the second (the API's format)."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class InboundMessage:
    """A provider-neutral inbound message (SMS, WhatsApp)."""

    channel_type: str  # sms | whatsapp
    address: str  # E.164, without the whatsapp: prefix
    body: str
    message_id: str  # the provider's id, as sent
    # Who it was sent to, most specific first: (kind of IDENTITY_KINDS, value).
    identities: tuple[tuple[str, str], ...] = ()
    button_payload: str | None = None
    # The provider already handled this as an opt-out/opt-in/help (Twilio OptOutType).
    provider_intent: str | None = None
    received_at: datetime = field(default_factory=utcnow)
    # The namespace of ``message_id`` (see ID_NAMESPACES): which provider sent it.
    id_namespace: str = "twilio"
    provider: str = "twilio"

    @property
    def dedupe_key(self) -> str:
        key = dedupe_key(self.id_namespace, self.message_id)
        assert key is not None
        return key


@dataclass(frozen=True)
class StatusReport:
    """A provider's report on a message we sent (Twilio status callback, WhatsApp Cloud status).

    ``recipient_blocked``: the provider says the recipient blocks us (Twilio 21610, WhatsApp
    131050): an opt-out of the channel, recorded with source ``carrier``. Which codes mean it
    is the provider module's policy, not the core's."""

    channel_type: str
    message_id: str
    recipient: str  # normalised
    status: str  # lower-case provider status (queued, sent, delivered, read, failed, ...)
    identities: tuple[tuple[str, str], ...] = ()
    error_code: str | None = None
    recipient_blocked: bool = False
    id_namespace: str = "twilio-status"
    at: datetime | None = None


@dataclass(frozen=True)
class PreferenceChange:
    """A provider tells us the contact changed its marketing preference, with no message to
    match and nothing to answer: an opt-out or opt-in of the channel.

    ``source`` ``provider``: the contact acted in the provider's own settings or links
    (WhatsApp "Offers and announcements", SendGrid and Mailgun unsubscribes and groups);
    ``complaint``: the recipient reported the message as spam. ``campaign``: the campaign the
    provider says the message belonged to (SendGrid custom args, Mailgun user-variables), as
    sent: the core checks it before it attributes anything to it."""

    channel_type: str
    address: str
    action: Action
    key: str  # what makes a redelivery of the same change record nothing (provider id, time, value)
    identities: tuple[tuple[str, str], ...] = ()
    detail: str | None = None
    at: datetime = field(default_factory=utcnow)
    id_namespace: str = "whatsapp-pref"
    match_kind: str = "provider_settings"
    source: str = "provider"
    campaign: str | None = None
    message_id: str | None = None  # the provider's id of the event, shown in the history
    # An opt-in that may only undo one kind of opt-out: (match_kind, reason) of the opt-out
    # it reverses (SendGrid: rejoining group 42 undoes leaving group 42, never a global
    # unsubscribe or a spam complaint). None: any (the contact re-subscribed the channel).
    undoes: tuple[str, str] | None = None


@dataclass(frozen=True)
class Skipped:
    """An item of a provider's batch that was not recorded, and why (logged; the rest is recorded)."""

    where: str
    why: str


@dataclass(frozen=True)
class PreferenceBatch:
    """What one request of an e-mail provider's event webhook says: the changes to record, the
    items that could not be read, and how many events were of kinds unsub does not act on
    (delivered, opened, bounced, ...: accepted and ignored)."""

    items: list[PreferenceChange] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    ignored: int = 0


@dataclass(frozen=True)
class InboundMail:
    """A provider-neutral inbound e-mail, reduced to what unsubscribing needs."""

    sender: str  # normalised e-mail address
    subject: str  # without Re:/Fwd: prefixes
    first_line: str  # first non-empty line of the plain-text body
    message_id: str | None  # the mail's Message-Id, as sent


@dataclass(frozen=True)
class ConsentEvent:
    """One change of consent, as recorded in the append-only log."""

    channel: str
    address: str
    action: Action
    source: str
    occurred_at: datetime
    keyword: str | None = None
    language: str | None = None
    match_kind: str | None = None
    raw_text: str | None = None
    message_id: str | None = None  # the provider's id as it was sent (shown in the API and exports)
    config_version: str | None = None
    reason: str | None = None
    id: int | None = None
    recorded_at: datetime | None = None
    # Internal idempotency key (``dedupe_key(namespace, id)``): a second event with the
    # same key records nothing. None: never a duplicate (admin changes, pages).
    dedupe_key: str | None = None
    # The campaign the event itself names (an e-mail provider's complaint or unsubscribe
    # carries it). It wins over the guess from delivered campaign messages (statistics,
    # consent webhooks); None: attributed by that guess, if at all.
    campaign: str | None = None


@dataclass(frozen=True)
class Subscription:
    channel: str
    address: str
    status: Status
    updated_at: datetime | None


@dataclass(frozen=True)
class Recorded:
    """What recording an event did.

    ``created`` is False when nothing was recorded; ``skipped`` then says why: ``duplicate``
    (an event with the same dedupe key exists), ``unchanged`` (the address already had
    that status, for a change that asked to be recorded only if it changes something) or
    ``narrower`` (a provider's opt-in narrower than the opt-out in force, which it cannot undo).
    ``status`` is the status after it, ``previous`` the one before (``unknown``: none).
    """

    created: bool
    status: Status
    previous: Status = "unknown"
    skipped: str | None = None
    event_id: int | None = None


@dataclass(frozen=True)
class KeywordVersion:
    """One accepted keyword configuration. ``source``: file, api, admin or rollback."""

    number: int
    content_hash: str
    document: str  # JSON
    yaml: str
    source: str
    author: str | None
    note: str | None
    diff: str | None
    created_at: datetime


@dataclass(frozen=True)
class NewKeywordVersion:
    content_hash: str
    document: str
    yaml: str
    source: str
    author: str | None = None
    note: str | None = None
    diff: str | None = None


@dataclass(frozen=True)
class EventFilter:
    """Which consent events to list; None means any."""

    channel: str | None = None
    action: str | None = None
    source: str | None = None
    since: datetime | None = None
    until: datetime | None = None


# Twilio message statuses in the order a message moves through them; callbacks may
# arrive out of order, so a campaign message only ever moves to a higher stage.
MESSAGE_STAGES = {
    "accepted": 0, "scheduled": 0, "queued": 0, "sending": 0,
    "sent": 1,
    "failed": 2, "undelivered": 2, "canceled": 2,
    "delivered": 3,
    "read": 4,
}
DELIVERED_STAGE = 3


@dataclass(frozen=True)
class CampaignMessage:
    """One campaign message to one address, by provider message id (status callback or API)."""

    message_id: str
    campaign: str
    channel: str
    address: str
    status: str  # a key of MESSAGE_STAGES
    at: datetime  # when this status was reported

    @property
    def stage(self) -> int:
        return MESSAGE_STAGES[self.status]

    @property
    def delivered(self) -> bool:
        return self.stage >= DELIVERED_STAGE


FEEDBACK_KINDS = ("with_opt_out", "after_opt_out", "page")


@dataclass(frozen=True)
class Feedback:
    """Why someone left: text with the opt-out, the first message soon after it, or the e-mail page."""

    channel: str
    address: str
    kind: str  # one of FEEDBACK_KINDS
    text: str
    received_at: datetime
    message_id: str | None = None
    id: int | None = None
    dedupe_key: str | None = None


REVIEW_STATUSES = ("open", "confirmed", "dismissed")


@dataclass(frozen=True)
class ReviewItem:
    """A message that mentions an opt-out keyword but was not honoured automatically."""

    channel: str
    address: str
    text: str
    received_at: datetime
    message_id: str | None = None
    id: int | None = None
    status: str = "open"
    decided_by: str | None = None
    decided_at: datetime | None = None
    dedupe_key: str | None = None
    # The keyword version in force when the message arrived (a confirmation records it).
    config_version: str | None = None
    # Why it was queued, in an admin's words ("mentions the opt-out keyword CANCEL").
    reason: str | None = None


@dataclass(frozen=True)
class Erasure:
    """What erasing one address removed, and on which channels it stays suppressed by hash."""

    address: str
    suppressed_channels: list[str]
    deleted: dict[str, int]  # table -> rows deleted


@dataclass(frozen=True)
class Suppression:
    """One unsubscribed address on a channel, for exports."""

    channel: str
    address: str
    unsubscribed_at: datetime
    source: str
    keyword: str | None


@dataclass(frozen=True)
class ChannelScope:
    """A channel's ``revocation_scope`` in one keyword version (None: not written, the default)."""

    version: int
    created_at: datetime
    channel: str
    scope: str | None


@dataclass(frozen=True)
class RawStats:
    """Counts from the store for one period; analytics turns them into the report."""

    daily: list[tuple[str, str, str, int]]  # (day YYYY-MM-DD, channel, action, count)
    campaigns: list[tuple[str, str, int, int]]  # (campaign, channel, delivered, attributed opt-outs)
    keywords: list[tuple[str | None, str | None, int]]  # (keyword, language, opt-outs)
    kinds: list[tuple[str, int]]  # (match kind or source, opt-outs)
    feedback: list[Feedback]  # newest first, bounded
    feedback_total: int
    review_open: int
    # (campaign, channel, addresses with a spam complaint attributed to it), like the opt-outs above
    complaints: list[tuple[str, str, int]] = field(default_factory=list)


# -- the outbox: consent webhooks (and, later, provider replies and forwards) ------------------

DELIVERY_STATES = ("pending", "delivered", "failed")


@dataclass(frozen=True)
class Endpoint:
    """A consent webhook endpoint. ``secret`` (whsec_...) signs its deliveries; the API shows it once."""

    id: int
    url: str
    description: str
    enabled: bool
    created_at: datetime
    secret: str = field(repr=False, default="")
    disabled_reason: str | None = None


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery a worker holds for one attempt (its lease runs until ``claimed_until``)."""

    id: int
    lane: str  # deliveries of one lane and one address go out in order
    kind: str  # webhook
    webhook_id: str  # the same on every attempt
    event_type: str | None
    attempts: int  # counting this one
    target: str  # the URL it goes to
    secret: str = field(repr=False, default="")
    body: str | None = None  # None: built from the event at its first attempt, then kept
    endpoint_id: int | None = None
    event_id: int | None = None
    address: str | None = None
    status_after: str | None = None
    previous_status: str | None = None


@dataclass(frozen=True)
class AttemptResult:
    """What one attempt did, and what happens to the delivery next.

    ``outcome``: delivered, retry (at ``next_attempt_at``), failed (no attempt left, or the
    endpoint answered 410 Gone: ``disable_endpoint``), or released (not attempted: the
    worker is stopping; no attempt is counted)."""

    delivery_id: int
    outcome: str
    attempted_at: datetime
    worker: str
    status_code: int | None = None
    duration_ms: int | None = None
    excerpt: str = ""
    error: str | None = None
    next_attempt_at: datetime | None = None
    body: str | None = None  # the body sent, kept so that every attempt sends the same one
    disable_endpoint: bool = False


@dataclass(frozen=True)
class Attempt:
    attempted_at: datetime
    status_code: int | None
    duration_ms: int | None
    excerpt: str
    error: str | None


@dataclass(frozen=True)
class Delivery:
    """One delivery as the API and the admin page show it."""

    id: int
    endpoint_id: int | None
    webhook_id: str
    event_type: str | None
    state: str
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    last_status: int | None
    last_error: str | None
    body: str | None
    log: list[Attempt] = field(default_factory=list)


@dataclass(frozen=True)
class Backlog:
    pending: int
    oldest_due_seconds: float  # how long the oldest due delivery has waited (0 when none is due)
    failed: int = 0
    forwards_waiting: int = 0  # forwards to a business's webhook that failed and wait to be retried


@dataclass(frozen=True)
class ForwardRecord:
    """A forwarded message's call to the business's webhook: calling, answered or failed."""

    state: str
    status_code: int | None = None
    content_type: str | None = None
    answer: bytes | None = None
