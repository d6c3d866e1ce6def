"""The outbox on SQLite: endpoints, deliveries, claims and attempts (a mixin of SQLiteStore).

Deliveries of consent changes are written by ``_append`` (``queue_consent_deliveries``) in
the transaction that records the change. Claims take the database's write lock like any
write, so one SQLite worker (or several) never claim one delivery twice.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timedelta
from typing import Any, Iterator

from webhook import outbox
from webhook.domain import (
    Attempt,
    AttemptResult,
    Backlog,
    ClaimedDelivery,
    Delivery,
    Endpoint,
    ForwardRecord,
    utcnow,
)
from webhook.store.outbox_rows import ATTEMPT_COLUMNS, CLAIMED_COLUMNS, DELIVERY_COLUMNS, attempt, claimed, delivery
from webhook.store.outbox_rows import endpoint as endpoint_value
from webhook.store.outbox_rows import per_lane as _per_lane
from webhook.store.sqlite_times import from_text, to_text

# Due deliveries looked at per claim, at most (and at most the claim's limit): a claim takes at
# most per_lane of each lane, and a lane that is busy is left out of the next one.
CANDIDATES = 2000
FORWARD_RETENTION = timedelta(days=2)  # Twilio retries a message within minutes
CHANGE_POLL_SECONDS = 0.05


def queue_consent_deliveries(conn: sqlite3.Connection, event_id: int, action: str, address: str, previous: str,
                             status: str, now: str) -> None:
    """One delivery per endpoint for a change just recorded, in its transaction. A disabled
    endpoint's deliveries wait (claims take enabled endpoints' only) and go out once it is
    enabled again: nothing recorded meanwhile is lost to it."""
    conn.execute(
        "INSERT INTO outbox (lane, endpoint_id, webhook_id, event_type, event_id, address, previous_status, status_after, "
        "next_attempt_at, created_at) "
        "SELECT 'endpoint:' || id, id, 'msg_' || lower(hex(randomblob(16))), ?, ?, ?, ?, ?, ?, ? "
        "FROM webhook_endpoints",
        (outbox.EVENT_TYPES[action], event_id, address, previous, status, now, now),
    )


def queue_erased_deliveries(conn: sqlite3.Connection, address: str, channels: list[str], now: datetime) -> int:
    """An erasure: the contact's deliveries go (pending or not: their bodies name it), and one
    ``contact.erased`` per endpoint is queued (a disabled one's waits for it to be enabled),
    its body blanked once it is done.
    Returns how many deliveries were deleted."""
    deleted = conn.execute("DELETE FROM outbox WHERE address = ?", (address,)).rowcount
    conn.execute("DELETE FROM forwards WHERE address = ?", (address,))
    endpoints = [row[0] for row in conn.execute("SELECT id FROM webhook_endpoints")]
    body = outbox.erased_body(address, channels, now)
    for endpoint_id in endpoints:
        conn.execute(
            "INSERT INTO outbox (lane, endpoint_id, webhook_id, event_type, body, blank_when_done, next_attempt_at, "
            "created_at) VALUES (?, ?, ?, 'contact.erased', ?, 1, ?, ?)",
            (f"endpoint:{endpoint_id}", endpoint_id, outbox.new_webhook_id(), body, to_text(now), to_text(now)),
        )
    return deleted


class SQLiteOutbox:
    """Outbox methods of SQLiteStore (it provides _write and _query)."""

    _write: Any
    _query: Any
    path: Any

    def _endpoint(self, row: dict) -> Endpoint:
        return endpoint_value(row, from_text)

    def create_endpoint(self, url: str, description: str, secret: str) -> Endpoint:
        with self._write("add a webhook endpoint") as conn:
            cursor = conn.execute(
                "INSERT INTO webhook_endpoints (url, description, secret, created_at) VALUES (?, ?, ?, ?)",
                (url, description, secret, to_text(utcnow())),
            )
            endpoint_id = cursor.lastrowid
        found = self.endpoint(endpoint_id)
        assert found is not None
        return found

    def endpoints(self) -> list[Endpoint]:
        return [self._endpoint(row) for row in self._query("SELECT * FROM webhook_endpoints ORDER BY id")]

    def endpoint(self, endpoint_id: int) -> Endpoint | None:
        if not 0 < endpoint_id < 2**63:
            return None
        rows = self._query("SELECT * FROM webhook_endpoints WHERE id = ?", (endpoint_id,))
        return self._endpoint(rows[0]) if rows else None

    def delete_endpoint(self, endpoint_id: int) -> bool:
        if not 0 < endpoint_id < 2**63:
            return False
        with self._write("delete a webhook endpoint") as conn:
            return conn.execute("DELETE FROM webhook_endpoints WHERE id = ?", (endpoint_id,)).rowcount == 1

    def set_endpoint_enabled(self, endpoint_id: int, enabled: bool, reason: str | None = None) -> Endpoint | None:
        if not 0 < endpoint_id < 2**63:
            return None
        with self._write("enable or disable a webhook endpoint") as conn:
            conn.execute("UPDATE webhook_endpoints SET enabled = ?, disabled_reason = ? WHERE id = ?",
                         (int(enabled), None if enabled else reason, endpoint_id))
        return self.endpoint(endpoint_id)

    def queue_ping(self, endpoint_id: int) -> int | None:
        if not 0 < endpoint_id < 2**63:  # beyond SQLite's integers: no such endpoint, not an OverflowError
            return None
        now = utcnow()
        with self._write("queue a test event") as conn:
            if conn.execute("SELECT 1 FROM webhook_endpoints WHERE id = ?", (endpoint_id,)).fetchone() is None:
                return None
            cursor = conn.execute(
                "INSERT INTO outbox (lane, endpoint_id, webhook_id, event_type, body, next_attempt_at, created_at) "
                "VALUES (?, ?, ?, 'ping', ?, ?, ?)",
                (f"endpoint:{endpoint_id}", endpoint_id, outbox.new_webhook_id(), outbox.ping_body(endpoint_id, now),
                 to_text(now), to_text(now)),
            )
            return cursor.lastrowid

    def queue_message(self, *, kind: str, lane: str, key: str, address: str | None, target: str, body: str) -> bool:
        """A message the worker sends to a provider's API (a reply, a forward), once per ``key``;
        False when that key was queued already."""
        now = to_text(utcnow())
        with self._write("queue a message") as conn:
            return conn.execute(
                "INSERT INTO outbox (lane, kind, webhook_id, address, target, body, next_attempt_at, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (webhook_id) DO NOTHING",
                (lane, kind, key, address, target, body, now, now),
            ).rowcount == 1

    def begin_forward(self, key: str, channel: str, address: str) -> ForwardRecord | None:
        """Mark a message as being forwarded now: None when this call is the first (forward
        it), else what an earlier call of the same message left (Twilio retried it)."""
        now = utcnow()
        with self._write("begin a forward") as conn:
            conn.execute("DELETE FROM forwards WHERE created_at < ?", (to_text(now - FORWARD_RETENTION),))
            added = conn.execute(
                "INSERT INTO forwards (dedupe_key, channel, address, state, created_at) VALUES (?, ?, ?, 'calling', ?) "
                "ON CONFLICT (dedupe_key) DO NOTHING",
                (key, channel, address, to_text(now)),
            ).rowcount
            if added:
                return None
            row = conn.execute("SELECT state, status_code, content_type, answer FROM forwards WHERE dedupe_key = ?",
                               (key,)).fetchone()
        return ForwardRecord(row[0], row[1], row[2], row[3]) if row else None

    def forward_record(self, key: str) -> ForwardRecord | None:
        rows = self._query("SELECT state, status_code, content_type, answer FROM forwards WHERE dedupe_key = ?", (key,))
        return ForwardRecord(rows[0]["state"], rows[0]["status_code"], rows[0]["content_type"], rows[0]["answer"]) if rows else None

    def finish_forward(self, key: str, record: ForwardRecord) -> None:
        with self._write("record a forward's answer") as conn:
            conn.execute("UPDATE forwards SET state = ?, status_code = ?, content_type = ?, answer = ? WHERE dedupe_key = ?",
                         (record.state, record.status_code, record.content_type, record.answer, key))

    def claim_deliveries(self, worker: str, *, per_lane: int, limit: int, lease: timedelta,
                         busy_lanes: list[str]) -> list[ClaimedDelivery]:
        now = utcnow()
        with self._write("claim deliveries") as conn:
            rows = conn.execute(
                "SELECT o.id, o.lane FROM outbox o LEFT JOIN webhook_endpoints e ON e.id = o.endpoint_id "
                "WHERE o.state = 'pending' AND o.next_attempt_at <= ? "
                "AND (o.claimed_until IS NULL OR o.claimed_until < ?) "
                "AND (o.endpoint_id IS NULL OR e.enabled = 1) "
                "AND o.lane NOT IN (SELECT value FROM json_each(?)) "
                # The first pending delivery of each contact on its lane: order holds.
                "AND (o.address IS NULL OR NOT EXISTS (SELECT 1 FROM outbox p WHERE p.state = 'pending' "
                "AND p.lane = o.lane AND p.address = o.address AND p.id < o.id)) "
                "ORDER BY o.id LIMIT ?",
                (to_text(now), to_text(now), json.dumps(busy_lanes), min(CANDIDATES, limit)),
            ).fetchall()
            picked = _per_lane([(row[0], row[1]) for row in rows], per_lane, limit)
            if not picked:
                return []
            conn.execute(
                "UPDATE outbox SET claimed_by = ?, claimed_until = ?, attempts = attempts + 1 "
                "WHERE id IN (SELECT value FROM json_each(?))",
                (worker, to_text(now + lease), json.dumps(picked)),
            )
            cursor = conn.execute(
                f"SELECT {CLAIMED_COLUMNS} FROM outbox o LEFT JOIN webhook_endpoints e ON e.id = o.endpoint_id "
                "WHERE o.id IN (SELECT value FROM json_each(?)) ORDER BY o.id",
                (json.dumps(picked),),
            )
            names = [column[0] for column in cursor.description]
            return [claimed(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]

    def finish_attempts(self, results: list[AttemptResult]) -> None:
        with self._write("record delivery attempts") as conn:
            for result in results:
                _finish(conn, result)

    def release_claims(self, worker: str) -> int:
        """Give back what a stopping worker claimed and did not attempt (no attempt is counted)."""
        with self._write("release claims") as conn:
            return conn.execute(
                "UPDATE outbox SET claimed_by = NULL, claimed_until = NULL, attempts = attempts - 1 "
                "WHERE claimed_by = ? AND state = 'pending' AND claimed_until IS NOT NULL",
                (worker,),
            ).rowcount

    def next_due_at(self) -> datetime | None:
        rows = self._query("SELECT min(next_attempt_at) AS due FROM outbox WHERE state = 'pending'")
        return from_text(rows[0]["due"]) if rows and rows[0]["due"] else None

    def outbox_backlog(self) -> Backlog:
        row = self._query(
            # Due = a worker should be sending it: a disabled endpoint's deliveries wait by design.
            "SELECT count(*) AS pending, min(CASE WHEN o.next_attempt_at <= ? AND (o.endpoint_id IS NULL OR e.enabled = 1) "
            "THEN o.next_attempt_at END) AS oldest FROM outbox o LEFT JOIN webhook_endpoints e ON e.id = o.endpoint_id "
            "WHERE o.state = 'pending'", (to_text(utcnow()),),
        )[0]
        failed = self._query("SELECT count(*) AS n FROM outbox WHERE state = 'failed'")[0]["n"]
        forwards = self._query("SELECT count(*) AS n FROM outbox WHERE kind = 'forward' AND state = 'pending'")[0]["n"]
        oldest = (utcnow() - from_text(row["oldest"])).total_seconds() if row["oldest"] else 0.0
        return Backlog(row["pending"], max(0.0, oldest), failed, forwards)

    def deliveries(self, endpoint_id: int, limit: int = 50, offset: int = 0) -> list[Delivery]:
        if not 0 < endpoint_id < 2**63:
            return []
        rows = self._query(
            f"SELECT {DELIVERY_COLUMNS} FROM outbox o WHERE o.endpoint_id = ? ORDER BY o.id DESC LIMIT ? OFFSET ?",
            (endpoint_id, limit, offset),
        )
        return self._with_attempts(rows)

    def delivery(self, delivery_id: int) -> Delivery | None:
        if not 0 < delivery_id < 2**63:
            return None
        rows = self._query(f"SELECT {DELIVERY_COLUMNS} FROM outbox o WHERE o.id = ?", (delivery_id,))
        found = self._with_attempts(rows)
        return found[0] if found else None

    def _with_attempts(self, rows: list[dict]) -> list[Delivery]:
        logs: dict[int, list[Attempt]] = {row["id"]: [] for row in rows}
        if logs:
            for row in self._query(
                f"SELECT {ATTEMPT_COLUMNS} FROM outbox_attempts WHERE outbox_id IN (SELECT value FROM json_each(?)) "
                "ORDER BY id", (json.dumps(list(logs)),),
            ):
                logs[row["outbox_id"]].append(attempt(row, from_text))
        return [delivery(row, logs[row["id"]], from_text) for row in rows]

    def retry_delivery(self, delivery_id: int) -> bool:
        """A failed delivery goes out again now (an admin's replay); its attempts start over.

        Not when a later change of the same contact was queued to the same endpoint: sent
        after it, the older change would leave the receiver with a status the contact no
        longer has (an opt-in over their later STOP). The latest one carries the status."""
        if not 0 < delivery_id < 2**63:
            return False
        with self._write("retry a delivery") as conn:
            return conn.execute(
                "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = ?, finished_at = NULL, "
                "claimed_by = NULL, claimed_until = NULL WHERE id = ? AND state = 'failed' AND blank_when_done = 0 "
                "AND NOT EXISTS (SELECT 1 FROM outbox later WHERE later.address = outbox.address "
                "AND later.lane = outbox.lane AND later.id > outbox.id)",
                (to_text(utcnow()), delivery_id),
            ).rowcount == 1

    def event_facts(self, event_id: int, window: timedelta) -> outbox.EventFacts | None:
        rows = self._query(
            "SELECT e.id, e.channel, e.address, e.action, e.source, e.keyword, e.language, e.match_kind, e.occurred_at, "
            "e.recorded_at, e.campaign, coalesce(s.status, 'unknown') AS status FROM consent_events e "
            "LEFT JOIN subscriptions s ON s.channel = e.channel AND s.address = e.address WHERE e.id = ?",
            (event_id,),
        )
        if not rows:
            return None
        row = rows[0]
        # The campaign the event names (an e-mail provider's complaint) wins over the guess.
        campaign = row["campaign"]
        if campaign is None and row["action"] == "opt_out" and row["source"] != "import":
            found = self._query(
                "SELECT campaign FROM campaign_messages WHERE channel = ? AND address = ? AND delivered_at IS NOT NULL "
                "AND delivered_at <= ? AND delivered_at >= ? ORDER BY delivered_at DESC, message_id DESC LIMIT 1",
                (row["channel"], row["address"], row["occurred_at"],
                 to_text(from_text(row["occurred_at"]) - window)),
            )
            campaign = found[0]["campaign"] if found else None
        return outbox.EventFacts(
            event_id=row["id"], channel=row["channel"], address=row["address"], action=row["action"],
            source=row["source"], keyword=row["keyword"], language=row["language"], match_kind=row["match_kind"],
            occurred_at=from_text(row["occurred_at"]), recorded_at=from_text(row["recorded_at"]),
            status=row["status"], previous_status="unknown", campaign=campaign,
        )

    def outbox_changes(self, stop: threading.Event) -> Iterator[None]:
        """Yields when another connection may have queued a delivery (``data_version`` moved)."""
        conn = sqlite3.connect(self.path, timeout=5, isolation_level=None, check_same_thread=False)
        try:
            last = conn.execute("PRAGMA data_version").fetchone()[0]
            while not stop.wait(CHANGE_POLL_SECONDS):
                current = conn.execute("PRAGMA data_version").fetchone()[0]
                if current != last:
                    last = current
                    yield None
        finally:
            conn.close()


def _finish(conn: sqlite3.Connection, result: AttemptResult) -> None:
    mine = (result.delivery_id, result.worker)
    if result.outcome == "released":
        conn.execute("UPDATE outbox SET claimed_by = NULL, claimed_until = NULL, attempts = attempts - 1 "
                     "WHERE id = ? AND claimed_by = ?", mine)
        return
    # What the receiver answered, unless the delivery names an erased contact.
    conn.execute(
        "INSERT INTO outbox_attempts (outbox_id, attempted_at, worker, status_code, duration_ms, response_excerpt, error) "
        "SELECT id, ?, ?, ?, ?, CASE WHEN blank_when_done = 1 THEN '' ELSE ? END, ? FROM outbox WHERE id = ?",
        (to_text(result.attempted_at), result.worker, result.status_code, result.duration_ms, result.excerpt,
         result.error, result.delivery_id),
    )
    state = {"delivered": "delivered", "failed": "failed"}.get(result.outcome, "pending")
    finished = to_text(utcnow()) if state != "pending" else None
    conn.execute(
        "UPDATE outbox SET state = ?, finished_at = ?, next_attempt_at = coalesce(?, next_attempt_at), "
        "claimed_by = NULL, claimed_until = NULL, last_status = ?, last_error = ?, body = coalesce(body, ?) "
        "WHERE id = ? AND claimed_by = ?",
        (state, finished, to_text(result.next_attempt_at) if result.next_attempt_at else None, result.status_code,
         result.error, result.body) + mine,
    )
    if state != "pending":
        conn.execute("UPDATE outbox SET body = NULL WHERE id = ? AND blank_when_done = 1", (result.delivery_id,))
    if result.disable_endpoint:
        conn.execute(
            "UPDATE webhook_endpoints SET enabled = 0, disabled_reason = ? "
            "WHERE id = (SELECT endpoint_id FROM outbox WHERE id = ?)",
            (f"answered 410 Gone at {to_text(result.attempted_at)}", result.delivery_id),
        )




