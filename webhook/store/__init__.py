"""Persistence behind one small ``Store`` protocol; SQLite (embedded default) or PostgreSQL."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Protocol

from webhook.domain import (
    AttemptResult,
    Backlog,
    CampaignMessage,
    ChannelScope,
    ClaimedDelivery,
    ConsentEvent,
    Delivery,
    Endpoint,
    Erasure,
    EventFilter,
    Feedback,
    ForwardRecord,
    KeywordVersion,
    NewKeywordVersion,
    RawStats,
    Recorded,
    ReviewItem,
    Subscription,
    Suppression,
)

if TYPE_CHECKING:
    from webhook.outbox import EventFacts

MIGRATIONS = Path(__file__).with_name("migrations")


# What an erasure keeps of each provider message id (dedupe key) of the erased contact: the
# erasure key's HMAC of this namespace and the key (a name no channel can have: it has spaces).
ERASED_KEY_NAMESPACE = "provider message id"
# The tables whose dedupe keys an erasure remembers as hashes.
KEYED_TABLES = ("consent_events", "feedback", "review_items")


def erased_key_hash(hash_for: Callable[[str, str], str] | None, key: str | None) -> str | None:
    """The keyed hash an erasure keeps of a dedupe key (None without a hasher or a key)."""
    return hash_for(ERASED_KEY_NAMESPACE, key) if hash_for is not None and key else None


def campaign_message_key(message_id: str) -> str:
    """A campaign message's id as an erasure remembers it (apart from the events' dedupe keys)."""
    return f"campaign-message:{message_id}"


class StoreUnavailable(Exception):
    """The database cannot take the change now (down, locked too long). Answer 503 and retry."""

    connection_lost = False  # the connection used was found dead (PostgreSQL): nothing else known


class ErasureKeyMismatch(Exception):
    """The erased-address hashes in this database were made with another key."""


# hash_for(channel, address) of this pair is the key's fingerprint: no real address is empty.
FINGERPRINT_PAIR = ("erasure-key-check", "")


def key_fingerprint(hash_for: Callable[[str, str], str]) -> str:
    return hash_for(*FINGERPRINT_PAIR)


def erasure_key_matches(store: "Store", hash_for: Callable[[str, str], str]) -> bool:
    """False when this database's erased addresses were hashed with another key (before any
    erasure every key fits): such a service would not recognise them, so it must not run."""
    recorded = store.erasure_key_fingerprint()
    return recorded is None or recorded == key_fingerprint(hash_for)


class Store(Protocol):
    kind: str

    def migrate(self) -> list[str]:
        """Apply pending numbered migrations; safe when several processes start at once."""

    def record(self, event: ConsentEvent, *, only_if_changes: bool = False) -> Recorded:
        """Append an event and update the current status, in one transaction.

        Idempotent by ``event.dedupe_key``: a repeat records nothing (created=False,
        skipped="duplicate"). With ``only_if_changes`` an event that would set the status
        the address already has records nothing either (skipped="unchanged"). The status
        follows the latest event by ``occurred_at``; an older event never overrides it.
        Only ``consent.record_change`` calls this (one place records a change).
        """

    def import_events(self, events: list[ConsentEvent], *, only_if_changes: bool = False,
                      on_added: Callable[[ConsentEvent], None] | None = None) -> int:
        """Append events recorded elsewhere, times kept, in one transaction; repeats (and,
        with ``only_if_changes``, events that change nothing) skipped. Returns how many were added;
        ``on_added`` is called with each added event once the transaction is committed."""

    def iter_events(self, batch: int = 1000) -> Iterator[list[ConsentEvent]]:
        """Every event in the order it was recorded, in batches."""

    def subscription(self, channel: str, address: str) -> Subscription | None: ...

    def history(self, channel: str, address: str, limit: int = 100) -> list[ConsentEvent]:
        """Events for one channel and address, oldest first."""

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

    def channel_scopes(self, since: datetime, until: datetime) -> list[ChannelScope]:
        """Each channel's revocation_scope in the keyword version in force at ``since`` (when
        there is one) and in every version created in [since, until), by version. Read in
        the database (JSON functions), so documents are not shipped to the process."""

    # -- campaigns, feedback, review, erasure, statistics --------------------------------

    def record_campaign_messages(self, messages: list[CampaignMessage]) -> int:
        """Add or move forward campaign messages by message id, in one transaction.

        A message keeps its first campaign, channel and address; its status only moves
        to a higher stage; ``delivered_at`` is the first time it was delivered. Returns
        how many message ids were new.
        """

    def statuses_among(self, channel: str, addresses: Iterable[str]) -> dict[str, str]:
        """The current status of each of these addresses that has one on the channel."""

    def has_erasures(self, channel: str) -> bool: ...

    def use_erasure_hasher(self, hash_for: Callable[[str, str], str]) -> None:
        """The erasure key's hasher, so that a provider message id an erasure saw (a replayed
        webhook of an erased contact) is a duplicate, not recorded again. Set by create_app."""
        ...

    def status_count(self, channel: str) -> int:
        """How many contacts this channel holds a status for: subscription rows and erased
        contacts' hashes (what a keyword edit that drops the channel would orphan)."""
        ...

    def erased_among(self, channel: str, hashes: Iterable[str]) -> dict[str, datetime]:
        """Which of these keyed hashes belong to erased, suppressed addresses (hash -> erased at)."""

    def erase(self, address: str, hash_for: Callable[[str, str], str]) -> Erasure:
        """Delete everything about an address on every channel, in one transaction.

        On each channel where it was unsubscribed, ``hash_for(channel, address)`` is kept
        so it stays suppressed; where it is subscribed, a hash left by an earlier erasure
        is removed. The only deletion the consent log allows. The first erasure records
        the key's fingerprint; one with another key raises ErasureKeyMismatch, erasing nothing.
        """

    def erasure_key_fingerprint(self) -> str | None:
        """The fingerprint of the key erased addresses were hashed with; None before any erasure."""

    def contact_events(self, address: str) -> list[ConsentEvent]:
        """Consent events for an address on every channel, oldest first (audit export)."""

    def contact_feedback(self, address: str) -> list[Feedback]: ...

    def iter_suppressions(self, channel: str, batch: int = 1000, after: str = "") -> Iterator[list[Suppression]]:
        """Unsubscribed addresses of a channel in address order (those after ``after``), in batches."""

    def iter_rows(self, table: str, batch: int = 1000) -> Iterator[list[dict[str, Any]]]:
        """Every row of one of COPY_TABLES in key order, times as aware datetimes (copy-db)."""

    def import_rows(self, table: str, rows: list[dict[str, Any]]) -> int:
        """Add rows read by ``iter_rows`` (of any backend) in one transaction; rows whose
        key is already there are skipped. Returns how many were added."""

    def suppression_count(self, channel: str) -> int:
        """How many addresses are unsubscribed on the channel."""

    def add_feedback(self, item: Feedback) -> bool:
        """Keep a reason for an address that has a status on the channel (it follows an
        opt-out); a repeated message id, or an address erased meanwhile, adds nothing."""

    def add_feedback_after_opt_out(self, item: Feedback, window: timedelta) -> bool:
        """Keep a message as the reason when it is the first one since the address opted
        out on that channel, at most ``window`` earlier. Atomic; False when not kept."""

    def feedback_items(self, limit: int = 50, offset: int = 0) -> tuple[list[Feedback], int]:
        """Newest first, and how many there are."""

    def add_review_item(self, item: ReviewItem) -> bool: ...

    def review_items(self, status: str | None, limit: int = 50, offset: int = 0) -> tuple[list[ReviewItem], int]:
        """Oldest first (a queue), and how many there are."""

    def review_item(self, item_id: int) -> ReviewItem | None: ...

    def decide_review_item(self, item_id: int, status: str, decided_by: str) -> bool:
        """Close an open item as confirmed or dismissed; False when it is not open."""

    def raw_stats(self, since: datetime, until: datetime, window: timedelta, channel: str | None = None) -> RawStats:
        """Counts for [since, until): per day, per campaign (with opt-outs attributed to
        the latest delivered campaign message within ``window`` before them), per keyword
        and per match kind, plus recent feedback."""

    def copy_events(self, events: list[ConsentEvent]) -> int:
        """Add events copied from another database (copy-db) under their own ids, times and
        keys; statuses follow; nothing is announced. Returns how many were added."""

    def remember_token(self, namespace: str, token: str, expires_at: datetime) -> bool:
        """Remember a signed request's token until ``expires_at``: True the first time, False when
        it was seen before (a replay). Atomic, so of two requests racing with one token one
        wins; tokens past their expiry are pruned (webhook/store/seen_tokens.py)."""

    # -- the outbox (webhook/store/*_outbox.py) -------------------------------------------

    def create_endpoint(self, url: str, description: str, secret: str) -> Endpoint: ...

    def endpoints(self) -> list[Endpoint]: ...

    def endpoint(self, endpoint_id: int) -> Endpoint | None: ...

    def delete_endpoint(self, endpoint_id: int) -> bool:
        """Delete an endpoint and its deliveries."""

    def set_endpoint_enabled(self, endpoint_id: int, enabled: bool, reason: str | None = None) -> Endpoint | None: ...

    def queue_ping(self, endpoint_id: int) -> int | None:
        """Queue a ``ping`` to one endpoint (an admin's test); its delivery id, None without the endpoint."""

    def queue_message(self, *, kind: str, lane: str, key: str, address: str | None, target: str, body: str) -> bool:
        """Queue a message the worker sends to a provider's API (a reply, a forward), once per
        ``key``; False when that key was queued already."""

    def begin_forward(self, key: str, channel: str, address: str) -> ForwardRecord | None:
        """Mark a message as being forwarded now: None when this call is the first (forward it),
        else what an earlier call of the same message left (Twilio retried it)."""

    def forward_record(self, key: str) -> ForwardRecord | None: ...

    def finish_forward(self, key: str, record: ForwardRecord) -> None: ...

    def claim_deliveries(self, worker: str, *, per_lane: int, limit: int, lease: timedelta,
                         busy_lanes: list[str]) -> list[ClaimedDelivery]:
        """Claim due deliveries for ``lease``: at most ``per_lane`` of each lane outside
        ``busy_lanes``, ``limit`` in all, only the first pending one of each contact on a lane,
        never one another worker holds. Each claim counts an attempt."""

    def finish_attempts(self, results: list[AttemptResult]) -> None:
        """Record attempts and move their deliveries on, in one transaction (a result of a
        worker whose claim was taken over meanwhile is logged but moves nothing)."""

    def release_claims(self, worker: str) -> int:
        """Give back a stopping worker's claims that were not attempted."""

    def next_due_at(self) -> datetime | None: ...

    def outbox_backlog(self) -> Backlog: ...

    def deliveries(self, endpoint_id: int, limit: int = 50, offset: int = 0) -> list[Delivery]:
        """An endpoint's deliveries, newest first, with their attempts."""

    def delivery(self, delivery_id: int) -> Delivery | None: ...

    def retry_delivery(self, delivery_id: int) -> bool:
        """Send a failed delivery again now; False unless it is a failed one, not blanked (an
        erased contact's), and the latest queued for its contact to its endpoint."""

    def event_facts(self, event_id: int, window: timedelta) -> EventFacts | None:
        """What a consent webhook says about an event (the attributed campaign included)."""

    def outbox_changes(self, stop: threading.Event) -> Iterator[None]:
        """Yields whenever a delivery may have been queued (for the worker's wake-ups)."""

    def ping(self) -> None:
        """Raise StoreUnavailable unless the database answers."""

    def close(self) -> None: ...


