"""Traffic and observation for the multi-host test: clients submitting through the web hosts, samplers of the queue
and of the upstream, and readers of what the hosts left behind (rows, ledger, stored objects, forwarder logs)."""

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import psycopg

from tests.multihost.support import (
    BUCKET,
    WEB_PORT,
    Process,
    address,
    database,
    s3_client,
    sandbox_stats_url,
    wait_until,
)

# --- clients ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    tenant: str
    prompt: str
    key: str  # Idempotency-Key


@dataclass
class Ack:
    job: Job
    generation_id: str
    host: str
    tries: int


@dataclass
class Submissions:
    acks: list[Ack] = field(default_factory=list)
    failures: list[tuple[Job, str]] = field(default_factory=list)
    retries: int = 0
    answers: dict[str, int] = field(default_factory=dict)  # "web1 202", "web2 timeout", ...
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str) -> None:
        with self.lock:
            self.answers[what] = self.answers.get(what, 0) + 1


GENERATION = {"model": "openai/gpt-image-2", "quality": "low", "size": "1024x1024"}


def submit_all(
    jobs: dict[str, list[Job]], *, api_keys: dict[str, str], threads: dict[str, int],
    hosts: tuple[str, ...] = ("web1", "web2"), give_up_after: float = 90.0,
    on_ack: Callable[[int], None] | None = None,
) -> Submissions:
    """Clients in this process (on its own switch port): per tenant `threads[tenant]` threads working through
    that tenant's jobs in order. Each job is sent to the next web host in turn; on a timeout, a connection error,
    409 (the same key still in flight elsewhere), 429 or 503 it is retried with the same Idempotency-Key on the
    other host, until a 202 or `give_up_after` seconds."""
    result = Submissions()
    queues = {tenant: list(reversed(items)) for tenant, items in jobs.items()}
    queue_lock = threading.Lock()
    turn = iter(range(10**9))

    def next_job(tenant: str) -> Job | None:
        with queue_lock:
            return queues[tenant].pop() if queues[tenant] else None

    def worker(tenant: str) -> None:
        timeout = httpx.Timeout(3.0, connect=1.0)
        with httpx.Client(timeout=timeout, headers={"Authorization": f"Bearer {api_keys[tenant]}"}) as client:
            while (job := next_job(tenant)) is not None:
                start = next(turn)
                deadline = time.monotonic() + give_up_after
                tries = 0
                while True:
                    host = hosts[(start + tries) % len(hosts)]
                    tries += 1
                    outcome, body = _post(client, host, job)
                    result.count(f"{host} {outcome}")
                    if outcome == "202":
                        with result.lock:
                            result.acks.append(Ack(job, body["id"], host, tries))
                            acked = len(result.acks)
                            result.retries += tries - 1
                        if on_ack is not None:
                            on_ack(acked)
                        break
                    if outcome not in ("timeout", "connect", "409", "429", "503") or time.monotonic() > deadline:
                        with result.lock:
                            result.failures.append((job, f"{host} {outcome} {body}"))
                        break
                    time.sleep(0.2 if outcome in ("409", "429", "503") else 0.05)

    workers = [
        threading.Thread(target=worker, args=(tenant,), name=f"client-{tenant}-{i}", daemon=True)
        for tenant, count in threads.items() for i in range(count)
    ]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=give_up_after * 3)
    return result


def _post(client: httpx.Client, host: str, job: Job) -> tuple[str, dict]:
    try:
        response = client.post(
            f"http://{address(host)}:{WEB_PORT}/v1/generations", json={**GENERATION, "prompt": job.prompt},
            headers={"Idempotency-Key": job.key},
        )
    except httpx.ConnectError:
        return "connect", {}
    except (httpx.TimeoutException, httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
        return "timeout", {}
    try:
        body = response.json()
    except ValueError:
        body = {"text": response.text[:200]}
    return str(response.status_code), body


# --- watching the queue -------------------------------------------------------------------------------------


@dataclass
class Sample:
    at: float  # epoch seconds
    queued: dict[str, int]
    running: dict[str, int]


class QueueSampler:
    """Counts of queued and running generations per tenant, read from PostgreSQL every `interval` seconds."""

    def __init__(self, *, prompt_prefix: str, interval: float = 0.25) -> None:
        self.prompt_prefix = prompt_prefix
        self.interval = interval
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="queue-sampler", daemon=True)

    def __enter__(self) -> "QueueSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with database() as conn:
            while not self._stop.is_set():
                rows = conn.execute(
                    "SELECT t.slug, g.status, count(*) FROM generations_generation g"
                    " JOIN accounts_tenant t ON t.id = g.tenant_id"
                    " WHERE g.prompt LIKE %s AND g.status IN ('queued', 'running') GROUP BY 1, 2",
                    [self.prompt_prefix + "%"],
                ).fetchall()
                sample = Sample(at=time.time(), queued={}, running={})
                for slug, status, count in rows:
                    getattr(sample, status)[slug] = count
                self.samples.append(sample)
                self._stop.wait(self.interval)


class InFlightSampler:
    """Upstream calls in flight at the sandbox, read every `interval` seconds: how busy the forwarders' slots were."""

    def __init__(self, *, interval: float = 0.1) -> None:
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="in-flight-sampler", daemon=True)

    def __enter__(self) -> "InFlightSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        with httpx.Client(timeout=2.0) as client:
            while not self._stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    self.samples.append((time.time(), client.get(sandbox_stats_url()).json()["in_flight"]))
                self._stop.wait(self.interval)

    def mean(self, *, start: float, end: float) -> float:
        window = [count for at, count in self.samples if start <= at <= end]
        return sum(window) / max(len(window), 1)


