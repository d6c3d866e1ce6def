"""Feedback, the review queue, audit export and erasure, through the real app and database."""

from __future__ import annotations

import csv
import io
import sqlite3

import pytest

from tests.conftest import new_sid
from webhook.providers.twilio import EMPTY_TWIML

ALICE = "+14155550301"
BOB = "+14155550302"


def api(client, admin_headers, method: str, path: str, **kwargs):
    return client.open(f"/api/v1{path}", method=method, headers=admin_headers, **kwargs)


def feedback(client, admin_headers) -> list[tuple[str, str]]:
    items = api(client, admin_headers, "GET", "/feedback").json["feedback"]
    return [(item["kind"], item["text"]) for item in reversed(items)]


def test_reasons_are_kept_without_a_reply(twilio, client, admin_headers, status_of):
    stop = twilio.message("STOP too many texts", sender=ALICE)
    assert b"unsubscribed" in stop.data  # one confirmation, for the opt-out
    later = twilio.message("you text me every day, it's too much", sender=ALICE)
    again = twilio.message("and another thing", sender=ALICE)
    assert later.data == again.data == EMPTY_TWIML.encode()
    assert feedback(client, admin_headers) == [
        ("with_opt_out", "STOP too many texts"),
        ("after_opt_out", "you text me every day, it's too much"),  # the first message after it only
    ]
    # A plain STOP carries no reason; keywords keep their meaning in the window.
    twilio.message("STOP", sender=BOB)
    assert b"HELP" in twilio.message("HELP", sender=BOB).data or True
    assert b"<Message>" in twilio.message("HELP", sender=BOB).data
    assert b"<Message>" in twilio.message("START", sender=BOB).data
    assert status_of("sms", BOB) == "subscribed"
    assert [kind for kind, _ in feedback(client, admin_headers)] == ["with_opt_out", "after_opt_out"]

    report = api(client, admin_headers, "GET", "/stats").json["reasons"]
    assert report["total"] == 2
    assert report["categories"] == [{"category": "too_many", "label": "Too many messages", "count": 2}]


def test_a_repeated_delivery_keeps_one_reason(twilio, client, admin_headers):
    sid = new_sid()
    twilio.message("STOP", sender=ALICE)
    for _ in range(2):
        assert twilio.message("why do you text so much", sender=ALICE, sid=sid).status_code == 200
    assert len(feedback(client, admin_headers)) == 1


def test_review_queue_confirm_and_dismiss(twilio, client, admin_headers, status_of):
    assert twilio.message("Cancel my order, it's late", sender=ALICE).data == EMPTY_TWIML.encode()
    twilio.message("I'll stop by the shop to END this", sender=BOB)
    twilio.message("see you at the bus", sender=BOB)  # mentions nothing: not queued
    assert status_of("sms", ALICE) == "unknown"
    queue = api(client, admin_headers, "GET", "/review").json
    assert queue["total"] == 2
    first, second = queue["items"]
    assert (first["address"], first["text"], first["status"]) == (ALICE, "Cancel my order, it's late", "open")

    confirmed = api(client, admin_headers, "POST", f"/review/{first['id']}", json={"decision": "confirm", "by": "ana"})
    assert confirmed.status_code == 200 and confirmed.json["status"] == "confirmed"
    assert status_of("sms", ALICE) == "unsubscribed"
    history = api(client, admin_headers, "GET", f"/subscriptions/sms/{ALICE}").json["history"]
    assert [(h["source"], h["match_kind"]) for h in history] == [("admin", "review")]

    assert api(client, admin_headers, "POST", f"/review/{second['id']}", json={"decision": "dismiss"}).status_code == 200
    assert status_of("sms", BOB) == "unknown"
    assert api(client, admin_headers, "POST", f"/review/{second['id']}", json={"decision": "confirm"}).status_code == 409
    assert api(client, admin_headers, "POST", "/review/999999", json={"decision": "confirm"}).status_code == 404
    assert api(client, admin_headers, "GET", "/review").json["total"] == 0
    assert api(client, admin_headers, "GET", "/review?status=all").json["total"] == 2


def _rows_mentioning(store, needle: str) -> list[str]:
    """Every row of every table, as text, that contains ``needle``."""
    found = []
    if store.kind == "sqlite":
        conn = sqlite3.connect(store.path)
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):  # names from the catalogue
                if needle in repr(row):
                    found.append(f"{table}: {row}")
        conn.close()
    else:
        import psycopg
        from psycopg import sql

        with psycopg.connect(store.conninfo) as conn:
            tables = [r[0] for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")]
            for table in tables:
                for (text,) in conn.execute(sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(table))):
                    if needle in text:
                        found.append(f"{table}: {text}")
    return found


