"""Which tenant's generation the forwarder claims next: the tenant with the fewest running, not the oldest queue."""

import pytest

from generations.services.leases import generation_claim_batch
from tests.generations.support import generation_post

pytestmark = pytest.mark.django_db(transaction=True)


def _claimed_tenants(limit: int) -> list[str]:
    return [claim.tenant_slug for claim in generation_claim_batch(limit=limit, lease_seconds=60)]


def test_slots_freed_one_at_a_time_alternate_between_tenants(make_customer, roomy_plan) -> None:
    early = make_customer("early", plan=roomy_plan)
    late = make_customer("late", plan=roomy_plan)
    for number in range(6):
        generation_post(early, prompt=f"early {number}")
    for number in range(3):
        generation_post(late, prompt=f"late {number}")

    # First come, first served would give all six of early's before late's first.
    claimed = [tenant for _ in range(6) for tenant in _claimed_tenants(1)]

    assert claimed == ["early", "late", "early", "late", "early", "late"]


def test_a_claim_of_many_slots_goes_first_to_the_tenant_with_fewer_running(make_customer, roomy_plan) -> None:
    busy = make_customer("busy", plan=roomy_plan)
    idle = make_customer("idle", plan=roomy_plan)
    for number in range(8):
        generation_post(busy, prompt=f"busy {number}")
    assert _claimed_tenants(4) == ["busy"] * 4
    for number in range(3):
        generation_post(idle, prompt=f"idle {number}")

    # busy runs 4: its next would be its 5th; idle's three come first.
    assert sorted(_claimed_tenants(4)) == ["busy", "idle", "idle", "idle"]
