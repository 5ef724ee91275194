from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import tenant_create
from project.api.errors import ApiError


class Command(BaseCommand):
    help = "Create a tenant. Exits non-zero with a one-line reason on bad input (e.g. a duplicate slug)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", default="")

    def handle(self, *args: object, slug: str, name: str, **options: object) -> None:
        try:
            tenant = tenant_create(slug=slug, name=name)
        except ApiError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Created tenant {tenant.slug} ({tenant.name})")
