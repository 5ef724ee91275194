from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from generations.forwarder import forward_forever
from project.malloc import large_blocks_returned
from project.metrics import metrics_serve


class Command(BaseCommand):
    help = (
        "Run a forwarder: claims queued generations (woken by notifications), keeps up to FORWARD_CONCURRENCY "
        "upstream calls in flight, settles them. Runs until SIGTERM/SIGINT; run several for more throughput."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--concurrency", type=int, default=None, help="default: FORWARD_CONCURRENCY")

    def handle(self, *args: object, concurrency: int | None, **options: object) -> None:
        def started(slots: int) -> None:
            self.stdout.write(f"forwarder running: up to {slots} upstream calls in flight (SIGTERM to stop)")
            self.stdout.flush()

        large_blocks_returned()  # answers of several MB come and go by the thousand (project/malloc.py)
        stop_metrics = None
        if settings.FORWARD_METRICS_PORT:
            # A forwarder host without a web process: Prometheus scrapes this process directly.
            stop_metrics = metrics_serve(port=settings.FORWARD_METRICS_PORT, host=settings.FORWARD_METRICS_HOST)
        try:
            forward_forever(concurrency=concurrency, on_started=started)
        finally:
            if stop_metrics is not None:
                stop_metrics()
