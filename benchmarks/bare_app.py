"""The baseline: a bare Flask app answering the Twilio webhook path with static empty TwiML.

No form parsing, no signature check, no database: what Flask + gunicorn cost on their own.
Run with ``gunicorn 'bare_app:create_app()'`` from this folder (the benchmark does).
"""

from __future__ import annotations

from flask import Flask, Response

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


def create_app() -> Flask:
    """A Flask app with one route: ``POST /webhooks/twilio`` -> the empty TwiML, as text/xml."""
    app = Flask(__name__)

    @app.post("/webhooks/twilio")
    def inbound() -> Response:
        return Response(EMPTY_TWIML, mimetype="text/xml")

    return app
