"""The server store: PostgreSQL through psycopg 3 and a psycopg_pool connection pool.

One pool per process, opened on first use and rebuilt after a fork (a child never
touches the sockets it inherited from its parent). Every connection is checked before
it is handed out, so connections left dead by a database restart are dropped and
replaced; a connection broken in the middle of a request is discarded by the pool, not
reused. Writes are single transactions: on any failure they roll back, never
half-written. A database that is down, unreachable or too busy surfaces as
StoreUnavailable (503), normally within ``POOL_TIMEOUT`` seconds (a network that goes
silent mid-query: ``tcp_user_timeout``); once it is back the same store works again
without a restart.

Connections run in autocommit mode; everything that must be atomic runs inside an
explicit ``conn.transaction()``. SQL is only ever fixed text plus bound parameters.
"""

from __future__ import annotations

import os
import re
import threading
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from time import monotonic
from typing import Any, Callable, Iterable, Iterator, TypeVar, cast

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

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
)
from webhook.store import (
    ADDRESS_TABLES,
    COPY_TABLES,
    EVENT_COLUMNS,
    FEEDBACK_COLUMNS,
    IDENTITY_TABLES,
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
from webhook.store.postgres_outbox import PostgresOutbox, queue_erased_deliveries
from webhook.store.seen_tokens import PostgresSeenTokens

T = TypeVar("T")

POOL_MIN_SIZE = 1
POOL_MAX_SIZE = 10
# Seconds a request waits for a connection before StoreUnavailable (503). With sync
# workers a request needs one connection at a time, so a wait means the database is not
# answering: give up soon, well inside Twilio's 15 s, so queued requests do not time out.
POOL_TIMEOUT = 3.0
CONNECT_TIMEOUT = 3  # seconds, libpq connect_timeout (unless the URL sets its own)
# How long the pool keeps retrying (with backoff) a connection that failed, before the
# next request starts a fresh attempt. Short, so that once the database is back a new
# connection is tried within a few seconds, not after minutes of backoff.
RECONNECT_TIMEOUT = 10.0
# A connection given back this recently is handed out again without a liveness check (one
# round trip fewer per request under load). If it died meanwhile, record and subscription
# reads try once more on a checked connection: appending is idempotent (dedupe key).
CHECK_AFTER_IDLE = 0.5  # seconds
LOCK_TIMEOUT = "5s"  # a write waits this long for a row/advisory lock, then 503 (as SQLite's busy timeout)
MIGRATION_LOCK_TIMEOUT = "60s"  # processes starting together wait for the one that migrates
CHUNK = 1000
# A database that goes silent (no reset: a partition, a dead host) is noticed within
# about 5 + 2 x 3 = 11 s, inside Twilio's 15 s and gunicorn's worker timeout.
TCP_SETTINGS = {"keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3, "tcp_user_timeout": 10_000}

# Advisory lock keys. The one-key (bigint) and two-key (int, int) spaces never overlap.
MIGRATION_LOCK = 0x756E7375625F6D67  # b"unsub_mg"


# The database is down, unreachable, restarting, read-only (fail-over) or a lock wait ran
# out: nothing was written, and the same request may succeed later.
UNAVAILABLE_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, psycopg.errors.ReadOnlySqlTransaction)

_pool_lock = threading.Lock()


def _new_pool_lock() -> None:
    # A fork may happen while another thread holds the lock; the child starts afresh.
    global _pool_lock
    _pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_pool_lock)


def _clean(value: Any) -> Any:
    """Text without NUL characters (PostgreSQL text cannot hold them)."""
    return value.replace("\x00", "") if isinstance(value, str) else value


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# Optional filters as fixed SQL with named parameters, NULL meaning any.
EVENT_FILTER = (
    "(%(channel)s::text IS NULL OR channel = %(channel)s) AND (%(action)s::text IS NULL OR action = %(action)s) "
    "AND (%(source)s::text IS NULL OR source = %(source)s) "
    "AND (%(since)s::timestamptz IS NULL OR occurred_at >= %(since)s) "
    "AND (%(until)s::timestamptz IS NULL OR occurred_at < %(until)s)"
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
DELETE_ADDRESS = {table: f"DELETE FROM {table} WHERE channel = %s AND address = %s" for table in ADDRESS_TABLES}
CHANNEL_FILTER = "(%(channel)s::text IS NULL OR {column} = %(channel)s)"
# The lock unsub_append_event takes (migration 0002): one writer at a time per channel and address.
ADDRESS_LOCK = "SELECT pg_advisory_xact_lock(1970172770, hashtext(%s || ':' || %s))"


def row_to_version(row: dict) -> KeywordVersion:
    return version_from_row(row, _utc)


def row_to_event(row: dict) -> ConsentEvent:
    return event_from_row(row, _utc)


class _Pool(ConnectionPool):
    """A ConnectionPool that checks connections before handing them out, sweeps out
    dead siblings when one is found dead, and remembers why connecting last failed.

    The check is ``ConnectionPool.check_connection``. When it fails, the pool's own loop
    discards that connection and sleeps (1 s, then 2 s, 4 s...) before trying the next
    idle one; after a server restart every idle connection is dead, so a full pool would
    run out the request timeout one dead connection at a time. Instead the first failure
    starts ``check()`` of all idle connections in the background, so fresh connections
    replace them at once.

    ``last_error`` only serves messages: it says *why* no connection came (refused,
    unknown host, bad password) rather than a bare pool timeout. If psycopg_pool ever
    renames ``_connect`` the override is simply not called and messages lose that detail.
    """

    last_error: str | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._sweeping = threading.Lock()
        self._check_all_before = 0.0  # connections given back before this are checked (set on a loss)
        super().__init__(*args, check=self._check_connection_or_sweep, **kwargs)

    def putconn(self, conn: psycopg.Connection) -> None:
        conn._unsub_returned = monotonic()  # type: ignore[attr-defined]
        super().putconn(conn)

    def lost_one(self) -> None:
        """A connection was found dead: check every idle one before its next use."""
        self._check_all_before = monotonic()
        self.sweep()

    def _check_connection_or_sweep(self, conn: psycopg.Connection) -> None:
        returned = getattr(conn, "_unsub_returned", None)
        if returned is not None and returned > self._check_all_before and monotonic() - returned < CHECK_AFTER_IDLE:
            return  # in use a moment ago (see CHECK_AFTER_IDLE)
        try:
            ConnectionPool.check_connection(conn)
        except Exception:
            self.sweep()
            raise

    def sweep(self) -> None:
        """Test every idle connection in the background (once at a time); replace the dead."""
        if self._sweeping.acquire(blocking=False):
            try:
                threading.Thread(target=self._sweep, name=f"{self.name}-sweep", daemon=True).start()
            except BaseException:
                self._sweeping.release()
                raise

    def _sweep(self) -> None:
        try:
            self.check()
        except Exception:  # the pool was closed meanwhile, or similar: nothing to clean
            pass
        finally:
            self._sweeping.release()

    def _connect(self, *args: Any, **kwargs: Any) -> Any:
        try:
            conn = super()._connect(*args, **kwargs)
        except Exception as error:
            self.last_error = _one_line(error)
            raise
        self.last_error = None
        return conn


def _configure(conn: psycopg.Connection) -> None:
    """Session settings for every new pooled connection (left idle: autocommit)."""
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (LOCK_TIMEOUT,))


