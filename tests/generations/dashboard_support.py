"""A small seeded data set for the dashboard tests: two tenants, successes, a failure, a queued generation, a
tenant past its low-balance threshold."""

from dataclasses import dataclass

from accounts.models import User
from billing.models import Plan
from generations.models import Generation
from generations.services.finish import Failure
from generations.services.leases import generation_claim_batch
from generations.services.settle import Settlement, generation_settle
from tests.generations.moderation_support import submit, succeeded_generation
from tests.generations.support import Customer, customer_create


@dataclass
class Seeded:
    studio: Customer
    lowbal: Customer
    failed: Generation
    queued: Generation


def dashboard_seed() -> Seeded:
    User.objects.create_superuser("root@example.com", "correct horse battery")
    studio = customer_create("studio")
    plan = Plan.objects.create(name="alerting", low_balance_threshold_micros=40_000)
    lowbal = customer_create("lowbal", credit_micros=50_000, plan=plan)
    succeeded_generation(studio, n=2)
    succeeded_generation(studio)
    succeeded_generation(lowbal)
    succeeded_generation(lowbal)  # crosses the low-balance threshold
    failed = submit(studio)
    claim = next(c for c in generation_claim_batch(limit=100, lease_seconds=60) if c.id == failed.id)
    generation_settle(claim=claim, settlement=Settlement(reason="permanent", failure=Failure(code="upstream_error", message="boom")))
    queued = submit(studio)
    return Seeded(studio=studio, lowbal=lowbal, failed=failed, queued=queued)
