"""Flask edges: parse the request, call one use case, render the answer."""

from __future__ import annotations

from flask import current_app

from webhook import Services


def services() -> Services:
    return current_app.extensions["unsub"]