class PostgresStore(PostgresOutbox, PostgresSeenTokens):
    kind = "postgresql"

    def __init__(self, database_url: str) -> None:
        # What tests and tools may connect to directly; same URL the pool uses.
        self.conninfo = database_url
        self._scope_cache = ScopeCache()
        self._erasure_hasher: Callable[[str, str], str] | None = None
        # A URL libpq cannot parse is reported on first use (migrate at start-up), as
        # StoreUnavailable like any other unusable database, password masked.
        self._bad_url: str | None = None
        try:
            params = conninfo_to_dict(database_url)
        except psycopg.Error as error:
            params = {}
            self._bad_url = _one_line(error).replace(database_url, _redact(database_url))
        self.where = _describe(params)
        self._kwargs: dict[str, Any] = {"autocommit": True, "row_factory": dict_row}
        if "connect_timeout" not in params:
            self._kwargs["connect_timeout"] = CONNECT_TIMEOUT
        if "application_name" not in params:
            self._kwargs["application_name"] = "unsub"
        # A silent network (host gone, no reset) fails a query or check after
        # tcp_user_timeout instead of hanging until the worker is killed. libpq ignores
        # these on Unix-domain sockets; the URL may set its own.
        for name, value in TCP_SETTINGS.items():
            if name not in params:
                self._kwargs[name] = value
        self._pool: _Pool | None = None
        self._pid: int | None = None
        # Pools inherited across a fork: kept referenced and never closed here, since
        # their sockets belong to the parent process.
        self._inherited: list[_Pool] = []

    # -- connections -------------------------------------------------------------

    def _new_pool(self) -> _Pool:
        pool = _Pool(
            self.conninfo,
            min_size=POOL_MIN_SIZE,
            max_size=POOL_MAX_SIZE,
            kwargs=self._kwargs,
            configure=_configure,  # (the check: see _Pool)
            timeout=POOL_TIMEOUT,
            reconnect_timeout=RECONNECT_TIMEOUT,
            name="unsub",
            open=False,
        )
        pool.open(wait=False)  # connects in the background; requests wait at most POOL_TIMEOUT
        return pool

    def _current_pool(self) -> _Pool:
        if self._bad_url is not None:
            raise StoreUnavailable(f"DATABASE_URL is not a valid PostgreSQL URL: {self._bad_url}")
        pool, pid = self._pool, self._pid
        if pool is not None and pid == os.getpid():
            return pool
        with _pool_lock:
            if self._pool is not None and self._pid == os.getpid():
                return self._pool
            if self._pool is not None:
                self._inherited.append(self._pool)
            self._pool = self._new_pool()
            self._pid = os.getpid()
            return self._pool

    @contextmanager
    def _connection(self, doing: str) -> Iterator[psycopg.Connection[DictRow]]:
        """A pooled connection; database trouble becomes StoreUnavailable."""
        pool = self._current_pool()
        used: psycopg.Connection[Any] | None = None
        try:
            with pool.connection() as conn:
                used = conn
                yield cast("psycopg.Connection[DictRow]", conn)  # rows are dicts: row_factory=dict_row
        except PoolTimeout as error:
            reason = f": {pool.last_error}" if pool.last_error else ""
            raise StoreUnavailable(
                f"cannot {doing}: PostgreSQL at {self.where} gave no connection within {POOL_TIMEOUT:g}s{reason}"
            ) from error
        except UNAVAILABLE_ERRORS as error:
            lost = used is not None and used.closed
            if lost:
                # The pool discards this one; its idle siblings probably died with it
                # (server restart, fail-over): test them now rather than on the next requests.
                pool.lost_one()
            unavailable = StoreUnavailable(f"cannot {doing}: PostgreSQL at {self.where}: {_one_line(error)}")
            unavailable.connection_lost = lost
            raise unavailable from error

    def _once_more_if_lost(self, doing: str, work: Callable[[psycopg.Connection[DictRow]], T]) -> T:
        """``work`` on a pooled connection; when that connection turns out dead (see
        CHECK_AFTER_IDLE), once more on a checked one. Only for work that may run twice."""
        try:
            with self._connection(doing) as conn:
                return work(conn)
        except StoreUnavailable as error:
            if not error.connection_lost:
                raise
        with self._connection(doing) as conn:
            return work(conn)

    # -- schema ------------------------------------------------------------------

    def migrate(self) -> list[str]:
        applied: list[str] = []
        with self._connection("migrate") as conn:
            with conn.transaction():
                conn.execute("SELECT set_config('lock_timeout', %s, true)", (MIGRATION_LOCK_TIMEOUT,))
                # One process migrates; the others wait here, then find nothing to do.
                conn.execute("SELECT pg_advisory_xact_lock(%s::bigint)", (MIGRATION_LOCK,))
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                    "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                done = {row["version"] for row in conn.execute("SELECT version FROM schema_migrations")}
                for number, name, script in migration_files(self.kind):
                    if number in done:
                        continue
                    # A packaged migration file (code, not data): several statements,
                    # no parameters, so psycopg sends it with the simple query protocol.
                    conn.execute(script.encode("utf-8"))
                    conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (number, name))
                    applied.append(name)
        return applied

    # -- writes ------------------------------------------------------------------

    def use_erasure_hasher(self, hash_for: Callable[[str, str], str]) -> None:
        self._erasure_hasher = hash_for

    def record(self, event: ConsentEvent, *, only_if_changes: bool = False) -> Recorded:
        # One statement in autocommit mode: one transaction, one round trip. Idempotent (the
        # event's dedupe key), so a connection found dead is retried once.
        return self._once_more_if_lost("record consent event",
                                       lambda conn: _append(conn, event, None, only_if_changes,
                                                            erased_key_hash(self._erasure_hasher, event.dedupe_key)))

    def import_events(self, events: list[ConsentEvent], *, only_if_changes: bool = False,
                      on_added: Callable[[ConsentEvent], None] | None = None) -> int:
        """Append events recorded elsewhere (a copy or an import), in one transaction.

        Times are kept as they were; a repeated dedupe key is skipped; the status still
        follows the latest event. Returns how many events were added (``on_added`` is
        called with each once committed).
        """
        added: list[ConsentEvent] = []
        with self._connection("import consent events") as conn:
            with conn.transaction():
                for event in events:
                    if _append(conn, event, event.recorded_at, only_if_changes,
                               erased_key_hash(self._erasure_hasher, event.dedupe_key)).created:
                        added.append(event)
        if on_added is not None:
            for event in added:
                on_added(event)
        return len(added)

    def copy_events(self, events: list[ConsentEvent]) -> int:
        """Add events copied from another database (copy-db) under their own ids, times and keys;
        statuses follow; nothing is announced (the copy carries the source's outbox)."""
        added = 0
        with self._connection("copy consent events") as conn:
            with conn.transaction():
                for event in events:
                    row = conn.execute(
                        "INSERT INTO consent_events (id, channel, address, action, source, keyword, language, match_kind, "
                        "raw_text, message_id, dedupe_key, config_version, reason, occurred_at, recorded_at, campaign) "
                        "OVERRIDING SYSTEM VALUE VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                        "ON CONFLICT DO NOTHING RETURNING id",
                        (event.id, _clean(event.channel), _clean(event.address), event.action, _clean(event.source),
                         _clean(event.keyword), _clean(event.language), _clean(event.match_kind), _clean(event.raw_text),
                         _clean(event.message_id), _clean(event.dedupe_key), _clean(event.config_version),
                         _clean(event.reason), _utc(event.occurred_at),
                         _utc(event.recorded_at) if event.recorded_at else _utc(event.occurred_at),
                         _clean(event.campaign)),
                    ).fetchone()
                    if row is None:
                        continue
                    added += 1
                    conn.execute(
                        "INSERT INTO subscriptions AS s (channel, address, status, updated_at, event_id) "
                        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (channel, address) DO UPDATE "
                        "SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at, event_id = EXCLUDED.event_id "
                        "WHERE EXCLUDED.updated_at >= s.updated_at",
                        (_clean(event.channel), _clean(event.address), STATUS_OF_ACTION[event.action],
                         _utc(event.occurred_at), row["id"]),
                    )
                if added:
                    # Events recorded later get ids after the copied ones.
                    conn.execute("SELECT setval(pg_get_serial_sequence('consent_events', 'id'), "
                                 "(SELECT max(id) FROM consent_events))")
        return added

    # -- reads -------------------------------------------------------------------

    def subscription(self, channel: str, address: str) -> Subscription | None:
        channel, address = _clean(channel), _clean(address)
        row = self._once_more_if_lost("read subscription", lambda conn: conn.execute(
            "SELECT status, updated_at FROM subscriptions WHERE channel = %s AND address = %s", (channel, address),
        ).fetchone())
        if row is None:
            return None
        return Subscription(channel, address, row["status"], _utc(row["updated_at"]))

    def history(self, channel: str, address: str, limit: int = 100) -> list[ConsentEvent]:
        with self._connection("read history") as conn:
            rows = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM consent_events WHERE channel = %s AND address = %s "
                "ORDER BY occurred_at DESC, id DESC LIMIT %s",
                (_clean(channel), _clean(address), limit),
            ).fetchall()
        return [row_to_event(row) for row in rows][::-1]

    def _among(self, doing: str, sql: str, channel: str, values: Iterable[str]) -> list[DictRow]:
        """Rows of ``sql`` for these values, CHUNK at a time, on one connection. ``sql`` binds
        the channel, then the values as one text array."""
        wanted = list(dict.fromkeys(_clean(v) for v in values))
        found: list[DictRow] = []
        if not wanted:
            return found
        with self._connection(doing) as conn:
            for start in range(0, len(wanted), CHUNK):
                found.extend(conn.execute(sql, (_clean(channel), wanted[start:start + CHUNK])).fetchall())
        return found

    def iter_events(self, batch: int = 1000) -> Iterator[list[ConsentEvent]]:
        """Every event in the order it was recorded, in batches (for copies and exports)."""
        last = 0
        while True:
            with self._connection("read events") as conn:
                rows = conn.execute(
                    f"SELECT {EVENT_COLUMNS} FROM consent_events WHERE id > %s ORDER BY id LIMIT %s", (last, batch)
                ).fetchall()
            if not rows:
                return
            last = rows[-1]["id"]
            yield [row_to_event(row) for row in rows]

    def event_count(self, since: datetime | None = None) -> int:
        with self._connection("count events") as conn:
            if since is None:
                row = conn.execute("SELECT count(*) AS n FROM consent_events").fetchone()
            else:
                row = conn.execute(
                    "SELECT count(*) AS n FROM consent_events WHERE occurred_at >= %s", (_utc(since),)
                ).fetchone()
        assert row is not None
        return int(row["n"])

    # -- keyword configuration versions ---------------------------------------------

    def add_keyword_version(self, version: NewKeywordVersion, *, only_if_file_changed: bool = False) -> KeywordVersion:
        with self._connection("save keyword configuration") as conn:
            with conn.transaction():
                # One writer at a time, so processes starting together add one version.
                conn.execute("LOCK TABLE keyword_versions IN SHARE ROW EXCLUSIVE MODE")
                if only_if_file_changed:
                    row = conn.execute(
                        "SELECT content_hash FROM keyword_versions WHERE source = 'file' ORDER BY id DESC LIMIT 1"
                    ).fetchone()
                    latest = conn.execute(
                        f"SELECT {VERSION_COLUMNS} FROM keyword_versions ORDER BY id DESC LIMIT 1"
                    ).fetchone()
                    if row is not None and row["content_hash"] == version.content_hash and latest is not None:
                        return row_to_version(latest)
                inserted = conn.execute(
                    "INSERT INTO keyword_versions (content_hash, document, yaml, source, author, note, diff) "
                    f"VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING {VERSION_COLUMNS}",
                    (
                        version.content_hash, _clean(version.document), _clean(version.yaml), version.source,
                        _clean(version.author), _clean(version.note), _clean(version.diff),
                    ),
                ).fetchone()
        assert inserted is not None
        return row_to_version(inserted)

    def latest_keyword_version(self) -> KeywordVersion | None:
        with self._connection("read keyword configuration") as conn:
            row = conn.execute(f"SELECT {VERSION_COLUMNS} FROM keyword_versions ORDER BY id DESC LIMIT 1").fetchone()
        return row_to_version(row) if row else None

    def latest_keyword_version_number(self) -> int:
        with self._connection("read keyword configuration") as conn:
            row = conn.execute("SELECT coalesce(max(id), 0) AS n FROM keyword_versions").fetchone()
        assert row is not None
        return int(row["n"])

    def keyword_version(self, number: int) -> KeywordVersion | None:
        if not 0 < number <= MAX_VERSION_NUMBER:
            return None
        with self._connection("read keyword configuration") as conn:
            row = conn.execute(f"SELECT {VERSION_COLUMNS} FROM keyword_versions WHERE id = %s", (number,)).fetchone()
        return row_to_version(row) if row else None

    def keyword_versions(self, limit: int = 50, offset: int = 0) -> list[KeywordVersion]:
        with self._connection("read keyword configuration") as conn:
            rows = conn.execute(
                f"SELECT {VERSION_COLUMNS} FROM keyword_versions ORDER BY id DESC LIMIT %s OFFSET %s", (limit, offset)
            ).fetchall()
        return [row_to_version(row) for row in rows]

    def channel_scopes(self, since: datetime, until: datetime) -> list[ChannelScope]:
        with self._connection("read keyword configuration") as conn:
            rows = conn.execute(
                "SELECT id FROM keyword_versions "
                "WHERE id >= coalesce((SELECT max(id) FROM keyword_versions WHERE created_at < %(since)s), 0) "
                "AND created_at < %(until)s ORDER BY id",
                {"since": _utc(since), "until": _utc(until)},
            ).fetchall()
        return self._scope_cache.scopes([int(row["id"]) for row in rows], self._read_scopes)

    def _read_scopes(self, versions: list[int]) -> list[ChannelScope]:
        # A keyword may hold NUL, which the stored JSON writes as the escape \u0000 and
        # PostgreSQL's JSON functions refuse: it becomes \ufffd first. The swap keeps the
        # JSON valid even after an escaped backslash (\\u0000 is then \\ufffd), and touches
        # neither channel names nor scopes (validated words).
        with self._connection("read keyword configuration") as conn:
            rows = conn.execute(
                "SELECT v.id AS version, v.created_at AS at, c.key AS channel, "
                "c.value ->> 'revocation_scope' AS scope "
                "FROM keyword_versions v, "
                "json_each(replace(v.document, '\\u0000', '\\ufffd')::json -> 'channels') c "
                "WHERE v.id = ANY(%(versions)s)",
                {"versions": versions},
            ).fetchall()
        return [ChannelScope(int(row["version"]), _utc(row["at"]), row["channel"], row["scope"]) for row in rows]

    def events(self, filters: EventFilter, limit: int = 50, offset: int = 0) -> tuple[list[ConsentEvent], int]:
        params = {
            "channel": _clean(filters.channel), "action": _clean(filters.action), "source": _clean(filters.source),
            "since": _utc(filters.since) if filters.since else None, "until": _utc(filters.until) if filters.until else None,
        }
        with self._connection("list events") as conn:
            rows = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM consent_events WHERE {EVENT_FILTER} "
                "ORDER BY occurred_at DESC, id DESC LIMIT %(limit)s OFFSET %(offset)s",
                {**params, "limit": limit, "offset": offset},
            ).fetchall()
            total = conn.execute(f"SELECT count(*) AS n FROM consent_events WHERE {EVENT_FILTER}", params).fetchone()
        assert total is not None
        return [row_to_event(row) for row in rows], int(total["n"])

    # -- campaigns, feedback, review, erasure, statistics --------------------------------

    def record_campaign_messages(self, messages: list[CampaignMessage]) -> int:
        added = 0
        with self._connection("record campaign messages") as conn:
            with conn.transaction():
                for m in messages:
                    at = _utc(m.at)
                    key_hash = erased_key_hash(self._erasure_hasher, campaign_message_key(m.message_id))
                    if key_hash and conn.execute("SELECT 1 FROM erased_message_keys WHERE key_hash = %s",
                                                 (key_hash,)).fetchone():
                        continue  # sent to a contact erased since: a late or replayed callback stores nothing
                    row = conn.execute(
                        "INSERT INTO campaign_messages AS c (message_id, campaign, channel, address, status, stage, "
                        "sent_at, delivered_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                        "ON CONFLICT (message_id) DO UPDATE SET status = EXCLUDED.status, stage = EXCLUDED.stage, "
                        "updated_at = EXCLUDED.updated_at, delivered_at = coalesce(c.delivered_at, EXCLUDED.delivered_at) "
                        "WHERE c.stage < EXCLUDED.stage RETURNING (xmax = 0) AS inserted",
                        (_clean(m.message_id), _clean(m.campaign), _clean(m.channel), _clean(m.address), m.status,
                         m.stage, at, at if m.delivered else None, at),
                    ).fetchone()
                    added += bool(row and row["inserted"])
        return added

    def statuses_among(self, channel: str, addresses: Iterable[str]) -> dict[str, str]:
        rows = self._among(
            "read subscriptions",
            "SELECT address, status FROM subscriptions WHERE channel = %s AND address = ANY(%s::text[])",
            channel, addresses,
        )
        return {row["address"]: row["status"] for row in rows}

    def has_erasures(self, channel: str) -> bool:
        with self._connection("read erasures") as conn:
            return conn.execute(
                "SELECT 1 FROM erased_addresses WHERE channel = %s LIMIT 1", (_clean(channel),)
            ).fetchone() is not None

    def status_count(self, channel: str) -> int:
        with self._connection("count statuses") as conn:
            row = conn.execute(
                "SELECT (SELECT count(*) FROM subscriptions WHERE channel = %(c)s) "
                "+ (SELECT count(*) FROM erased_addresses WHERE channel = %(c)s) AS n", {"c": _clean(channel)},
            ).fetchone()
        assert row is not None
        return int(row["n"])

    def erased_among(self, channel: str, hashes: Iterable[str]) -> dict[str, datetime]:
        rows = self._among(
            "read erasures",
            "SELECT address_hash, erased_at FROM erased_addresses WHERE channel = %s AND address_hash = ANY(%s::text[])",
            channel, hashes,
        )
        return {row["address_hash"]: _utc(row["erased_at"]) for row in rows}

    def erase(self, address: str, hash_for: Callable[[str, str], str]) -> Erasure:
        address = _clean(address)
        deleted = dict.fromkeys(ADDRESS_TABLES, 0)
        suppressed: list[str] = []
        fingerprint = key_fingerprint(hash_for)
        with self._connection("erase a contact") as conn:
            with conn.transaction():
                conn.execute("INSERT INTO erasure_key (id, fingerprint) VALUES (1, %s) ON CONFLICT DO NOTHING",
                             (fingerprint,))
                row = conn.execute("SELECT fingerprint FROM erasure_key").fetchone()
                if row is None or row["fingerprint"] != fingerprint:
                    raise ErasureKeyMismatch("erased contacts here were hashed with another key")
                # Same lock as recording (unsub_append_event): no event for this address
                # slips in between reading its channels and deleting them.
                channels = sorted({row["ch"] for table in ADDRESS_TABLES for row in conn.execute(CHANNELS_OF[table])})
                for channel in channels:
                    conn.execute(ADDRESS_LOCK, (channel, address))
                for channel in channels:
                    row = conn.execute(
                        "SELECT status FROM subscriptions WHERE channel = %s AND address = %s", (channel, address)
                    ).fetchone()
                    if row is not None and row["status"] == "unsubscribed":
                        conn.execute(
                            "INSERT INTO erased_addresses (channel, address_hash, erased_at) VALUES (%s, %s, now()) "
                            "ON CONFLICT DO NOTHING",
                            (channel, hash_for(channel, address)),
                        )
                        suppressed.append(channel)
                    elif row is not None:  # opted in again since an earlier erasure: that hash is stale
                        conn.execute("DELETE FROM erased_addresses WHERE channel = %s AND address_hash = %s",
                                     (channel, hash_for(channel, address)))
                # Their provider message ids, as keyed hashes: a replay after the erasure stays a duplicate.
                for table in KEYED_TABLES:
                    for channel in channels:
                        keys = [row["dedupe_key"] for row in conn.execute(
                            f"SELECT dedupe_key FROM {table} WHERE channel = %s AND address = %s AND dedupe_key IS NOT NULL",
                            (channel, address)).fetchall()]
                        with conn.cursor() as cursor:
                            cursor.executemany(
                                "INSERT INTO erased_message_keys (key_hash) VALUES (%s) ON CONFLICT DO NOTHING",
                                [(erased_key_hash(hash_for, key),) for key in keys],
                            )
                for channel in channels:
                    ids = [row["message_id"] for row in conn.execute(
                        "SELECT message_id FROM campaign_messages WHERE channel = %s AND address = %s",
                        (channel, address)).fetchall()]
                    with conn.cursor() as cursor:
                        cursor.executemany(
                            "INSERT INTO erased_message_keys (key_hash) VALUES (%s) ON CONFLICT DO NOTHING",
                            [(erased_key_hash(hash_for, campaign_message_key(message_id)),) for message_id in ids],
                        )
                conn.execute("SET LOCAL unsub.erasing = 'on'")
                for channel in channels:
                    for table in ADDRESS_TABLES:  # subscriptions first: they refer to events
                        deleted[table] += conn.execute(DELETE_ADDRESS[table], (channel, address)).rowcount
                # Also where an earlier erasure left its hash: a second erasure finds no rows,
                # but the contact is still suppressed there.
                for row in conn.execute(CHANNELS_OF["erased_addresses"]).fetchall():
                    channel = row["ch"]
                    if channel not in suppressed and conn.execute(
                        "SELECT 1 FROM erased_addresses WHERE channel = %s AND address_hash = %s",
                        (channel, hash_for(channel, address)),
                    ).fetchone():
                        suppressed.append(channel)
                deleted["outbox"] = queue_erased_deliveries(conn, address, sorted(suppressed), _utc(datetime.now(timezone.utc)))
        return Erasure(address, sorted(suppressed), deleted)

    def erasure_key_fingerprint(self) -> str | None:
        with self._connection("read erasure key") as conn:
            row = conn.execute("SELECT fingerprint FROM erasure_key WHERE id = 1").fetchone()
        return row["fingerprint"] if row else None

    def _channels(self, conn: psycopg.Connection[DictRow], table: str) -> list[str]:
        return [row["ch"] for row in conn.execute(CHANNELS_OF[table])]

    def contact_events(self, address: str) -> list[ConsentEvent]:
        with self._connection("read history") as conn:
            rows = conn.execute(
                f"SELECT {EVENT_COLUMNS} FROM consent_events WHERE channel = ANY(%s::text[]) AND address = %s "
                "ORDER BY occurred_at, id",
                (self._channels(conn, "consent_events"), _clean(address)),
            ).fetchall()
        return [row_to_event(row) for row in rows]

    def contact_feedback(self, address: str) -> list[Feedback]:
        with self._connection("read feedback") as conn:
            rows = conn.execute(
                f"SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE channel = ANY(%s::text[]) AND address = %s "
                "ORDER BY received_at, id",
                (self._channels(conn, "feedback"), _clean(address)),
            ).fetchall()
        return [feedback_from_row(row, _utc) for row in rows]

    def iter_suppressions(self, channel: str, batch: int = 1000, after: str = "") -> Iterator[list[Suppression]]:
        last = _clean(after)
        while True:
            with self._connection("read suppressions") as conn:
                rows = conn.execute(
                    "SELECT s.address, s.updated_at, e.source, e.keyword FROM subscriptions s "
                    "JOIN consent_events e ON e.id = s.event_id WHERE s.channel = %s AND s.status = 'unsubscribed' "
                    "AND s.address > %s ORDER BY s.address LIMIT %s",
                    (_clean(channel), last, batch),
                ).fetchall()
            if not rows:
                return
            last = rows[-1]["address"]
            yield [Suppression(channel, row["address"], _utc(row["updated_at"]), row["source"], row["keyword"])
                   for row in rows]

    def iter_rows(self, table: str, batch: int = 1000) -> Iterator[list[dict]]:
        columns, key, times, _ = COPY_TABLES[table]
        listed, keys = ", ".join(columns), ", ".join(key)
        marks = ", ".join("%s" for _ in key)
        last: tuple | None = None
        while True:
            with self._connection(f"read {table}") as conn:
                if last is None:
                    found = conn.execute(f"SELECT {listed} FROM {table} ORDER BY {keys} LIMIT %s", (batch,)).fetchall()
                else:
                    found = conn.execute(
                        f"SELECT {listed} FROM {table} WHERE ({keys}) > ({marks}) ORDER BY {keys} LIMIT %s", last + (batch,)
                    ).fetchall()
            if not found:
                return
            last = tuple(found[-1][name] for name in key)
            yield [{name: _utc(row[name]) if name in times and row[name] is not None else row[name] for name in columns}
                   for row in found]

    def import_rows(self, table: str, rows: list[dict]) -> int:
        columns, _, _, _ = COPY_TABLES[table]
        # Identity ids are kept as they were (OVERRIDING: the copy is of the same rows).
        overriding = "OVERRIDING SYSTEM VALUE " if table in IDENTITY_TABLES else ""
        sql = (f"INSERT INTO {table} ({', '.join(columns)}) {overriding}VALUES ({', '.join('%s' for _ in columns)}) "
               "ON CONFLICT DO NOTHING")
        added = 0
        with self._connection(f"copy {table}") as conn:
            with conn.transaction():
                for row in rows:
                    added += conn.execute(sql, [_clean(row[name]) for name in columns]).rowcount
                if table in IDENTITY_TABLES and added:
                    # Later rows get ids after the copied ones.
                    conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                 f"(SELECT max(id) FROM {table}))")
        return added

    def suppression_count(self, channel: str) -> int:
        with self._connection("count suppressions") as conn:
            row = conn.execute(
                "SELECT count(*) AS n FROM subscriptions WHERE channel = %s AND status = 'unsubscribed'", (_clean(channel),)
            ).fetchone()
        assert row is not None
        return int(row["n"])

    def add_feedback(self, item: Feedback) -> bool:
        channel, address = _clean(item.channel), _clean(item.address)
        with self._connection("keep feedback") as conn:
            with conn.transaction():
                # Under the address lock an erasure holds: one that ran between the opt-out
                # and its reason has removed the subscription, and nothing is kept.
                conn.execute(ADDRESS_LOCK, (channel, address))
                return conn.execute(
                    "INSERT INTO feedback (channel, address, kind, text, message_id, dedupe_key, received_at) "
                    "SELECT %s, %s, %s, %s, %s, %s, %s WHERE EXISTS "
                    "(SELECT 1 FROM subscriptions WHERE channel = %s AND address = %s) "
                    "ON CONFLICT (dedupe_key) DO NOTHING",
                    (channel, address, item.kind, _clean(item.text), _clean(item.message_id), _clean(item.dedupe_key),
                     _utc(item.received_at), channel, address),
                ).rowcount == 1

    def add_feedback_after_opt_out(self, item: Feedback, window: timedelta) -> bool:
        with self._connection("keep feedback") as conn:
            with conn.transaction():
                # The recording lock: two quick messages after a STOP cannot both be "the first".
                conn.execute(ADDRESS_LOCK,
                             (_clean(item.channel), _clean(item.address)))
                return conn.execute(
                    "INSERT INTO feedback (channel, address, kind, text, message_id, dedupe_key, received_at) "
                    "SELECT s.channel, s.address, 'after_opt_out', %(text)s, %(message_id)s, %(dedupe_key)s, %(at)s "
                    "FROM subscriptions s "
                    "WHERE s.channel = %(channel)s AND s.address = %(address)s AND s.status = 'unsubscribed' "
                    "AND s.updated_at >= %(earliest)s AND s.updated_at <= %(at)s "
                    "AND NOT EXISTS (SELECT 1 FROM feedback f WHERE f.channel = s.channel AND f.address = s.address "
                    "AND f.kind = 'after_opt_out' AND f.received_at >= s.updated_at) "
                    "ON CONFLICT (dedupe_key) DO NOTHING",
                    {"text": _clean(item.text), "message_id": _clean(item.message_id),
                     "dedupe_key": _clean(item.dedupe_key), "at": _utc(item.received_at),
                     "channel": _clean(item.channel), "address": _clean(item.address),
                     "earliest": _utc(item.received_at - window)},
                ).rowcount == 1

    def feedback_items(self, limit: int = 50, offset: int = 0) -> tuple[list[Feedback], int]:
        with self._connection("read feedback") as conn:
            rows = conn.execute(
                f"SELECT {FEEDBACK_COLUMNS} FROM feedback ORDER BY received_at DESC, id DESC LIMIT %s OFFSET %s",
                (limit, offset),
            ).fetchall()
            total = conn.execute("SELECT count(*) AS n FROM feedback").fetchone()
        assert total is not None
        return [feedback_from_row(row, _utc) for row in rows], int(total["n"])

    def add_review_item(self, item: ReviewItem) -> bool:
        with self._connection("queue a message for review") as conn:
            return conn.execute(
                "INSERT INTO review_items (channel, address, text, message_id, dedupe_key, received_at, config_version, "
                "reason) SELECT %s, %s, %s, %s, %s, %s, %s, %s "
                "WHERE NOT EXISTS (SELECT 1 FROM erased_message_keys WHERE key_hash = %s) ON CONFLICT (dedupe_key) DO NOTHING",
                (_clean(item.channel), _clean(item.address), _clean(item.text), _clean(item.message_id),
                 _clean(item.dedupe_key), _utc(item.received_at), _clean(item.config_version), _clean(item.reason),
                 erased_key_hash(self._erasure_hasher, item.dedupe_key)),
            ).rowcount == 1

    def review_items(self, status: str | None, limit: int = 50, offset: int = 0) -> tuple[list[ReviewItem], int]:
        params = {"status": _clean(status), "limit": limit, "offset": offset}
        where = "(%(status)s::text IS NULL OR status = %(status)s)"
        with self._connection("read review queue") as conn:
            rows = conn.execute(
                f"SELECT {REVIEW_COLUMNS} FROM review_items WHERE {where} ORDER BY id LIMIT %(limit)s OFFSET %(offset)s",
                params,
            ).fetchall()
            total = conn.execute(f"SELECT count(*) AS n FROM review_items WHERE {where}", params).fetchone()
        assert total is not None
        return [review_from_row(row, _utc) for row in rows], int(total["n"])

    def review_item(self, item_id: int) -> ReviewItem | None:
        if not 0 < item_id <= MAX_VERSION_NUMBER:
            return None
        with self._connection("read review queue") as conn:
            row = conn.execute(f"SELECT {REVIEW_COLUMNS} FROM review_items WHERE id = %s", (item_id,)).fetchone()
        return review_from_row(row, _utc) if row else None

    def decide_review_item(self, item_id: int, status: str, decided_by: str) -> bool:
        if not 0 < item_id <= MAX_VERSION_NUMBER:
            return False
        with self._connection("decide a review item") as conn:
            return conn.execute(
                "UPDATE review_items SET status = %s, decided_by = %s, decided_at = now() WHERE id = %s AND status = 'open'",
                (status, _clean(decided_by), item_id),
            ).rowcount == 1

    def raw_stats(self, since: datetime, until: datetime, window: timedelta, channel: str | None = None) -> RawStats:
        p = {"since": _utc(since), "until": _utc(until), "late_until": _utc(until + window), "window": window,
             "channel": _clean(channel), "limit": STATS_FEEDBACK_LIMIT}
        in_period = "occurred_at >= %(since)s AND occurred_at < %(until)s"
        by_channel = CHANNEL_FILTER.format(column="channel")
        with self._connection("read statistics") as conn:
            daily = conn.execute(
                "SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD') AS day, channel, action, count(*) AS n "
                f"FROM consent_events WHERE {in_period} AND {by_channel} GROUP BY 1, 2, 3 ORDER BY 1, 2, 3", p,
            ).fetchall()
            sent = conn.execute(
                "SELECT campaign, channel, count(delivered_at) AS delivered FROM campaign_messages "
                f"WHERE sent_at >= %(since)s AND sent_at < %(until)s AND {by_channel} GROUP BY 1, 2", p,
            ).fetchall()
            # An opt-out counts against the campaign it names (an e-mail provider's complaint),
            # else against the latest campaign message delivered within the window before it. A
            # named campaign belongs to the periods it was sent in, or, when unsub knows no send
            # of it at all, to the period of the opt-out. Complaints: opt-outs with source complaint.
            attributed = conn.execute(
                "WITH outs AS (SELECT e.channel, e.address, e.source, e.occurred_at, e.campaign AS named, m.campaign, "
                " m.sent_at FROM consent_events e "
                " LEFT JOIN LATERAL (SELECT c.campaign, c.sent_at FROM campaign_messages c "
                "  WHERE e.campaign IS NULL AND c.channel = e.channel AND c.address = e.address "
                "  AND c.delivered_at IS NOT NULL AND c.delivered_at <= e.occurred_at "
                "  AND c.delivered_at >= e.occurred_at - %(window)s "
                "  ORDER BY c.delivered_at DESC, c.message_id DESC LIMIT 1) m ON true "
                " WHERE e.action = 'opt_out' AND e.source <> 'import' "
                " AND e.occurred_at >= %(since)s AND e.occurred_at < %(late_until)s "
                f" AND {CHANNEL_FILTER.format(column='e.channel')}), "
                "attributed AS (SELECT campaign, channel, address, source FROM outs "
                " WHERE sent_at >= %(since)s AND sent_at < %(until)s "
                " UNION ALL SELECT named, channel, address, source FROM outs WHERE named IS NOT NULL "
                " AND (EXISTS (SELECT 1 FROM campaign_messages c WHERE c.campaign = outs.named AND c.channel = outs.channel "
                "  AND c.sent_at >= %(since)s AND c.sent_at < %(until)s) OR (outs.occurred_at < %(until)s AND NOT EXISTS "
                "  (SELECT 1 FROM campaign_messages c WHERE c.campaign = outs.named AND c.channel = outs.channel)))) "
                "SELECT campaign, channel, count(DISTINCT address) AS n, "
                "count(DISTINCT address) FILTER (WHERE source = 'complaint') AS complaints FROM attributed GROUP BY 1, 2", p,
            ).fetchall()
            keywords = conn.execute(
                f"SELECT keyword, language, count(*) AS n FROM consent_events WHERE action = 'opt_out' AND {in_period} "
                f"AND {by_channel} AND keyword IS NOT NULL GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 50", p,
            ).fetchall()
            kinds = conn.execute(
                "SELECT CASE WHEN source = 'keyword' THEN coalesce(match_kind, 'keyword') "
                "WHEN source = 'provider' THEN coalesce(match_kind, 'provider') ELSE source END AS kind, "
                f"count(*) AS n FROM consent_events WHERE action = 'opt_out' AND {in_period} AND {by_channel} "
                "GROUP BY 1 ORDER BY 2 DESC, 1", p,
            ).fetchall()
            feedback = conn.execute(
                f"SELECT {FEEDBACK_COLUMNS} FROM feedback WHERE received_at >= %(since)s AND received_at < %(until)s "
                f"AND {by_channel} ORDER BY received_at DESC, id DESC LIMIT %(limit)s", p,
            ).fetchall()
            feedback_total = conn.execute(
                "SELECT count(*) AS n FROM feedback WHERE received_at >= %(since)s AND received_at < %(until)s "
                f"AND {by_channel}", p,
            ).fetchone()
            review_open = conn.execute(
                f"SELECT count(*) AS n FROM review_items WHERE status = 'open' AND {by_channel}", p
            ).fetchone()
        assert feedback_total is not None and review_open is not None
        campaigns, complaints = campaign_counts(
            [(row["campaign"], row["channel"], int(row["delivered"])) for row in sent],
            [(row["campaign"], row["channel"], int(row["n"]), int(row["complaints"])) for row in attributed],
        )
        return RawStats(
            daily=[(row["day"], row["channel"], row["action"], int(row["n"])) for row in daily],
            campaigns=campaigns,
            keywords=[(row["keyword"], row["language"], int(row["n"])) for row in keywords],
            kinds=[(row["kind"], int(row["n"])) for row in kinds],
            feedback=[feedback_from_row(row, _utc) for row in feedback],
            feedback_total=int(feedback_total["n"]),
            review_open=int(review_open["n"]),
            complaints=complaints,
        )

    def ping(self) -> None:
        try:
            with self._connection("ping") as conn:
                conn.execute("SELECT 1 FROM schema_migrations LIMIT 1").fetchall()
        except psycopg.Error as error:  # e.g. not migrated: schema_migrations is missing
            raise StoreUnavailable(f"PostgreSQL at {self.where} does not answer: {_one_line(error)}") from error

    def close(self) -> None:
        with _pool_lock:
            pool, self._pool = self._pool, None
            if pool is None:
                return
            if self._pid == os.getpid():
                pool.close()
            else:
                self._inherited.append(pool)


