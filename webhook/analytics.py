"""Why people leave, in numbers: the statistics report and the reading of reasons. Pure code."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timedelta
from itertools import groupby
from typing import Sequence

from webhook.domain import ChannelScope, Feedback, RawStats, iso
from webhook.gating import DEFAULT_SCOPE
from webhook.matching import Match, normalise

RECENT_REASONS = 20

# Words that say nothing about why ("STOP please", "unsubscribe me now"): a message
# with an opt-out keyword and only these around it carries no reason.
FILLER = frozenset(
    """
    a all am an and any anymore are at be do dont for from go i im it just me messages message msg msgs my no
    not now of off ok okay on or please pls plz send sending sms so stop text texting texts thank thanks that the
    these this thx to u us want we whatsapp with you your yes remove unsubscribe cancel quit end list number
    por favor merci svp sil vous plait bitte danke obrigado gracias
    """.split()
)

# (category, label, phrases): the first category with a phrase in the reason wins.
REASON_CATEGORIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("too_many", "Too many messages", (
        "too many", "too much", "so many", "too often", "every day", "everyday", "daily", "spam", "spamming",
        "constant", "nonstop", "frequency", "trop de", "trop souvent", "demasiados", "demasiado", "zu viele",
        "zu oft", "muitas", "muito",
    )),
    ("not_interested", "Not interested any more", (
        "not interested", "no longer interested", "dont need", "do not need", "no need", "dont care", "dont want",
        "do not want", "pas interesse", "plus besoin", "no me interesa", "kein interesse", "nao tenho interesse",
    )),
    ("never_signed_up", "Never signed up / wrong number", (
        "never signed", "didnt sign", "did not sign", "never subscribed", "didnt subscribe", "wrong number",
        "who is this", "who are you", "not me", "how did you get", "jamais inscrit", "no me suscribi",
        "nie angemeldet", "numero errado", "mauvais numero",
    )),
    ("irrelevant", "Not relevant to me", (
        "not relevant", "irrelevant", "not for me", "moved", "dont live", "no longer live", "dont shop",
        "no longer a customer", "not a customer",
    )),
    ("cost", "Cost or charges", ("expensive", "price", "prices", "charged", "charges", "cost", "fees", "data plan")),
    ("privacy", "Privacy", ("privacy", "my data", "personal data", "gdpr", "report you", "illegal")),
)
LABELS = {name: label for name, label, _ in REASON_CATEGORIES} | {"other": "Other"}


def reason_in(text: str, found: Match) -> bool:
    """True when an opt-out message says more than the opt-out itself ("STOP too many texts").

    The matched keyword or phrase and filler words are taken away; any other word is a reason.
    """
    if found.kind in ("keyword", "emoji"):
        return False  # the whole message was the keyword (however it was spelt) or 🛑
    tokens = normalise(text).split()
    if found.kind in ("typo", "stretched"):
        # The misspelt keyword is the whole message ("Stpo pls", "s t o o p") or its first
        # word ("Stoooop texting me"): what follows it may be a reason.
        whole = len(tokens) <= 2 or all(len(token) == 1 for token in tokens)
        tokens = [] if whole else tokens[1:]
    if found.kind in ("first_word", "phrase"):
        matched = normalise(found.keyword).split()
        for start in range(len(tokens) - len(matched) + 1):
            if tokens[start:start + len(matched)] == matched:
                del tokens[start:start + len(matched)]
                break
    return any(token not in FILLER and not token.isdigit() for token in tokens)


def categorise(text: str) -> str:
    """The category of a reason (see REASON_CATEGORIES), ``other`` when none fits."""
    padded = f" {normalise(text).replace(chr(39), '')} "
    for name, _, phrases in REASON_CATEGORIES:
        if any(f" {phrase} " in padded for phrase in phrases):
            return name
    return "other"


# Gmail's and Yahoo's bulk-sender rules (2024): keep spam complaints under 0.1 % of the mail
# delivered, and never let them reach 0.3 % (past that, mail goes to spam or is refused).
COMPLAINT_WARNING = (1, 1000)  # 0.1 %, as a fraction: compared in integers, never in rounded floats
COMPLAINT_LIMIT = (3, 1000)  # 0.3 %
COMPLAINT_LEVELS = ("ok", "warning", "over_limit")


def _rate(opt_outs: int, delivered: int) -> float | None:
    return round(opt_outs / delivered, 6) if delivered else None


def complaint_level(complaints: int, delivered: int) -> str | None:
    """``ok`` under 0.1 % of the delivered mail, ``warning`` from 0.1 %, ``over_limit`` from
    0.3 %; None when nothing was delivered (no rate to judge)."""
    if not delivered:
        return None
    if complaints * COMPLAINT_LIMIT[1] >= COMPLAINT_LIMIT[0] * delivered:
        return "over_limit"
    if complaints * COMPLAINT_WARNING[1] >= COMPLAINT_WARNING[0] * delivered:
        return "warning"
    return "ok"


def scope_changes(scopes: Sequence[ChannelScope], channel: str | None = None) -> list[dict]:
    """Where a channel's revocation scope differs from the version before, oldest first.

    ``scopes``: the store's ``channel_scopes`` for a period (the version in force at its
    start, then the versions of the period). The first version is the baseline, never a
    change; a channel new in a version counts as the default scope before it.
    """
    changes: list[dict] = []
    previous: dict[str, str] | None = None
    for (version, created_at), rows in groupby(scopes, key=lambda s: (s.version, s.created_at)):
        current = {row.channel: row.scope or DEFAULT_SCOPE for row in rows}
        if previous is not None:
            for name in sorted(current):
                before = previous.get(name, DEFAULT_SCOPE)
                if current[name] != before and channel in (None, name):
                    changes.append({"channel": name, "from": before, "to": current[name], "version": version,
                                    "at": iso(created_at)})
        previous = current
    return changes


def build_report(raw: RawStats, since: datetime, until: datetime, window: timedelta,
                 scopes: Sequence[ChannelScope] = (), channel: str | None = None) -> dict:
    """The statistics document served by ``GET /api/v1/stats`` and drawn by the dashboard.

    ``scopes`` (the store's ``channel_scopes``) become ``scope_changes``, for ``channel`` only
    when one is given.
    """
    by_day: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {"opt_out": 0, "opt_in": 0})
    by_channel: dict[str, dict[str, int]] = defaultdict(lambda: {"opt_out": 0, "opt_in": 0})
    for day, channel, action, count in raw.daily:
        by_day[(day, channel)][action] += count
        by_channel[channel][action] += count
    # Worst first; campaigns with no delivery yet (no rate) last.
    ordered = sorted(raw.campaigns, key=lambda c: (c[2] == 0, -(c[3] / c[2] if c[2] else 0), -c[3], c[0], c[1]))
    complained = {(campaign, channel): n for campaign, channel, n in raw.complaints}
    campaigns = [
        {"campaign": campaign, "channel": channel, "delivered": delivered, "opt_outs": outs,
         "opt_out_rate": _rate(outs, delivered), **_complaints(complained.get((campaign, channel), 0), delivered)}
        for campaign, channel, delivered, outs in ordered
    ]
    languages: Counter[str] = Counter()
    for _, language, count in raw.keywords:
        languages[language or "unknown"] += count
    categories = Counter(categorise(item.text) for item in raw.feedback)
    return {
        "since": iso(since),
        "until": iso(until),
        "attribution_window_hours": round(window.total_seconds() / 3600, 3),
        "totals": {
            "opt_outs": sum(c["opt_out"] for c in by_channel.values()),
            "opt_ins": sum(c["opt_in"] for c in by_channel.values()),
            "feedback": raw.feedback_total,
            "review_open": raw.review_open,
            "complaints": sum(n for kind, n in raw.kinds if kind == "complaint"),
        },
        "complaint_thresholds": {"warning": COMPLAINT_WARNING[0] / COMPLAINT_WARNING[1],
                                 "limit": COMPLAINT_LIMIT[0] / COMPLAINT_LIMIT[1]},
        "channels": [
            {"channel": name, "opt_outs": counts["opt_out"], "opt_ins": counts["opt_in"]}
            for name, counts in sorted(by_channel.items())
        ],
        "daily": [
            {"day": day, "channel": channel, "opt_outs": counts["opt_out"], "opt_ins": counts["opt_in"]}
            for (day, channel), counts in sorted(by_day.items())
        ],
        "campaigns": campaigns,
        "keywords": [{"keyword": k, "language": lang, "opt_outs": n} for k, lang, n in raw.keywords],
        "languages": [{"language": lang, "opt_outs": n} for lang, n in languages.most_common()],
        "kinds": [{"kind": kind, "opt_outs": n} for kind, n in raw.kinds],
        "reasons": {
            "total": raw.feedback_total,
            # Categories of the latest reasons (at most STATS_FEEDBACK_LIMIT of them).
            "categories": [
                {"category": name, "label": LABELS[name], "count": n}
                for name, n in sorted(categories.items(), key=lambda item: (-item[1], item[0]))
            ],
            "recent": [_reason(item) for item in raw.feedback[:RECENT_REASONS]],
        },
        # What an opt-out gates changed at these moments (a new keyword version): counts
        # before and after one are under different rules.
        "scope_changes": scope_changes(scopes, channel),
    }


def _complaints(complaints: int, delivered: int) -> dict:
    """A campaign's spam complaints beside its opt-outs: how many, their rate, and how it stands
    against the 0.1 % and 0.3 % thresholds."""
    return {"complaints": complaints, "complaint_rate": _rate(complaints, delivered),
            "complaint_level": complaint_level(complaints, delivered)}


def _reason(item: Feedback) -> dict:
    return {"channel": item.channel, "kind": item.kind, "text": item.text, "received_at": iso(item.received_at),
            "category": categorise(item.text)}