EVENT_COLUMNS = (
    "id, channel, address, action, source, keyword, language, match_kind, raw_text, "
    "message_id, config_version, reason, occurred_at, recorded_at, dedupe_key, campaign"
)
# Larger numbers cannot exist and do not fit a 64-bit integer column: no such version.
MAX_VERSION_NUMBER = 2**63 - 1
FEEDBACK_COLUMNS = "id, channel, address, kind, text, message_id, received_at, dedupe_key"
REVIEW_COLUMNS = (
    "id, channel, address, text, message_id, received_at, status, decided_by, decided_at, dedupe_key, "
    "config_version, reason"
)
# Tables that hold an address; an erasure deletes from each (fixed names, never input).
ADDRESS_TABLES = ("subscriptions", "consent_events", "campaign_messages", "feedback", "review_items")
# Tables `unsub copy-db` copies besides the consent log: (columns, key columns, time columns,
# true/false columns), in the order they are copied. Fixed names, never input. A test lists
# the tables of both backends and fails when one holds state and is neither here nor in NOT_COPIED.
COPY_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...], frozenset[str], frozenset[str]]] = {
    # Keyword versions first: copied events name them (config_version) by number. The
    # latest version that came from the file is also the "file last read" marker.
    "keyword_versions": (
        ("id", "content_hash", "document", "yaml", "source", "author", "note", "diff", "created_at"),
        ("id",), frozenset({"created_at"}), frozenset(),
    ),
    "erased_addresses": (("channel", "address_hash", "erased_at"), ("channel", "address_hash"), frozenset({"erased_at"}),
                         frozenset()),
    "erased_message_keys": (("key_hash", "erased_at"), ("key_hash",), frozenset({"erased_at"}), frozenset()),
    "campaign_messages": (
        ("message_id", "campaign", "channel", "address", "status", "stage", "sent_at", "delivered_at", "updated_at"),
        ("message_id",), frozenset({"sent_at", "delivered_at", "updated_at"}), frozenset(),
    ),
    "feedback": (("id", "channel", "address", "kind", "text", "message_id", "received_at", "dedupe_key"), ("id",),
                 frozenset({"received_at"}), frozenset()),
    "review_items": (
        ("id", "channel", "address", "text", "message_id", "received_at", "status", "decided_by", "decided_at",
         "dedupe_key", "config_version", "reason"),
        ("id",), frozenset({"received_at", "decided_at"}), frozenset(),
    ),
    "erasure_key": (("id", "fingerprint"), ("id",), frozenset(), frozenset()),
    # Endpoints with their secrets (the copy moves one installation), and the outbox with its
    # pending deliveries, so a move loses no announcement.
    "webhook_endpoints": (
        ("id", "url", "description", "secret", "enabled", "disabled_reason", "created_at"), ("id",),
        frozenset({"created_at"}), frozenset({"enabled"}),
    ),
    "outbox": (
        ("id", "lane", "endpoint_id", "kind", "webhook_id", "event_type", "event_id", "address", "previous_status",
         "status_after", "target", "body", "blank_when_done", "state", "attempts", "next_attempt_at", "claimed_by",
         "claimed_until", "created_at", "finished_at", "last_status", "last_error"),
        ("id",), frozenset({"next_attempt_at", "claimed_until", "created_at", "finished_at"}),
        frozenset({"blank_when_done"}),
    ),
    "outbox_attempts": (
        ("id", "outbox_id", "attempted_at", "worker", "status_code", "duration_ms", "response_excerpt", "error"),
        ("id",), frozenset({"attempted_at"}), frozenset(),
    ),
    # Signed-request tokens already used (Mailgun): a move must not open a replay window again.
    "seen_tokens": (("namespace", "token", "expires_at"), ("namespace", "token"), frozenset({"expires_at"}), frozenset()),
}
# Ids the database hands out (kept as they were; later rows get ids after them).
IDENTITY_TABLES = frozenset({"keyword_versions", "feedback", "review_items", "webhook_endpoints", "outbox",
                             "outbox_attempts"})
