"""WhatsApp Cloud API (Meta), direct or through a BSP that forwards Meta's format.

Verify (``X-Hub-Signature-256`` over the raw body), parse a webhook batch into
provider-neutral values (messages, statuses, marketing-preference changes), and answer: a
confirmation is a message the worker sends through the Cloud API, never part of the HTTP
answer. No Flask, no I/O. Facts: docs/providers.md in the shared docs ("WhatsApp Cloud API").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

from webhook.addresses import normalise_phone
from webhook.domain import InboundMessage, PreferenceChange, Skipped, StatusReport, utcnow

PROVIDER = "whatsapp_cloud"
SIGNATURE_HEADER = "X-Hub-Signature-256"
# Meta's policy: 131050 is "the user stopped marketing messages" (in WhatsApp's own settings).
RECIPIENT_BLOCKED_CODES = frozenset({"131050"})
MAX_ID = 256  # wamid... ids are about 60 characters
MAX_TEXT = 4096  # a WhatsApp text is at most 4,096 characters
MAX_CHALLENGE = 200
# The most messages, statuses and preference changes one POST may carry (Meta's batches hold
# a few; each item is a database write, and the whole batch must be answered within Meta's
# timeout). A bigger one is refused with 413 before anything is recorded.
MAX_BATCH_ITEMS = 1000
ITEM_LISTS = {"messages": ("messages", "statuses"), "user_preferences": ("user_preferences",)}
WA_ID = re.compile(r"[1-9][0-9]{5,14}")
_CHALLENGE = re.compile(r"[A-Za-z0-9._-]{1,200}")


class MalformedPayload(ValueError):
    """Signed, but not Meta's webhook envelope (400)."""


class BatchTooLarge(ValueError):
    """More than MAX_BATCH_ITEMS items in one POST (413)."""


def signature_ok(app_secret: str | None, raw_body: bytes, header: str | None) -> bool:
    """``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>``, in constant time.
    Meta signs the bytes as sent (escaped unicode included): never a re-serialisation."""
    if not app_secret or not header or not header.startswith("sha256="):
        return False
    expected = hmac.new(app_secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, header[len("sha256="):].strip().lower())


def sign(app_secret: str, raw_body: bytes) -> str:
    """The header value Meta would send (for ``unsub simulate`` and tests)."""
    return "sha256=" + hmac.new(app_secret.encode("utf-8"), raw_body, hashlib.sha256).hexdigest()


def handshake(args: Mapping[str, str], verify_token: str | None) -> str | None:
    """Meta's verification handshake: the challenge to echo, or None (403)."""
    token = args.get("hub.verify_token", "")
    challenge = args.get("hub.challenge", "")
    if not verify_token or args.get("hub.mode") != "subscribe" or not _CHALLENGE.fullmatch(challenge):
        return None
    return challenge if hmac.compare_digest(token.encode("utf-8"), verify_token.encode("utf-8")) else None


@dataclass(frozen=True)
class Batch:
    items: list[InboundMessage | StatusReport | PreferenceChange] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def parse_batch(data: Any, digest: str = "") -> Batch:
    """Every message, status and marketing-preference change of one webhook POST, in order.

    MalformedPayload when it is not Meta's envelope; an item that cannot be read (no usable
    number, no id) is skipped with its reason, and the others are kept.
    """
    if not isinstance(data, dict) or data.get("object") != "whatsapp_business_account":
        raise MalformedPayload('not a WhatsApp webhook: "object" must be "whatsapp_business_account"')
    entries = data.get("entry")
    if not isinstance(entries, list):
        raise MalformedPayload('"entry" must be a list')
    count = item_count(entries)
    if count > MAX_BATCH_ITEMS:
        raise BatchTooLarge(f"{count} messages, statuses and preference changes in one webhook; at most {MAX_BATCH_ITEMS}")
    batch = Batch()
    for e, entry in enumerate(entries):
        changes = entry.get("changes") if isinstance(entry, dict) else None
        if not isinstance(changes, list):
            batch.skipped.append(Skipped(f"entry {e}", '"changes" is not a list'))
            continue
        for c, change in enumerate(changes):
            where = f"entry {e} change {c}"
            value = change.get("value") if isinstance(change, dict) else None
            if not isinstance(value, dict):
                batch.skipped.append(Skipped(where, '"value" is not an object'))
                continue
            kind = change.get("field")
            if kind == "messages":
                _messages(value, where, batch)
            elif kind == "user_preferences":
                _preferences(value, where, batch, digest)
            else:
                batch.skipped.append(Skipped(where, f"field {str(kind)[:40]!r} is not one unsub handles"))
    return batch


