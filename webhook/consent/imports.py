"""Suppression lists recorded as opt-outs (Twilio, Klaviyo, Mailchimp exports, plain lists, our own export)."""

from __future__ import annotations

from datetime import datetime

from webhook.consent.changes import record_changes, safe_text
from webhook.domain import ConsentEvent, dedupe_key, iso
from webhook.keywords import Channel, KeywordConfig
from webhook.store import Store


def import_event(channel: Channel, address: str, when: datetime | None, default_at: datetime, file_name: str,
                 reason: str, config: KeywordConfig) -> ConsentEvent:
    """The opt-out one row of a suppression list records (source ``import``).

    The same row imported again has the same id (``import:`` namespace: no provider
    message can take it), so it records nothing new.
    """
    return ConsentEvent(
        channel=channel.name, address=address, action="opt_out", source="import", occurred_at=when or default_at,
        match_kind="import",
        dedupe_key=dedupe_key("import", f"{channel.name}:{address}:{iso(when) if when else 'undated'}"),
        config_version=config.version,
        reason=safe_text(f"{file_name}: {reason}" if reason else file_name, 500),
    )


def import_opt_outs(store: Store, events: list[ConsentEvent]) -> int:
    """Record imported opt-outs in one transaction; how many were new.

    An address already unsubscribed on the channel records nothing: re-importing our own
    export (or another tool's list of the same people) adds no second opt-out and does
    not inflate the day's statistics. An older opt-out never overrides a newer opt-in.
    """
    return record_changes(store, events, only_if_changes=True)