def test_erasure_keeps_only_a_suppression_hash(twilio, client, admin_headers, store, status_of):
    # Alice leaves SMS with a reason, is subscribed on WhatsApp, had a campaign message
    # and a message waiting for review; Bob is untouched.
    twilio.message("STOP you never stop", sender=ALICE)
    twilio.message("who gave you my number", sender=ALICE)
    twilio.message("START", sender=ALICE, whatsapp=True)
    twilio.message("cancel the order", sender=ALICE, whatsapp=True)
    params = {"MessageSid": new_sid(), "MessageStatus": "delivered", "To": ALICE, "From": "+14155550100"}
    assert twilio.post("/webhooks/twilio/status?campaign=spring", params).status_code == 204
    twilio.message("STOP", sender=BOB)

    exported = api(client, admin_headers, "GET", f"/contacts/{ALICE}/export").json
    assert [(e["channel"], e["action"]) for e in exported["events"]] == [("sms", "opt_out"), ("whatsapp", "opt_in")]
    assert [f["kind"] for f in exported["feedback"]] == ["with_opt_out", "after_opt_out"]
    as_csv = api(client, admin_headers, "GET", f"/contacts/{ALICE}/export?format=csv")
    assert as_csv.mimetype == "text/csv"
    assert [(r["channel"], r["action"], r["address"]) for r in csv.DictReader(io.StringIO(as_csv.get_data(as_text=True)))] == [
        ("sms", "opt_out", ALICE), ("whatsapp", "opt_in", ALICE)]

    erased = api(client, admin_headers, "DELETE", f"/contacts/{ALICE}")
    assert erased.status_code == 200, erased.json
    assert erased.json["suppressed_channels"] == ["sms"]
    assert erased.json["deleted"]["consent_events"] == 2 and erased.json["deleted"]["campaign_messages"] == 1

    late = {**params, "MessageStatus": "read"}  # a late callback for the message sent before
    assert twilio.post("/webhooks/twilio/status?campaign=spring", late).status_code == 204
    assert _rows_mentioning(store, ALICE) == []
    assert _rows_mentioning(store, "who gave you my number") == []
    assert _rows_mentioning(store, BOB) != []
    # Still suppressed on SMS (by hash), sendable on WhatsApp where she had not left.
    audience = api(client, admin_headers, "POST", "/audience",
                   json={"channel": "sms", "category": "campaign", "addresses": [ALICE, "+14155550303"]}).json
    assert audience["suppressed"] == [ALICE] and audience["sendable"] == ["+14155550303"]
    whatsapp = api(client, admin_headers, "POST", "/audience",
                   json={"channel": "whatsapp", "category": "campaign", "addresses": [ALICE]}).json
    assert whatsapp["sendable"] == [ALICE]
    lookup = api(client, admin_headers, "GET", f"/subscriptions/sms/{ALICE}").json
    assert (lookup["status"], lookup["history"]) == ("unsubscribed", [])
    listed = api(client, admin_headers, "GET", "/suppressions/sms").json
    assert [s["address"] for s in listed["suppressions"]] == [BOB] and listed["erased_not_listed"] is True
    assert api(client, admin_headers, "GET", "/suppressions/whatsapp").json["erased_not_listed"] is False
    assert api(client, admin_headers, "GET", f"/contacts/{ALICE}/export").json["events"] == []

    # Erasing again is harmless; a new opt-in is new consent and makes her sendable again.
    assert api(client, admin_headers, "DELETE", f"/contacts/{ALICE}").json["deleted"]["consent_events"] == 0
    twilio.message("START", sender=ALICE)
    assert status_of("sms", ALICE) == "subscribed"
    again = api(client, admin_headers, "POST", "/audience", json={"channel": "sms", "category": "campaign", "addresses": [ALICE]})
    assert again.json["sendable"] == [ALICE]


def test_erasure_refuses_what_is_not_an_address(client, admin_headers):
    response = api(client, admin_headers, "DELETE", "/contacts/nobody")
    assert response.status_code == 400 and "phone number" in response.json["message"]
    assert client.delete(f"/api/v1/contacts/{ALICE}").status_code == 401


