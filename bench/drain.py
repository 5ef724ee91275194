#!/usr/bin/env python
"""How fast one forwarder process drains a backlog, and what it costs, next to a bare client in the same run.

Starts the AIHubMix sandbox in its OWN process (`manage.py aihubmix_sandbox --latency L`), queues N generations
through the real submit service, then starts one forwarder process (`manage.py forwarder --concurrency C`, exactly
what the Procfile runs) and measures until every generation has succeeded:

- generations/s (goal ≥ 50 per forwarder process at 300 in flight, 5 s latency),
- mean calls in flight at the upstream, sampled every 100 ms from the sandbox (goal ≥ 90 % of C; ≥ 95 % with
  minute-long calls) while calls were still queued: from the first call on the wire until the last one went out.
  After that no slot can be refilled, and how fast in-flight falls to zero says how far apart the last answers came,
  not how full the process kept its slots; the mean up to the last answer is printed beside it,
- CPU ms per generation of the forwarder process (user + system from /proc),
- peak RSS of the forwarder process (goal ≤ 300 MB; ≤ 500 MB with 2,000 minute-long calls of 3 MB answers).

The baseline is a bare asyncio httpx client, also in its own process, making the same N calls with the same
concurrency against the same sandbox and downloading each output image (no database, no verification, no
storage): the floor any forwarder could reach.

    DATABASE_URL=postgres://... .venv/bin/python bench/drain.py [--generations 600] [--latency 5] [--concurrency 300]
        [--answer-bytes 3000000]   # minute-long calls with gpt-image-2-sized answers: --latency 60 --concurrency 2000

Uses DATABASE_URL (PostgreSQL recommended; migrated if needed), or a throwaway SQLite database under /tmp.
BENCH_WRAP prefixes the forwarder's command, e.g. to see where its time goes (py-spy stops the forwarder when its
duration ends, so give one shorter than the drain and read the profile rather than the figures):
    BENCH_WRAP="py-spy record --gil -d 50 -f raw -o /tmp/forwarder.txt --" .venv/bin/python bench/drain.py ...
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generations", type=int, default=600)
    parser.add_argument("--latency", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=300)
    parser.add_argument("--answer-bytes", type=int, default=0,
                        help="each answer's base64 about this long (gpt-image-2 high quality: 3000000)")
    parser.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)  # the baseline's child process
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    return parser.parse_args()


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class InFlightSampler:
    """Polls the sandbox's /_sandbox/stats every 100 ms while running: calls in flight, and calls received so far."""

    def __init__(self, stats_url: str, *, calls: int) -> None:
        import httpx

        self.client = httpx.Client(timeout=2)
        self.url = stats_url
        self.calls = calls
        self.samples: list[tuple[int, int]] = []  # (in flight, POSTs received since the sampler started)
        self.running = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        first = None
        while self.running.is_set():
            try:
                stats = self.client.get(self.url).json()
                first = stats["posts"] if first is None else first
                self.samples.append((stats["in_flight"], stats["posts"] - first))
            except Exception:
                pass
            time.sleep(0.1)

    def __enter__(self) -> "InFlightSampler":
        self.running.set()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.running.clear()
        self.thread.join()

    def _busy(self) -> list[tuple[int, int]]:
        # From the first call on the wire to the last one: the ramp before the first claim is not the drain's.
        busy = list(self.samples)
        while busy and busy[0][0] == 0:
            busy.pop(0)
        while busy and busy[-1][0] == 0:
            busy.pop()
        return busy

    def mean_while_busy(self) -> float:
        busy = self._busy()
        return statistics.fmean(n for n, _ in busy) if busy else 0.0

    def mean_while_queued(self) -> float:
        """Until the sample where the last of the calls had gone out: while a freed slot could still be refilled."""
        busy = self._busy()
        queued = [n for n, sent in busy if sent < self.calls] + [n for n, sent in busy if sent >= self.calls][:1]
        return statistics.fmean(queued) if queued else 0.0


def direct_child(*, base_url: str, count: int, concurrency: int) -> None:
    """The baseline: N calls at `concurrency`, each downloading its output, on one httpx.AsyncClient."""
    import httpx

    from generations.providers.transport import AiohttpTransport

    async def main() -> dict:
        semaphore = asyncio.Semaphore(concurrency)
        # The forwarder's transport (httpx over aiohttp): the baseline isolates everything else.
        transport = AiohttpTransport(max_connections=concurrency)
        headers = {"Authorization": "Bearer bench"}
        async with httpx.AsyncClient(transport=transport, timeout=120, headers=headers) as client:

            async def one(index: int) -> int:
                async with semaphore:
                    # The same route and body the forwarder sends for gpt-image-2 (predictions; base64 answer).
                    response = await client.post(f"{base_url}/models/openai/gpt-image-2/predictions", json={
                        "input": {"prompt": f"direct {index}", "quality": "low", "size": "1024x1024", "n": 1},
                    })
                    response.raise_for_status()
                    return len(response.content)

            started = time.monotonic()
            sizes = await asyncio.gather(*(one(i) for i in range(count)))
            return {"seconds": time.monotonic() - started, "ok": sum(1 for s in sizes if s > 0)}

    result = asyncio.run(main())
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    print(json.dumps(result))


