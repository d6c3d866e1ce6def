"""Times in SQLite: fixed-width UTC text, so that text order is time order."""

from __future__ import annotations

from datetime import datetime, timezone


def to_text(moment: datetime) -> str:
    """Fixed-width UTC text (2026-11-26T10:00:00.000000Z), so that text order is time order."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def from_text(text: str) -> datetime:
    return datetime.fromisoformat(text)
