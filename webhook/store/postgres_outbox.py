"""The outbox on PostgreSQL: endpoints, deliveries, claims and attempts (a mixin of PostgresStore).

Deliveries of consent changes are written by ``unsub_append_event`` (migration 0007) in the
transaction that records the change, which also NOTIFYs ``unsub_outbox`` at commit.
Several workers on several machines share the work: a claim locks its rows with
``FOR UPDATE SKIP LOCKED`` and re-checks that nobody holds them, so a delivery is never
claimed by two workers at once.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from typing import Any, Iterator

import psycopg
from psycopg.rows import dict_row

from webhook import outbox
from webhook.domain import Attempt, AttemptResult, Backlog, ClaimedDelivery, Delivery, Endpoint, ForwardRecord
from webhook.store import StoreUnavailable
from webhook.store.outbox_rows import ATTEMPT_COLUMNS, CLAIMED_COLUMNS, DELIVERY_COLUMNS, attempt, claimed, delivery
from webhook.store.outbox_rows import endpoint as endpoint_value

CANDIDATES = 2000
CHANNEL = "unsub_outbox"
MAX_ID = 2**63
FORWARD_RETENTION = timedelta(days=2)  # Twilio retries a message within minutes


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc)


def _clean(value: Any) -> Any:
    return value.replace("\x00", "") if isinstance(value, str) else value


def queue_erased_deliveries(conn: psycopg.Connection[Any], address: str, channels: list[str], now: datetime) -> int:
    """An erasure: the contact's deliveries go (pending or not: their bodies name it), and one
    ``contact.erased`` per endpoint is queued (a disabled one's waits for it to be enabled),
    its body blanked once it is done.
    Returns how many deliveries were deleted."""
    deleted = conn.execute("DELETE FROM outbox WHERE address = %s", (address,)).rowcount
    conn.execute("DELETE FROM forwards WHERE address = %s", (address,))
    body = outbox.erased_body(address, channels, now)
    queued = conn.execute(
        "INSERT INTO outbox (lane, endpoint_id, webhook_id, event_type, body, blank_when_done) "
        "SELECT 'endpoint:' || e.id, e.id, 'msg_' || replace(gen_random_uuid()::text, '-', ''), 'contact.erased', %s, "
        "true FROM webhook_endpoints e",
        (body,),
    ).rowcount
    if queued:
        conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
    return deleted


class PostgresOutbox:
    """Outbox methods of PostgresStore (it provides _connection and conninfo)."""

    _connection: Any
    conninfo: str
    _kwargs: dict[str, Any]

    def create_endpoint(self, url: str, description: str, secret: str) -> Endpoint:
        with self._connection("add a webhook endpoint") as conn:
            row = conn.execute(
                "INSERT INTO webhook_endpoints (url, description, secret) VALUES (%s, %s, %s) RETURNING *",
                (_clean(url), _clean(description), secret),
            ).fetchone()
        return _endpoint(row)

    def endpoints(self) -> list[Endpoint]:
        with self._connection("list webhook endpoints") as conn:
            return [_endpoint(row) for row in conn.execute("SELECT * FROM webhook_endpoints ORDER BY id").fetchall()]

    def endpoint(self, endpoint_id: int) -> Endpoint | None:
        if not 0 < endpoint_id < MAX_ID:
            return None
        with self._connection("read a webhook endpoint") as conn:
            row = conn.execute("SELECT * FROM webhook_endpoints WHERE id = %s", (endpoint_id,)).fetchone()
        return _endpoint(row) if row else None

    def delete_endpoint(self, endpoint_id: int) -> bool:
        if not 0 < endpoint_id < MAX_ID:
            return False
        with self._connection("delete a webhook endpoint") as conn:
            return conn.execute("DELETE FROM webhook_endpoints WHERE id = %s", (endpoint_id,)).rowcount == 1

    def set_endpoint_enabled(self, endpoint_id: int, enabled: bool, reason: str | None = None) -> Endpoint | None:
        if not 0 < endpoint_id < MAX_ID:
            return None
        with self._connection("enable or disable a webhook endpoint") as conn:
            row = conn.execute(
                "UPDATE webhook_endpoints SET enabled = %s, disabled_reason = %s WHERE id = %s RETURNING *",
                (enabled, None if enabled else _clean(reason), endpoint_id),
            ).fetchone()
        return _endpoint(row) if row else None

    def queue_ping(self, endpoint_id: int) -> int | None:
        if not 0 < endpoint_id < MAX_ID:
            return None
        now = datetime.now(timezone.utc)
        with self._connection("queue a test event") as conn:
            with conn.transaction():
                row = conn.execute(
                    "INSERT INTO outbox (lane, endpoint_id, webhook_id, event_type, body) "
                    "SELECT 'endpoint:' || id, id, %s, 'ping', %s FROM webhook_endpoints WHERE id = %s RETURNING id",
                    (outbox.new_webhook_id(), outbox.ping_body(endpoint_id, now), endpoint_id),
                ).fetchone()
                if row:
                    conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
        return row["id"] if row else None

    def queue_message(self, *, kind: str, lane: str, key: str, address: str | None, target: str, body: str) -> bool:
        """A message the worker sends to a provider's API (a reply, a forward), once per ``key``;
        False when that key was queued already."""
        with self._connection("queue a message") as conn:
            with conn.transaction():
                added = conn.execute(
                    "INSERT INTO outbox (lane, kind, webhook_id, address, target, body) VALUES (%s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (webhook_id) DO NOTHING",
                    (lane, kind, key, _clean(address), _clean(target), _clean(body)),
                ).rowcount == 1
                if added:
                    conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
        return added

    def begin_forward(self, key: str, channel: str, address: str) -> ForwardRecord | None:
        """Mark a message as being forwarded now: None when this call is the first (forward
        it), else what an earlier call of the same message left (Twilio retried it)."""
        with self._connection("begin a forward") as conn:
            with conn.transaction():
                conn.execute("DELETE FROM forwards WHERE created_at < now() - %s", (FORWARD_RETENTION,))
                added = conn.execute(
                    "INSERT INTO forwards (dedupe_key, channel, address, state) VALUES (%s, %s, %s, 'calling') "
                    "ON CONFLICT (dedupe_key) DO NOTHING",
                    (_clean(key), _clean(channel), _clean(address)),
                ).rowcount
                if added:
                    return None
                row = conn.execute("SELECT state, status_code, content_type, answer FROM forwards WHERE dedupe_key = %s",
                                   (_clean(key),)).fetchone()
        return _forward(row) if row else None

    def forward_record(self, key: str) -> ForwardRecord | None:
        with self._connection("read a forward") as conn:
            row = conn.execute("SELECT state, status_code, content_type, answer FROM forwards WHERE dedupe_key = %s",
                               (_clean(key),)).fetchone()
        return _forward(row) if row else None

    def finish_forward(self, key: str, record: ForwardRecord) -> None:
        with self._connection("record a forward's answer") as conn:
            conn.execute("UPDATE forwards SET state = %s, status_code = %s, content_type = %s, answer = %s "
                         "WHERE dedupe_key = %s",
                         (record.state, record.status_code, _clean(record.content_type), record.answer, _clean(key)))

    def claim_deliveries(self, worker: str, *, per_lane: int, limit: int, lease: timedelta,
                         busy_lanes: list[str]) -> list[ClaimedDelivery]:
        # One statement (autocommit: one transaction, one round trip): the due candidates,
        # at most ``per_lane`` of each lane, locked and checked again (a row another worker
        # claimed meanwhile is skipped), claimed, and read with their endpoint.
        with self._connection("claim deliveries") as conn:
            found = conn.execute(
                "WITH candidates AS (SELECT o.id, o.lane FROM outbox o LEFT JOIN webhook_endpoints e ON e.id = o.endpoint_id "
                "WHERE o.state = 'pending' AND o.next_attempt_at <= now() "
                "AND (o.claimed_until IS NULL OR o.claimed_until < now()) "
                "AND (o.endpoint_id IS NULL OR e.enabled) AND NOT (o.lane = ANY(%(busy)s::text[])) "
                # The first pending delivery of each contact on its lane: order holds.
                "AND (o.address IS NULL OR NOT EXISTS (SELECT 1 FROM outbox p WHERE p.state = 'pending' "
                "AND p.lane = o.lane AND p.address = o.address AND p.id < o.id)) "
                # (id, next_attempt_at) is outbox_pending's order: the plan walks that small partial
                # index whatever the statistics say, never the primary key through delivered rows.
                "ORDER BY o.id, o.next_attempt_at LIMIT %(candidates)s), "
                "picked AS (SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY lane ORDER BY id) AS nth "
                "FROM candidates) ranked WHERE nth <= %(per_lane)s ORDER BY id LIMIT %(limit)s), "
                "taken AS (UPDATE outbox o SET claimed_by = %(worker)s, claimed_until = now() + %(lease)s, "
                "attempts = o.attempts + 1 "
                "FROM (SELECT id FROM outbox WHERE id IN (SELECT id FROM picked) AND state = 'pending' "
                "AND (claimed_until IS NULL OR claimed_until < now()) FOR UPDATE SKIP LOCKED) free "
                "WHERE o.id = free.id RETURNING o.*) "
                f"SELECT {CLAIMED_COLUMNS} FROM taken o LEFT JOIN webhook_endpoints e ON e.id = o.endpoint_id "
                "ORDER BY o.id",
                {"busy": busy_lanes, "candidates": min(CANDIDATES, limit), "per_lane": per_lane, "limit": limit, "worker": worker,
                 "lease": lease},
            ).fetchall()
        return [claimed(row) for row in found]

    def finish_attempts(self, results: list[AttemptResult]) -> None:
        # executemany runs in a pipeline: a batch of attempts costs a few round trips, not two each.
        released = [(r.delivery_id, r.worker) for r in results if r.outcome == "released"]
        made = [r for r in results if r.outcome != "released"]
        with self._connection("record delivery attempts") as conn:
            with conn.transaction():
                with conn.cursor() as cursor:
                    if released:
                        cursor.executemany(RELEASE_ONE, released)
                    if made:
                        cursor.executemany(RECORD_ATTEMPT, [_attempt_row(r) for r in made])
                        cursor.executemany(FINISH_DELIVERY, [_finish_row(r) for r in made])
                    for result in made:
                        if result.disable_endpoint:
                            cursor.execute(
                                "UPDATE webhook_endpoints SET enabled = false, disabled_reason = %s "
                                "WHERE id = (SELECT endpoint_id FROM outbox WHERE id = %s)",
                                (f"answered 410 Gone at {result.attempted_at.isoformat(timespec='seconds')}",
                                 result.delivery_id),
                            )

    def release_claims(self, worker: str) -> int:
        with self._connection("release claims") as conn:
            return conn.execute(
                "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL, attempts = attempts - 1 "
                "WHERE claimed_by = %s AND state = 'pending' AND claimed_until IS NOT NULL",
                (worker,),
            ).rowcount

    def next_due_at(self) -> datetime | None:
        with self._connection("read the outbox") as conn:
            row = conn.execute("SELECT min(next_attempt_at) AS due FROM outbox WHERE state = 'pending'").fetchone()
        return _utc(row["due"]) if row and row["due"] else None

    def outbox_backlog(self) -> Backlog:
        with self._connection("read the outbox") as conn:
            row = conn.execute(
                # Due = a worker should be sending it: a disabled endpoint's deliveries wait by design.
                "SELECT count(*) FILTER (WHERE o.state = 'pending') AS pending, "
                "count(*) FILTER (WHERE o.state = 'pending' AND o.kind = 'forward') AS forwards, "
                "count(*) FILTER (WHERE o.state = 'failed') AS failed, "
                "coalesce(extract(epoch FROM now() - min(o.next_attempt_at) FILTER "
                "(WHERE o.state = 'pending' AND o.next_attempt_at <= now() AND (o.endpoint_id IS NULL OR e.enabled))), 0) "
                "AS oldest FROM outbox o LEFT JOIN webhook_endpoints e ON e.id = o.endpoint_id "
                "WHERE o.state IN ('pending', 'failed')"
            ).fetchone()
        assert row is not None
        return Backlog(int(row["pending"]), max(0.0, float(row["oldest"])), int(row["failed"]), int(row["forwards"]))

    def deliveries(self, endpoint_id: int, limit: int = 50, offset: int = 0) -> list[Delivery]:
        if not 0 < endpoint_id < MAX_ID:
            return []
        with self._connection("list deliveries") as conn:
            rows = conn.execute(
                f"SELECT {DELIVERY_COLUMNS} FROM outbox o WHERE o.endpoint_id = %s ORDER BY o.id DESC LIMIT %s OFFSET %s",
                (endpoint_id, limit, offset),
            ).fetchall()
            return _with_attempts(conn, rows)

    def delivery(self, delivery_id: int) -> Delivery | None:
        if not 0 < delivery_id < MAX_ID:
            return None
        with self._connection("read a delivery") as conn:
            rows = conn.execute(f"SELECT {DELIVERY_COLUMNS} FROM outbox o WHERE o.id = %s", (delivery_id,)).fetchall()
            found = _with_attempts(conn, rows)
        return found[0] if found else None

    def retry_delivery(self, delivery_id: int) -> bool:
        if not 0 < delivery_id < MAX_ID:
            return False
        with self._connection("retry a delivery") as conn:
            with conn.transaction():
                done = conn.execute(
                    "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = now(), finished_at = NULL, "
                    "claimed_by = NULL, claimed_until = NULL WHERE id = %s AND state = 'failed' AND NOT blank_when_done "
                    "AND NOT EXISTS (SELECT 1 FROM outbox later WHERE later.address = outbox.address "
                    "AND later.lane = outbox.lane AND later.id > outbox.id)",
                    (delivery_id,),
                ).rowcount == 1
                if done:
                    conn.execute("SELECT pg_notify(%s, '')", (CHANNEL,))
        return done

    def event_facts(self, event_id: int, window: timedelta) -> outbox.EventFacts | None:
        with self._connection("read an event") as conn:
            row = conn.execute(
                "SELECT e.id, e.channel, e.address, e.action, e.source, e.keyword, e.language, e.match_kind, "
                "e.occurred_at, e.recorded_at, coalesce(s.status, 'unknown') AS status, "
                # The campaign the event names (an e-mail provider's complaint) wins over the guess.
                "coalesce(e.campaign, CASE WHEN e.action = 'opt_out' AND e.source <> 'import' THEN "
                "(SELECT m.campaign FROM campaign_messages m WHERE m.channel = e.channel AND m.address = e.address "
                " AND m.delivered_at IS NOT NULL AND m.delivered_at <= e.occurred_at "
                " AND m.delivered_at >= e.occurred_at - %s ORDER BY m.delivered_at DESC, m.message_id DESC LIMIT 1) "
                "END) AS campaign FROM consent_events e "
                "LEFT JOIN subscriptions s ON s.channel = e.channel AND s.address = e.address WHERE e.id = %s",
                (window, event_id),
            ).fetchone()
        if row is None:
            return None
        return outbox.EventFacts(
            event_id=row["id"], channel=row["channel"], address=row["address"], action=row["action"],
            source=row["source"], keyword=row["keyword"], language=row["language"], match_kind=row["match_kind"],
            occurred_at=_utc(row["occurred_at"]), recorded_at=_utc(row["recorded_at"]), status=row["status"],
            previous_status="unknown", campaign=row["campaign"],
        )

    def outbox_changes(self, stop: threading.Event) -> Iterator[None]:
        """Yields on every NOTIFY unsub_outbox (sent when a delivery is queued), on its own
        connection (LISTEN cannot go through the pool)."""
        try:
            conn = psycopg.connect(self.conninfo, **{**self._kwargs, "row_factory": dict_row})
        except psycopg.Error as error:
            raise StoreUnavailable(f"cannot listen for new deliveries: {' '.join(str(error).split())}") from error
        try:
            conn.execute(f"LISTEN {CHANNEL}")
            while not stop.is_set():
                for _ in conn.notifies(timeout=0.5):
                    yield None
        except psycopg.Error as error:
            raise StoreUnavailable(f"lost the LISTEN connection: {' '.join(str(error).split())}") from error
        finally:
            conn.close()


RELEASE_ONE = ("UPDATE outbox SET claimed_by = NULL, claimed_until = NULL, attempts = attempts - 1 "
               "WHERE id = %s AND claimed_by = %s")
# What the receiver answered, unless the delivery names an erased contact.
RECORD_ATTEMPT = (
    "INSERT INTO outbox_attempts (outbox_id, attempted_at, worker, status_code, duration_ms, response_excerpt, error) "
    "SELECT id, %s, %s, %s, %s, CASE WHEN blank_when_done THEN '' ELSE %s END, %s FROM outbox WHERE id = %s"
)
FINISH_DELIVERY = (
    "UPDATE outbox SET state = %(state)s, finished_at = CASE WHEN %(state)s = 'pending' THEN NULL ELSE now() END, "
    "next_attempt_at = coalesce(%(next)s, next_attempt_at), claimed_by = NULL, claimed_until = NULL, "
    "last_status = %(status)s, last_error = %(error)s, "
    "body = CASE WHEN blank_when_done AND %(state)s <> 'pending' THEN NULL ELSE coalesce(body, %(body)s) END "
    "WHERE id = %(id)s AND claimed_by = %(worker)s"
)


def _attempt_row(result: AttemptResult) -> tuple:
    return (result.attempted_at, result.worker, result.status_code, result.duration_ms, _clean(result.excerpt),
            _clean(result.error), result.delivery_id)


def _finish_row(result: AttemptResult) -> dict[str, Any]:
    return {"state": {"delivered": "delivered", "failed": "failed"}.get(result.outcome, "pending"),
            "next": result.next_attempt_at, "status": result.status_code, "error": _clean(result.error),
            "body": _clean(result.body), "id": result.delivery_id, "worker": result.worker}


def _forward(row: Any) -> ForwardRecord:
    return ForwardRecord(row["state"], row["status_code"], row["content_type"],
                         bytes(row["answer"]) if row["answer"] is not None else None)


def _endpoint(row: Any) -> Endpoint:
    return endpoint_value(row, _utc)


def _with_attempts(conn: psycopg.Connection[Any], rows: list[Any]) -> list[Delivery]:
    logs: dict[int, list[Attempt]] = {row["id"]: [] for row in rows}
    if logs:
        for row in conn.execute(f"SELECT {ATTEMPT_COLUMNS} FROM outbox_attempts WHERE outbox_id = ANY(%s) ORDER BY id",
                                (list(logs),)).fetchall():
            logs[row["outbox_id"]].append(attempt(row, _utc))
    return [delivery(row, logs[row["id"]], _utc) for row in rows]
