"""Campaign messages: what was sent to whom, so opt-outs can be attributed to a campaign."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Sequence

from webhook.addresses import normalise_address
from webhook.consent.channels import named_channel
from webhook.domain import MESSAGE_STAGES, CampaignMessage, utcnow
from webhook.keywords import KeywordConfig
from webhook.store import Store

# A campaign id as it may appear in a StatusCallback URL or the API: what people name
# campaigns ("Spring sale 2026"), without control characters, "/" (a URL path segment
# in the API) or surrounding spaces.
CAMPAIGN_ID = re.compile(r"[^\x00-\x1f\x7f/]{1,100}")


def check_campaign_id(value: str) -> str:
    """A campaign id as given, or ValueError saying what is allowed."""
    if not CAMPAIGN_ID.fullmatch(value) or value != value.strip():
        raise ValueError(
            f"campaign id {value[:120]!r} is not allowed: use 1-100 characters without '/', control "
            "characters or spaces around it"
        )
    return value


@dataclass(frozen=True)
class Send:
    """A campaign send reported by another tool (API or CLI)."""

    address: str
    message_id: str | None = None
    status: str = "delivered"
    at: datetime | None = None


@dataclass(frozen=True)
class SendsRecorded:
    added: int  # message ids that were new
    invalid: list[str]  # addresses as given that are not valid for the channel


def record_sends(
    config: KeywordConfig, store: Store, campaign: str, channel_name: str, sends: Sequence[Send], region: str | None = None,
) -> SendsRecorded:
    """Record sends made by other tools.

    Without a message id, one is made from campaign, channel and address, so reporting
    the same send twice records it once.
    """
    check_campaign_id(campaign)
    channel = named_channel(config, channel_name)
    messages: list[CampaignMessage] = []
    invalid: list[str] = []
    now = utcnow()
    for send in sends:
        address = normalise_address(channel.type, send.address, region, strict=True)
        if address is None:
            invalid.append(send.address)
            continue
        if send.status not in MESSAGE_STAGES:
            raise ValueError(f"unknown message status {send.status!r}; use one of {', '.join(MESSAGE_STAGES)}")
        message_id = send.message_id or f"{campaign}:{channel.name}:{address}"
        messages.append(CampaignMessage(message_id, campaign, channel.name, address, send.status, send.at or now))
    return SendsRecorded(store.record_campaign_messages(messages), invalid)
