"""One place records a change of consent: ``record_change``.

Every path that changes a subscription (inbound messages, status callbacks, one-click and
the unsubscribe page, inbound mail, the admin API and pages, review confirmations,
imports) builds a ``ConsentEvent`` and calls ``record_change``; none writes events itself.
The store writes the event and the status it implies in one transaction.
"""

from __future__ import annotations

import re
from dataclasses import replace

from webhook import metrics
from webhook.domain import ConsentEvent, Recorded, utcnow
from webhook.store import Store

MAX_RAW_TEXT = 2000
# Characters a text column should not hold (PostgreSQL refuses NUL): C0 controls but tab/newline.
_UNSAFE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class NotRecorded(Exception):
    """A change that had to be recorded was not (``recorded.skipped`` says why)."""

    def __init__(self, message: str, recorded: Recorded) -> None:
        super().__init__(message)
        self.recorded = recorded


def safe_text(text: str | None, limit: int = MAX_RAW_TEXT) -> str | None:
    """Raw text as the database can hold it: control characters dropped, length bounded."""
    if text is None:
        return None
    return _UNSAFE.sub("", text[: limit * 2])[:limit]


def record_change(store: Store, event: ConsentEvent, *, only_if_changes: bool = False, required: bool = False) -> Recorded:
    """Record one consent event and the status it implies, in one transaction.

    ``only_if_changes``: record nothing when the address already has the status the event
    would set (a repeated one-click, an imported opt-out of someone already out).
    ``required``: the caller means to record something (an admin confirmed an opt-out),
    so recording nothing raises NotRecorded instead of passing for success.
    """
    recorded = store.record(not_in_future(event), only_if_changes=only_if_changes)
    if recorded.created:  # committed: counted (unsub_consent_changes_total)
        metrics.count_consent_change(event.channel, event.action, event.source)
    if required and not recorded.created:
        why = {"duplicate": "an event with the same id is already recorded",
               "unchanged": "the address already has that status"}.get(recorded.skipped or "", "unknown reason")
        raise NotRecorded(f"nothing was recorded: {why}", recorded)
    return recorded


def record_changes(store: Store, events: list[ConsentEvent], *, only_if_changes: bool = False) -> int:
    """Record events that arrived together (an imported list), in one transaction; how many were added."""
    return store.import_events([not_in_future(event) for event in events], only_if_changes=only_if_changes,
                               on_added=_count)


def _count(event: ConsentEvent) -> None:
    metrics.count_consent_change(event.channel, event.action, event.source)


def not_in_future(event: ConsentEvent) -> ConsentEvent:
    """The event with a time later than now (a provider's clock, a forged or mistyped time)
    brought back to now. The latest time wins a contact's status, so a future-dated START
    would outrank, and silently ignore, the real STOP the contact sends next. Clamped, not
    refused: the change itself is real, only its time is not."""
    now = utcnow()
    return replace(event, occurred_at=now) if event.occurred_at > now else event
