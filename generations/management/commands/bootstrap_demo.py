from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from accounts.selectors import demo_key_is_usable, tenant_get_by_slug
from accounts.services import api_key_create, tenant_create
from billing.money import usd_to_micros
from billing.services.wallets import billing_account_open


class Command(BaseCommand):
    help = (
        "Local development only: make sure a 'demo' tenant with demo credit and an admin key exist, and print the"
        " key. The secret is kept in var/demo-api-key (the database keeps only its hash) so `make run` can show it"
        " again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--slug", default="demo")
        parser.add_argument("--credit-usd", default="100")
        parser.add_argument("--key-file", default=str(settings.VAR_DIR / "demo-api-key"))

    def handle(self, *args: object, slug: str, credit_usd: str, key_file: str, **options: object) -> None:
        path = Path(key_file)
        tenant = tenant_get_by_slug(slug=slug)
        if tenant is None:
            tenant = tenant_create(slug=slug, name="Demo tenant")
            billing_account_open(tenant=tenant, plan=None, opening_credit_micros=usd_to_micros(credit_usd))
        secret = path.read_text().strip() if path.exists() else ""
        if not demo_key_is_usable(secret=secret, tenant=tenant):
            secret = api_key_create(tenant=tenant, name="demo", is_admin=True).secret
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secret + "\n")
            path.chmod(0o600)
        self.stdout.write(secret)
