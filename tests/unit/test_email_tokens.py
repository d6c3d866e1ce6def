"""Unsubscribe tokens: they round-trip, never expire, and cannot be forged or altered."""

from __future__ import annotations

import pytest

from webhook.email_tokens import list_unsubscribe_headers, make_token, read_token, unsubscribe_url

KEY = "k" * 32


def test_round_trip():
    token = make_token(KEY, "email", "bob@example.com")
    subject = read_token(KEY, token)
    assert (subject.channel, subject.address) == ("email", "bob@example.com")
    assert "/" not in token and "?" not in token and "@" not in token


def test_same_input_same_token_so_links_are_stable():
    assert make_token(KEY, "email", "bob@example.com") == make_token(KEY, "email", "bob@example.com")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # signature altered
        lambda t: make_token(KEY, "email", "eve@example.com").split(".")[0] + "." + t.split(".")[1],  # payload swapped
        lambda t: t.split(".")[0],  # no signature
        lambda t: "",
        lambda t: "x" * 2000,
        lambda t: "not.a.token",
    ],
)
def test_altered_tokens_are_refused(mangle):
    token = make_token(KEY, "email", "bob@example.com")
    assert read_token(KEY, mangle(token)) is None


def test_another_key_cannot_read_or_forge():
    token = make_token(KEY, "email", "bob@example.com")
    assert read_token("z" * 32, token) is None
    assert read_token(KEY, make_token("z" * 32, "email", "bob@example.com")) is None


def test_headers_for_one_click():
    url = unsubscribe_url("https://unsub.example.com/", "TOKEN")
    assert url == "https://unsub.example.com/unsubscribe/TOKEN"
    assert list_unsubscribe_headers(url) == {
        "List-Unsubscribe": "<https://unsub.example.com/unsubscribe/TOKEN>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }
    with_mail = list_unsubscribe_headers(url, "unsub@example.com")
    assert with_mail["List-Unsubscribe"] == "<https://unsub.example.com/unsubscribe/TOKEN>, <mailto:unsub@example.com?subject=unsubscribe>"
