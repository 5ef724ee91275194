"""Plans and a tenant's plan assignment (with its per-tenant overrides), each change audited."""

from typing import Any

from django.db import transaction
from django.db.models import Model
from django.forms.models import model_to_dict

from accounts.models import Tenant
from accounts.services import Actor, audit_record
from billing.models import Plan, TenantPlan


def _snapshot(obj: Model) -> dict[str, Any]:
    return {key: value for key, value in model_to_dict(obj).items() if key != "id"}


def plan_save(*, plan: Plan, actor: Actor) -> Plan:
    with transaction.atomic():
        before = _snapshot(Plan.objects.get(pk=plan.pk)) if plan.pk else None
        plan.save()
        audit_record(
            actor=actor, action="plan.saved", target=plan, tenant=None, before=before, after=_snapshot(plan)
        )
    return plan


def tenant_plan_save(*, tenant_plan: TenantPlan, actor: Actor) -> TenantPlan:
    with transaction.atomic():
        before = _snapshot(TenantPlan.objects.get(pk=tenant_plan.pk)) if tenant_plan.pk else None
        tenant_plan.save()
        audit_record(
            actor=actor,
            action="tenant_plan.saved",
            target=tenant_plan,
            tenant=tenant_plan.tenant,
            before=before,
            after=_snapshot(tenant_plan),
        )
    return tenant_plan


def plan_assign(*, tenant: Tenant, plan: Plan, actor: Actor) -> TenantPlan:
    tenant_plan = TenantPlan.objects.filter(tenant=tenant).first() or TenantPlan(tenant=tenant)
    tenant_plan.plan = plan
    return tenant_plan_save(tenant_plan=tenant_plan, actor=actor)
