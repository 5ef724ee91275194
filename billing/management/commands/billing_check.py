from django.core.management.base import BaseCommand, CommandError

from billing.selectors.drift import wallet_drifts
from billing.tasks import log_drifts


class Command(BaseCommand):
    help = (
        "Verify for every tenant that balance = grants + adjustments - captures and held = open holds."
        " Prints each drift and exits 1 when there is any."
    )

    def handle(self, *args: object, **options: object) -> None:
        drifts = wallet_drifts()
        if not drifts:
            self.stdout.write("billing_check: OK, every wallet matches its ledger.")
            return
        log_drifts(drifts)
        for drift in drifts:
            self.stderr.write(f"DRIFT {drift}")
        raise CommandError(f"billing_check: {len(drifts)} drift(s) found.", returncode=1)
