"""Inbound messages and mails: decide what they ask for, record it, choose the reply.

``decide`` is the service's one decision about a message (an intent, a review, or
nothing); the webhook, ``unsub match``, ``POST /api/v1/keywords/try`` and the admin Try box
all use it, so a dry run says what the service would do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from webhook import metrics
from webhook.analytics import reason_in
from webhook.consent.campaigns import check_campaign_id
from webhook.consent.changes import record_change, safe_text
from webhook.consent.contacts import AddressHash, erased
from webhook.domain import (
    MESSAGE_STAGES,
    CampaignMessage,
    ConsentEvent,
    Feedback,
    InboundMail,
    InboundMessage,
    PreferenceChange,
    Recorded,
    ReviewItem,
    StatusReport,
    dedupe_key,
    utcnow,
)
from webhook.keywords import Channel, KeywordConfig
from webhook.matching import Match, judge, match
from webhook.store import Store

# Twilio OptOutType -> our intent.
PROVIDER_INTENTS = {"STOP": "opt_out", "START": "opt_in", "HELP": "help"}
# The first message within this time after an opt-out is kept as its reason.
FEEDBACK_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Decision:
    """What a message asks for on a channel: a match, or a reason to review it, or nothing."""

    match: Match | None
    text: str  # the text the match was found in (the button payload, else the body)
    review_reason: str | None = None

    @property
    def intent(self) -> str | None:
        """opt_out, opt_in, help, review (an admin decides), or None (an ordinary message)."""
        if self.match is not None:
            return self.match.intent
        return "review" if self.review_reason else None


def decide(channel: Channel, body: str, button_payload: str | None = None, provider_intent: str | None = None) -> Decision:
    """The service's decision about one message on one channel (pure)."""
    # A WhatsApp quick-reply's payload is what the business defined: it wins over Body.
    found, text, reason = None, body, None
    if button_payload:
        found = match(button_payload, channel.index)
        if found is not None:
            text = button_payload
    if found is None:
        found, reason = judge(body, channel.index)
    hint = PROVIDER_INTENTS.get((provider_intent or "").upper())
    if hint and (found is None or found.intent != hint):
        # The provider matched it with its own list: trust it, we have the raw text.
        found = Match(hint, text.strip()[:40] or hint, channel.languages[0], "provider")
    if found is None:
        return Decision(None, text, reason)
    return Decision(found, text)


@dataclass(frozen=True)
class DryRun:
    """What a message would do on a channel for a contact with no history, with nothing recorded."""

    channel: str
    decision: Decision
    reply: str | None
    version: str | None

    @property
    def match(self) -> Match | None:
        return self.decision.match

    def as_dict(self) -> dict[str, object]:
        found = self.decision.match
        return {
            "channel": self.channel,
            "intent": self.decision.intent,
            "keyword": found.keyword if found else None,
            "language": found.language if found else None,
            "kind": found.kind if found else None,
            "reply": self.reply,
            "changes_subscription": bool(found and found.intent in ("opt_out", "opt_in")),
            "review_reason": self.decision.review_reason,
            "version": self.version,
        }


def dry_run(channel: Channel, text: str, version: str | None = None) -> DryRun:
    """Decide a message on a channel and pick its reply, recording nothing (CLI, API, admin pages)."""
    decision = decide(channel, text)
    found = decision.match
    return DryRun(channel.name, decision, channel.reply(found.intent, found.language) if found else None, version)


@dataclass(frozen=True)
class Outcome:
    """What an inbound message did: the channel, the match, whether a change was recorded, the reply."""

    channel: str
    match: Match | None
    recorded: Recorded | None
    reply: str | None
    kept: str | None = None  # "feedback" or "review" when an ordinary message was kept

    @property
    def intent(self) -> str:
        """opt_out, opt_in, help, review (queued for an admin) or none."""
        if self.match is not None:
            return self.match.intent
        return "review" if self.kept == "review" else "none"


