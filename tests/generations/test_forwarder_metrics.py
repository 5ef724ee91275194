"""The forwarder's own metrics, as `/metrics` exposes them: calls in flight, upstream latency by interface,
failures by code and settlements by outcome — counted by a real drain against the sandbox over HTTP."""

import pytest
from prometheus_client import REGISTRY

from generations.forwarder import forward_drain
from tests.generations.support import generation_post

pytestmark = pytest.mark.django_db(transaction=True)


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_drain_counts_calls_latency_failures_and_settlements(make_customer, forwarding) -> None:
    before = {
        "succeeded": _sample("imagegen_settlements_total", outcome="succeeded"),
        "content_policy": _sample("imagegen_settlements_total", outcome="content_policy"),
        "failures": _sample("imagegen_upstream_failures_total", code="content_policy_violation"),
        "calls": _sample("imagegen_upstream_call_duration_seconds_count", interface="predictions"),
    }
    customer = make_customer()
    generation_post(customer)
    generation_post(customer, prompt="[fault:moderated] a lighthouse")

    assert forward_drain().claimed == 2

    assert _sample("imagegen_settlements_total", outcome="succeeded") == before["succeeded"] + 1
    assert _sample("imagegen_settlements_total", outcome="content_policy") == before["content_policy"] + 1
    assert _sample("imagegen_upstream_failures_total", code="content_policy_violation") == before["failures"] + 1
    assert _sample("imagegen_upstream_call_duration_seconds_count", interface="predictions") == before["calls"] + 2
    assert _sample("imagegen_forwarder_upstream_in_flight") == 0  # every call is over
