"""A contact's records: the audit export (GDPR Art. 7(1) and 15) and erasure (Art. 17).

One serialiser per value: ``event_record`` is how a consent event is exported everywhere
(API, admin pages, CLI; JSON and CSV), and CSV goes through the one formula-safe writer.
"""

from __future__ import annotations

import io

from webhook.consent.channels import contact_address
from webhook.consent.contacts import AddressHash
from webhook.csv_safe import SafeWriter
from webhook.domain import ConsentEvent, Erasure, Feedback, iso, utcnow
from webhook.store import Store

EXPORT_FIELDS = ("channel", "action", "source", "keyword", "language", "match_kind", "raw_text", "message_id",
                 "config_version", "reason", "at", "recorded_at")


def event_record(event: ConsentEvent) -> dict:
    """One consent event as exported (JSON and CSV share these keys). ``message_id`` is the
    provider's id as it was sent; the internal dedupe key is never shown."""
    return {
        "channel": event.channel, "action": event.action, "source": event.source, "keyword": event.keyword,
        "language": event.language, "match_kind": event.match_kind, "raw_text": event.raw_text,
        "message_id": event.message_id, "config_version": event.config_version, "reason": event.reason,
        "at": iso(event.occurred_at), "recorded_at": iso(event.recorded_at) if event.recorded_at else None,
    }


def feedback_record(item: Feedback) -> dict:
    return {"channel": item.channel, "kind": item.kind, "text": item.text, "message_id": item.message_id,
            "at": iso(item.received_at)}


def contact_record(store: Store, raw_address: str, region: str | None = None) -> dict:
    """Everything the service holds about a contact's consent, for an auditor or the contact,
    in event time (ties in the order recorded)."""
    address = contact_address(raw_address, region)
    return {
        "address": address,
        "exported_at": iso(utcnow()),
        "events": [event_record(e) for e in store.contact_events(address)],
        "feedback": [feedback_record(f) for f in store.contact_feedback(address)],
    }


def contact_csv(record: dict) -> str:
    """A contact_record's events as CSV (one row per event, the address first), formula-safe."""
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(("address",) + EXPORT_FIELDS)
    for event in record["events"]:
        writer.writerow([record["address"]] + [event[name] for name in EXPORT_FIELDS])
    return out.getvalue()


def erase_contact(store: Store, raw_address: str, hash_for: AddressHash, region: str | None = None) -> Erasure:
    """Delete everything about a contact on every channel, keeping a keyed hash where they had left."""
    return store.erase(contact_address(raw_address, region), hash_for)