def item_count(entries: list) -> int:
    """How many items the batch holds, counted before anything is read from them (every list
    element counts, a wrong one too: it costs a skip)."""
    count = 0
    for entry in entries:
        changes = entry.get("changes") if isinstance(entry, dict) else None
        for change in changes if isinstance(changes, list) else ():
            value = change.get("value") if isinstance(change, dict) else None
            if isinstance(value, dict):
                for key in ITEM_LISTS.get(str(change.get("field")), ()):
                    items = value.get(key)
                    count += len(items) if isinstance(items, list) else 0
    return count


def _list(value: dict, key: str, where: str, batch: Batch) -> list:
    """``value[key]`` when it is a list; missing or null is none; any other type (a string, a
    number, an object) is skipped with its reason, so the rest of the batch is still read."""
    found = value.get(key)
    if found is None or isinstance(found, list):
        return found or []
    batch.skipped.append(Skipped(where, f'"{key}" is not a list'))
    return []


def _identities(value: dict) -> tuple[tuple[str, str], ...]:
    """Who the batch was sent to: the phone number id, then the business's number."""
    found_metadata = value.get("metadata")
    metadata: dict = found_metadata if isinstance(found_metadata, dict) else {}
    found: list[tuple[str, str]] = []
    number_id = metadata.get("phone_number_id")
    if isinstance(number_id, str) and number_id.isascii() and number_id.isdigit() and len(number_id) <= 30:
        found.append(("phone_number_id", number_id))
    display = metadata.get("display_phone_number")
    if isinstance(display, str):
        number = normalise_phone("+" + display.lstrip("+"))
        if number:
            found.append(("number", number))
    return tuple(found)


def phone_number_id(identities: tuple[tuple[str, str], ...]) -> str | None:
    return next((value for kind, value in identities if kind == "phone_number_id"), None)


def _address(wa_id: Any) -> str | None:
    """``+`` and the wa_id (digits without +): the same contact as Twilio's whatsapp:+..."""
    if not isinstance(wa_id, str) or not WA_ID.fullmatch(wa_id):
        return None
    return normalise_phone("+" + wa_id)


def _seconds(timestamp: Any) -> datetime | None:
    """Meta's unix seconds (a string or a number) as a time, None when it is not one."""
    if isinstance(timestamp, (str, int)) and not isinstance(timestamp, bool) and str(timestamp).isascii() \
            and str(timestamp).isdigit() and len(str(timestamp)) <= 11:
        moment = datetime.fromtimestamp(int(timestamp), timezone.utc)
        return moment if moment.year >= 2009 else None
    return None


def _when(timestamp: Any) -> datetime:
    """Meta's unix seconds (a string); now when it is missing, absurd or later than now (an
    event cannot have happened after it is reported, and a future time would outrank, and
    so hide, the contact's next real change)."""
    now = utcnow()
    moment = _seconds(timestamp)
    return moment if moment is not None and moment <= now else now


def _text(value: Any, limit: int = MAX_TEXT) -> str | None:
    return value[:limit] if isinstance(value, str) else None


def _messages(value: dict, where: str, batch: Batch) -> None:
    identities = _identities(value)
    for m, message in enumerate(_list(value, "messages", where, batch)):
        at = f"{where} message {m}"
        if not isinstance(message, dict):
            batch.skipped.append(Skipped(at, "not an object"))
            continue
        wamid = message.get("id")
        address = _address(message.get("from"))
        if not isinstance(wamid, str) or not 0 < len(wamid) <= MAX_ID:
            batch.skipped.append(Skipped(at, "no message id"))
            continue
        if address is None:
            # Meta may omit wa_id for users with usernames: nothing to record, nobody to answer.
            batch.skipped.append(Skipped(at, "no usable number (wa_id)"))
            continue
        body, payload = _content(message)
        batch.items.append(InboundMessage(
            channel_type="whatsapp", address=address, body=body, message_id=wamid, identities=identities,
            button_payload=payload, received_at=_when(message.get("timestamp")), id_namespace="whatsapp",
            provider=PROVIDER,
        ))
    for s, status in enumerate(_list(value, "statuses", where, batch)):
        at = f"{where} status {s}"
        report = _status(status, identities)
        if isinstance(report, str):
            batch.skipped.append(Skipped(at, report))
        else:
            batch.items.append(report)


