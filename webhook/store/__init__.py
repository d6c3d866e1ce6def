"""Persistence behind one small ``Store`` protocol; SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Protocol

from webhook.domain import ConsentEvent, EventFilter, KeywordVersion, NewKeywordVersion, Recorded, Subscription

MIGRATIONS = Path(__file__).with_name("migrations")


class StoreUnavailable(Exception):
    """The database cannot take the change now (down, locked too long). Answer 503 and retry."""


class Store(Protocol):
    kind: str

    def migrate(self) -> list[str]:
        """Apply pending numbered migrations; safe when several processes start at once."""

    def record(self, event: ConsentEvent) -> Recorded:
        """Append an event and update the current status, in one transaction.

        Idempotent by ``event.message_id``: a repeat records nothing and returns created=False.
        The status follows the latest event by ``occurred_at``; an older event never overrides it.
        """

    def import_events(self, events: list[ConsentEvent]) -> int:
        """Append events recorded elsewhere, times kept, in one transaction; repeats skipped."""

    def iter_events(self, batch: int = 1000) -> Iterator[list[ConsentEvent]]:
        """Every event in the order it was recorded, in batches."""

    def subscription(self, channel: str, address: str) -> Subscription | None: ...

    def history(self, channel: str, address: str, limit: int = 100) -> list[ConsentEvent]:
        """Events for one channel and address, oldest first."""

    def unsubscribed_among(self, channel: str, addresses: Iterable[str]) -> set[str]:
        """Which of these (normalised) addresses are unsubscribed on the channel."""

    def event_count(self, since: datetime | None = None) -> int: ...

    def events(self, filters: EventFilter, limit: int = 50, offset: int = 0) -> tuple[list[ConsentEvent], int]:
        """Events matching the filters, newest first, and how many match in all."""

    def add_keyword_version(self, version: NewKeywordVersion, *, only_if_file_changed: bool = False) -> KeywordVersion:
        """Append a keyword configuration version and return it.

        ``only_if_file_changed``: for a file read at start-up; when the latest version that
        came from the file has the same content hash, nothing is added and the latest
        version of all is returned (an admin's later edits stay in force). Atomic, so
        processes starting together add one version.
        """

    def latest_keyword_version(self) -> KeywordVersion | None: ...

    def latest_keyword_version_number(self) -> int:
        """0 when there is none; cheap, for polling."""

    def keyword_version(self, number: int) -> KeywordVersion | None: ...

    def keyword_versions(self, limit: int = 50, offset: int = 0) -> list[KeywordVersion]:
        """Newest first."""

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

    def close(self) -> None: ...


EVENT_COLUMNS = (
    "id, channel, address, action, source, keyword, language, match_kind, raw_text, "
    "message_id, config_version, reason, occurred_at, recorded_at"
)
# Larger numbers cannot exist and do not fit a 64-bit integer column: no such version.
MAX_VERSION_NUMBER = 2**63 - 1
VERSION_COLUMNS = "id, content_hash, document, yaml, source, author, note, diff, created_at"


def event_from_row(row: Mapping[str, Any], when: Callable[[Any], datetime]) -> ConsentEvent:
    """A consent_events row as a value; ``when`` reads the backend's time column."""
    return ConsentEvent(
        id=row["id"], channel=row["channel"], address=row["address"], action=row["action"], source=row["source"],
        keyword=row["keyword"], language=row["language"], match_kind=row["match_kind"], raw_text=row["raw_text"],
        message_id=row["message_id"], config_version=row["config_version"], reason=row["reason"],
        occurred_at=when(row["occurred_at"]), recorded_at=when(row["recorded_at"]),
    )


def version_from_row(row: Mapping[str, Any], when: Callable[[Any], datetime]) -> KeywordVersion:
    """A keyword_versions row as a value."""
    return KeywordVersion(
        number=int(row["id"]), content_hash=row["content_hash"], document=row["document"], yaml=row["yaml"],
        source=row["source"], author=row["author"], note=row["note"], diff=row["diff"],
        created_at=when(row["created_at"]),
    )


def open_store(database_url: str) -> Store:
    """The store a ``DATABASE_URL`` names (``sqlite:///...`` or ``postgresql://...``)."""
    if database_url.startswith(("postgresql:", "postgres:")):
        from webhook.store.postgres import PostgresStore

        return PostgresStore(database_url)
    from webhook.store.sqlite import SQLiteStore

    return SQLiteStore(database_url)


def migration_files(kind: str) -> list[tuple[int, str, str]]:
    """(number, name, sql) of every migration for a backend, in order."""
    found = []
    for path in sorted((MIGRATIONS / kind).glob("*.sql")):
        number = int(path.name.split("_", 1)[0])
        found.append((number, path.stem, path.read_text(encoding="utf-8")))
    numbers = [n for n, _, _ in found]
    if numbers != sorted(set(numbers)):
        raise RuntimeError(f"duplicate migration numbers in {MIGRATIONS / kind}")
    return found
