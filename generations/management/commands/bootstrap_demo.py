from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from accounts.selectors import demo_key_is_usable, tenant_get_by_slug
from accounts.services import SYSTEM, api_key_create, tenant_create
from billing.money import usd_to_micros
from billing.services.wallets import billing_account_open
from generations.services.catalog import DEMO_PRICE_MICROS, catalog_demo_prices_set


def upstream_is_local_sandbox() -> bool:
    """`make run` without AIHUBMIX_API_KEY points the upstream at the bundled sandbox on loopback."""
    host = urlsplit(settings.AIHUBMIX_BASE_URL).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


class Command(BaseCommand):
    help = (
        "Local development only: make sure a 'demo' tenant with demo credit and an admin key exist, and print the"
        " key. The secret is kept in var/demo-api-key (the database keeps only its hash) so `make run` can show it"
        " again. Against the local sandbox, every model without a price gets an obvious demo price."
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
        if upstream_is_local_sandbox():
            priced = catalog_demo_prices_set(actor=SYSTEM)
            if priced:
                self.stdout.write(
                    f"Sandbox: {len(priced)} unpriced models now cost a demo {DEMO_PRICE_MICROS / 1e6:.2f} USD per image."
                )
        secret = path.read_text().strip() if path.exists() else ""
        if not demo_key_is_usable(secret=secret, tenant=tenant):
            secret = api_key_create(tenant=tenant, name="demo", is_admin=True).secret
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(secret + "\n")
            path.chmod(0o600)
        self.stdout.write(secret)
