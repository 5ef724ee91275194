import pytest
from django.core.management import CommandError, call_command

from accounts.models import ApiKey, Tenant

pytestmark = pytest.mark.django_db


def test_create_tenant_then_key_prints_key_alone_on_last_line(capsys) -> None:
    call_command("create_tenant", "initech", "--name", "Initech")
    call_command("create_api_key", "initech", "--name", "ops", "--admin")
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    api_key = ApiKey.objects.get(tenant__slug="initech")
    assert last_line.startswith(api_key.prefix + ".") and " " not in last_line
    assert api_key.is_valid(last_line) and api_key.is_admin and api_key.name == "ops"


def test_duplicate_slug_fails_with_one_line_reason() -> None:
    call_command("create_tenant", "initech")
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_tenant", "initech")
    assert Tenant.objects.filter(slug="initech").count() == 1


def test_invalid_slug_is_refused() -> None:
    with pytest.raises(CommandError, match="not a valid slug"):
        call_command("create_tenant", "Not A Slug")


def test_key_for_unknown_tenant_fails() -> None:
    with pytest.raises(CommandError, match="Unknown tenant 'nope'"):
        call_command("create_api_key", "nope")
    assert ApiKey.objects.count() == 0
