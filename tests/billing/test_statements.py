import io
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


def test_close_statements_command_closes_an_ended_month_once_and_is_audited(make_tenant) -> None:
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from accounts.models import AuditEvent

    old = make_tenant("old-customer")
    Tenant.objects.filter(pk=old.pk).update(created_at=datetime(2026, 9, 15, tzinfo=UTC))
    make_tenant("brand-new")  # created after October: no October statement
    out = io.StringIO()

    call_command("close_statements", "--month", "2026-10", stdout=out)
    call_command("close_statements", "--month", "2026-10", stdout=out)

    assert list(Statement.objects.values_list("tenant__slug", "period_start")) == [("old-customer", date(2026, 10, 1))]
    assert out.getvalue().splitlines() == [
        "close_statements: 2026-10 for every tenant: 1 statement(s) created.",
        "close_statements: 2026-10 for every tenant: 0 statement(s) created.",
    ]
    assert [event.after for event in AuditEvent.objects.filter(action="statements.closed").order_by("id")] == [
        {"period": "2026-10", "created": 1},
        {"period": "2026-10", "created": 0},
    ]
    with pytest.raises(CommandError, match="has not ended yet"):
        call_command("close_statements", "--month", f"{timezone.now():%Y-%m}")
    with pytest.raises(CommandError, match=r"YYYY-MM|2026-11"):
        call_command("close_statements", "--month", "November")
    with pytest.raises(CommandError, match="No tenant"):
        call_command("close_statements", "--month", "2026-10", "--tenant", "nobody")


def test_staff_close_a_month_with_the_tenant_admin_action(make_tenant, client, django_user_model) -> None:
    from django.contrib.auth.models import Group, Permission

    from generations.staff_roles import BILLING, staff_groups_sync

    staff_groups_sync(group_model=Group, permission_model=Permission)
    first, second, untouched = make_tenant("first"), make_tenant("second"), make_tenant("untouched")
    billing_user = django_user_model.objects.create_user("bill", password="pw", is_staff=True)
    billing_user.groups.add(Group.objects.get(name=BILLING))
    client.force_login(billing_user)
    selection = {"action": "close_statements", "_selected_action": [first.pk, second.pk]}

    form_page = client.post("/admin/accounts/tenant/", selection)
    assert form_page.status_code == 200 and b"Close a month" in form_page.content
    last_month = (timezone.now().date().replace(day=1) - timedelta(days=1)).replace(day=1)
    assert f'value="{last_month:%Y-%m}"'.encode() in form_page.content

    done = client.post("/admin/accounts/tenant/", {**selection, "apply": "1", "month": "2026-10"}, follow=True)
    assert b"2026-10: 2 statement(s) created for 2 tenant(s)" in done.content
    assert sorted(Statement.objects.values_list("tenant__slug", flat=True)) == ["first", "second"]
    refused = client.post(
        "/admin/accounts/tenant/", {**selection, "apply": "1", "month": f"{timezone.now():%Y-%m}"}, follow=True
    )
    assert b"has not ended yet" in refused.content
    assert not Statement.objects.filter(tenant=untouched).exists()

    support = django_user_model.objects.create_user("help", password="pw", is_staff=True)
    support.groups.add(Group.objects.get(name="Support"))
    client.force_login(support)
    page = client.get("/admin/accounts/tenant/")
    assert page.status_code == 200 and b"close_statements" not in page.content
