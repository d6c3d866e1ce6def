"""Which channel and which address a request means, or an error that says what is wrong."""

from __future__ import annotations

from webhook.addresses import normalise_address
from webhook.keywords import Channel, KeywordConfig

PHONE_HINT = "a phone number in international format (+14155550123), or set DEFAULT_REGION to read national numbers"


class UnknownChannel(ValueError):
    pass


class InvalidAddress(ValueError):
    pass


def named_channel(config: KeywordConfig, channel_name: str) -> Channel:
    """The channel of that name, or UnknownChannel naming the ones there are."""
    channel = config.channel(channel_name)
    if channel is None:
        raise UnknownChannel(f"unknown channel {channel_name!r}; channels: {', '.join(sorted(config.channels))}")
    return channel


def _invalid(raw: str, kind: str) -> InvalidAddress:
    what = "an e-mail address" if kind == "email" else PHONE_HINT
    return InvalidAddress(f"{raw[:80]!r} is not {what}")


def resolve(config: KeywordConfig, channel_name: str, raw_address: str, region: str | None = None) -> tuple[Channel, str]:
    """The named channel and the normalised address, or UnknownChannel / InvalidAddress."""
    channel = named_channel(config, channel_name)
    address = normalise_address(channel.type, raw_address, region)
    if address is None:
        raise _invalid(raw_address, channel.type)
    return channel, address


def contact_address(raw: str, region: str | None = None) -> str:
    """A contact's address as stored: an e-mail address, else a phone number in E.164."""
    kind = "email" if "@" in raw else "sms"
    address = normalise_address(kind, raw, region)
    if address is None:
        raise _invalid(raw, kind)
    return address


def email_channel(config: KeywordConfig, channel_name: str) -> Channel:
    """The e-mail channel a token or mail belongs to; the default one if it no longer exists.

    Unsubscribe links never expire, so a link minted for a channel removed since must
    still unsubscribe the contact from e-mail.
    """
    channel = config.channel(channel_name)
    if channel is None or channel.type != "email":
        channel = config.channels["email"]
    return channel
