"""Revocation scope (issue 15): the one function that says what an opt-out gates, the keyword
configuration's `revocation_scope` field, and the warning about replies that say "marketing"."""

from __future__ import annotations

import copy
from datetime import datetime, timedelta, timezone

import pytest

from webhook.analytics import build_report, scope_changes
from webhook.domain import ChannelScope, RawStats
from webhook.gating import CATEGORIES, REVOCATION_SCOPES, gated_categories, is_gated
from webhook.keywords import KeywordConfigError, load_file, parse_document, parse_yaml, scope_warnings
from webhook.settings import PACKAGED_KEYWORDS

SHIPPED = load_file(PACKAGED_KEYWORDS)

# The whole table, written out: (scope, category) -> gated.
EXPECTED = {
    ("campaign", "campaign"): True, ("campaign", "flow"): False, ("campaign", "inbox"): False,
    ("automated", "campaign"): True, ("automated", "flow"): True, ("automated", "inbox"): False,
    ("all", "campaign"): True, ("all", "flow"): True, ("all", "inbox"): True,
}


@pytest.mark.parametrize("scope,category", sorted(EXPECTED))
def test_what_each_scope_gates(scope, category):
    assert is_gated(scope, category) is EXPECTED[(scope, category)]


def test_gated_categories_keep_the_order_of_categories():
    assert CATEGORIES == ("campaign", "inbox", "flow")
    assert [gated_categories(scope) for scope in REVOCATION_SCOPES] == [
        ["campaign"], ["campaign", "flow"], ["campaign", "inbox", "flow"]]


@pytest.mark.parametrize("scope,category", [("everything", "campaign"), ("campaign", "newsletter"), ("", "inbox")])
def test_an_unknown_scope_or_category_is_an_error_not_a_send(scope, category):
    with pytest.raises(ValueError):
        is_gated(scope, category)


def doc() -> dict:
    return copy.deepcopy(SHIPPED.document)


def test_the_default_is_campaign_and_the_shipped_file_says_so():
    assert {ch.revocation_scope for ch in SHIPPED.channels.values()} == {"campaign"}
    assert all(SHIPPED.document["channels"][name]["revocation_scope"] == "campaign" for name in SHIPPED.channels)
    d = doc()
    del d["channels"]["sms"]["revocation_scope"]
    config = parse_document(d)
    assert config.channels["sms"].revocation_scope == "campaign"
    assert config.channels["sms"].gates("campaign") and not config.channels["sms"].gates("flow")


def test_a_scope_is_per_channel_and_changes_the_version():
    d = doc()
    d["channels"]["sms"]["revocation_scope"] = "automated"
    config = parse_document(d)
    assert config.version != SHIPPED.version
    sms, whatsapp = config.channels["sms"], config.channels["whatsapp"]
    assert (sms.gates("campaign"), sms.gates("flow"), sms.gates("inbox")) == (True, True, False)
    assert (whatsapp.gates("campaign"), whatsapp.gates("flow"), whatsapp.gates("inbox")) == (True, False, False)


@pytest.mark.parametrize("value", ["everything", "Automated", "", None, True, 3, ["all"]])
def test_a_bad_scope_is_one_clear_error_with_its_path(value):
    d = doc()
    d["channels"]["whatsapp"]["revocation_scope"] = value
    with pytest.raises(KeywordConfigError) as caught:
        parse_document(d)
    (problem,) = caught.value.problems
    assert problem.path == "channels.whatsapp.revocation_scope"
    assert "is not a revocation scope; use campaign" in problem.message
    assert "automated (campaigns and flows)" in problem.message and "all (every message)" in problem.message
    assert "channel type" not in problem.message


def test_a_bad_scope_in_yaml_names_its_path():
    text = PACKAGED_KEYWORDS.read_text(encoding="utf-8").replace(
        "revocation_scope: campaign", "revocation_scope: revoke-all", 1)
    with pytest.raises(KeywordConfigError) as caught:
        parse_yaml(text)
    assert [p.path for p in caught.value.problems] == ["channels.sms.revocation_scope"]
    assert "'revoke-all' is not a revocation scope" in str(caught.value)


