"""WhatsApp Cloud batches whose parts have the wrong JSON type: skipped, the rest kept."""

from __future__ import annotations

import pytest

from webhook.domain import InboundMessage, StatusReport
from webhook.providers import whatsapp_cloud
from webhook.providers.whatsapp_cloud import MAX_BATCH_ITEMS, BatchTooLarge, parse_batch

WRONG = ["a string", 7, 1.5, True, {"an": "object"}]


def message(wamid: str, sender: str = "14155550801") -> dict:
    return {"from": sender, "id": wamid, "timestamp": "1700000000", "type": "text", "text": {"body": "STOP"}}


def change(**value) -> dict:
    return {"field": "messages", "value": {"metadata": {"phone_number_id": "1065"}, **value}}


def batch(*changes: dict) -> dict:
    return {"object": "whatsapp_business_account", "entry": [{"changes": list(changes)}]}


@pytest.mark.parametrize("wrong", WRONG)
def test_a_wrong_typed_part_is_skipped_and_the_valid_messages_kept(wrong):
    data = batch(
        change(messages=wrong, statuses=wrong),
        change(messages=[message("wamid.1")], statuses=[{"id": "wamid.o", "status": "failed", "recipient_id": "14155550802",
                                                        "errors": wrong}]),
        {"field": "user_preferences", "value": {"user_preferences": wrong}},
        change(messages=[message("wamid.2", "14155550803")]),
    )
    data["entry"].append({"changes": wrong})
    parsed = parse_batch(data)
    assert [item.message_id for item in parsed.items if isinstance(item, InboundMessage)] == ["wamid.1", "wamid.2"]
    assert [item.message_id for item in parsed.items if isinstance(item, StatusReport)] == ["wamid.o"]
    reasons = {s.why for s in parsed.skipped}
    assert {'"messages" is not a list', '"statuses" is not a list', '"user_preferences" is not a list'} <= reasons


def test_null_parts_are_simply_empty():
    parsed = parse_batch(batch(change(messages=None, statuses=None), change(messages=[message("wamid.1")])))
    assert [item.message_id for item in parsed.items] == ["wamid.1"] and parsed.skipped == []


def test_a_batch_over_the_bound_is_refused_before_it_is_read(monkeypatch):
    items = [message(f"wamid.{n}") for n in range(MAX_BATCH_ITEMS)]
    assert len(parse_batch(batch(change(messages=items))).items) == MAX_BATCH_ITEMS
    statuses = [{"id": "wamid.s"}]
    with pytest.raises(BatchTooLarge, match=f"{MAX_BATCH_ITEMS + 1} messages"):
        parse_batch(batch(change(messages=items), change(statuses=statuses)))
    monkeypatch.setattr(whatsapp_cloud, "_messages", lambda *a: pytest.fail("read before the bound was checked"))
    with pytest.raises(BatchTooLarge):
        parse_batch(batch(change(messages=items + ["junk"])))


@pytest.mark.parametrize("wrong", [*WRONG, None, [1, 2], float("nan"), float("inf")])
def test_email_event_parsers_skip_wrong_typed_fields_never_raise(wrong):
    """The same class in SendGrid's and Mailgun's parsers: any field of any JSON type is read or skipped."""
    from webhook.providers import mailgun_events, sendgrid_events

    good = {"event": "unsubscribe", "sg_event_id": "ev1", "email": "a@example.com", "timestamp": 1700000000}
    fields = ["event", "sg_event_id", "email", "timestamp", "asm_group_id", "campaign", "unique_args", "custom_args"]
    events = [{**good, "event": "group_unsubscribe", field: wrong} for field in fields] + [wrong, good]
    parsed = sendgrid_events.parse_batch(events)
    assert [item.key for item in parsed.items][-1] == "ev1"
    mailgun = {"event": "complained", "id": "mg1", "recipient": "a@example.com", "timestamp": 1700000000.5}
    for field in ["event", "id", "recipient", "timestamp", "user-variables"]:
        mailgun_events.parse_event({"event-data": {**mailgun, field: wrong}})
    assert mailgun_events.verify("key", {"signature": wrong}) is None
    assert mailgun_events.verify("key", {"signature": {"timestamp": wrong, "token": wrong, "signature": wrong}}) is None
