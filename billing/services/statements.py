"""Statements: closing a tenant's calendar month (UTC) into an immutable statement with its lines."""

from datetime import date, datetime, timedelta

import structlog
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Tenant
from billing.models import Statement, StatementLine
from billing.periods import as_utc_start, month_start, next_month_start
from billing.selectors import statement_line_totals, tenant_balance_at, tenant_credits_between

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


def statements_close_previous_month(*, now: datetime | None = None) -> int:
    """Close last month for every tenant that existed then. Returns how many statements were created."""
    now = now or timezone.now()
    this_month = month_start(now)
    previous = (this_month - timedelta(days=1)).date().replace(day=1)
    created = 0
    for tenant in Tenant.objects.filter(created_at__lt=this_month).order_by("pk"):
        if not Statement.objects.filter(tenant=tenant, period_start=previous).exists():
            statement_close(tenant=tenant, period_start=previous)
            created += 1
    logger.info("billing.statements_closed", period=f"{previous:%Y-%m}", created=created)
    return created