def _append(conn: psycopg.Connection[DictRow], event: ConsentEvent, recorded_at: datetime | None,
            only_if_changes: bool, key_hash: str | None = None) -> Recorded:
    """Record one event with ``unsub_append_event`` (migration 0010).

    The function locks the channel and address until its transaction ends, so events for
    one address are recorded one at a time and the status always equals the latest event.
    """
    row = conn.execute(
        "SELECT out_added, out_status, out_previous, out_event_id, out_skipped FROM unsub_append_event("
        "%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            _clean(event.channel), _clean(event.address), _clean(event.action), _clean(event.source),
            _clean(event.keyword), _clean(event.language), _clean(event.match_kind), _clean(event.raw_text),
            _clean(event.message_id), _clean(event.dedupe_key), _clean(event.config_version), _clean(event.reason),
            _utc(event.occurred_at), _utc(recorded_at) if recorded_at else None, only_if_changes,
            _clean(event.campaign), key_hash,
        ),
    ).fetchone()
    assert row is not None
    return Recorded(bool(row["out_added"]), cast(Status, row["out_status"]), cast(Status, row["out_previous"]),
                    row["out_skipped"], row["out_event_id"])


def _redact(url: str) -> str:
    """The URL with any password replaced by ***."""
    return re.sub(r"^([a-z]+://[^:@/]*):[^@/]*@", r"\1:***@", url)


def _describe(params: dict[str, Any]) -> str:
    """host:port/dbname for messages (never the password)."""
    host = params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or "localhost"
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    dbname = params.get("dbname") or os.environ.get("PGDATABASE") or params.get("user") or ""
    return f"{host}:{port}/{dbname}"
