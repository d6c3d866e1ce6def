"""Reasons and the statistics report (webhook.analytics): pure code, no store."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.analytics import LABELS, RECENT_REASONS, build_report, categorise, reason_in
from webhook.domain import Feedback, RawStats
from webhook.keywords import load_file
from webhook.matching import match
from webhook.settings import PACKAGED_KEYWORDS

SMS = load_file(PACKAGED_KEYWORDS).channels["sms"].index
SINCE = datetime(2026, 3, 1, tzinfo=timezone.utc)
UNTIL = datetime(2026, 3, 8, tzinfo=timezone.utc)
WINDOW = timedelta(hours=72)


def opt_out(text: str):
    found = match(text, SMS)
    assert found is not None and found.intent == "opt_out", (text, found)
    return found


def raw(**fields) -> RawStats:
    empty = dict(daily=[], campaigns=[], keywords=[], kinds=[], feedback=[], feedback_total=0, review_open=0)
    return RawStats(**{**empty, **fields})


def report(**fields) -> dict:
    return build_report(raw(**fields), SINCE, UNTIL, WINDOW)


# -- reason_in ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,kind,expected",
    [
        ("STOP too many texts", "first_word", True),
        ("Stop texting me", "first_word", False),
        ("please stop", "phrase", False),
        ("STOP I never signed up", "first_word", True),
        ("STOP!!!", "keyword", False),
        ("\U0001f6d1", "emoji", False),
        ("STOP please thanks", "first_word", False),
        ("STOP 2024", "first_word", False),
        ("stop all", "keyword", False),
        ("Opt-out", "keyword", False),
        ("STOP ALL now", "first_word", False),
        ("Please stop, I moved", "phrase", True),
        ("Please stop, too expensive", "phrase", True),
        ("ARRÊT trop de messages", "first_word", True),
        ("Arret merci", "first_word", False),
        ("STOPP zu viele Nachrichten", "first_word", True),
        ("STOPP bitte danke", "first_word", False),
        ("I want you to please stop", "phrase", False),
        ("Remove me from this list", "phrase", False),
        ("Remove me, I'm moving house", "phrase", True),
        ("Sotp", "typo", False),
        ("Stpo pls", "typo", False),
        ("Stoooop", "stretched", False),
        ("s t o o o p", "stretched", False),
        ("Stoooop texting me", "stretched", False),
        ("Stoooop too many texts", "stretched", True),
    ],
)
def test_reason_in(text, kind, expected):
    found = opt_out(text)
    assert found.kind == kind
    assert reason_in(text, found) is expected


@pytest.mark.parametrize("text", ["S.T.O.P.", "Un-subscribe", "S T O P"])
def test_a_keyword_written_apart_is_no_reason(text):
    found = opt_out(text)
    assert found.kind == "keyword"
    assert reason_in(text, found) is False


# -- categorise --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text,category",
    [
        ("Way too many texts", "too_many"),
        ("you spam me every day", "too_many"),
        ("trop de messages", "too_many"),
        ("demasiados mensajes", "too_many"),
        ("zu viele Nachrichten", "too_many"),
        ("muitas mensagens", "too_many"),
        ("I'm not interested anymore", "not_interested"),
        ("Don’t need it", "not_interested"),
        ("pas intéressé", "not_interested"),
        ("no me interesa", "not_interested"),
        ("Kein Interesse", "not_interested"),
        ("não tenho interesse", "not_interested"),
        ("I never signed up for this", "never_signed_up"),
        ("Who is this?", "never_signed_up"),
        ("jamais inscrit", "never_signed_up"),
        ("No me suscribí", "never_signed_up"),
        ("nie angemeldet", "never_signed_up"),
        ("número errado", "never_signed_up"),
        ("mauvais numéro", "never_signed_up"),
        ("I moved to Canada", "irrelevant"),
        ("not relevant", "irrelevant"),
        ("too expensive", "cost"),
        ("Charges on my bill", "cost"),
        ("what about my PRIVACY", "privacy"),
        ("GDPR request", "privacy"),
        ("lol", "other"),
        ("", "other"),
        ("\U0001f937", "other"),
        ("I bought a costume", "other"),  # "cost" only as a word
        ("I was removed", "other"),  # "moved" only as a word
    ],
)
def test_categorise(text, category):
    assert categorise(text) == category


def test_the_first_category_listed_wins():
    assert categorise("too many and not interested") == "too_many"
    assert categorise("not interested, wrong number") == "not_interested"


def test_every_category_has_a_label():
    assert {categorise(t) for t in ("too many", "not interested", "wrong number", "moved", "price", "gdpr", "x")} == set(LABELS)


# -- build_report ------------------------------------------------------------------------


def test_campaigns_worst_first_with_ties_and_no_delivery_last():
    campaigns = [
        ("a", "sms", 100, 1), ("b", "sms", 100, 5), ("c", "sms", 0, 0), ("d", "sms", 50, 5), ("e", "whatsapp", 100, 10),
        ("f", "sms", 200, 20), ("g", "sms", 0, 3), ("h", "sms", 100, 10), ("h", "email", 100, 10), ("i", "sms", 3, 1),
    ]
    rows = report(campaigns=campaigns)["campaigns"]
    assert [(r["campaign"], r["channel"]) for r in rows] == [
        ("i", "sms"), ("f", "sms"), ("e", "whatsapp"), ("h", "email"), ("h", "sms"), ("d", "sms"),
        ("b", "sms"), ("a", "sms"), ("g", "sms"), ("c", "sms"),
    ]
    rates = {(r["campaign"], r["channel"]): r["opt_out_rate"] for r in rows}
    assert rates[("i", "sms")] == 0.333333 and rates[("f", "sms")] == 0.1 and rates[("a", "sms")] == 0.01
    assert rates[("g", "sms")] is None and rates[("c", "sms")] is None
    assert rows[0] == {"campaign": "i", "channel": "sms", "delivered": 3, "opt_outs": 1, "opt_out_rate": 0.333333,
                       "complaints": 0, "complaint_rate": 0.0, "complaint_level": "ok"}


def test_totals_channels_and_days():
    daily = [
        ("2026-03-03", "whatsapp", "opt_out", 2), ("2026-03-03", "sms", "opt_out", 3),
        ("2026-03-02", "sms", "opt_out", 5), ("2026-03-02", "sms", "opt_in", 1),
    ]
    doc = report(daily=daily, feedback_total=7, review_open=2)
    assert doc["totals"] == {"opt_outs": 10, "opt_ins": 1, "feedback": 7, "review_open": 2, "complaints": 0}
    assert doc["channels"] == [
        {"channel": "sms", "opt_outs": 8, "opt_ins": 1}, {"channel": "whatsapp", "opt_outs": 2, "opt_ins": 0},
    ]
    assert doc["daily"] == [
        {"day": "2026-03-02", "channel": "sms", "opt_outs": 5, "opt_ins": 1},
        {"day": "2026-03-03", "channel": "sms", "opt_outs": 3, "opt_ins": 0},
        {"day": "2026-03-03", "channel": "whatsapp", "opt_outs": 2, "opt_ins": 0},
    ]


def test_keywords_kinds_and_languages_summed():
    keywords = [("STOP", "en", 5), ("ARRÊT", "fr", 2), ("QUIT", "en", 1), ("BAJA", "es", 3), ("X", None, 1)]
    kinds = [("keyword", 6), ("first_word", 4), ("carrier", 2)]
    doc = report(keywords=keywords, kinds=kinds)
    assert doc["keywords"][0] == {"keyword": "STOP", "language": "en", "opt_outs": 5}
    assert [k["keyword"] for k in doc["keywords"]] == ["STOP", "ARRÊT", "QUIT", "BAJA", "X"]
    assert doc["languages"] == [
        {"language": "en", "opt_outs": 6}, {"language": "es", "opt_outs": 3}, {"language": "fr", "opt_outs": 2},
        {"language": "unknown", "opt_outs": 1},
    ]
    assert doc["kinds"] == [{"kind": "keyword", "opt_outs": 6}, {"kind": "first_word", "opt_outs": 4}, {"kind": "carrier", "opt_outs": 2}]


def test_reasons_categories_and_the_latest_twenty():
    texts = ["too many texts"] * 9 + ["wrong number"] * 6 + ["lol"] * 6 + ["too expensive"] * 3 + ["no me interesa"] * 1
    moments = [UNTIL - timedelta(minutes=i + 1) for i in range(len(texts))]  # newest first
    feedback = [
        Feedback("sms" if i % 2 else "whatsapp", f"+1415555{i:04d}", "with_opt_out", text, at, f"F{i}")
        for i, (text, at) in enumerate(zip(texts, moments, strict=True))
    ]
    doc = report(feedback=feedback, feedback_total=300)
    reasons = doc["reasons"]
    assert reasons["total"] == 300
    assert reasons["categories"] == [
        {"category": "too_many", "label": "Too many messages", "count": 9},
        {"category": "never_signed_up", "label": "Never signed up / wrong number", "count": 6},
        {"category": "other", "label": "Other", "count": 6},
        {"category": "cost", "label": "Cost or charges", "count": 3},
        {"category": "not_interested", "label": "Not interested any more", "count": 1},
    ]
    assert len(reasons["recent"]) == RECENT_REASONS == 20
    assert reasons["recent"][0] == {
        "channel": "whatsapp", "kind": "with_opt_out", "text": "too many texts", "received_at": "2026-03-07T23:59:00Z",
        "category": "too_many",
    }
    assert [r["text"] for r in reasons["recent"]] == texts[:20]
    assert reasons["recent"][-1]["category"] == "other"


def test_window_hours_and_period():
    paris = timezone(timedelta(hours=1))
    doc = build_report(raw(), datetime(2026, 3, 1, 1, 0, tzinfo=paris), UNTIL, timedelta(minutes=90))
    assert (doc["since"], doc["until"], doc["attribution_window_hours"]) == ("2026-03-01T00:00:00Z", "2026-03-08T00:00:00Z", 1.5)
    assert report()["attribution_window_hours"] == 72
    assert build_report(raw(), SINCE, UNTIL, timedelta(hours=720))["attribution_window_hours"] == 720


def test_an_empty_period():
    doc = report()
    assert doc["totals"] == {"opt_outs": 0, "opt_ins": 0, "feedback": 0, "review_open": 0, "complaints": 0}
    assert doc["channels"] == doc["daily"] == doc["campaigns"] == doc["keywords"] == doc["languages"] == doc["kinds"] == []
    assert doc["reasons"] == {"total": 0, "categories": [], "recent": []}


@pytest.mark.parametrize("complaints,delivered,level", [
    (0, 1000, "ok"), (9, 10_000, "ok"), (10, 10_000, "warning"), (29, 10_000, "warning"), (30, 10_000, "over_limit"),
    (1, 1, "over_limit"), (1, 333, "over_limit"), (1, 334, "warning"), (1, 999, "warning"), (1, 1000, "warning"), (1, 1001, "ok"), (3, 1000, "over_limit"),
    (0, 0, None), (2, 0, None),
])
def test_complaint_levels_against_the_01_and_03_percent_thresholds(complaints, delivered, level):
    (row,) = report(campaigns=[("spring", "email", delivered, complaints)], complaints=[("spring", "email", complaints)])["campaigns"]
    assert (row["complaints"], row["complaint_level"]) == (complaints, level)
    assert row["complaint_rate"] == (round(complaints / delivered, 6) if delivered else None)


def test_complaints_sit_beside_the_opt_outs_of_their_campaign_and_in_the_totals():
    doc = report(campaigns=[("spring", "email", 2000, 9), ("spring", "sms", 500, 2), ("summer", "email", 0, 4)],
                 complaints=[("spring", "email", 7), ("summer", "email", 3)], kinds=[("complaint", 11), ("keyword", 4)])
    rows = {(r["campaign"], r["channel"]): r for r in doc["campaigns"]}
    assert (rows[("spring", "email")]["complaints"], rows[("spring", "email")]["complaint_rate"]) == (7, 0.0035)
    assert rows[("spring", "email")]["complaint_level"] == "over_limit"
    assert (rows[("spring", "sms")]["complaints"], rows[("spring", "sms")]["complaint_level"]) == (0, "ok")
    assert (rows[("summer", "email")]["complaints"], rows[("summer", "email")]["complaint_rate"]) == (3, None)
    assert doc["totals"]["complaints"] == 11
    assert doc["complaint_thresholds"] == {"warning": 0.001, "limit": 0.003}


# -- a property ---------------------------------------------------------------------------

names = st.text(st.characters(codec="utf-8"), min_size=1, max_size=8)
moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc))


@st.composite
def campaign_rows(draw):
    delivered = draw(st.integers(0, 10**9))
    return (draw(names), draw(st.sampled_from(["sms", "whatsapp", "email"])), delivered, draw(st.integers(0, delivered)))


raw_stats = st.builds(
    RawStats,
    daily=st.lists(st.tuples(st.dates().map(str), names, st.sampled_from(["opt_out", "opt_in"]), st.integers(0, 10**6))),
    campaigns=st.lists(campaign_rows(), max_size=20),
    keywords=st.lists(st.tuples(st.none() | names, st.none() | names, st.integers(0, 10**6)), max_size=10),
    kinds=st.lists(st.tuples(names, st.integers(0, 10**6)), max_size=5),
    feedback=st.lists(st.builds(Feedback, channel=names, address=names, kind=st.sampled_from(["with_opt_out", "after_opt_out", "page"]),
                                text=st.text(max_size=40), received_at=moments), max_size=30),
    feedback_total=st.integers(0, 10**6),
    review_open=st.integers(0, 10**6),
)


@settings(max_examples=200, deadline=None)
@given(raw_stats, moments, moments, st.integers(1, 720))
def test_report_never_fails_and_rates_are_fractions(stats, since, until, hours):
    doc = build_report(stats, since, until, timedelta(hours=hours))
    rates = [c["opt_out_rate"] for c in doc["campaigns"]]
    assert len(rates) == len(stats.campaigns)
    for row in doc["campaigns"]:
        if row["delivered"] == 0:
            assert row["opt_out_rate"] is None
        else:
            assert 0 <= row["opt_out_rate"] <= 1
    known = [r for r in rates if r is not None]
    assert rates[:len(known)] == known and known == sorted(known, reverse=True)  # None last, worst first
    assert doc["totals"]["opt_outs"] == sum(n for _, _, action, n in stats.daily if action == "opt_out")
    assert len(doc["reasons"]["recent"]) == min(len(stats.feedback), RECENT_REASONS)
    assert sum(c["count"] for c in doc["reasons"]["categories"]) == len(stats.feedback)
