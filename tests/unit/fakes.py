"""A small in-memory Store for unit tests of the pure core (no driver mocks)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Iterable

from webhook.domain import STATUS_OF_ACTION, ConsentEvent, Recorded, Subscription, utcnow


class FakeStore:
    kind = "fake"

    def __init__(self) -> None:
        self.events: list[ConsentEvent] = []
        self.current: dict[tuple[str, str], Subscription] = {}

    def migrate(self) -> list[str]:
        return []

    def record(self, event: ConsentEvent) -> Recorded:
        key = (event.channel, event.address)
        if event.message_id and any(e.message_id == event.message_id for e in self.events):
            sub = self.current.get(key)
            return Recorded(False, sub.status if sub else "unknown")
        self.events.append(replace(event, id=len(self.events) + 1, recorded_at=utcnow()))
        sub = self.current.get(key)
        if sub is None or sub.updated_at is None or event.occurred_at >= sub.updated_at:
            self.current[key] = Subscription(event.channel, event.address, STATUS_OF_ACTION[event.action], event.occurred_at)
        return Recorded(True, self.current[key].status)

    def subscription(self, channel: str, address: str) -> Subscription | None:
        return self.current.get((channel, address))

    def history(self, channel: str, address: str, limit: int = 100) -> list[ConsentEvent]:
        found = [e for e in self.events if (e.channel, e.address) == (channel, address)]
        return sorted(found, key=lambda e: (e.occurred_at, e.id or 0))[-limit:]

    def unsubscribed_among(self, channel: str, addresses: Iterable[str]) -> set[str]:
        return {a for a in addresses if (s := self.current.get((channel, a))) and s.status == "unsubscribed"}

    def event_count(self, since: datetime | None = None) -> int:
        return len([e for e in self.events if since is None or e.occurred_at >= since])

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None