# Tables copy-db does not copy row by row: the log is copied as events (statuses are
# rebuilt from them), and the rest is bookkeeping of the database itself.
# forwards: endpoints' answers kept two days for Twilio's retries of a message, not state to move.
NOT_COPIED = frozenset({"consent_events", "subscriptions", "schema_migrations", "erasure_in_progress", "forwards"})
# Opt-outs that a campaign message may have caused (an imported list did not).
ATTRIBUTED_SOURCES_EXCLUDED = ("import",)
STATS_FEEDBACK_LIMIT = 200
VERSION_COLUMNS = "id, content_hash, document, yaml, source, author, note, diff, created_at"


class ScopeCache:
    """Each keyword version's channel scopes, read from the database once per process: a
    version never changes once stored, and reading scopes means parsing whole documents
    (about 2 ms a version of the shipped file on PostgreSQL), which the dashboard, the
    events page and the statistics would otherwise do on every request."""

    MAX_VERSIONS = 20_000  # then it starts again: a bound on memory, never a wrong answer

    def __init__(self) -> None:
        self._by_version: dict[int, tuple[ChannelScope, ...]] = {}
        self._lock = threading.Lock()

    def scopes(self, versions: list[int], read: Callable[[list[int]], list[ChannelScope]]) -> list[ChannelScope]:
        """The scopes of ``versions`` (in that order); ``read`` fetches those not seen yet."""
        with self._lock:
            known = {number: self._by_version.get(number) for number in versions}
        missing = [number for number, scopes in known.items() if scopes is None]
        if missing:
            found: dict[int, list[ChannelScope]] = {number: [] for number in missing}
            for scope in read(missing):
                found[scope.version].append(scope)
            fresh = {number: tuple(rows) for number, rows in found.items()}
            known.update(fresh)
            with self._lock:
                if len(self._by_version) + len(fresh) > self.MAX_VERSIONS:
                    self._by_version.clear()
                self._by_version.update(fresh)
        return [scope for number in versions for scope in known[number] or ()]


