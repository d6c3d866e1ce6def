"""The admin API against its own OpenAPI document (schemathesis): no 500s, answers that
conform to the document, on generated inputs for every operation."""

from __future__ import annotations

import os

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
from webhook import create_app  # noqa: E402

_app = None


def schema_app():
    global _app
    if _app is None:
        import tempfile

        folder = tempfile.mkdtemp(prefix="unsub-schema-")
        _app = create_app(make_settings(f"sqlite:///{folder}/unsub.db"))
    return _app


schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", schema_app())


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case):
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