def main() -> None:
    args = parse_args()
    if args.direct:
        direct_child(base_url=args.base_url, count=args.generations, concurrency=args.concurrency)
        return
    workdir = Path(tempfile.mkdtemp(prefix="bench-drain-"))
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir / 'bench.sqlite3'}")
    os.environ["MEDIA_ROOT"] = str(workdir / "media")
    os.environ["OUTPUT_FETCH_ALLOW_PRIVATE"] = "true"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    os.environ["AIHUBMIX_BASE_URL"] = base_url
    os.environ["AIHUBMIX_TASKS_URL"] = f"{base_url}/tasks"
    os.environ["AIHUBMIX_API_KEY"] = "bench"
    os.environ["AIHUBMIX_MAX_CONNECTIONS"] = str(max(args.concurrency, 256))

    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    with __import__("contextlib").suppress(Exception):
        call_command("createcachetable", verbosity=0)

    from accounts.services import SYSTEM, api_key_create, tenant_create
    from billing.models import Plan
    from billing.services.prices import price_set
    from billing.services.wallets import billing_account_open
    from generations.models import Generation
    from generations.services.submit import GenerationRequest, generation_submit

    sandbox = subprocess.Popen(
        [PYTHON, "manage.py", "aihubmix_sandbox", "--port", str(port), "--latency", str(args.latency),
         "--answer-bytes", str(args.answer_bytes)],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        import httpx

        stats_url = f"http://127.0.0.1:{port}/_sandbox/stats"
        for _ in range(200):
            try:
                httpx.get(stats_url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)

        # --- baseline: a bare client in its own process --------------------------------------------------
        with InFlightSampler(stats_url, calls=args.generations) as direct_sampler:
            done = subprocess.run(
                [PYTHON, __file__, "--direct", "--base-url", base_url, "--generations", str(args.generations),
                 "--concurrency", str(args.concurrency)],
                cwd=ROOT, capture_output=True, text=True, check=True,
            )
        direct = json.loads(done.stdout.strip().splitlines()[-1])

        # --- the forwarder ---------------------------------------------------------------------------------
        price_set(model_id="openai/gpt-image-2", quality="low", size="1024x1024", cost_micros=6_000, actor=SYSTEM)
        slug = f"bench-{int(time.time())}"
        tenant = tenant_create(slug=slug, name="Bench")
        plan = Plan.objects.create(
            name=slug, markup_bps=2000, max_n=10, max_concurrent=None, max_queued=None, images_per_day=None,
            images_per_month=None, requests_per_minute=None,
        )
        billing_account_open(tenant=tenant, plan=plan, opening_credit_micros=1_000_000_000)
        api_key = api_key_create(tenant=tenant, name="bench").api_key
        for index in range(args.generations):
            generation_submit(
                tenant=tenant, api_key=api_key, request=GenerationRequest(
                    model="openai/gpt-image-2", prompt=f"drain {index}", quality="low", size="1024x1024"),
            )
        mine = Generation.objects.filter(tenant=tenant)

        log = workdir / "forwarder.log"
        env = {**os.environ, "FORWARD_CONCURRENCY": str(args.concurrency)}
        with log.open("wb") as output:
            process = subprocess.Popen([*os.environ.get("BENCH_WRAP", "").split(), PYTHON, "manage.py", "forwarder"], cwd=ROOT, env=env, stdout=output,
                                       stderr=subprocess.STDOUT)
        try:
            with InFlightSampler(stats_url, calls=args.generations) as sampler:
                while "forwarder running" not in log.read_text():
                    if process.poll() is not None:
                        raise SystemExit(f"forwarder exited:\n{log.read_text()[-3000:]}")
                    time.sleep(0.01)
                started, cpu_before = time.monotonic(), cpu_seconds(process.pid)
                while mine.exclude(status__in=["succeeded", "failed", "canceled"]).exists():
                    time.sleep(0.1)
                seconds, cpu_after = time.monotonic() - started, cpu_seconds(process.pid)
                rss = peak_rss_mb(process.pid)
        finally:
            process.terminate()
            process.wait(timeout=30)
        succeeded = mine.filter(status="succeeded").count()
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)

    n, c, latency = args.generations, args.concurrency, args.latency
    ideal = c / latency
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"\n{n} generations, {latency:g} s upstream latency, {c} in flight allowed, database {engine}, "
          f"sandbox in its own process (ideal: {ideal:.1f}/s)")
    print(f"{'':26s} {'gen/s':>8s} {'of ideal':>9s} {'in flight while queued':>23s} {'to the last answer':>19s} "
          f"{'CPU ms/gen':>11s} {'peak RSS':>9s}")
    rows = [
        ("direct httpx (baseline)", direct["ok"], direct["seconds"], direct_sampler, direct["cpu_seconds"],
         direct["peak_rss_mb"]),
        ("forwarder process", succeeded, seconds, sampler, cpu_after - cpu_before, rss),
    ]
    for name, ok, wall, samples, cpu, peak in rows:
        rate = ok / wall
        queued, busy = samples.mean_while_queued(), samples.mean_while_busy()
        print(f"{name:26s} {rate:8.1f} {rate / ideal:8.0%} {queued:16.0f} ({queued / c:4.0%}) "
              f"{busy:12.0f} ({busy / c:4.0%}) {1000 * cpu / max(ok, 1):11.1f} {peak:7.0f} MB")
    ratio = (succeeded / seconds) / (direct["ok"] / direct["seconds"])
    goals = ("≥ 95 % in flight, ≤ 500 MB" if latency >= 30  # minute-long calls: slots, not CPU, are the limit
             else "≥ 50 gen/s per process, ≥ 90 % in flight, ≤ 300 MB")
    print(f"forwarder / baseline throughput: {ratio:.2f}   succeeded {succeeded}/{n}   goals: {goals}")


if __name__ == "__main__":
    main()
