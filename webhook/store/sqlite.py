"""The embedded store: one SQLite file through sqlite-utils, in WAL mode.

Each thread of each process keeps its own connection (opened on first use, reopened
after a fork), so a request never pays for connection set-up. Writes take the
database's write lock up front (``BEGIN IMMEDIATE``) and wait for it at most
``BUSY_TIMEOUT_MS``; past that the change is refused with StoreUnavailable (503),
never half-written.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable, Iterable, Iterator, TypeVar, cast
from urllib.parse import parse_qsl

import sqlite_utils

from webhook.domain import (
    STATUS_OF_ACTION,
    CampaignMessage,
    ChannelScope,
    ConsentEvent,
    Erasure,
    EventFilter,
    Feedback,
    KeywordVersion,
    NewKeywordVersion,
    RawStats,
    Recorded,
    ReviewItem,
    Status,
    Subscription,
    Suppression,
    utcnow,
)
from webhook.settings import sqlite_path
from webhook.store import (
    ADDRESS_TABLES,
    COPY_TABLES,
    EVENT_COLUMNS,
    FEEDBACK_COLUMNS,
    KEYED_TABLES,
    MAX_VERSION_NUMBER,
    REVIEW_COLUMNS,
    STATS_FEEDBACK_LIMIT,
    VERSION_COLUMNS,
    ErasureKeyMismatch,
    ScopeCache,
    StoreUnavailable,
    campaign_counts,
    campaign_message_key,
    erased_key_hash,
    event_from_row,
    feedback_from_row,
    key_fingerprint,
    migration_files,
    review_from_row,
    version_from_row,
)
from webhook.store.seen_tokens import SQLiteSeenTokens
from webhook.store.sqlite_outbox import SQLiteOutbox, queue_consent_deliveries, queue_erased_deliveries
from webhook.store.sqlite_times import from_text, to_text

log = logging.getLogger("unsub.store")
BUSY_TIMEOUT_MS = 5000
BUSY_CODES = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
T = TypeVar("T")
CHUNK = 500



# Optional filters as fixed SQL: each pair of parameters is (value, value), NULL meaning any.
EVENT_FILTER = (
    "(? IS NULL OR channel = ?) AND (? IS NULL OR action = ?) AND (? IS NULL OR source = ?) "
    "AND (? IS NULL OR occurred_at >= ?) AND (? IS NULL OR occurred_at < ?)"
)


# The channels a table holds rows for, by a loose index scan (one index probe per channel).
CHANNELS_OF = {
    table: (
        f"WITH RECURSIVE c(ch) AS (SELECT min(channel) FROM {table} UNION ALL "
        f"SELECT (SELECT min(channel) FROM {table} WHERE channel > c.ch) FROM c WHERE c.ch IS NOT NULL) "
        "SELECT ch FROM c WHERE ch IS NOT NULL"
    )
    for table in ADDRESS_TABLES + ("erased_addresses",)
}
DELETE_ADDRESS = {table: f"DELETE FROM {table} WHERE channel = ? AND address = ?" for table in ADDRESS_TABLES}
# The opt-out's time minus a whole number of seconds ("-259200 seconds"), to the microsecond:
# strftime sees only the whole seconds (it would round a fraction to milliseconds) and the
# fraction of our fixed-width text (".123456Z", from character 20) is put back unchanged.
WINDOW_START = "strftime('%Y-%m-%dT%H:%M:%S', substr(e.occurred_at, 1, 19), ?) || substr(e.occurred_at, 20)"


def row_to_version(row: dict) -> KeywordVersion:
    return version_from_row(row, from_text)


def row_to_event(row: dict) -> ConsentEvent:
    return event_from_row(row, from_text)


class SQLiteStore(SQLiteOutbox, SQLiteSeenTokens):
    kind = "sqlite"

    def __init__(self, database_url: str) -> None:
        self.path: Path = sqlite_path(database_url)
        options = dict(parse_qsl(database_url.partition("?")[2]))
        self.synchronous = "FULL" if options.get("synchronous", "").lower() == "full" else "NORMAL"
        self._local = threading.local()
        self._scope_cache = ScopeCache()
        self._erasure_hasher: Callable[[str, str], str] | None = None

    def use_erasure_hasher(self, hash_for: Callable[[str, str], str]) -> None:
        self._erasure_hasher = hash_for

    # -- connections -------------------------------------------------------------

    def _connect(self) -> sqlite_utils.Database:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: we issue BEGIN ourselves, so a transaction is exactly
            # what the code says it is.
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            # NORMAL (WAL): a commit is in the WAL file before the webhook answers, so it
            # survives a crash or kill -9 of the server; a power loss may lose the commits
            # since the last checkpoint. ?synchronous=full fsyncs every commit (about 4x
            # slower on this disk: benchmarks/README.md).
            conn.execute("PRAGMA synchronous = FULL" if self.synchronous == "FULL" else "PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            # Deleted rows are overwritten with zeros, not left in free pages: an erased
            # contact leaves no readable copy in the file (the WAL is truncated after it).
            conn.execute("PRAGMA secure_delete = ON")
            # From here SQLite never sleeps on a lock itself (its busy handler sleeps 1 ms
            # and more, 15x a STOP's whole transaction): _when_free waits in short steps.
            conn.execute("PRAGMA busy_timeout = 0")
        except (sqlite3.Error, OSError) as error:
            raise StoreUnavailable(f"cannot open SQLite database {self.path}: {error}") from error
        return sqlite_utils.Database(conn)

    @property
    def db(self) -> sqlite_utils.Database:
        local = self._local
        if getattr(local, "pid", None) != os.getpid() or local.db is None:
            local.db = self._connect()
            local.pid = os.getpid()
        return local.db

    @contextmanager
    def _write(self, doing: str) -> Iterator[sqlite3.Connection]:
        """One write transaction holding the write lock; rolled back on any error.

        A lock not granted within the busy timeout (or any other operational error)
        becomes StoreUnavailable: nothing was written.
        """
        conn = self.db.conn
        try:
            _when_free(lambda: conn.execute("BEGIN IMMEDIATE"))
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as error:
            raise StoreUnavailable(f"cannot {doing} in {self.path}: {error}") from error

    def _query(self, sql: str, params: Iterable = ()) -> list[dict]:
        try:
            return _when_free(lambda: list(self.db.query(sql, tuple(params))))
        except sqlite3.OperationalError as error:
            raise StoreUnavailable(f"cannot read {self.path}: {error}") from error

    # -- schema ------------------------------------------------------------------

    def migrate(self) -> list[str]:
        applied: list[str] = []
        conn = self.db.conn
        # Foreign keys off while migrating (SQLite's documented way to rebuild a table that
        # others refer to: a pragma that only takes effect outside a transaction); they are
        # checked before the migration commits and turned on again after.
        conn.execute("PRAGMA foreign_keys = OFF")
        try:
            # One process migrates; the others wait for the write lock, then find it done.
            with self._write("migrate") as conn:
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations "
                    "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
                )
                done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
                for number, name, sql in migration_files("sqlite"):
                    if number in done:
                        continue
                    for statement in _statements(sql):
                        conn.execute(statement)
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                        (number, name, to_text(utcnow())),
                    )
                    applied.append(name)
                broken = conn.execute("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise sqlite3.OperationalError(f"migration left {len(broken)} broken references, e.g. {broken[0]}")
        finally:
            conn.execute("PRAGMA foreign_keys = ON")
        return applied

    # -- writes ------------------------------------------------------------------

    def record(self, event: ConsentEvent, *, only_if_changes: bool = False) -> Recorded:
        with self._write("record consent event") as conn:
            return _append(conn, event, utcnow(), only_if_changes, key_hash=erased_key_hash(self._erasure_hasher, event.dedupe_key))

    def import_events(self, events: list[ConsentEvent], *, only_if_changes: bool = False,
                      on_added: Callable[[ConsentEvent], None] | None = None) -> int:
        """Append events recorded elsewhere (an import), in one transaction.

        Times are kept as they were; a repeated dedupe key is skipped; the status still
        follows the latest event. Returns how many events were added (``on_added`` is
        called with each once committed).
        """
        added: list[ConsentEvent] = []
        with self._write("import consent events") as conn:
            for event in events:
                if _append(conn, event, event.recorded_at or utcnow(), only_if_changes,
                           key_hash=erased_key_hash(self._erasure_hasher, event.dedupe_key)).created:
                    added.append(event)
        if on_added is not None:
            for event in added:
                on_added(event)
        return len(added)

    def copy_events(self, events: list[ConsentEvent]) -> int:
        """Add events copied from another database (copy-db) under their own ids, times and keys;
        statuses follow; nothing is announced (the copy carries the source's outbox)."""
        added = 0
        with self._write("copy consent events") as conn:
            for event in events:
                added += _append(conn, event, event.recorded_at or utcnow(), False, copy=True).created
        return added

    # -- reads -------------------------------------------------------------------

    def iter_events(self, batch: int = 1000) -> Iterator[list[ConsentEvent]]:
        """Every event in the order it was recorded, in batches (for copies and exports)."""
        last = 0
        while True:
            rows = list(self._query(
                f"SELECT {EVENT_COLUMNS} FROM consent_events WHERE id > ? ORDER BY id LIMIT ?", (last, batch)
            ))
            if not rows:
                return
            last = rows[-1]["id"]
            yield [row_to_event(row) for row in rows]

    def subscription(self, channel: str, address: str) -> Subscription | None:
        for row in self._query(
            "SELECT status, updated_at FROM subscriptions WHERE channel = ? AND address = ?", (channel, address)
        ):
            return Subscription(channel, address, row["status"], from_text(row["updated_at"]))
        return None

    def history(self, channel: str, address: str, limit: int = 100) -> list[ConsentEvent]:
        rows = self._query(
            f"SELECT {EVENT_COLUMNS} FROM consent_events WHERE channel = ? AND address = ? "
            "ORDER BY occurred_at DESC, id DESC LIMIT ?",
            (channel, address, limit),
        )
        return [row_to_event(row) for row in rows][::-1]

    def _among(self, sql: str, channel: str, values: Iterable[str]) -> Iterator[dict]:
        """Rows of ``sql`` for these values, CHUNK at a time. ``sql`` binds the channel, then
        the values as one JSON list (never a placeholder list built from strings)."""
        wanted = list(dict.fromkeys(values))
        for start in range(0, len(wanted), CHUNK):
            yield from self._query(sql, (channel, _json_list(wanted[start:start + CHUNK])))

    def event_count(self, since: datetime | None = None) -> int:
        if since is None:
            rows = self._query("SELECT count(*) AS n FROM consent_events")
        else:
            rows = self._query("SELECT count(*) AS n FROM consent_events WHERE occurred_at >= ?", (to_text(since),))
        return next(iter(rows))["n"]

    # -- keyword configuration versions ---------------------------------------------

    def add_keyword_version(self, version: NewKeywordVersion, *, only_if_file_changed: bool = False) -> KeywordVersion:
        with self._write("save keyword configuration") as conn:
            if only_if_file_changed:
                row = conn.execute(
                    "SELECT content_hash FROM keyword_versions WHERE source = 'file' ORDER BY id DESC LIMIT 1"
                ).fetchone()
                latest = conn.execute("SELECT id FROM keyword_versions ORDER BY id DESC LIMIT 1").fetchone()
                if row is not None and row[0] == version.content_hash and latest is not None:
                    number = latest[0]
                    return self._keyword_version_in(conn, number)
            cursor = conn.execute(
                "INSERT INTO keyword_versions (content_hash, document, yaml, source, author, note, diff, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (version.content_hash, version.document, version.yaml, version.source, version.author,
                 version.note, version.diff, to_text(utcnow())),
            )
            assert cursor.lastrowid is not None
            return self._keyword_version_in(conn, cursor.lastrowid)

    def _keyword_version_in(self, conn: sqlite3.Connection, number: int) -> KeywordVersion:
        cursor = conn.execute(f"SELECT {VERSION_COLUMNS} FROM keyword_versions WHERE id = ?", (number,))
        names = [d[0] for d in cursor.description]
        return row_to_version(dict(zip(names, cursor.fetchone(), strict=True)))

    def latest_keyword_version(self) -> KeywordVersion | None:
        rows = self._query(f"SELECT {VERSION_COLUMNS} FROM keyword_versions ORDER BY id DESC LIMIT 1")
        return row_to_version(rows[0]) if rows else None

    def latest_keyword_version_number(self) -> int:
        return self._query("SELECT coalesce(max(id), 0) AS n FROM keyword_versions")[0]["n"]

    def keyword_version(self, number: int) -> KeywordVersion | None:
        if not 0 < number <= MAX_VERSION_NUMBER:
            return None
        rows = self._query(f"SELECT {VERSION_COLUMNS} FROM keyword_versions WHERE id = ?", (number,))
        return row_to_version(rows[0]) if rows else None

    def keyword_versions(self, limit: int = 50, offset: int = 0) -> list[KeywordVersion]:
        rows = self._query(
            f"SELECT {VERSION_COLUMNS} FROM keyword_versions ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset)
        )
        return [row_to_version(row) for row in rows]

    def channel_scopes(self, since: datetime, until: datetime) -> list[ChannelScope]:
        rows = self._query(
            "SELECT id FROM keyword_versions "
            "WHERE id >= coalesce((SELECT max(id) FROM keyword_versions WHERE created_at < ?), 0) "
            "AND created_at < ? ORDER BY id",
            (to_text(since), to_text(until)),
        )
        return self._scope_cache.scopes([row["id"] for row in rows], self._read_scopes)

    def _read_scopes(self, versions: list[int]) -> list[ChannelScope]:
        rows = self._query(
            "SELECT v.id AS version, v.created_at AS at, c.key AS channel, "
            "json_extract(c.value, '$.revocation_scope') AS scope "
            "FROM keyword_versions v, json_each(v.document, '$.channels') c "
            "WHERE v.id IN (SELECT value FROM json_each(?))",
            (json.dumps(versions),),
        )
        return [ChannelScope(row["version"], from_text(row["at"]), row["channel"], row["scope"]) for row in rows]

    def events(self, filters: EventFilter, limit: int = 50, offset: int = 0) -> tuple[list[ConsentEvent], int]:
        since = to_text(filters.since) if filters.since else None
        until = to_text(filters.until) if filters.until else None
        params = (filters.channel, filters.channel, filters.action, filters.action, filters.source, filters.source,
                  since, since, until, until)
        rows = self._query(
            f"SELECT {EVENT_COLUMNS} FROM consent_events WHERE {EVENT_FILTER} "
            "ORDER BY occurred_at DESC, id DESC LIMIT ? OFFSET ?",
            params + (limit, offset),
        )
        total = self._query(f"SELECT count(*) AS n FROM consent_events WHERE {EVENT_FILTER}", params)[0]["n"]
        return [row_to_event(row) for row in rows], total

    # -- campaigns, feedback, review, erasure, statistics --------------------------------

    def record_campaign_messages(self, messages: list[CampaignMessage]) -> int:
        added = 0
        with self._write("record campaign messages") as conn:
            for m in messages:
                at = to_text(m.at)
                key_hash = erased_key_hash(self._erasure_hasher, campaign_message_key(m.message_id))
                if key_hash and conn.execute("SELECT 1 FROM erased_message_keys WHERE key_hash = ?", (key_hash,)).fetchone():
                    continue  # sent to a contact erased since: a late or replayed callback stores nothing
                new = conn.execute(
                    "INSERT INTO campaign_messages (message_id, campaign, channel, address, status, stage, sent_at, "
                    "delivered_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (message_id) DO NOTHING",
                    (m.message_id, m.campaign, m.channel, m.address, m.status, m.stage, at, at if m.delivered else None, at),
                ).rowcount
                if new:
                    added += 1
                    continue
                conn.execute(
                    "UPDATE campaign_messages SET status = ?, stage = ?, updated_at = ?, "
                    "delivered_at = coalesce(delivered_at, ?) WHERE message_id = ? AND stage < ?",
                    (m.status, m.stage, at, at if m.delivered else None, m.message_id, m.stage),
                )
        return added

    def statuses_among(self, channel: str, addresses: Iterable[str]) -> dict[str, str]:
        rows = self._among(
            "SELECT address, status FROM subscriptions WHERE channel = ? AND address IN (SELECT value FROM json_each(?))",
            channel, addresses,
        )
        return {row["address"]: row["status"] for row in rows}

    def has_erasures(self, channel: str) -> bool:
        return bool(self._query("SELECT 1 AS x FROM erased_addresses WHERE channel = ? LIMIT 1", (channel,)))

    def status_count(self, channel: str) -> int:
        return self._query(
            "SELECT (SELECT count(*) FROM subscriptions WHERE channel = ?) "
            "+ (SELECT count(*) FROM erased_addresses WHERE channel = ?) AS n", (channel, channel),
        )[0]["n"]

    def erased_among(self, channel: str, hashes: Iterable[str]) -> dict[str, datetime]:
        rows = self._among(
            "SELECT address_hash, erased_at FROM erased_addresses WHERE channel = ? "
            "AND address_hash IN (SELECT value FROM json_each(?))",
            channel, hashes,
        )
        return {row["address_hash"]: from_text(row["erased_at"]) for row in rows}

    def erase(self, address: str, hash_for: Callable[[str, str], str]) -> Erasure:
        deleted = dict.fromkeys(ADDRESS_TABLES, 0)
        suppressed: list[str] = []
        now = to_text(utcnow())
        fingerprint = key_fingerprint(hash_for)
        with self._write("erase a contact") as conn:
            conn.execute("INSERT INTO erasure_key (id, fingerprint) VALUES (1, ?) ON CONFLICT DO NOTHING", (fingerprint,))
            if conn.execute("SELECT fingerprint FROM erasure_key").fetchone()[0] != fingerprint:
                raise ErasureKeyMismatch("erased contacts here were hashed with another key")
            channels = sorted({row[0] for table in ADDRESS_TABLES for row in conn.execute(CHANNELS_OF[table])})
            for channel in channels:
                row = conn.execute(
                    "SELECT status FROM subscriptions WHERE channel = ? AND address = ?", (channel, address)
                ).fetchone()
                if row is not None and row[0] == "unsubscribed":
                    conn.execute(
                        "INSERT INTO erased_addresses (channel, address_hash, erased_at) VALUES (?, ?, ?) "
                        "ON CONFLICT DO NOTHING",
                        (channel, hash_for(channel, address), now),
                    )
                    suppressed.append(channel)
                elif row is not None:  # opted in again since an earlier erasure: that hash is stale
                    conn.execute("DELETE FROM erased_addresses WHERE channel = ? AND address_hash = ?",
                                 (channel, hash_for(channel, address)))
            # Their provider message ids, as keyed hashes: a replay after the erasure stays a duplicate.
            for table in KEYED_TABLES:
                for channel in channels:
                    conn.executemany(
                        "INSERT INTO erased_message_keys (key_hash, erased_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                        [(erased_key_hash(hash_for, row[0]), now) for row in conn.execute(
                            f"SELECT dedupe_key FROM {table} WHERE channel = ? AND address = ? AND dedupe_key IS NOT NULL",
                            (channel, address))],
                    )
            for channel in channels:
                conn.executemany(
                    "INSERT INTO erased_message_keys (key_hash, erased_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    [(erased_key_hash(hash_for, campaign_message_key(row[0])), now) for row in conn.execute(
                        "SELECT message_id FROM campaign_messages WHERE channel = ? AND address = ?", (channel, address))],
                )
            conn.execute("INSERT INTO erasure_in_progress (marker) VALUES (1)")
            for channel in channels:
                for table in ADDRESS_TABLES:  # subscriptions first: they refer to events
                    deleted[table] += conn.execute(DELETE_ADDRESS[table], (channel, address)).rowcount
            conn.execute("DELETE FROM erasure_in_progress")
            suppressed = _still_suppressed(conn, suppressed, hash_for, address)
            deleted["outbox"] = queue_erased_deliveries(conn, address, suppressed, utcnow())
        self._forget_deleted_pages()
        return Erasure(address, suppressed, deleted)

    def _forget_deleted_pages(self) -> None:
        """Leave no copy of erased rows in the -wal file: checkpoint it into the database
        (where secure_delete has zeroed them) and truncate it. Readers in other processes
        can hold the checkpoint back; it is retried for up to the busy timeout, then left
        to SQLite's next automatic checkpoint (and said in the log)."""
        conn = self.db.conn

        def checkpoint() -> None:
            busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            if busy:
                raise sqlite3.OperationalError("database is locked (checkpoint)")

        try:
            _when_free(checkpoint)
        except sqlite3.OperationalError as error:
            log.warning("erasure committed, but the write-ahead log of %s could not be truncated yet: %s", self.path, error)

    def erasure_key_fingerprint(self) -> str | None:
        rows = self._query("SELECT fingerprint FROM erasure_key WHERE id = 1")
        return rows[0]["fingerprint"] if rows else None

    def contact_events(self, address: str) -> list[ConsentEvent]:
        found: list[ConsentEvent] = []
        for channel in self._channels("consent_events"):
            found.extend(self.history(channel, address, limit=1_000_000))
        return sorted(found, key=lambda e: (e.occurred_at, e.id or 0))

    def contact_feedback(self, address: str) -> list[Feedback]:
        found: list[Feedback] = []
        for channel in self._channels("feedback"):
            rows = self._query(
                f"SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE channel = ? AND address = ? ORDER BY received_at, id",
                (channel, address),
            )
            found.extend(feedback_from_row(row, from_text) for row in rows)
        return sorted(found, key=lambda f: (f.received_at, f.id or 0))

    def _channels(self, table: str) -> list[str]:
        return [row["ch"] for row in self._query(CHANNELS_OF[table])]

    def iter_suppressions(self, channel: str, batch: int = 1000, after: str = "") -> Iterator[list[Suppression]]:
        last = after
        while True:
            rows = self._query(
                "SELECT s.address, s.updated_at, e.source, e.keyword FROM subscriptions s "
                "JOIN consent_events e ON e.id = s.event_id "
                "WHERE s.channel = ? AND s.status = 'unsubscribed' AND s.address > ? ORDER BY s.address LIMIT ?",
                (channel, last, batch),
            )
            if not rows:
                return
            last = rows[-1]["address"]
            yield [
                Suppression(channel, row["address"], from_text(row["updated_at"]), row["source"], row["keyword"])
                for row in rows
            ]

    def iter_rows(self, table: str, batch: int = 1000) -> Iterator[list[dict]]:
        columns, key, times, flags = COPY_TABLES[table]
        listed, keys = ", ".join(columns), ", ".join(key)
        marks = ", ".join("?" for _ in key)
        last: tuple | None = None
        while True:
            if last is None:
                rows = self._query(f"SELECT {listed} FROM {table} ORDER BY {keys} LIMIT ?", (batch,))
            else:
                rows = self._query(
                    f"SELECT {listed} FROM {table} WHERE ({keys}) > ({marks}) ORDER BY {keys} LIMIT ?", last + (batch,)
                )
            if not rows:
                return
            last = tuple(rows[-1][name] for name in key)
            yield [{name: from_text(row[name]) if name in times and row[name] is not None
                    else (bool(row[name]) if name in flags and row[name] is not None else row[name]) for name in columns}
                   for row in rows]

    def import_rows(self, table: str, rows: list[dict]) -> int:
        columns, _, times, flags = COPY_TABLES[table]
        sql = (f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) "
               "ON CONFLICT DO NOTHING")

        def value(name: str, found: object) -> object:
            if found is None:
                return None
            if name in times:
                return to_text(found)  # type: ignore[arg-type]
            return int(bool(found)) if name in flags else found

        added = 0
        with self._write(f"copy {table}") as conn:
            for row in rows:
                added += conn.execute(sql, [value(name, row[name]) for name in columns]).rowcount
        return added

    def suppression_count(self, channel: str) -> int:
        return self._query(
            "SELECT count(*) AS n FROM subscriptions WHERE channel = ? AND status = 'unsubscribed'", (channel,)
        )[0]["n"]

    def add_feedback(self, item: Feedback) -> bool:
        with self._write("keep feedback") as conn:
            # Only for an address the service knows on that channel: an erasure that ran
            # between the opt-out and its reason leaves nothing behind.
            return conn.execute(
                "INSERT INTO feedback (channel, address, kind, text, message_id, dedupe_key, received_at) "
                "SELECT ?, ?, ?, ?, ?, ?, ? WHERE EXISTS "
                "(SELECT 1 FROM subscriptions WHERE channel = ? AND address = ?) "
                "ON CONFLICT (dedupe_key) DO NOTHING",
                (item.channel, item.address, item.kind, item.text, item.message_id, item.dedupe_key,
                 to_text(item.received_at), item.channel, item.address),
            ).rowcount == 1

    def add_feedback_after_opt_out(self, item: Feedback, window: timedelta) -> bool:
        with self._write("keep feedback") as conn:
            return conn.execute(
                "INSERT INTO feedback (channel, address, kind, text, message_id, dedupe_key, received_at) "
                "SELECT ?, ?, 'after_opt_out', ?, ?, ?, ? FROM subscriptions s "
                "WHERE s.channel = ? AND s.address = ? AND s.status = 'unsubscribed' "
                "AND s.updated_at >= ? AND s.updated_at <= ? "
                "AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.channel = s.channel AND f.address = s.address "
                "AND f.kind = 'after_opt_out' AND f.received_at >= s.updated_at) "
                "ON CONFLICT (dedupe_key) DO NOTHING",
                (item.channel, item.address, item.text, item.message_id, item.dedupe_key, to_text(item.received_at),
                 item.channel, item.address, to_text(item.received_at - window), to_text(item.received_at)),
            ).rowcount == 1

    def feedback_items(self, limit: int = 50, offset: int = 0) -> tuple[list[Feedback], int]:
        rows = self._query(
            f"SELECT {FEEDBACK_COLUMNS} FROM feedback ORDER BY received_at DESC, id DESC LIMIT ? OFFSET ?", (limit, offset)
        )
        total = self._query("SELECT count(*) AS n FROM feedback")[0]["n"]
        return [feedback_from_row(row, from_text) for row in rows], total

    def add_review_item(self, item: ReviewItem) -> bool:
        with self._write("queue a message for review") as conn:
            return conn.execute(
                "INSERT INTO review_items (channel, address, text, message_id, dedupe_key, received_at, "
                "config_version, reason) SELECT ?, ?, ?, ?, ?, ?, ?, ? "
                "WHERE NOT EXISTS (SELECT 1 FROM erased_message_keys WHERE key_hash = ?) ON CONFLICT (dedupe_key) DO NOTHING",
                (item.channel, item.address, item.text, item.message_id, item.dedupe_key, to_text(item.received_at),
                 item.config_version, item.reason, erased_key_hash(self._erasure_hasher, item.dedupe_key)),
            ).rowcount == 1

    def review_items(self, status: str | None, limit: int = 50, offset: int = 0) -> tuple[list[ReviewItem], int]:
        rows = self._query(
            f"SELECT {REVIEW_COLUMNS} FROM review_items WHERE (? IS NULL OR status = ?) ORDER BY id LIMIT ? OFFSET ?",
            (status, status, limit, offset),
        )
        total = self._query("SELECT count(*) AS n FROM review_items WHERE (? IS NULL OR status = ?)", (status, status))
        return [review_from_row(row, from_text) for row in rows], total[0]["n"]

    def review_item(self, item_id: int) -> ReviewItem | None:
        if not 0 < item_id <= MAX_VERSION_NUMBER:
            return None
        rows = self._query(f"SELECT {REVIEW_COLUMNS} FROM review_items WHERE id = ?", (item_id,))
        return review_from_row(rows[0], from_text) if rows else None

    def decide_review_item(self, item_id: int, status: str, decided_by: str) -> bool:
        if not 0 < item_id <= MAX_VERSION_NUMBER:
            return False
        with self._write("decide a review item") as conn:
            return conn.execute(
                "UPDATE review_items SET status = ?, decided_by = ?, decided_at = ? WHERE id = ? AND status = 'open'",
                (status, decided_by, to_text(utcnow()), item_id),
            ).rowcount == 1

    def raw_stats(self, since: datetime, until: datetime, window: timedelta, channel: str | None = None) -> RawStats:
        start, end = to_text(since), to_text(until)
        late_end = to_text(until + window)
        daily = self._query(
            "SELECT substr(occurred_at, 1, 10) AS day, channel, action, count(*) AS n FROM consent_events "
            "WHERE occurred_at >= ? AND occurred_at < ? AND (? IS NULL OR channel = ?) GROUP BY 1, 2, 3 ORDER BY 1, 2, 3",
            (start, end, channel, channel),
        )
        sent = self._query(
            "SELECT campaign, channel, count(delivered_at) AS delivered FROM campaign_messages "
            "WHERE sent_at >= ? AND sent_at < ? AND (? IS NULL OR channel = ?) GROUP BY 1, 2",
            (start, end, channel, channel),
        )
        # An opt-out counts against the campaign it names (an e-mail provider's complaint), else
        # against the latest campaign message delivered within the window before it. A named
        # campaign belongs to the periods it was sent in, or, when unsub knows no send of it at
        # all, to the period of the opt-out. Complaints are the opt-outs with source complaint.
        attributed = self._query(
            "WITH outs AS (SELECT e.channel, e.address, e.source, e.occurred_at, e.campaign AS named, "
            " CASE WHEN e.campaign IS NULL THEN (SELECT m.message_id FROM campaign_messages m "
            "  WHERE m.channel = e.channel AND m.address = e.address AND m.delivered_at IS NOT NULL "
            f"  AND m.delivered_at <= e.occurred_at AND m.delivered_at >= {WINDOW_START} "
            "  ORDER BY m.delivered_at DESC, m.message_id DESC LIMIT 1) END AS message_id "
            " FROM consent_events e WHERE e.action = 'opt_out' AND e.source <> 'import' "
            " AND e.occurred_at >= ? AND e.occurred_at < ? AND (? IS NULL OR e.channel = ?)), "
            "attributed AS (SELECT m.campaign, m.channel, outs.address, outs.source FROM outs "
            " JOIN campaign_messages m ON m.message_id = outs.message_id WHERE m.sent_at >= ? AND m.sent_at < ? "
            " UNION ALL SELECT outs.named, outs.channel, outs.address, outs.source FROM outs WHERE outs.named IS NOT NULL "
            " AND (EXISTS (SELECT 1 FROM campaign_messages c WHERE c.campaign = outs.named AND c.channel = outs.channel "
            "  AND c.sent_at >= ? AND c.sent_at < ?) OR (outs.occurred_at < ? AND NOT EXISTS (SELECT 1 FROM "
            "  campaign_messages c WHERE c.campaign = outs.named AND c.channel = outs.channel)))) "
            "SELECT campaign, channel, count(DISTINCT address) AS n, "
            "count(DISTINCT CASE WHEN source = 'complaint' THEN address END) AS complaints FROM attributed GROUP BY 1, 2",
            (f"-{int(window.total_seconds())} seconds", start, late_end, channel, channel, start, end, start, end, end),
        )
        campaigns, complaints = campaign_counts(
            [(row["campaign"], row["channel"], row["delivered"]) for row in sent],
            [(row["campaign"], row["channel"], row["n"], row["complaints"]) for row in attributed],
        )
        keywords = self._query(
            "SELECT keyword, language, count(*) AS n FROM consent_events WHERE action = 'opt_out' "
            "AND occurred_at >= ? AND occurred_at < ? AND (? IS NULL OR channel = ?) AND keyword IS NOT NULL "
            "GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 50",
            (start, end, channel, channel),
        )
        kinds = self._query(
            "SELECT CASE WHEN source = 'keyword' THEN coalesce(match_kind, 'keyword') "
            "WHEN source = 'provider' THEN coalesce(match_kind, 'provider') ELSE source END AS kind, "
            "count(*) AS n FROM consent_events WHERE action = 'opt_out' AND occurred_at >= ? AND occurred_at < ? "
            "AND (? IS NULL OR channel = ?) GROUP BY 1 ORDER BY 2 DESC, 1",
            (start, end, channel, channel),
        )
        feedback = self._query(
            f"SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE received_at >= ? AND received_at < ? "
            "AND (? IS NULL OR channel = ?) ORDER BY received_at DESC, id DESC LIMIT ?",
            (start, end, channel, channel, STATS_FEEDBACK_LIMIT),
        )
        feedback_total = self._query(
            "SELECT count(*) AS n FROM feedback WHERE received_at >= ? AND received_at < ? AND (? IS NULL OR channel = ?)",
            (start, end, channel, channel),
        )[0]["n"]
        review_open = self._query(
            "SELECT count(*) AS n FROM review_items WHERE status = 'open' AND (? IS NULL OR channel = ?)", (channel, channel)
        )[0]["n"]
        return RawStats(
            daily=[(row["day"], row["channel"], row["action"], row["n"]) for row in daily],
            campaigns=campaigns,
            keywords=[(row["keyword"], row["language"], row["n"]) for row in keywords],
            kinds=[(row["kind"], row["n"]) for row in kinds],
            feedback=[feedback_from_row(row, from_text) for row in feedback],
            feedback_total=feedback_total,
            review_open=review_open,
            complaints=complaints,
        )

    def ping(self) -> None:
        try:
            self.db.conn.execute("SELECT 1 FROM schema_migrations LIMIT 1").fetchall()
        except sqlite3.Error as error:
            raise StoreUnavailable(f"SQLite database {self.path} does not answer: {error}") from error

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None and getattr(self._local, "pid", None) == os.getpid():
            db.conn.close()
        self._local.db = None


