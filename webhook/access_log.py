"""gunicorn's access log without contacts' addresses or secrets in it (the Procfile's --logger-class).

Request lines and referers of the admin API and pages name phone numbers and e-mail
addresses (`/api/v1/subscriptions/sms/+14155550123`, `/admin/contacts?q=...`, even the
erasure `DELETE /api/v1/contacts/...`), unsubscribe links carry a usable token, and the
SendGrid inbound URL carries its secret. ``webhook.redact.mask_url`` masks each of them.
"""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from webhook.redact import mask_url

__all__ = ["URL_ATOMS", "MaskingLogger", "mask_url"]

# Fields of the access log that hold the URL: request line, path, query, referer, and the
# same from the environ ({...}e) and request headers ({...}i).
URL_ATOMS = ("r", "U", "q", "f", "{raw_uri}e", "{path_info}e", "{query_string}e", "{http_referer}e", "{referer}i")


class MaskingLogger(Logger):
    """gunicorn's Logger, with the URL fields of each access-log line masked."""

    def atoms(self, resp: Any, req: Any, environ: dict, request_time: Any) -> dict:
        atoms = super().atoms(resp, req, environ, request_time)
        for name in URL_ATOMS:
            value = atoms.get(name)
            if isinstance(value, str):
                atoms[name] = mask_url(value)
        return atoms
