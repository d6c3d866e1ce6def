"""The admin API against its own OpenAPI document (schemathesis): no 500s, answers that
conform to the document, on generated inputs for every operation."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

try:
    import schemathesis
except ImportError:  # the test extras are not installed: say so; in CI (.ci/run) that is a failure
    if os.environ.get("UNSUB_REQUIRE_SCHEMA"):
        raise
    pytest.skip("the schema test needs schemathesis: pip install '.[test]'", allow_module_level=True)
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi import checks as openapi_checks  # noqa: E402

from tests.conftest import ADMIN_TOKEN, make_settings  # noqa: E402
from webhook import create_app, outbox  # noqa: E402
from webhook.domain import AttemptResult, utcnow  # noqa: E402

_app = None
SEEDED: set[int] = set()  # webhook endpoints the other operations are checked against


def _seed_webhooks(store) -> None:
    """Endpoint 1 with a delivered, a failed and a pending test event (so that answers with
    attempts, payloads and a retry are checked too), endpoint 2 disabled."""
    first = store.create_endpoint("https://crm.example.com/unsub-hooks", "CRM", outbox.new_secret())
    second = store.create_endpoint("https://warehouse.example.com/in", "", outbox.new_secret())
    store.set_endpoint_enabled(second.id, False, "answered 410 Gone at 2026-12-02T09:00:00Z")
    delivered, failed = store.queue_ping(first.id), store.queue_ping(first.id)
    claimed = store.claim_deliveries("schema", per_lane=10, limit=10, lease=timedelta(minutes=5), busy_lanes=[])
    bodies = {c.id: c.body for c in claimed}
    store.finish_attempts([
        AttemptResult(delivered, "delivered", utcnow(), "schema", 200, 31, "ok", body=bodies[delivered]),
        AttemptResult(failed, "failed", utcnow(), "schema", None, 15000, "", "timed out", body=bodies[failed]),
    ])
    store.queue_ping(first.id)
    SEEDED.update({first.id, second.id})


def schema_app():
    global _app
    if _app is None:
        import tempfile

        folder = tempfile.mkdtemp(prefix="unsub-schema-")
        _app = create_app(make_settings(f"sqlite:///{folder}/unsub.db"))
        _seed_webhooks(_app.extensions["unsub"].store)
    return _app


schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", schema_app())


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case):
    if case.method == "DELETE" and case.path_parameters and case.path_parameters.get("endpoint_id") in SEEDED:
        # Deleting a seeded endpoint would leave only 404s to check on the operations after this one.
        store = schema_app().extensions["unsub"].store
        case.path_parameters["endpoint_id"] = store.create_endpoint("https://x.example.com/h", "", outbox.new_secret()).id
    # What the document promises: never a 500, only documented status codes and content
    # types, bodies that match their schemas. (Whether a schema-valid address is a real
    # phone number is decided by meaning, which a schema cannot say; those checks are off.)
    case.call_and_validate(
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        checks=[
            not_a_server_error,
            openapi_checks.status_code_conformance,
            openapi_checks.content_type_conformance,
            openapi_checks.response_schema_conformance,
        ],
    )
