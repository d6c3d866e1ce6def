"""Signed, opaque e-mail unsubscribe tokens and the List-Unsubscribe headers (pure, no Flask).

A token names one channel and address, is signed with SECRET_KEY (itsdangerous), never
expires (CAN-SPAM asks for 30 days, CASL 60) and cannot be altered without the key.
"""

from __future__ import annotations

from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeSerializer

SALT = "unsub.email-unsubscribe.v1"


@dataclass(frozen=True)
class TokenSubject:
    channel: str
    address: str


def _serializer(secret_key: str) -> URLSafeSerializer:
    return URLSafeSerializer(secret_key, salt=SALT)


def make_token(secret_key: str, channel: str, address: str) -> str:
    """A URL-safe token for one channel and (normalised) address."""
    return _serializer(secret_key).dumps([channel, address])


def read_token(secret_key: str, token: str) -> TokenSubject | None:
    """The channel and address a token names, or None when it is forged, altered or garbled."""
    if not token or len(token) > 1000:
        return None
    try:
        value = _serializer(secret_key).loads(token)
    except BadSignature:
        return None
    except Exception:  # noqa: BLE001 - a garbled payload reveals nothing either
        return None
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)):
        return None
    return TokenSubject(channel=value[0], address=value[1])


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/unsubscribe/{token}"


def list_unsubscribe_headers(url: str, mailto: str | None = None) -> dict[str, str]:
    """The two headers a sender puts on a campaign e-mail (RFC 2369 and RFC 8058).

    Sign both with DKIM. ``mailto`` adds a mail fallback for clients without one-click.
    """
    targets = f"<{url}>" + (f", <mailto:{mailto}?subject=unsubscribe>" if mailto else "")
    return {"List-Unsubscribe": targets, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"}
