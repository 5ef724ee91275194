#!/usr/bin/env python
"""How many upstream calls one worker process keeps in flight, and what that buys.

Starts the AIHubMix sandbox in this process with a fixed latency, submits N generations through the real submit
service, then runs one forwarder drain (exactly what a django-q2 worker process runs) and reports the peak number
of calls the sandbox saw at once, wall time and throughput. The baseline is the same drain with concurrency 1
(one upstream call at a time, like one generation per task) on a smaller batch; the ratio compares throughput.

    .venv/bin/python bench/inflight.py [--generations 300] [--latency 2] [--concurrency 150] [--baseline 5]

Uses a throwaway SQLite database under /tmp unless DATABASE_URL is set (then that database is migrated and used).
"""

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generations", type=int, default=300)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--concurrency", type=int, default=150)
    parser.add_argument("--baseline", type=int, default=5, help="generations for the concurrency-1 baseline")
    return parser.parse_args()


def configure_environment(workdir: Path) -> None:
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    os.environ["MEDIA_ROOT"] = str(workdir / "media")
    os.environ["OUTPUT_FETCH_ALLOW_PRIVATE"] = "true"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"


class PeakCounter:
    """Counts concurrent requests at the sandbox, i.e. calls really in flight on the wire."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.current = 0
        self.peak = 0

    def wrap(self, handler_class: type) -> None:
        original = handler_class.do_POST
        counter = self

        def counted(handler: object) -> None:
            with counter.lock:
                counter.current += 1
                counter.peak = max(counter.peak, counter.current)
            try:
                original(handler)
            finally:
                with counter.lock:
                    counter.current -= 1

        handler_class.do_POST = counted

    def reset(self) -> None:
        with self.lock:
            self.current = self.peak = 0


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-inflight-"))
    configure_environment(workdir)

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)

    from accounts.services import api_key_create, tenant_create
    from aihubmix_sandbox.server import SandboxHandler, start_sandbox
    from billing.models import Plan
    from billing.services.wallets import billing_account_open
    from generations.forwarder import forward_drain
    from generations.models import Generation
    from generations.services.submit import GenerationRequest, generation_submit

    peak = PeakCounter()
    peak.wrap(SandboxHandler)
    sandbox = start_sandbox(latency=args.latency)
    settings.AIHUBMIX_BASE_URL = sandbox.base_url
    settings.AIHUBMIX_TASKS_URL = sandbox.tasks_url
    settings.AIHUBMIX_API_KEY = "bench"
    settings.OUTPUT_FETCH_ALLOW_PRIVATE = True

    slug = f"bench-{int(time.time())}"
    tenant = tenant_create(slug=slug, name="Bench")
    unlimited = Plan.objects.create(
        name=slug, markup_bps=2000, max_n=10, max_concurrent=None, images_per_day=None, images_per_month=None,
        requests_per_minute=None,
    )
    billing_account_open(tenant=tenant, plan=unlimited, opening_credit_micros=1_000_000_000)
    api_key = api_key_create(tenant=tenant, name="bench").api_key

    def submit(count: int, label: str) -> None:
        for index in range(count):
            generation_submit(
                tenant=tenant,
                api_key=api_key,
                request=GenerationRequest(
                    model="openai/gpt-image-1", prompt=f"{label} {index}", quality="low", size="1024x1024"
                ),
            )

    def run(count: int, concurrency: int, label: str) -> dict[str, float]:
        submit(count, label)
        peak.reset()
        started = time.monotonic()
        stats = forward_drain(concurrency=concurrency)
        seconds = time.monotonic() - started
        succeeded = Generation.objects.filter(tenant=tenant, prompt__startswith=label, status="succeeded").count()
        return {"count": count, "claimed": stats.claimed, "succeeded": succeeded, "seconds": seconds,
                "peak_in_flight": peak.peak, "max_tasks": stats.max_in_flight, "per_second": succeeded / seconds}

    baseline = run(args.baseline, 1, "baseline")
    drain = run(args.generations, args.concurrency, "drain")
    sandbox.stop()

    print(f"sandbox latency {args.latency:.1f}s, database {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}")
    for name, result in (("baseline (concurrency 1)", baseline), (f"drain (concurrency {args.concurrency})", drain)):
        print(
            f"{name:28s} {result['succeeded']:4d}/{result['count']:<4d} succeeded in {result['seconds']:7.2f}s"
            f"  {result['per_second']:7.2f} gen/s  peak in flight at upstream: {result['peak_in_flight']}"
        )
    ratio = drain["per_second"] / baseline["per_second"] if baseline["per_second"] else float("inf")
    print(f"throughput ratio drain/baseline: {ratio:.1f}x")
    print(f"peak in flight per worker process: {drain['peak_in_flight']} (target >= 100)")


if __name__ == "__main__":
    main()
