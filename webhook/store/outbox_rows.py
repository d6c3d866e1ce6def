"""Outbox rows as values, the same for both backends."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Mapping

from webhook.domain import Attempt, ClaimedDelivery, Delivery, Endpoint


def claimed(row: Mapping[str, Any]) -> ClaimedDelivery:
    """A claimed delivery from a row of CLAIMED_COLUMNS."""
    return ClaimedDelivery(
        id=row["id"], lane=row["lane"], kind=row["kind"], webhook_id=row["webhook_id"], event_type=row["event_type"],
        attempts=row["attempts"], target=row["target"], secret=row["secret"] or "", body=row["body"],
        endpoint_id=row["endpoint_id"], event_id=row["event_id"], address=row["address"],
        status_after=row["status_after"], previous_status=row["previous_status"],
    )


def per_lane(rows: list[tuple[int, str]], most: int, limit: int) -> list[int]:
    """Of (id, lane) candidates in order, at most ``most`` ids of each lane and ``limit`` in all."""
    taken: dict[str, int] = {}
    picked: list[int] = []
    for delivery_id, lane in rows:
        if taken.get(lane, 0) < most:
            taken[lane] = taken.get(lane, 0) + 1
            picked.append(delivery_id)
            if len(picked) >= limit:
                break
    return picked


def attempt(row: Mapping[str, Any], when: Callable[[Any], datetime]) -> Attempt:
    """An outbox_attempts row as a value; ``when`` reads the backend's time column."""
    return Attempt(when(row["attempted_at"]), row["status_code"], row["duration_ms"], row["response_excerpt"] or "",
                   row["error"])


def delivery(row: Mapping[str, Any], log: list[Attempt], when: Callable[[Any], datetime]) -> Delivery:
    """An outbox row (DELIVERY_COLUMNS) and its attempts as a value."""
    return Delivery(
        id=row["id"], endpoint_id=row["endpoint_id"], webhook_id=row["webhook_id"], event_type=row["event_type"],
        state=row["state"], attempts=row["attempts"],
        next_attempt_at=when(row["next_attempt_at"]) if row["state"] == "pending" else None,
        created_at=when(row["created_at"]), finished_at=when(row["finished_at"]) if row["finished_at"] else None,
        last_status=row["last_status"], last_error=row["last_error"], body=row["body"], log=log,
    )


def endpoint(row: Mapping[str, Any], when: Callable[[Any], datetime]) -> Endpoint:
    return Endpoint(id=row["id"], url=row["url"], description=row["description"], enabled=bool(row["enabled"]),
                    created_at=when(row["created_at"]), secret=row["secret"], disabled_reason=row["disabled_reason"])


# The columns both backends read (fixed text, never input).
CLAIMED_COLUMNS = (
    "o.id, o.lane, o.kind, o.webhook_id, o.event_type, o.attempts, coalesce(o.target, e.url) AS target, e.secret, "
    "o.body, o.endpoint_id, o.event_id, o.address, o.status_after, o.previous_status"
)
DELIVERY_COLUMNS = (
    "o.id, o.endpoint_id, o.webhook_id, o.event_type, o.state, o.attempts, o.next_attempt_at, o.created_at, "
    "o.finished_at, o.last_status, o.last_error, o.body"
)
ATTEMPT_COLUMNS = "outbox_id, attempted_at, status_code, duration_ms, response_excerpt, error"
