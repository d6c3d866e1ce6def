"""Forwarding inbound Twilio messages to the webhook a business already has (pure parts).

unsub sits in front of the existing webhook: it records its own change first, then replays
Twilio's request to ``forward.url`` with the same form fields, re-signed with
``TWILIO_AUTH_TOKEN`` for that URL (so the endpoint's own ``RequestValidator`` check passes
unchanged), plus ``X-Unsub-Intent`` and ``X-Unsub-Channel``. Contract: "Forwarding".
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Sequence
from urllib.parse import unquote, urlencode, urlsplit

from webhook.keywords import Channel, ConfigProblem, KeywordConfig
from webhook.providers.twilio import SIGNATURE_HEADER, signature_for

INTENT_HEADER = "X-Unsub-Intent"
CHANNEL_HEADER = "X-Unsub-Channel"
# Intents unsub answers itself: their confirmation is the one reply (CTIA), whatever the endpoint says.
ANSWERED = frozenset({"opt_out", "opt_in", "help"})
MAX_ANSWER_BYTES = 64 * 1024
OWN_PATH = "/webhooks/twilio"


def should_forward(channel: Channel, intent: str | None) -> bool:
    """``non_consent``: only messages unsub does not answer itself; ``all``: every message."""
    forward = channel.forward
    if forward is None:
        return False
    return forward.messages == "all" or (intent or "none") not in ANSWERED


def answers_itself(intent: str | None) -> bool:
    return (intent or "none") in ANSWERED


def forward_policy_problems(config: KeywordConfig, allow_http: bool, own_bases: Sequence[str]) -> list[ConfigProblem]:
    """The rules that need the service's settings: https only unless WEBHOOK_ALLOW_HTTP=1, and
    never unsub's own ``/webhooks/twilio`` (a forward would loop)."""
    problems: list[ConfigProblem] = []
    own_hosts = {_host(base) for base in own_bases if base}
    for name, channel in config.channels.items():
        if channel.forward is None:
            continue
        parts = urlsplit(channel.forward.url)
        path = f"channels.{name}.forward.url"
        if parts.scheme != "https" and not allow_http:
            problems.append(ConfigProblem(path, "the forward URL must be https:// (set WEBHOOK_ALLOW_HTTP=1 to allow "
                                                "http:// for local testing)"))
        if _host(channel.forward.url) in own_hosts and _path(parts.path).startswith(OWN_PATH):
            problems.append(ConfigProblem(path, "the forward URL is unsub's own /webhooks/twilio: messages would loop"))
    return problems


def _host(url: str) -> tuple[str, int | None]:
    """Host and port as a server sees them: one name however it is written (capitals, a
    trailing dot, the scheme's default port spelled out). A request that still reaches unsub
    under another name (an IP address, a second DNS name) is refused when it arrives: it
    carries X-Unsub-Intent and gets 508."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    default = {"https": 443, "http": 80}.get(parts.scheme.lower())
    return ((parts.hostname or "").rstrip("."), default if port is None else port)


def _path(path: str) -> str:
    """The path the router matches: percent-escapes decoded, runs of slashes as one."""
    return re.sub(r"/+", "/", unquote(path)).rstrip("/")


@dataclass(frozen=True)
class Forward:
    """One forward of an inbound message: where, what, and the headers (signature included)."""

    url: str
    body: bytes
    headers: dict[str, str]


def build(auth_token: str, url: str, form: Sequence[tuple[str, str]], intent: str | None, channel: str) -> Forward:
    """Twilio's request as it arrived (the same fields, in order), signed for ``url``."""
    params: dict[str, list[str]] = {}
    for key, value in form:
        params.setdefault(key, []).append(value)
    return Forward(url, urlencode(list(form)).encode("utf-8"), {
        "Content-Type": "application/x-www-form-urlencoded",
        SIGNATURE_HEADER: signature_for(auth_token, url, _MultiParams(params)),
        INTENT_HEADER: intent or "none",
        CHANNEL_HEADER: channel,
        "User-Agent": "unsub-forward/1",
    })


class _MultiParams(dict):
    """The fields for twilio's validator, which signs every value of a repeated field."""

    def getall(self, key: str) -> list[str]:
        return list(self[key])


def outbox_body(form: Sequence[tuple[str, str]], intent: str | None, channel: str) -> str:
    """What the outbox keeps to forward later: the fields; the worker re-signs each attempt."""
    return json.dumps({"form": [list(pair) for pair in form], "intent": intent or "none", "channel": channel},
                      ensure_ascii=False)


def from_outbox(body: str) -> tuple[list[tuple[str, str]], str, str]:
    data = json.loads(body)
    return [(str(k), str(v)) for k, v in data["form"]], str(data["intent"]), str(data["channel"])