def test_the_log_still_refuses_deletes_outside_an_erasure(twilio, store):
    twilio.message("STOP", sender=ALICE)
    if store.kind == "sqlite":
        conn = sqlite3.connect(store.path)
        try:
            conn.execute("DELETE FROM consent_events")
            raise AssertionError("delete was allowed")
        except sqlite3.DatabaseError as error:
            assert "append-only" in str(error)
        finally:
            conn.close()
    else:
        import psycopg

        with psycopg.connect(store.conninfo) as conn:
            try:
                conn.execute("DELETE FROM consent_events")
                raise AssertionError("delete was allowed")
            except psycopg.errors.RestrictViolation as error:
                assert "append-only" in str(error)
    assert store.event_count() == 1


def test_a_service_with_another_erasure_key_refuses_to_start_then_erasure_key_mends_it(twilio, client, admin_headers,
                                                                                         settings):
    import pytest

    from tests.conftest import SECRET_KEY
    from webhook import create_app
    from webhook.settings import SettingsError

    twilio.message("STOP", sender=ALICE)
    assert api(client, admin_headers, "DELETE", f"/contacts/{ALICE}").json["suppressed_channels"] == ["sms"]
    rotated = settings.with_changes(secret_key="a-brand-new-secret-key-0123456789")
    with pytest.raises(SettingsError, match="ERASURE_KEY"):
        create_app(rotated)
    mended = create_app(rotated.with_changes(erasure_key=SECRET_KEY))  # the old key, kept for erasures
    try:
        audience = mended.test_client().post("/api/v1/audience", headers=admin_headers,
                                              json={"channel": "sms", "category": "campaign", "addresses": [ALICE]})
        assert audience.json["suppressed"] == [ALICE]
    finally:
        mended.extensions["unsub"].store.close()


def test_an_erasure_with_another_key_erases_nothing(store):
    from webhook.consent import address_hasher
    from webhook.domain import ConsentEvent, utcnow
    from webhook.store import ErasureKeyMismatch

    store.record(ConsentEvent("sms", ALICE, "opt_out", "keyword", utcnow()))
    store.record(ConsentEvent("sms", BOB, "opt_out", "keyword", utcnow()))
    store.erase(ALICE, address_hasher("first-key-0123456789"))
    try:
        store.erase(BOB, address_hasher("second-key-0123456789"))
        raise AssertionError("erased with another key")
    except ErasureKeyMismatch:
        pass
    assert store.subscription("sms", BOB).status == "unsubscribed"


def test_a_confirmation_records_the_keyword_version_the_message_arrived_under(twilio, client, admin_headers):
    """Issue 11 item 12: not the version running when the admin confirms."""
    arrived_under = api(client, admin_headers, "GET", "/keywords").json
    assert twilio.message("Cancel my order, it's late", sender=ALICE).status_code == 200
    document = arrived_under["document"]
    document["channels"]["sms"]["opt_out"]["keywords"]["en"].append("HALT")
    saved = api(client, admin_headers, "PUT", "/keywords", json=document)
    assert saved.status_code == 200 and saved.json["version"] != arrived_under["version"]
    item = api(client, admin_headers, "GET", "/review").json["items"][0]
    assert api(client, admin_headers, "POST", f"/review/{item['id']}", json={"decision": "confirm"}).status_code == 200
    history = api(client, admin_headers, "GET", f"/subscriptions/sms/{ALICE}").json["history"]
    assert [h["config_version"] for h in history] == [str(arrived_under["version"])]
    # The confirmation shows the message it confirms by the provider's id.
    assert history[0]["message_id"] == item["message_id"] and item["message_id"].startswith("SM")


def test_review_items_say_why_they_were_queued(twilio, client, admin_headers):
    twilio.message("Cancel my order, it's late", sender=ALICE)
    item = api(client, admin_headers, "GET", "/review").json["items"][0]
    assert "CANCEL" in item["reason"]


