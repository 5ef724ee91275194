"""Statements: closing a tenant's calendar month (UTC) into an immutable statement with its lines."""

from collections.abc import Iterable
from datetime import date, datetime, timedelta

import structlog
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Tenant
from accounts.services import Actor, audit_record
from billing.models import Statement, StatementLine
from billing.periods import as_utc_start, month_start, next_month_start
from billing.selectors.statements import statement_line_totals, tenant_balance_at, tenant_credits_between
from project import errors

logger = structlog.get_logger(__name__)


def statement_close(*, tenant: Tenant, period_start: date) -> Statement:
    """Close one calendar month for one tenant. Idempotent: the month's statement is created once."""
    period_start = period_start.replace(day=1)
    existing = Statement.objects.filter(tenant=tenant, period_start=period_start).first()
    if existing is not None:
        return existing
    start = as_utc_start(period_start)
    end = next_month_start(start)
    lines = list(statement_line_totals(tenant_id=tenant.pk, start=start, end=end))
    try:
        with transaction.atomic():
            statement = Statement.objects.create(
                tenant=tenant,
                period_start=period_start,
                period_end=end.date(),
                images=sum(line["images"] for line in lines),
                charges_micros=sum(line["amount_micros"] for line in lines),
                credits_micros=tenant_credits_between(tenant_id=tenant.pk, start=start, end=end),
                closing_balance_micros=tenant_balance_at(tenant_id=tenant.pk, at=end),
            )
            StatementLine.objects.bulk_create(StatementLine(statement=statement, **line) for line in lines)
    except IntegrityError:
        return Statement.objects.get(tenant=tenant, period_start=period_start)
    return statement


class StatementPeriodOpen(errors.Conflict):
    code = "statement_period_open"
    message = "A month can be closed only once it has ended (UTC)."


def _close_month(period_start: date, tenants: Iterable[Tenant]) -> int:
    created = 0
    for tenant in tenants:
        if not Statement.objects.filter(tenant=tenant, period_start=period_start).exists():
            statement_close(tenant=tenant, period_start=period_start)
            created += 1
    return created


def statements_close_month(
    *, period_start: date, actor: Actor, tenant: Tenant | None = None, now: datetime | None = None
) -> int:
    """Close a month on demand (staff: command or admin page) for one tenant, or for every tenant that existed
    before it ended. Months already closed for a tenant stay as they are; a month not over yet is refused, since
    a statement never changes once made. Returns how many statements were created."""
    period_start = period_start.replace(day=1)
    end = next_month_start(as_utc_start(period_start))
    if end > (now or timezone.now()):
        raise StatementPeriodOpen(f"{period_start:%Y-%m} has not ended yet (UTC); it can be closed from {end:%Y-%m-%d}.")
    tenants = [tenant] if tenant is not None else Tenant.objects.filter(created_at__lt=end).order_by("pk")
    created = _close_month(period_start, tenants)
    audit_record(
        actor=actor,
        action="statements.closed",
        target="Statement",
        tenant=tenant,
        after={"period": f"{period_start:%Y-%m}", "created": created},
    )
    logger.info("billing.statements_closed", period=f"{period_start:%Y-%m}", created=created, on_demand=True)
    return created


def statements_close_previous_month(*, now: datetime | None = None) -> int:
    """Close last month for every tenant that existed then. Returns how many statements were created."""
    now = now or timezone.now()
    this_month = month_start(now)
    previous = (this_month - timedelta(days=1)).date().replace(day=1)
    created = _close_month(previous, Tenant.objects.filter(created_at__lt=this_month).order_by("pk"))
    logger.info("billing.statements_closed", period=f"{previous:%Y-%m}", created=created)
    return created
