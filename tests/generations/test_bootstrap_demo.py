import pytest
from django.core.management import call_command

from accounts.models import ApiKey
from billing.models import Wallet

pytestmark = pytest.mark.django_db


def test_bootstrap_demo_creates_a_funded_tenant_and_reprints_the_same_key(tmp_path, capsys) -> None:
    key_file = tmp_path / "demo-key"
    call_command("bootstrap_demo", "--key-file", str(key_file))
    first = capsys.readouterr().out.strip().splitlines()[-1]
    call_command("bootstrap_demo", "--key-file", str(key_file))
    second = capsys.readouterr().out.strip().splitlines()[-1]
    assert first == second == key_file.read_text().strip()
    assert ApiKey.objects.filter(tenant__slug="demo").count() == 1
    assert Wallet.objects.get(tenant__slug="demo").balance_micros == 100_000_000


def test_bootstrap_demo_replaces_a_revoked_key(tmp_path, capsys) -> None:
    key_file = tmp_path / "demo-key"
    call_command("bootstrap_demo", "--key-file", str(key_file))
    first = capsys.readouterr().out.strip().splitlines()[-1]
    ApiKey.objects.filter(tenant__slug="demo").update(revoked=True)
    call_command("bootstrap_demo", "--key-file", str(key_file))
    second = capsys.readouterr().out.strip().splitlines()[-1]
    assert second != first and ApiKey.objects.get(tenant__slug="demo", revoked=False).is_valid(second)
