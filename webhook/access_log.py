"""gunicorn's access log without contacts' addresses or secrets in it (the Procfile's --logger-class).

Request lines and referers of the admin API and pages name phone numbers and e-mail
addresses (`/api/v1/subscriptions/sms/+14155550123`, `/admin/contacts?q=...`, even the
erasure `DELETE /api/v1/contacts/...`), unsubscribe links carry a usable token, and the
SendGrid inbound URL carries its secret. Each is masked the way the app's own logs mask.
"""

from __future__ import annotations

import re
from typing import Any

from gunicorn.glogging import Logger

# Fields of the access log that hold the URL: request line, path, query, referer, and the
# same from the environ ({...}e) and request headers ({...}i).
URL_ATOMS = ("r", "U", "q", "f", "{raw_uri}e", "{path_info}e", "{query_string}e", "{http_referer}e", "{referer}i")
# A phone number (+ or its %2B escape, digits) or an e-mail address (@ or %40), as they
# appear in paths and query strings.
PHONE = re.compile(r"(\+|%2[bB])(\d{4})\d{3,11}(\d{4})")
EMAIL = re.compile(r"([^/?&=\s;:,\"<>]{1})[^/?&=\s;:,\"<>@%]*(@|%40)([\w.-]+\.\w+)")
SECRET_PATHS = re.compile(r"(/unsubscribe/|/webhooks/email/sendgrid/)[^/?\s]+")


def mask_url(text: str) -> str:
    """A URL (or request line) with addresses masked (+1415***0123, b***@example.com) and
    unsubscribe tokens and the SendGrid secret replaced by ***."""
    if "+" not in text and "%" not in text and "@" not in text and "/unsubscribe/" not in text and "/sendgrid/" not in text:
        return text  # the webhooks' own lines: nothing to mask, no regex run
    text = SECRET_PATHS.sub(r"\1***", text)
    text = PHONE.sub(r"\1\2***\3", text)
    return EMAIL.sub(r"\1***\2\3", text)


class MaskingLogger(Logger):
    """gunicorn's Logger, with the URL fields of each access-log line masked."""

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        for name in URL_ATOMS:
            value = atoms.get(name)
            if isinstance(value, str):
                atoms[name] = mask_url(value)
        return atoms
