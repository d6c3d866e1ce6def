"""Outbox rows as values, the same for both backends."""

from __future__ import annotations

from typing import Any, Mapping

from webhook.domain import ClaimedDelivery


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