def campaign_counts(sent: Iterable[tuple[str, str, int]], attributed: Iterable[tuple[str, str, int, int]],
                    ) -> tuple[list[tuple[str, str, int, int]], list[tuple[str, str, int]]]:
    """RawStats' ``campaigns`` and ``complaints`` from the two statistics queries of a backend.

    ``sent``: (campaign, channel, delivered) of the campaigns sent in the period;
    ``attributed``: (campaign, channel, opt-outs, complaints) attributed to campaigns. A
    campaign that only a provider's event names (unsub has no send of it) still gets a row,
    with nothing delivered: its complaints are worth seeing even without a rate.
    """
    counts = {(campaign, channel): (outs, complaints) for campaign, channel, outs, complaints in attributed}
    campaigns = [(campaign, channel, delivered, counts.get((campaign, channel), (0, 0))[0])
                 for campaign, channel, delivered in sent]
    listed = {(campaign, channel) for campaign, channel, _, _ in campaigns}
    campaigns += [(campaign, channel, 0, outs) for (campaign, channel), (outs, _) in sorted(counts.items())
                  if (campaign, channel) not in listed]
    complaints = [(campaign, channel, found) for (campaign, channel), (_, found) in sorted(counts.items()) if found]
    return campaigns, complaints


def event_from_row(row: Mapping[str, Any], when: Callable[[Any], datetime]) -> ConsentEvent:
    """A consent_events row as a value; ``when`` reads the backend's time column."""
    return ConsentEvent(
        id=row["id"], channel=row["channel"], address=row["address"], action=row["action"], source=row["source"],
        keyword=row["keyword"], language=row["language"], match_kind=row["match_kind"], raw_text=row["raw_text"],
        message_id=row["message_id"], config_version=row["config_version"], reason=row["reason"],
        occurred_at=when(row["occurred_at"]), recorded_at=when(row["recorded_at"]), dedupe_key=row["dedupe_key"],
        campaign=row["campaign"],
    )


