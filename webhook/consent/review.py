"""The review queue: messages that mention an opt-out word but were not honoured automatically."""

from __future__ import annotations

from webhook.consent.changes import NotRecorded, record_change, safe_text
from webhook.domain import ConsentEvent, ReviewItem, dedupe_key
from webhook.store import Store


class NotOpen(ValueError):
    """The review item does not exist or was decided already, or its opt-out could not be recorded."""


def decide_review(store: Store, item_id: int, decision: str, actor: str) -> ReviewItem:
    """Confirm (record the opt-out, source ``admin``, kind ``review``) or dismiss an open item.

    A confirmed opt-out takes the time of the message and the keyword version it arrived
    under, so a later opt-in still wins and the audit shows what was in force. Its id is
    ``review:<item id>``, a namespace no provider's message can reach.
    """
    item = store.review_item(item_id)
    if item is None or item.status != "open":
        raise NotOpen(f"review item {item_id} is not open" if item else f"no review item {item_id}")
    if decision not in ("confirm", "dismiss"):
        raise ValueError("decision must be 'confirm' or 'dismiss'")
    if decision == "confirm":
        try:
            record_change(store, ConsentEvent(
                channel=item.channel, address=item.address, action="opt_out", source="admin",
                occurred_at=item.received_at, match_kind="review", raw_text=item.text, message_id=item.message_id,
                dedupe_key=dedupe_key("review", str(item_id)), config_version=item.config_version,
                reason=safe_text(f"{actor}: confirmed from the review queue", 500),
            ), required=True)
        except NotRecorded as error:
            raise NotOpen(f"review item {item_id} was not confirmed: {error}; the item stays open") from None
    if not store.decide_review_item(item_id, "confirmed" if decision == "confirm" else "dismissed", actor):
        other = store.review_item(item_id)
        by = f" by {other.decided_by}" if other and other.decided_by else ""
        kept = "; the opt-out is recorded all the same (change the status by hand to undo it)" if decision == "confirm" else ""
        raise NotOpen(f"review item {item_id} was {other.status if other else 'decided'}{by} meanwhile{kept}")
    decided = store.review_item(item_id)
    assert decided is not None
    return decided
