import pytest

from accounts.models import AuditEvent, Tenant
from accounts.services import SYSTEM
from billing.models import Plan
from billing.selectors import tenant_limits
from billing.services.plans import plan_assign, plan_save

pytestmark = pytest.mark.django_db


def test_a_tenant_without_a_plan_gets_the_seeded_default(tenant: Tenant) -> None:
    limits = tenant_limits(tenant=tenant)
    assert (limits.plan_name, limits.markup_bps, limits.max_n, limits.images_per_day) == ("default", 2000, 10, 1000)


def test_assigning_and_reassigning_a_plan_changes_the_limits_and_is_audited(tenant: Tenant) -> None:
    small = Plan.objects.create(name="small", markup_bps=3000, max_n=2)
    large = Plan.objects.create(name="large", markup_bps=1000, max_n=8)

    plan_assign(tenant=tenant, plan=small, actor=SYSTEM)
    plan_assign(tenant=tenant, plan=large, actor=SYSTEM)

    limits = tenant_limits(tenant=tenant)
    assert (limits.plan_name, limits.markup_bps, limits.max_n) == ("large", 1000, 8)
    events = list(AuditEvent.objects.filter(action="tenant_plan.saved", tenant=tenant).order_by("id"))
    assert [(e.before and e.before["plan"], e.after["plan"]) for e in events] == [
        (None, small.pk),
        (small.pk, large.pk),
    ]


def test_saving_a_plan_records_what_changed() -> None:
    plan = plan_save(plan=Plan(name="trial", markup_bps=2500, max_n=1), actor=SYSTEM)
    plan.max_n = 3
    plan_save(plan=plan, actor=SYSTEM)

    change = AuditEvent.objects.filter(action="plan.saved").order_by("id").last()
    assert (change.before["max_n"], change.after["max_n"]) == (1, 3)
