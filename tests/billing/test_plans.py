import pytest
from django.db import connection

from accounts.models import AuditEvent, Tenant
from accounts.services import SYSTEM
from billing.defaults import DEFAULT_PLAN_VALUES
from billing.models import Plan, TenantPlan
from billing.selectors.limits import tenant_limits, tenants_limit_sql, tenants_retention_days
from billing.services.plans import plan_assign, plan_save
from project.readcache import readcache_bump

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


def _limits_in_sql(field: str) -> dict[int, int | None]:
    sql, params = tenants_limit_sql(field=field)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return dict(cursor.fetchall())


def test_the_plan_rule_reads_the_same_in_python_and_in_the_claim_querys_sql() -> None:
    """Override, else the plan's (empty: unlimited), else the default plan's, else billing/defaults.py."""
    pro = Plan.objects.create(name="pro", max_concurrent=50, retention_days=30)
    unlimited = Plan.objects.create(name="unlimited", max_concurrent=None)
    names = ("override", "pro", "unlimited", "none")
    tenants = {name: Tenant.objects.create(slug=name, name=name) for name in names}
    plan_assign(tenant=tenants["override"], plan=pro, actor=SYSTEM)
    TenantPlan.objects.filter(tenant=tenants["override"]).update(max_concurrent=3, retention_days=0)
    plan_assign(tenant=tenants["pro"], plan=pro, actor=SYSTEM)
    plan_assign(tenant=tenants["unlimited"], plan=unlimited, actor=SYSTEM)
    Plan.objects.filter(is_default=True).update(max_concurrent=5, retention_days=7)
    readcache_bump()  # update() sends no post_save

    in_sql = _limits_in_sql("max_concurrent")
    in_python = {name: tenant_limits(tenant=tenant).max_concurrent for name, tenant in tenants.items()}
    assert in_python == {name: in_sql[tenant.pk] for name, tenant in tenants.items()}
    assert in_python == {"override": 3, "pro": 50, "unlimited": None, "none": 5}
    retention = tenants_retention_days()
    assert {name: retention.get(tenant.pk) for name, tenant in tenants.items()} == {
        "override": None,  # 0: kept until the tenant deletes them
        "pro": 30,
        "unlimited": None,
        "none": 7,
    }

    Plan.objects.filter(is_default=True).delete()  # no default plan row: the values in billing/defaults.py
    none = tenants["none"]
    fallback = DEFAULT_PLAN_VALUES["max_concurrent"]
    assert tenant_limits(tenant=none).max_concurrent == _limits_in_sql("max_concurrent")[none.pk] == fallback
    assert tenant_limits(tenant=none).plan_name == DEFAULT_PLAN_VALUES["name"]
    assert tenant_limits(tenant=tenants["pro"]).max_concurrent == 50
