"""A contact's status on a channel: read it, change it by hand or from an e-mail link, and
gate audiences on it."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Callable, Sequence

from webhook.addresses import normalise_address
from webhook.consent.changes import record_change, safe_text
from webhook.consent.channels import email_channel, named_channel, resolve
from webhook.domain import ACTION_OF_STATUS, ConsentEvent, Feedback, Recorded, Subscription, utcnow
from webhook.gating import CATEGORIES, gated_categories
from webhook.keywords import Channel, KeywordConfig
from webhook.store import Store

# hash_for(channel, address): the keyed hash an erased, suppressed address is kept as.
AddressHash = Callable[[str, str], str]


def address_hasher(secret_key: str) -> AddressHash:
    """HMAC-SHA256 of channel and address under a key derived from ERASURE_KEY (else SECRET_KEY).

    Without the key nobody can test whether a given person is in the erased list;
    with it the service can still tell that an address it is asked about was erased.
    """
    key = hmac.new(secret_key.encode("utf-8"), b"unsub erased-address v1", hashlib.sha256).digest()

    def hash_for(channel: str, address: str) -> str:
        return hmac.new(key, f"{channel}\x00{address}".encode("utf-8"), hashlib.sha256).hexdigest()

    return hash_for


@dataclass(frozen=True)
class ContactStatus:
    """One address on one channel: its current status (None: unknown) and history, oldest first,
    and the message categories it must not get there now (the channel's revocation scope)."""

    channel: str
    address: str
    subscription: Subscription | None
    history: list[ConsentEvent]
    gated_categories: tuple[str, ...] = ()


def gated_for(channel: Channel, subscription: Subscription | None) -> tuple[str, ...]:
    """What an address must not get on the channel: the scope's categories when it is
    unsubscribed (an erased, suppressed one included), nothing otherwise."""
    if subscription is None or subscription.status != "unsubscribed":
        return ()
    return tuple(gated_categories(channel.revocation_scope))


def set_status(
    config: KeywordConfig,
    store: Store,
    channel_name: str,
    raw_address: str,
    status: str,
    reason: str,
    region: str | None = None,
    actor: str = "admin",
) -> ContactStatus:
    """An admin changes a status by hand; recorded with source ``admin`` and the reason."""
    channel, address = resolve(config, channel_name, raw_address, region)
    record_change(store, ConsentEvent(
        channel=channel.name, address=address, action=ACTION_OF_STATUS[status], source="admin", occurred_at=utcnow(),
        match_kind="admin", config_version=config.version, reason=safe_text(f"{actor}: {reason}", 500),
    ), required=True)
    current = store.subscription(channel.name, address)
    return ContactStatus(channel.name, address, current, store.history(channel.name, address), gated_for(channel, current))


def lookup(
    config: KeywordConfig, store: Store, channel_name: str, raw_address: str, hash_for: AddressHash,
    region: str | None = None,
) -> ContactStatus:
    """Current status and history of one address on one channel.

    An erased address that had unsubscribed reads as unsubscribed (since its erasure),
    with no history.
    """
    channel, address = resolve(config, channel_name, raw_address, region)
    current = store.subscription(channel.name, address)
    if current is None and store.has_erasures(channel.name):
        erased_at = store.erased_among(channel.name, [hash_for(channel.name, address)])
        if erased_at:
            current = Subscription(channel.name, address, "unsubscribed", next(iter(erased_at.values())))
    return ContactStatus(channel.name, address, current, store.history(channel.name, address), gated_for(channel, current))


@dataclass(frozen=True)
class Audience:
    sendable: list[str]
    suppressed: list[str]
    invalid: list[str]


def audience_channel(config: KeywordConfig, channel_name: str, category: str) -> Channel:
    """The channel an audience is for, or UnknownChannel / ValueError for a bad category."""
    channel = named_channel(config, channel_name)
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; use one of {', '.join(CATEGORIES)}")
    return channel


def erased(store: Store, channel: str, address: str, hash_for: AddressHash) -> bool:
    """True for an address erased on the channel (kept only as a hash) that has not come back since."""
    if not store.has_erasures(channel) or store.subscription(channel, address) is not None:
        return False
    return bool(store.erased_among(channel, [hash_for(channel, address)]))


def suppressed_among(store: Store, channel: str, addresses: Sequence[str], hash_for: AddressHash) -> set[str]:
    """Which of these normalised addresses are suppressed on the channel: unsubscribed ones,
    and erased ones that were unsubscribed (kept only as a keyed hash) unless they have
    consented again since. Which categories that holds back is ``Channel.gates``'s call.
    """
    statuses = store.statuses_among(channel, addresses)
    blocked = {address for address, status in statuses.items() if status == "unsubscribed"}
    if store.has_erasures(channel):
        unknown = {hash_for(channel, a): a for a in addresses if a not in statuses}
        blocked.update(unknown[h] for h in store.erased_among(channel, unknown))
    return blocked


def audience(
    config: KeywordConfig,
    store: Store,
    channel_name: str,
    category: str,
    addresses: Sequence[object],
    hash_for: AddressHash,
    region: str | None = None,
) -> Audience:
    """Split addresses into sendable, suppressed and invalid for a channel and category.

    The channel's revocation scope says whether ``category`` is gated (``campaign`` only,
    by default). Addresses come back normalised, in input order, each once; invalid
    entries come back as given.
    """
    channel = audience_channel(config, channel_name, category)
    normal: list[str] = []
    invalid: list[str] = []
    for raw in addresses:
        address = normalise_address(channel.type, raw, region, strict=True) if isinstance(raw, str) else None
        if address is None:
            invalid.append(raw if isinstance(raw, str) else repr(raw))
        else:
            normal.append(address)
    unique = list(dict.fromkeys(normal))
    blocked = suppressed_among(store, channel.name, unique, hash_for) if channel.gates(category) else set()
    return Audience(
        sendable=[a for a in unique if a not in blocked],
        suppressed=[a for a in unique if a in blocked],
        invalid=invalid,
    )


def set_email_preference(
    config: KeywordConfig,
    store: Store,
    channel_name: str,
    address: str,
    action: str,
    source: str,
    reason: str | None = None,
) -> tuple[str, Recorded]:
    """Unsubscribe or re-subscribe an address from a link or page (sources ``one_click``, ``page``).

    Idempotent: when the status already is what the action asks for, nothing is
    recorded (mailbox providers may repeat a one-click POST). Returns the channel name
    and what was recorded.
    """
    channel = email_channel(config, channel_name)
    recorded = record_change(store, ConsentEvent(
        channel=channel.name, address=address, action=action, source=source,  # type: ignore[arg-type]
        occurred_at=utcnow(), match_kind=source, config_version=config.version,
        reason=safe_text(reason, 500) if reason else None,
    ), only_if_changes=True)
    if recorded.created and action == "opt_out" and reason and reason.strip():
        # The page's optional "why": summarised on the dashboard with the texts' reasons.
        store.add_feedback(Feedback(channel.name, address, "page", safe_text(reason.strip(), 500) or "", utcnow()))
    return channel.name, recorded