def running_count(conn: psycopg.Connection, prefix: str) -> int:
    return conn.execute(
        "SELECT count(*) FROM generations_generation WHERE prompt LIKE %s AND status = 'running'", [prefix + "%"]
    ).fetchone()[0]


def phase_unfinished(conn: psycopg.Connection, prefix: str) -> int:
    return conn.execute(
        "SELECT count(*) FROM generations_generation WHERE prompt LIKE %s"
        " AND status NOT IN ('succeeded', 'failed', 'canceled')", [prefix + "%"],
    ).fetchone()[0]


def phase_settled(prefix: str, *, expected: int, timeout: float) -> None:
    with database() as conn:
        def done() -> bool:
            total = conn.execute(
                "SELECT count(*) FROM generations_generation WHERE prompt LIKE %s", [prefix + "%"]
            ).fetchone()[0]
            return total >= expected and phase_unfinished(conn, prefix) == 0

        wait_until(done, timeout=timeout, what=f"the {expected} generations of {prefix!r} to finish", interval=0.25)


def phase_rows(phase: str) -> list[dict]:
    with database() as conn:
        cursor = conn.execute(
            "SELECT g.id, g.public_id, g.prompt, g.status, g.attempts, g.unknown_outcomes, t.slug,"
            " extract(epoch FROM g.created_at)::float8, extract(epoch FROM g.started_at)::float8,"
            " extract(epoch FROM g.finished_at)::float8"
            " FROM generations_generation g JOIN accounts_tenant t ON t.id = g.tenant_id WHERE g.prompt LIKE %s",
            [phase + "-%"],
        )
        names = ("id", "public_id", "prompt", "status", "attempts", "unknown_outcomes", "tenant", "created",
                 "started", "finished")
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def ledger_kinds(references: list[str]) -> dict[str, Counter]:
    with database() as conn:
        rows = conn.execute(
            "SELECT reference, kind, count(*) FROM billing_ledgerentry WHERE reference = ANY(%s) GROUP BY 1, 2",
            [references],
        ).fetchall()
    kinds: dict[str, Counter] = {reference: Counter() for reference in references}
    for reference, kind, count in rows:
        kinds[reference][kind] += count
    return kinds


def images_of(generation_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
    with database() as conn:
        rows = conn.execute(
            "SELECT generation_id, storage_key, sha256 FROM generations_generationimage"
            " WHERE generation_id = ANY(%s) ORDER BY generation_id, index",
            [generation_ids],
        ).fetchall()
    images: dict[int, list[tuple[str, str]]] = {gid: [] for gid in generation_ids}
    for gid, key, sha in rows:
        images[gid].append((key, sha))
    return images


def stored_objects(prefix: str = "tenants/") -> tuple[dict[str, list[dict]], set[str]]:
    """Every version of every object under `prefix`, and the keys whose latest version is a delete marker."""
    s3 = s3_client()
    versions: dict[str, list[dict]] = {}
    deleted: set[str] = set()
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=BUCKET, Prefix=prefix):
        for version in page.get("Versions", []):
            versions.setdefault(version["Key"], []).append(version)
        for marker in page.get("DeleteMarkers", []):
            if marker["IsLatest"]:
                deleted.add(marker["Key"])
    return versions, deleted


class Background:
    """Run `function` on a thread; `result()` joins it and returns its value (or raises its error)."""

    def __init__(self, function: Callable) -> None:
        self._outcome: dict = {}

        def run() -> None:
            try:
                self._outcome["value"] = function()
            except BaseException as error:
                self._outcome["error"] = error

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def result(self, *, timeout: float):
        self._thread.join(timeout)
        if "error" in self._outcome:
            raise self._outcome["error"]
        return self._outcome["value"]


def events_of(process: Process, event: str) -> set[tuple[str, int]]:
    """(generation, attempt) of each `event` a forwarder logged (JSON lines, LOG_LEVEL=INFO)."""
    found = set()
    for line in process.log_text().splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:  # the line being written right now
            continue
        if record.get("event") == event:
            found.add((record["generation"], record["attempt"]))
    return found


def lease_events(process: Process) -> set[tuple[str, int]]:
    """The claims a forwarder found it had lost: in flight, before settling, or at its lease's end."""
    return (
        events_of(process, "generation.lease_lost_in_flight")
        | events_of(process, "generation.lease_lost_before_settle")
        | events_of(process, "generation.lease_expired_before_settle")
    )


def claim_of(key: str) -> tuple[str, int]:
    """(generation, attempt) from an output key: tenants/<slug>/generations/<yyyy>/<mm>/<gen>/attempt-<n>/<i>.<ext>"""
    parts = key.split("/")
    return parts[-3], int(parts[-2].removeprefix("attempt-"))


def lost_claims(forwarders: list[Process]) -> set[tuple[str, int]]:
    return set().union(*(lease_events(process) for process in forwarders))


def metrics_scrape(url: str, *, token: str | None = None) -> dict[str, list]:
    """A /metrics page read by Prometheus' own text parser: samples by metric family name."""
    from prometheus_client.parser import text_string_to_metric_families

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.get(url, headers=headers, timeout=10)
    response.raise_for_status()
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}