def test_a_channel_type_error_still_reads_as_one():
    d = doc()
    d["channels"]["sms"]["type"] = "fax"
    with pytest.raises(KeywordConfigError) as caught:
        parse_document(d)
    assert "unknown channel type 'fax'" in caught.value.problems[0].message


def test_replies_that_say_marketing_are_flagged_only_under_a_wider_scope():
    assert scope_warnings(SHIPPED) == []
    d = doc()
    d["channels"]["sms"]["revocation_scope"] = "automated"
    config = parse_document(d)
    found = scope_warnings(config)
    paths = {w.path for w in found}
    # Every language of the shipped SMS replies says marketing ("Marketingnachrichten" too).
    assert "channels.sms.opt_out.reply.en" in paths and "channels.sms.opt_out.reply.de" in paths
    assert "channels.sms.help.reply.en" in paths and "channels.sms.opt_in.reply.en" in paths
    assert not any(path.startswith("channels.whatsapp") for path in paths)
    english = next(w for w in found if w.path == "channels.sms.opt_out.reply.en")
    assert "opt-out reply in English" in english.message and "campaigns and flows" in english.message
    assert scope_warnings(config, "whatsapp") == []

    d["channels"]["sms"]["opt_out"]["reply"]["en"] = (
        "{brand}: You are unsubscribed and will receive no more automated texts from us. Reply START to resubscribe.")
    left = {w.path for w in scope_warnings(parse_document(d), "sms")}
    assert "channels.sms.opt_out.reply.en" not in left and "channels.sms.opt_out.reply.fr" in left


# -- scope changes in the statistics ---------------------------------------------------

def _versions(*versions: tuple[int, dict[str, str | None]]) -> list[ChannelScope]:
    start = datetime(2026, 12, 1, tzinfo=timezone.utc)
    return [ChannelScope(number, start + timedelta(hours=number), name, scope)
            for number, scopes in versions for name, scope in scopes.items()]


def test_scope_changes_compare_each_version_with_the_one_before():
    scopes = _versions(
        (4, {"sms": None, "whatsapp": "campaign", "email": None}),  # in force when the period starts
        (5, {"sms": "automated", "whatsapp": "campaign", "email": None}),
        (6, {"sms": "automated", "whatsapp": "campaign", "email": None}),  # another edit: no change
        (7, {"sms": "all", "whatsapp": None, "email": None, "brand-b": "automated", "brand-c": "campaign"}),
        (8, {"sms": None, "whatsapp": None, "email": None}),  # brand-b removed: not a change
    )
    assert scope_changes(scopes) == [
        {"channel": "sms", "from": "campaign", "to": "automated", "version": 5, "at": "2026-12-01T05:00:00Z"},
        {"channel": "brand-b", "from": "campaign", "to": "automated", "version": 7, "at": "2026-12-01T07:00:00Z"},
        {"channel": "sms", "from": "automated", "to": "all", "version": 7, "at": "2026-12-01T07:00:00Z"},
        {"channel": "sms", "from": "all", "to": "campaign", "version": 8, "at": "2026-12-01T08:00:00Z"},
    ]
    assert [c["version"] for c in scope_changes(scopes, "sms")] == [5, 7, 8]
    assert scope_changes(scopes, "whatsapp") == []


def test_the_first_version_is_a_baseline_not_a_change():
    assert scope_changes(_versions((1, {"sms": "all"}))) == []
    assert scope_changes([]) == []
    raw = RawStats([], [], [], [], [], 0, 0)
    scopes = _versions((1, {"sms": None}), (2, {"sms": "automated"}))
    report = build_report(raw, scopes[0].created_at, scopes[-1].created_at, timedelta(hours=72),
                          scopes, "sms")
    assert report["scope_changes"] == [{"channel": "sms", "from": "campaign", "to": "automated", "version": 2,
                                        "at": "2026-12-01T02:00:00Z"}]
