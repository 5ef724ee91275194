from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import Tenant
from accounts.services import SYSTEM
from billing.models import Statement, StatementImmutable, StatementLine
from billing.services.ledger import billing_capture
from billing.services.statements import statement_close, statements_close_previous_month
from billing.services.wallets import wallet_grant
from billing.tasks import statements_close
from tests.billing.conftest import MODEL, UNIT_PRICE

pytestmark = pytest.mark.django_db


def test_closing_a_month_twice_creates_one_statement(tenant: Tenant, funded, reserve) -> None:
    funded(1_000_000)
    reserve("gen_1", n=2)
    billing_capture(reference="gen_1", images=2)
    month = timezone.now().date().replace(day=1)
    first = statement_close(tenant=tenant, period_start=month)
    second = statement_close(tenant=tenant, period_start=month)
    assert first.pk == second.pk and Statement.objects.filter(tenant=tenant).count() == 1
    line = StatementLine.objects.get(statement=first)
    assert (line.model_id, line.images, line.unit_price_micros, line.amount_micros) == (
        MODEL,
        2,
        UNIT_PRICE,
        2 * UNIT_PRICE,
    )
    assert (first.charges_micros, first.credits_micros, first.closing_balance_micros) == (
        2 * UNIT_PRICE,
        1_000_000,
        1_000_000 - 2 * UNIT_PRICE,
    )


def test_the_scheduled_task_closes_the_previous_month_once_per_tenant(make_tenant) -> None:
    old = make_tenant("old-customer")
    Tenant.objects.filter(pk=old.pk).update(created_at=datetime(2026, 9, 15, tzinfo=UTC))
    make_tenant("brand-new")  # created now: had no previous month
    wallet_grant(tenant=old, amount_micros=5_000_000, reference="sept-topup", actor=SYSTEM)
    first_run = statements_close_previous_month(now=timezone.now())
    second_run = statements_close()
    previous = (timezone.now().date().replace(day=1) - timedelta(days=1)).replace(day=1)
    assert first_run == 1 and second_run == 0
    statement = Statement.objects.get(tenant=old)
    assert statement.period_start == previous and statement.period_end == timezone.now().date().replace(day=1)
    assert not Statement.objects.filter(tenant__slug="brand-new").exists()


def test_statements_and_lines_are_immutable(tenant: Tenant) -> None:
    statement = statement_close(tenant=tenant, period_start=date(2026, 1, 1))
    statement.images = 99
    with pytest.raises(StatementImmutable):
        statement.save()
    with pytest.raises(StatementImmutable):
        statement.delete()