def test_every_csv_export_is_formula_safe_in_every_column(twilio, client, admin_headers, signed_in):
    """Issue 11 item 3: keyword and message id cells were written raw. A keyword can be the
    contact's own words (Twilio's OptOutType on a message we do not match)."""
    evil = '=HYPERLINK("http://evil.example","x")'
    assert twilio.message(evil, sender=ALICE, OptOutType="STOP").status_code == 200
    exports = [
        api(client, admin_headers, "GET", f"/contacts/{ALICE}/export?format=csv").get_data(as_text=True),
    ]
    exports.append(client.get("/admin/contacts/export", query_string={"address": ALICE, "format": "csv"}).get_data(as_text=True))
    exports.append(client.get("/admin/events.csv").get_data(as_text=True))
    for exported in exports:
        cells = [cell for row in csv.reader(io.StringIO(exported)) for cell in row]
        assert any(cell.startswith("'=HYPERLINK") for cell in cells), exported
        assert not [c for c in cells if c[:1] in ("=", "@") or (c[:1] in ("+", "-") and not c[1:].isdigit())]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # PostgreSQL's dead rows: docs/security.md
def test_no_copy_of_an_erased_contact_is_left_in_the_sqlite_files(twilio, client, admin_headers, store):
    """Issue 11 item 7: deleted rows stayed readable in the -wal file until a checkpoint."""
    words = "my private reason for leaving"
    twilio.message(f"STOP {words}", sender=ALICE)
    twilio.message("Cancel my parcel 4411, it's late", sender=ALICE, whatsapp=True)
    twilio.message("STOP", sender=BOB)
    files = [store.path, store.path.with_name(store.path.name + "-wal"), store.path.with_name(store.path.name + "-shm")]
    assert any(ALICE.encode() in path.read_bytes() for path in files if path.exists())  # the test can fail
    assert api(client, admin_headers, "DELETE", f"/contacts/{ALICE}").status_code == 200
    for path in files:
        if path.exists():
            content = path.read_bytes()
            assert ALICE.encode() not in content and ALICE[1:].encode() not in content, path
            assert words.encode() not in content and b"parcel 4411" not in content, path
    assert BOB.encode() in store.path.read_bytes()
    # Explicit, whatever the SQLite build's default (a per-connection setting).
    assert store.db.conn.execute("PRAGMA secure_delete").fetchone() == (1,)


def test_a_webhook_replayed_after_erasure_is_still_a_duplicate(twilio, client, admin_headers, store, status_of):
    """A captured signed START (or STOP, or a message for review) replayed after the contact
    was erased records nothing: the erasure kept keyed hashes of its message ids, not the ids."""
    sids = {"stop": new_sid(), "start": new_sid(), "review": new_sid()}
    twilio.message("STOP", sender=ALICE, sid=sids["stop"])
    twilio.message("START", sender=ALICE, sid=sids["start"], whatsapp=True)
    twilio.message("cancel the order", sender=ALICE, sid=sids["review"], whatsapp=True)
    assert api(client, admin_headers, "DELETE", f"/contacts/{ALICE}").status_code == 200

    twilio.message("STOP", sender=ALICE, sid=sids["stop"])
    twilio.message("START", sender=ALICE, sid=sids["start"], whatsapp=True)
    twilio.message("cancel the order", sender=ALICE, sid=sids["review"], whatsapp=True)
    assert _rows_mentioning(store, ALICE) == []
    assert _rows_mentioning(store, "cancel the order") == []
    assert any(sid in row for sid in sids.values() for row in _rows_mentioning(store, sid)) is False
    assert status_of("whatsapp", ALICE) == "unknown"
    audience = api(client, admin_headers, "POST", "/audience",
                   json={"channel": "sms", "category": "campaign", "addresses": [ALICE]}).json
    assert audience["suppressed"] == [ALICE]
    # A new message (a new id) is new consent, recorded as ever.
    twilio.message("START", sender=ALICE, whatsapp=True)
    assert status_of("whatsapp", ALICE) == "subscribed"


def test_a_campaign_callback_replayed_after_erasure_stores_nothing(twilio, client, admin_headers, store):
    """The same class for a contact who never left: a status callback of a campaign message
    sent before the erasure, replayed after it, does not bring the address back."""
    twilio.message("START", sender=ALICE)
    params = {"MessageSid": new_sid(), "MessageStatus": "delivered", "To": ALICE, "From": "+14155550100"}
    assert twilio.post("/webhooks/twilio/status?campaign=spring", params).status_code == 204
    assert api(client, admin_headers, "DELETE", f"/contacts/{ALICE}").json["deleted"]["campaign_messages"] == 1
    for status in ("delivered", "read"):
        assert twilio.post("/webhooks/twilio/status?campaign=spring", {**params, "MessageStatus": status}).status_code == 204
    assert _rows_mentioning(store, ALICE) == []
