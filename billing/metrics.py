"""Money figures `/metrics` reads from the database at scrape time (`project/metrics.py`)."""

from typing import Any

from django.db.models import Count, Q, Sum
from prometheus_client.core import GaugeMetricFamily

from billing.models import Wallet


class MoneyCollector:
    """One aggregate over the wallets: what is held for generations in progress and how many wallets are short."""

    def collect(self) -> Any:
        totals = Wallet.objects.aggregate(
            held=Sum("held_micros"),
            holds=Sum("open_holds"),
            exhausted=Count("id", filter=Q(balance_micros__lte=0, credit_limit_micros=0)),
        )
        yield GaugeMetricFamily(
            "imagegen_money_held_usd", "Money held for generations not yet settled, in USD.",
            value=(totals["held"] or 0) / 1_000_000,
        )
        yield GaugeMetricFamily("imagegen_holds_open", "Holds not yet captured or released.", value=totals["holds"] or 0)
        yield GaugeMetricFamily(
            "imagegen_wallets_exhausted", "Wallets with nothing to spend: no balance and no credit limit.",
            value=totals["exhausted"] or 0,
        )