def matched_event(
    channel: Channel, address: str, found: Match, source: str, text: str, message_id: str | None, key: str | None,
    config_version: str | None, at: datetime,
) -> ConsentEvent:
    """The consent event a matched opt-out or opt-in message records."""
    return ConsentEvent(
        channel=channel.name, address=address, action=found.intent,  # type: ignore[arg-type]
        source=source, occurred_at=at, keyword=found.keyword, language=found.language, match_kind=found.kind,
        raw_text=safe_text(text), message_id=message_id, config_version=config_version, dedupe_key=key,
    )


def handle_inbound(msg: InboundMessage, config: KeywordConfig, store: Store) -> Outcome:
    """Match an inbound message on its channel, record an opt-out/opt-in, and choose the reply.

    Only the channel the message arrived on changes. The change is committed before this
    returns; a repeated message id records nothing new and gets the same reply.
    """
    outcome = _handle_inbound(msg, config, store)
    skipped = outcome.recorded.skipped if outcome.recorded is not None else None
    metrics.count_inbound(msg.provider, outcome.channel, metrics.inbound_intent(outcome.intent, skipped))
    return outcome


def _handle_inbound(msg: InboundMessage, config: KeywordConfig, store: Store) -> Outcome:
    channel = config.channel_for(msg.channel_type, msg.identities)
    decision = decide(channel, msg.body, msg.button_payload, msg.provider_intent)
    found = decision.match
    if found is None:
        return Outcome(channel.name, None, None, None, _keep_ordinary(msg, channel, config, store, decision.review_reason))
    recorded = None
    if found.intent in ("opt_out", "opt_in"):
        recorded = record_change(store, matched_event(
            channel, msg.address, found, "keyword", decision.text, msg.message_id, msg.dedupe_key, config.version,
            msg.received_at,
        ))
        if found.intent == "opt_out" and reason_in(decision.text, found):
            # "STOP too many texts": the opt-out is recorded above; the words are its reason.
            store.add_feedback(Feedback(channel.name, msg.address, "with_opt_out", safe_text(decision.text) or "",
                                        msg.received_at, msg.message_id, dedupe_key=msg.dedupe_key))
    # With OptOutType the provider has already sent its confirmation: send none.
    reply = None if msg.provider_intent else channel.reply(found.intent, found.language)
    return Outcome(channel.name, found, recorded, reply)


def _keep_ordinary(msg: InboundMessage, channel: Channel, config: KeywordConfig, store: Store,
                   reason: str | None) -> str | None:
    """Keep an ordinary message (no reply either way) as feedback or for review.

    The first message within FEEDBACK_WINDOW after an opt-out is its reason. Otherwise a
    message that mentions an opt-out keyword without clearly opting out ("Cancel my
    order, it's late") waits for an admin in the review queue, with why it was queued and
    the keyword version it arrived under.
    """
    text = safe_text(msg.body.strip())
    if not text:
        return None
    current = store.subscription(channel.name, msg.address)
    if current is not None and current.status == "unsubscribed":
        # Already out on this channel: nothing to review; soon after the opt-out, a reason.
        if current.updated_at is not None and msg.received_at - FEEDBACK_WINDOW <= current.updated_at <= msg.received_at:
            item = Feedback(channel.name, msg.address, "after_opt_out", text, msg.received_at, msg.message_id,
                            dedupe_key=msg.dedupe_key)
            if store.add_feedback_after_opt_out(item, FEEDBACK_WINDOW):
                return "feedback"
        return None
    if reason is not None:
        store.add_review_item(ReviewItem(channel.name, msg.address, text, msg.received_at, msg.message_id,
                                         dedupe_key=msg.dedupe_key, config_version=config.version, reason=reason))
        return "review"
    return None


@dataclass(frozen=True)
class StatusOutcome:
    """What a provider's status report did: the opt-out it recorded (the recipient blocks us),
    and whether it moved a campaign message on."""

    channel: str
    recorded: Recorded | None
    campaign_message: bool = False


