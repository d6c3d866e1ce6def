"""A small in-memory Store for unit tests of the pure core (no driver mocks)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Iterable

from webhook.domain import STATUS_OF_ACTION, ConsentEvent, Feedback, Recorded, ReviewItem, Subscription, utcnow


class FakeStore:
    kind = "fake"

    def __init__(self) -> None:
        self.events: list[ConsentEvent] = []
        self.current: dict[tuple[str, str], Subscription] = {}
        self.feedback: list[Feedback] = []
        self.reviews: list[ReviewItem] = []
        self.erased: dict[tuple[str, str], datetime] = {}  # (channel, hash) -> erased at

    def migrate(self) -> list[str]:
        return []

    def record(self, event: ConsentEvent, *, only_if_changes: bool = False) -> Recorded:
        key = (event.channel, event.address)
        sub = self.current.get(key)
        previous = sub.status if sub else "unknown"
        if only_if_changes and previous == STATUS_OF_ACTION[event.action]:
            return Recorded(False, previous, previous, "unchanged")
        if event.dedupe_key and any(e.dedupe_key == event.dedupe_key for e in self.events):
            return Recorded(False, previous, previous, "duplicate")
        stored = replace(event, id=len(self.events) + 1, recorded_at=event.recorded_at or utcnow())
        self.events.append(stored)
        if sub is None or sub.updated_at is None or event.occurred_at >= sub.updated_at:
            self.current[key] = Subscription(event.channel, event.address, STATUS_OF_ACTION[event.action], event.occurred_at)
        return Recorded(True, self.current[key].status, previous, None, stored.id)

    def import_events(self, events: list[ConsentEvent], *, only_if_changes: bool = False, on_added=None) -> int:
        added = [event for event in events if self.record(event, only_if_changes=only_if_changes).created]
        for event in added if on_added else ():
            on_added(event)
        return len(added)

    def iter_events(self, batch: int = 1000):
        for start in range(0, len(self.events), batch):
            yield self.events[start:start + batch]

    def subscription(self, channel: str, address: str) -> Subscription | None:
        return self.current.get((channel, address))

    def history(self, channel: str, address: str, limit: int = 100) -> list[ConsentEvent]:
        found = [e for e in self.events if (e.channel, e.address) == (channel, address)]
        return sorted(found, key=lambda e: (e.occurred_at, e.id or 0))[-limit:]

    def statuses_among(self, channel: str, addresses: Iterable[str]) -> dict[str, str]:
        return {a: s.status for a in addresses if (s := self.current.get((channel, a)))}

    def has_erasures(self, channel: str) -> bool:
        return any(c == channel for c, _ in self.erased)

    def use_erasure_hasher(self, hash_for) -> None:
        self.erasure_hasher = hash_for

    def status_count(self, channel: str) -> int:
        return sum(1 for c, _ in self.current if c == channel) + sum(1 for c, _ in self.erased if c == channel)

    def erased_among(self, channel: str, hashes: Iterable[str]) -> dict[str, datetime]:
        return {h: self.erased[(channel, h)] for h in hashes if (channel, h) in self.erased}

    def add_feedback(self, item: Feedback) -> bool:
        if (item.channel, item.address) not in self.current:
            return False
        if item.dedupe_key and any(f.dedupe_key == item.dedupe_key for f in self.feedback):
            return False
        self.feedback.append(replace(item, id=len(self.feedback) + 1))
        return True

    def add_feedback_after_opt_out(self, item: Feedback, window: timedelta) -> bool:
        sub = self.current.get((item.channel, item.address))
        if sub is None or sub.status != "unsubscribed" or sub.updated_at is None:
            return False
        if not item.received_at - window <= sub.updated_at <= item.received_at:
            return False
        if any((f.channel, f.address, f.kind) == (item.channel, item.address, "after_opt_out")
               and f.received_at >= sub.updated_at for f in self.feedback):
            return False
        return self.add_feedback(item)

    def add_review_item(self, item: ReviewItem) -> bool:
        if item.dedupe_key and any(r.dedupe_key == item.dedupe_key for r in self.reviews):
            return False
        self.reviews.append(replace(item, id=len(self.reviews) + 1))
        return True

    def review_item(self, item_id: int) -> ReviewItem | None:
        return next((r for r in self.reviews if r.id == item_id), None)

    def decide_review_item(self, item_id: int, status: str, decided_by: str) -> bool:
        for i, item in enumerate(self.reviews):
            if item.id == item_id and item.status == "open":
                self.reviews[i] = replace(item, status=status, decided_by=decided_by, decided_at=utcnow())
                return True
        return False

    def event_count(self, since: datetime | None = None) -> int:
        return len([e for e in self.events if since is None or e.occurred_at >= since])

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None
