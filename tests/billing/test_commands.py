import pytest
from django.core.management import CommandError, call_command

from accounts.models import AuditEvent, Tenant
from billing.models import LedgerEntry, Plan, Price, TenantPlan, Wallet
from billing.selectors.prices import price_current

pytestmark = pytest.mark.django_db


def test_create_tenant_grants_opening_credit_through_the_ledger_on_a_plan(capsys) -> None:
    Plan.objects.create(name="pro", markup_bps=1000)
    call_command("create_tenant", "initech", "--name", "Initech", "--credit-usd", "25.50", "--plan", "pro")
    wallet = Wallet.objects.get(tenant__slug="initech")
    grant = LedgerEntry.objects.get(tenant__slug="initech")
    assert wallet.balance_micros == 25_500_000 and (grant.kind, grant.amount_micros) == ("grant", 25_500_000)
    assert TenantPlan.objects.get(tenant__slug="initech").plan.name == "pro"
    assert "balance 25.500000 USD" in capsys.readouterr().out
    call_command("billing_check")


def test_create_tenant_with_an_unknown_plan_fails_and_creates_nothing() -> None:
    with pytest.raises(CommandError, match="Unknown plan 'gold'"):
        call_command("create_tenant", "initech", "--plan", "gold")
    assert not Tenant.objects.filter(slug="initech").exists()


def test_create_tenant_refuses_a_bad_credit_amount() -> None:
    with pytest.raises(CommandError, match="more than 6 decimal places"):
        call_command("create_tenant", "initech", "--credit-usd", "1.0000001")
    assert not Tenant.objects.filter(slug="initech").exists()


def test_set_price_makes_a_model_billable_and_is_audited(capsys) -> None:
    assert price_current(model_id="qianfan/irag-1.0", quality="", size="1024x1024") is None
    call_command("set_price", "qianfan/irag-1.0", "--usd", "0.03")
    price = price_current(model_id="qianfan/irag-1.0", quality="", size="1024x1024")
    assert price.cost_micros == 30_000 and (price.quality, price.size) == ("*", "*")
    assert AuditEvent.objects.filter(action="price.set", target_id=str(price.pk)).exists()
    assert "0.030000 USD per image" in capsys.readouterr().out


def test_set_price_refuses_bad_amounts() -> None:
    with pytest.raises(CommandError, match="--usd"):
        call_command("set_price", "qianfan/irag-1.0", "--usd", "-1")
    assert not Price.objects.filter(model_id="qianfan/irag-1.0").exists()


def test_billing_check_exits_non_zero_and_names_the_drift(capsys) -> None:
    call_command("create_tenant", "initech", "--credit-usd", "10")
    call_command("billing_check")
    assert "OK" in capsys.readouterr().out
    Wallet.objects.filter(tenant__slug="initech").update(balance_micros=11_000_000)
    with pytest.raises(CommandError) as caught:
        call_command("billing_check")
    assert caught.value.returncode == 1
    assert "initech: balance_micros is 11000000, ledger says 10000000" in capsys.readouterr().err


def test_schedules_exist_for_the_check_and_the_statements() -> None:
    from django_q.models import Schedule

    funcs = set(Schedule.objects.values_list("func", flat=True))
    assert {"billing.tasks.billing_check", "billing.tasks.statements_close"} <= funcs
