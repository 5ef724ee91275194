from datetime import date

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import Tenant
from accounts.services import SYSTEM
from billing.services.statements import statements_close_month
from project.errors import DomainError


def _month(value: str) -> date:
    try:
        year, month = value.split("-")
        return date(int(year), int(month), 1)
    except ValueError as exc:
        raise CommandError(f"--month must look like 2026-11, not {value!r}.") from exc


class Command(BaseCommand):
    help = (
        "Close a month's statements now instead of waiting for the monthly task: every tenant that existed before "
        "the month ended, or one with --tenant. Statements already closed are kept as they are."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--month", required=True, help="The month to close, YYYY-MM (UTC); it must have ended.")
        parser.add_argument("--tenant", help="Only this tenant (its slug).")

    def handle(self, *args: object, **options: str) -> None:
        period_start = _month(options["month"])
        tenant = None
        if options.get("tenant"):
            tenant = Tenant.objects.filter(slug=options["tenant"]).first()
            if tenant is None:
                raise CommandError(f"No tenant with slug {options['tenant']!r}.")
        try:
            created = statements_close_month(period_start=period_start, tenant=tenant, actor=SYSTEM)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        scope = f"tenant {tenant.slug}" if tenant else "every tenant"
        self.stdout.write(f"close_statements: {period_start:%Y-%m} for {scope}: {created} statement(s) created.")
