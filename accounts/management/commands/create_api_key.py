from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.selectors import tenant_get_by_slug
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a tenant. The key is printed alone on the last line (shown only once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", default="default")
        parser.add_argument("--admin", action="store_true", help="Allow the key to manage keys and webhooks.")

    def handle(self, *args: object, slug: str, name: str, admin: bool, **options: object) -> None:
        tenant = tenant_get_by_slug(slug=slug)
        if tenant is None:
            raise CommandError(f"Unknown tenant '{slug}'.")
        if not name or len(name) > 50:
            raise CommandError("--name must be 1 to 50 characters.")
        issued = api_key_create(tenant=tenant, name=name, is_admin=admin)
        self.stdout.write(f"Created {'admin ' if admin else ''}key {issued.api_key.prefix} for tenant {slug}:")
        self.stdout.write(issued.secret)