def _content(message: dict) -> tuple[str, str | None]:
    """(text, payload) of a message: a text's body; a template button's text and payload; an
    interactive reply's title and id. Other types (media, location...) have no text."""
    kind = message.get("type")
    if kind == "text" and isinstance(message.get("text"), dict):
        return _text(message["text"].get("body")) or "", None
    if kind == "button" and isinstance(message.get("button"), dict):
        button = message["button"]
        return _text(button.get("text"), 256) or "", _text(button.get("payload"), 256)
    if kind == "interactive" and isinstance(message.get("interactive"), dict):
        interactive = message["interactive"]
        reply = interactive.get(interactive.get("type")) if isinstance(interactive.get("type"), str) else None
        if isinstance(reply, dict):
            return _text(reply.get("title"), 256) or "", _text(reply.get("id"), 256)
    return "", None


def _status(status: Any, identities: tuple[tuple[str, str], ...]) -> StatusReport | str:
    if not isinstance(status, dict):
        return "not an object"
    wamid = status.get("id")
    recipient = _address(status.get("recipient_id"))
    if not isinstance(wamid, str) or not 0 < len(wamid) <= MAX_ID:
        return "no message id"
    if recipient is None:
        return "no usable recipient number"
    errors = status.get("errors")
    codes = [str(error.get("code"))[:10] for error in (errors if isinstance(errors, list) else ()) if isinstance(error, dict)]
    blocked = next((code for code in codes if code in RECIPIENT_BLOCKED_CODES), None)
    return StatusReport(
        channel_type="whatsapp", message_id=wamid, recipient=recipient, status=str(status.get("status") or "")[:20].lower(),
        identities=identities, error_code=blocked or (codes[0] if codes else None), recipient_blocked=blocked is not None,
        id_namespace="whatsapp-status", at=_when(status.get("timestamp")),
    )


def _preferences(value: dict, where: str, batch: Batch, digest: str = "") -> None:
    identities = _identities(value)
    for p, preference in enumerate(_list(value, "user_preferences", where, batch)):
        at = f"{where} preference {p}"
        if not isinstance(preference, dict) or preference.get("category") != "marketing_messages":
            batch.skipped.append(Skipped(at, "not a marketing_messages preference"))
            continue
        action = {"stop": "opt_out", "resume": "opt_in"}.get(str(preference.get("value")))
        address = _address(preference.get("wa_id"))
        if action is None or address is None:
            batch.skipped.append(Skipped(at, "no usable number or value (stop, resume)"))
            continue
        timestamp = preference.get("timestamp")
        # Meta's time tells one change from the next; without a usable one, a fixed key would
        # make every later undated STOP of this contact a "duplicate" of the first (lost).
        # Then the key is the request's digest and the item's place: Meta's redelivery of the
        # same POST is still one change, any other POST is another.
        when = str(timestamp) if _seconds(timestamp) is not None else f"undated:{digest}:{at}"
        batch.items.append(PreferenceChange(
            channel_type="whatsapp", address=address, action=action,  # type: ignore[arg-type]
            key=f"{address}:{when}:{preference.get('value')}", identities=identities,
            detail=_text(preference.get("detail"), 200), at=_when(timestamp),
            id_namespace="whatsapp-pref", match_kind="whatsapp_settings",
        ))


@dataclass(frozen=True)
class Reply:
    """A confirmation to send through the Cloud API (a delivery the worker makes)."""

    lane: str
    key: str  # one reply per inbound message, however often Meta redelivers it
    address: str
    target: str
    body: str


def reply(api_url: str, message: InboundMessage, text: str) -> Reply | None:
    """The Cloud API request that answers ``message`` with ``text`` (None without a phone number id)."""
    number_id = phone_number_id(message.identities)
    if number_id is None:
        return None
    body = json.dumps({"messaging_product": "whatsapp", "recipient_type": "individual", "to": message.address.lstrip("+"),
                       "type": "text", "text": {"body": text}}, ensure_ascii=False)
    key = "reply_" + hashlib.sha256(message.message_id.encode("utf-8")).hexdigest()[:32]
    return Reply(f"whatsapp:{number_id}", key, message.address, f"{api_url}/{number_id}/messages", body)


def reply_headers(access_token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {access_token}", "content-type": "application/json",
            "user-agent": "unsub-whatsapp/1"}