def _when_free(action: Callable[[], T]) -> T:
    """Run ``action``, retrying while the database is locked, for up to BUSY_TIMEOUT_MS.

    Waits start at 50 us and double up to 5 ms: a webhook's write holds the lock for
    well under a millisecond, so a short wait usually suffices. Past the timeout the
    last "database is locked" error is raised (StoreUnavailable for the callers).
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.00005
    while True:
        try:
            return action()
        except sqlite3.OperationalError as error:
            # The primary code (low byte) of an extended one such as SQLITE_BUSY_RECOVERY.
            if (error.sqlite_errorcode & 0xFF) not in BUSY_CODES or time.monotonic() >= deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.005)


def _append(conn: sqlite3.Connection, event: ConsentEvent, recorded_at: datetime, only_if_changes: bool,
            copy: bool = False, key_hash: str | None = None) -> Recorded:
    """Insert one event, move the current status if the event is the latest, and queue its
    deliveries to the enabled webhook endpoints, inside the caller's write transaction
    (which holds the database's write lock). ``copy``: keep the event's id, announce nothing."""
    row = conn.execute(
        "SELECT status FROM subscriptions WHERE channel = ? AND address = ?", (event.channel, event.address)
    ).fetchone()
    previous = cast(Status, row[0] if row else "unknown")
    if only_if_changes and previous == STATUS_OF_ACTION[event.action]:
        return Recorded(False, previous, previous, "unchanged")
    if key_hash is not None and conn.execute("SELECT 1 FROM erased_message_keys WHERE key_hash = ?", (key_hash,)).fetchone():
        return Recorded(False, previous, previous, "duplicate")  # a message of a contact erased since
    occurred = to_text(event.occurred_at)
    cursor = conn.execute(
        "INSERT INTO consent_events (id, channel, address, action, source, keyword, language, "
        "match_kind, raw_text, message_id, dedupe_key, config_version, reason, occurred_at, recorded_at, campaign) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING",
        (
            event.id if copy else None, event.channel, event.address, event.action, event.source, event.keyword,
            event.language, event.match_kind, event.raw_text, event.message_id, event.dedupe_key,
            event.config_version, event.reason, occurred, to_text(recorded_at), event.campaign,
        ),
    )
    if cursor.rowcount != 1:
        return Recorded(False, previous, previous, "duplicate")
    # The latest event wins; on equal times the later-recorded one does.
    moved = conn.execute(
        "INSERT INTO subscriptions (channel, address, status, updated_at, event_id) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (channel, address) DO UPDATE SET "
        "status = excluded.status, updated_at = excluded.updated_at, event_id = excluded.event_id "
        "WHERE excluded.updated_at >= subscriptions.updated_at RETURNING status",
        (event.channel, event.address, STATUS_OF_ACTION[event.action], occurred, cursor.lastrowid),
    ).fetchone()
    status = cast(Status, moved[0]) if moved else previous
    assert cursor.lastrowid is not None
    if not copy:
        queue_consent_deliveries(conn, cursor.lastrowid, event.action, event.address, previous, status, to_text(recorded_at))
    return Recorded(True, status, previous, None, cursor.lastrowid)


def _still_suppressed(conn: sqlite3.Connection, found: list[str], hash_for: Callable[[str, str], str],
                      address: str) -> list[str]:
    """The channels an erased address stays suppressed on: where it was unsubscribed now, and
    where an earlier erasure left its hash (a second erasure finds no rows, not no suppression)."""
    channels = set(found)
    for (channel,) in conn.execute(CHANNELS_OF["erased_addresses"]).fetchall():
        if channel not in channels and conn.execute(
            "SELECT 1 FROM erased_addresses WHERE channel = ? AND address_hash = ?", (channel, hash_for(channel, address))
        ).fetchone():
            channels.add(channel)
    return sorted(channels)


def _json_list(values: list[str]) -> str:
    import json

    return json.dumps(values)


def _statements(script: str) -> Iterator[str]:
    """Split a migration into statements (trigger bodies included) with sqlite3's own parser."""
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statement = buffer.strip()
            buffer = ""
            if statement and not all(part.strip().startswith("--") or not part.strip() for part in statement.splitlines()):
                yield statement
    if buffer.strip() and not all(p.strip().startswith("--") or not p.strip() for p in buffer.splitlines()):
        raise ValueError("incomplete SQL statement at the end of a migration")
