"""Plans and a tenant's effective limits.

The plan rule is written once, as the ORM expression `tenant_plan_value`: the tenant's override, else its
plan's value, else the default plan's, else the value in `billing.defaults` (no default plan row, e.g. a test
flushed the database). An empty override inherits; an empty plan value means unlimited. Every reader of a
tenant's limits uses it: `tenant_limits` (one tenant, through the read cache), `tenants_retention_days`, the
staff tenant list (`selectors.tenants`) and the claim query (`tenants_limit_sql`: the rule as SQL).
"""

import dataclasses
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db.models import Case, Exists, F, Field, Subquery, Value, When
from django.db.models.functions import Coalesce

from accounts.models import ApiKey, Tenant
from billing.defaults import DEFAULT_PLAN_VALUES, LATER_DEFAULT_PLAN_VALUES
from billing.models import Plan
from project.readcache import readcache_get

LIMIT_FIELDS = (
    "markup_bps",
    "allowed_models",
    "max_n",
    "max_concurrent",
    "max_queued",
    "max_concurrent_waits",
    "images_per_day",
    "images_per_month",
    "monthly_spend_limit_micros",
    "requests_per_minute",
    "key_monthly_budget_micros",
    "retention_days",
)


def plan_get_by_name(*, name: str) -> Plan | None:
    return Plan.objects.filter(name=name).first()


@cache
def _fallback_plan() -> Plan:
    """The default plan as `billing.defaults` describes it, for when its row is missing."""
    return Plan(**DEFAULT_PLAN_VALUES, **LATER_DEFAULT_PLAN_VALUES)


def tenant_plan_value(field: str) -> Case:
    """For a `Tenant` query: the effective value of a `Plan` field (a limit, or `name`). A field a tenant
    cannot override (`name`) is its plan's."""
    output_field: Field = Plan._meta.get_field(field)
    assigned: Any = F(f"billing_plan__plan__{field}")
    if field in LIMIT_FIELDS:
        assigned = Coalesce(F(f"billing_plan__{field}"), assigned, output_field=output_field)
    default_plan = Plan.objects.filter(is_default=True).order_by()
    return Case(
        When(billing_plan__isnull=False, then=assigned),
        When(Exists(default_plan), then=Subquery(default_plan.values(field)[:1])),
        default=Value(getattr(_fallback_plan(), field), output_field=output_field),
        output_field=output_field,
    )


@cache
def tenants_limit_sql(*, field: str) -> tuple[str, tuple[Any, ...]]:
    """SQL and parameters of a relation with one row per tenant, (tenant id, effective value of the limit),
    for a raw query that needs the rule (the forwarder's claim). Alias its columns where it is used:
    `FROM (<sql>) AS c (tenant_id, cap)`. Compiled once per process: compiling costs about as much as the
    claim query itself, and its text never changes."""
    if field not in LIMIT_FIELDS:
        raise ValueError(f"{field!r} is not a plan limit")
    rows = Tenant.objects.annotate(effective=tenant_plan_value(field)).values_list("pk", "effective")
    return rows.order_by().query.sql_with_params()


@dataclass(frozen=True)
class Limits:
    """A tenant's effective limits: its plan with its overrides applied. `None` means unlimited."""

    plan_name: str
    markup_bps: int
    allowed_models: tuple[str, ...]
    max_n: int
    max_concurrent: int | None
    max_queued: int | None
    max_concurrent_waits: int | None
    images_per_day: int | None
    images_per_month: int | None
    monthly_spend_limit_micros: int | None
    requests_per_minute: int | None
    key_monthly_budget_micros: int | None
    retention_days: int | None

    def allows_model(self, model_id: str) -> bool:
        return not self.allowed_models or model_id in self.allowed_models


def _tenant_limits_load(tenant_id: int) -> Limits:
    # Annotation names must not clash with Tenant's own fields (`name`), hence the prefix.
    values = (
        Tenant.objects.filter(pk=tenant_id)
        .values(**{f"plan_{field}": tenant_plan_value(field) for field in ("name", *LIMIT_FIELDS)})
        .get()
    )
    limits = {field: values[f"plan_{field}"] for field in LIMIT_FIELDS}
    limits["allowed_models"] = tuple(limits["allowed_models"] or ())
    limits["retention_days"] = limits["retention_days"] or None  # 0 (an override's "keep") means no period
    return Limits(plan_name=values["plan_name"], **limits)


def tenant_limits(*, tenant: Tenant, api_key: ApiKey | None = None) -> Limits:
    """The tenant's plan with its overrides (from the read cache), and the key's own budget if it has one."""
    limits = readcache_get(("limits", tenant.pk), lambda: _tenant_limits_load(tenant.pk))
    if api_key is not None and api_key.monthly_budget_micros is not None:
        return dataclasses.replace(limits, key_monthly_budget_micros=api_key.monthly_budget_micros)
    return limits


def tenants_retention_days() -> dict[int, int]:
    """Tenant id → days its finished generations' files are kept, for every tenant that has a retention period
    (0 or empty keeps files)."""
    rows = Tenant.objects.annotate(days=tenant_plan_value("retention_days")).filter(days__gt=0)
    return dict(rows.values_list("pk", "days"))


def tenant_plan_names(*, tenant_ids: set[int]) -> dict[int, str]:
    """Tenant id → the name of its plan (by the one plan rule), in one query."""
    rows = Tenant.objects.filter(pk__in=tenant_ids).annotate(plan_name=tenant_plan_value("name"))
    return dict(rows.values_list("pk", "plan_name"))