def version_from_row(row: Mapping[str, Any], when: Callable[[Any], datetime]) -> KeywordVersion:
    """A keyword_versions row as a value."""
    return KeywordVersion(
        number=int(row["id"]), content_hash=row["content_hash"], document=row["document"], yaml=row["yaml"],
        source=row["source"], author=row["author"], note=row["note"], diff=row["diff"],
        created_at=when(row["created_at"]),
    )


def feedback_from_row(row: Mapping[str, Any], when: Callable[[Any], datetime]) -> Feedback:
    return Feedback(
        id=row["id"], channel=row["channel"], address=row["address"], kind=row["kind"], text=row["text"],
        message_id=row["message_id"], received_at=when(row["received_at"]), dedupe_key=row["dedupe_key"],
    )


def review_from_row(row: Mapping[str, Any], when: Callable[[Any], datetime]) -> ReviewItem:
    return ReviewItem(
        id=row["id"], channel=row["channel"], address=row["address"], text=row["text"], message_id=row["message_id"],
        received_at=when(row["received_at"]), status=row["status"], decided_by=row["decided_by"],
        decided_at=when(row["decided_at"]) if row["decided_at"] is not None else None,
        dedupe_key=row["dedupe_key"], config_version=row["config_version"], reason=row["reason"],
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