def handle_status(report: StatusReport, config: KeywordConfig, store: Store, hash_for: AddressHash,
                  campaign: str | None = None) -> StatusOutcome:
    """A provider's report on a message we sent.

    When the provider says the recipient blocks us (``recipient_blocked``: its own policy,
    e.g. Twilio 21610, WhatsApp 131050) an opt-out of that channel is recorded with source
    ``carrier``. With ``campaign`` (checked by the caller) the message's delivery is
    recorded for attribution, unless the address was erased since (a late callback must not
    bring it back).
    """
    channel = config.channel_for(report.channel_type, report.identities)
    recorded = None
    if report.recipient_blocked:
        code = report.error_code or "blocked"
        recorded = record_change(store, ConsentEvent(
            channel=channel.name, address=report.recipient, action="opt_out", source="carrier",
            occurred_at=report.at or utcnow(), match_kind="carrier", message_id=report.message_id,
            dedupe_key=dedupe_key(report.id_namespace, f"{report.message_id}:{code}"),
            config_version=config.version, reason=f"provider error {code}",
        ))
    moved = False
    if campaign is not None and report.status in MESSAGE_STAGES:
        message = CampaignMessage(report.message_id, campaign, channel.name, report.recipient, report.status,
                                  report.at or utcnow())
        if not erased(store, channel.name, report.recipient, hash_for):
            store.record_campaign_messages([message])
            moved = True
    return StatusOutcome(channel.name, recorded, moved)


# What a provider may report without a message: the contact acted in the provider's own
# settings or links, or reported the message as spam.
PREFERENCE_SOURCES = ("provider", "complaint")


def handle_preference(change: PreferenceChange, config: KeywordConfig, store: Store) -> Recorded:
    """A provider says the contact switched marketing off or on again (WhatsApp settings,
    SendGrid and Mailgun unsubscribes and groups: source ``provider``) or reported a message
    as spam (source ``complaint``, always an opt-out): an opt-out or opt-in of the channel the
    provider's identities bind, recorded once per provider key, and no reply (they acted
    there, or on a message they never want to hear about again)."""
    if change.source not in PREFERENCE_SOURCES:
        raise ValueError(f"a provider's preference change has source provider or complaint, not {change.source!r}")
    channel = config.channel_for(change.channel_type, change.identities)
    if change.action == "opt_in" and change.undoes is not None:
        latest = store.history(channel.name, change.address, limit=1)
        if latest and latest[-1].action == "opt_out" and (latest[-1].match_kind, latest[-1].reason) != change.undoes:
            # Rejoining one SendGrid group does not undo leaving every mail, or a spam report.
            return Recorded(created=False, status="unsubscribed", previous="unsubscribed", skipped="narrower")
    return record_change(store, ConsentEvent(
        channel=channel.name, address=change.address, action=change.action, source=change.source,
        occurred_at=change.at, match_kind=change.match_kind, dedupe_key=dedupe_key(change.id_namespace, change.key),
        message_id=safe_text(change.message_id, 250), config_version=config.version,
        reason=safe_text(change.detail, 500) if change.detail else None, campaign=named_campaign(change),
    ))


def named_campaign(change: PreferenceChange) -> str | None:
    """The campaign the provider names for an opt-out, when it is a campaign id the API could
    name too (``check_campaign_id``); otherwise none, and the opt-out is still recorded.
    Only opt-outs are attributed: a re-subscription is not a campaign's doing."""
    if change.action != "opt_out" or change.campaign is None:
        return None
    try:
        return check_campaign_id(change.campaign)
    except ValueError:
        return None


def _mail_key(mail: InboundMail) -> str | None:
    """A mail's id for "already recorded": its Message-Id, for its sender. The Message-Id is
    the sender's software's text, and some tools send every mail with the same one: keyed by
    Message-Id alone, one person's mail would make another's opt-out a "duplicate" (lost)."""
    return f"{mail.sender} {mail.message_id}" if mail.message_id else None


def handle_inbound_mail(mail: InboundMail, config: KeywordConfig, store: Store) -> Match | None:
    """A mail whose subject or first line is an opt-out unsubscribes its sender from e-mail.

    Only opt-outs count by mail: nobody is re-subscribed by a message we cannot answer.
    """
    channel = config.channels["email"]
    for text in (mail.subject, mail.first_line):
        found = match(text, channel.index)
        if found is not None and found.intent == "opt_out":
            record_change(store, matched_event(
                channel, mail.sender, found, "inbound_mail", text, safe_text(mail.message_id, 250),
                dedupe_key("mail", _mail_key(mail)), config.version, utcnow(),
            ))
            return found
    return None
