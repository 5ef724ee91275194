from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.services import SYSTEM
from billing.models import ANY
from billing.money import InvalidAmount, micros_to_usd, usd_to_micros
from billing.services.prices import price_set
from project.errors import DomainError


class Command(BaseCommand):
    help = (
        "Set the upstream cost of one image of a model (USD) from now on; the previous price for the same"
        " model/quality/size ends now. Audited. Use '*' for any quality or size, '' for models without a quality."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("model_id", help="Catalog id or alias, e.g. qianfan/irag-1.0 or irag-1.0.")
        parser.add_argument("--quality", default=ANY)
        parser.add_argument("--size", default=ANY)
        parser.add_argument(
            "--usd", required=True, help="Cost per image in USD, e.g. 0.03 (at most 6 decimals)."
        )
        parser.add_argument("--note", default="set with manage.py set_price")

    def handle(
        self, *args: object, model_id: str, quality: str, size: str, usd: str, note: str, **options: object
    ) -> None:
        try:
            cost_micros = usd_to_micros(usd)
        except InvalidAmount as exc:
            raise CommandError(f"--usd: {exc}") from exc
        try:  # the service refuses a model the catalog does not know
            price = price_set(
                model_id=model_id, quality=quality, size=size, cost_micros=cost_micros, actor=SYSTEM, note=note
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"Price #{price.pk}: {price.model_id} quality={quality or '-'} size={size} costs "
            f"{micros_to_usd(cost_micros)} USD per image from {price.effective_from:%Y-%m-%d %H:%M:%S} UTC"
        )
