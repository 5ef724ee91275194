from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts.services import tenant_create
from billing.money import InvalidAmount, micros_to_usd, usd_to_micros
from billing.selectors.limits import plan_get_by_name
from billing.services.wallets import billing_account_open
from project.errors import DomainError


class Command(BaseCommand):
    help = (
        "Create a tenant with its wallet, optionally on a named plan and with opening credit (granted through the"
        " ledger). Exits non-zero with a one-line reason on bad input (duplicate slug, unknown plan, bad amount)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", default="")
        parser.add_argument("--credit-usd", default="0", help="Opening credit in USD, e.g. 25 or 12.50.")
        parser.add_argument("--plan", default=None, help="Plan name; the default plan when omitted.")

    def handle(
        self, *args: object, slug: str, name: str, credit_usd: str, plan: str | None, **options: object
    ) -> None:
        try:
            credit_micros = usd_to_micros(credit_usd)
        except InvalidAmount as exc:
            raise CommandError(f"--credit-usd: {exc}") from exc
        chosen_plan = None
        if plan is not None:
            chosen_plan = plan_get_by_name(name=plan)
            if chosen_plan is None:
                raise CommandError(f"Unknown plan '{plan}'.")
        try:
            with transaction.atomic():
                tenant = tenant_create(slug=slug, name=name)
                wallet = billing_account_open(
                    tenant=tenant, plan=chosen_plan, opening_credit_micros=credit_micros
                )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        plan_name = chosen_plan.name if chosen_plan else "default"
        self.stdout.write(
            f"Created tenant {tenant.slug} ({tenant.name}) on plan {plan_name} with balance "
            f"{micros_to_usd(wallet.balance_micros)} USD"
        )
