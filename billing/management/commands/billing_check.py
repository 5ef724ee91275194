from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.selectors.drift import upstream_cost_drifts, wallet_drifts
from billing.tasks import log_drifts, log_upstream_cost_drifts


class Command(BaseCommand):
    help = (
        "Verify for every tenant that balance = grants + adjustments - captures and held = open holds."
        " Prints each drift and exits 1 when there is any. Also warns (without failing) about models whose actual"
        " upstream cost drifts from the estimate by more than UPSTREAM_COST_DRIFT_MAX_PERCENT in a month."
    )

    def handle(self, *args: object, **options: object) -> None:
        warnings = upstream_cost_drifts(now=timezone.now())
        log_upstream_cost_drifts(warnings)
        for warning in warnings:
            self.stderr.write(f"WARNING upstream cost drift: {warning}")
        drifts = wallet_drifts()
        if not drifts:
            self.stdout.write("billing_check: OK, every wallet matches its ledger.")
            return
        log_drifts(drifts)
        for drift in drifts:
            self.stderr.write(f"DRIFT {drift}")
        raise CommandError(f"billing_check: {len(drifts)} drift(s) found.", returncode=1)
