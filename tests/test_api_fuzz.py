"""Property-based fuzzing of the native API from its own OpenAPI schema (schemathesis): whatever a client sends,
the answer is never a server error. Runs in-process through WSGI against the test database."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings

from project.wsgi import application

schema = schemathesis.openapi.from_wsgi("/v1/schema/?format=json", application)
# The OpenAI-compatible endpoints wait for a worker; they share the native endpoints' validation.
schema = schema.exclude(path_regex=r"^/v1/images/(generations|edits)$")


@pytest.fixture
def fuzz_key(db, make_tenant, make_key, settings, tmp_path):
    from billing.models import Plan
    from billing.services.wallets import billing_account_open

    settings.MEDIA_ROOT = str(tmp_path)
    tenant = make_tenant("fuzz")
    unlimited = Plan.objects.create(name="fuzz", requests_per_minute=None, max_concurrent=None,
                                    images_per_day=None, images_per_month=None)
    billing_account_open(tenant=tenant, plan=unlimited, opening_credit_micros=1_000_000_000)
    # Requests go through the real WSGI handler, which closes the connection at the end of each request; the
    # test's transaction must survive them (Django's own test client does the same).
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield make_key(tenant, admin=True).secret
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@schema.parametrize()
@hypothesis_settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_the_api_fail_with_a_server_error(case, fuzz_key) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {fuzz_key}"}
    response = case.call()
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code}"
