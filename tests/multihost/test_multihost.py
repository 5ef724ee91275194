"""The stack on separate hosts: Linux network namespaces on one switch stand in for machines (support.py; the
clients and what they observe: traffic.py). PostgreSQL, Redis, S3 (moto), the AIHubMix sandbox, 2 web hosts,
3 forwarder hosts and 1 maintenance host, each configured by its environment alone. The clients and the checks run
in this test process, on its own port of the same switch (10.213.0.1).

One stack serves the module's tests in order: forwarding throughput with 1 then 3 forwarders; 1,000 generations from
3 tenants with a web host cut off mid-submission; a forwarder host cut off for 3 leases; `billing_check` and health
at the end. Figures are printed for the release note.
"""

import hashlib
import os
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import httpx
import pytest

from tests.multihost.support import (
    BUCKET,
    FORWARDER_METRICS_PORT,
    METRICS_TOKEN,
    WEB_PORT,
    Stack,
    address,
    cut_off,
    database,
    forwarders_ready,
    keys_from_output,
    machine_reserved,
    network_create,
    network_destroy,
    s3_client,
    sandbox_prompt_counts,
    setup_script,
    tools_missing,
    wait_until,
    web_ready,
)
from tests.multihost.traffic import (
    Background,
    InFlightSampler,
    Job,
    QueueSampler,
    claim_of,
    events_of,
    images_of,
    lease_events,
    ledger_kinds,
    lost_claims,
    metrics_scrape,
    phase_rows,
    phase_settled,
    running_count,
    stored_objects,
    submit_all,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

TENANTS = ["alpha", "bravo", "charlie"]
MAX_CONCURRENT = 16  # every tenant's plan
# Seconds the sandbox takes per generation: long beside the CPU a forwarder spends per call on this shared 2-core
# machine, so that slots, not the CPU, bound the throughput measurement.
LATENCY = 3.0
FORWARDERS = ("fwd1", "fwd2", "fwd3")
WEB_HOSTS = ("web1", "web2")


@dataclass
class Deployment:
    stack: Stack
    api_keys: dict[str, str]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory):
    missing = tools_missing()
    if missing:
        message = f"the multi-host test needs {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    stack = Stack(tmp_path_factory.mktemp("multihost"))
    with machine_reserved():
        try:
            network_create()
            stack.redis_start()
            stack.s3_start()
            stack.sandbox_start(latency=LATENCY)
            stack.postgres_start()
            stack.services_ready()
            # Deploy order: migrate once as a one-off step, then the long-running processes.
            stack.manage("maint", "migrate", "--noinput", "-v0")
            output = stack.manage("maint", "shell", "-c",
                                  setup_script(tenants=TENANTS, max_concurrent=MAX_CONCURRENT))
            webs = [stack.web_start("web1"), stack.web_start("web2")]
            stack.maintenance_start()
            web_ready(webs)
            yield Deployment(stack=stack, api_keys=keys_from_output(output.stdout))
        finally:
            stack.close()
            network_destroy()


@pytest.fixture
def report(capsys: pytest.CaptureFixture):
    """Figures for the release note, printed even when output is captured."""

    def say(line: str) -> None:
        with capsys.disabled():
            print(f"\n[multihost] {line}", end="")

    return say


def jobs_for(phase: str, counts: dict[str, int]) -> dict[str, list[Job]]:
    run = uuid.uuid4().hex[:8]
    return {
        tenant: [Job(tenant, f"{phase}-{tenant}-{i} {run}", f"{phase}-{tenant}-{i}-{run}") for i in range(count)]
        for tenant, count in counts.items()
    }


def settled_once(rows: list[dict]) -> None:
    """Every generation succeeded, with one CAPTURE (and no RELEASE) on the ledger and one image recorded."""
    assert Counter(row["status"] for row in rows) == {"succeeded": len(rows)}
    kinds = ledger_kinds([row["public_id"] for row in rows])
    wrong = {ref: dict(k) for ref, k in kinds.items() if k != Counter({"hold": 1, "capture": 1})}
    assert not wrong, f"{len(wrong)} generations not held once and captured once: {list(wrong.items())[:5]}"
    images = images_of([row["id"] for row in rows])
    assert all(len(found) == 1 for found in images.values())


def forwarding_rate(rows: list[dict]) -> float:
    """Generations per second from the first claim to the last settlement."""
    return len(rows) / (max(row["finished"] for row in rows) - min(row["started"] for row in rows))


def test_three_forwarders_forward_at_least_2_5_times_as_many_as_one(deployment, report) -> None:
    """With FORWARD_CONCURRENCY=2 and a 3 s upstream, each forwarder's slots are the limit (the tenants' caps are
    16): one forwarder drains a backlog of 12 (6 rounds of its 2 slots), then three drain 36, on the same stack."""
    stack = deployment.stack
    forwarders = [stack.forwarder_start(host, FORWARD_CONCURRENCY="2") for host in FORWARDERS]
    forwarders_ready(forwarders)
    for process in forwarders[1:]:
        process.pause()  # idle until the second measurement: started together, to start once
    rates, busy = {}, {}
    try:
        for count, counts in ((1, dict.fromkeys(TENANTS, 4)), (3, dict.fromkeys(TENANTS, 12))):
            if count == 3:
                for process in forwarders[1:]:
                    process.resume()
            phase = f"tp{count}"
            jobs = jobs_for(phase, counts)
            with InFlightSampler() as in_flight:
                sent = submit_all(jobs, api_keys=deployment.api_keys, threads=dict.fromkeys(TENANTS, 2))
                assert not sent.failures, sent.failures[:3]
                phase_settled(phase + "-", expected=sum(counts.values()), timeout=120)
            rows = phase_rows(phase)
            settled_once(rows)
            rates[count] = forwarding_rate(rows)
            start, end = min(row["started"] for row in rows), max(row["finished"] for row in rows)
            busy[count] = in_flight.mean(start=start, end=end) / (2 * count)
    finally:
        for process in forwarders:
            process.stop()
    report(
        f"throughput, FORWARD_CONCURRENCY=2, upstream {LATENCY:g} s: 1 forwarder {rates[1]:.2f}/s (12 generations,"
        f" slots busy {busy[1]:.0%}), 3 forwarders {rates[3]:.2f}/s (36, slots busy {busy[3]:.0%})"
        f" = {rates[3] / rates[1]:.2f}x"
    )
    assert rates[3] >= 2.5 * rates[1]


def test_thousand_generations_from_three_tenants_each_sent_once_settled_once_fairly(deployment, report) -> None:
    """1,000 generations submitted together by 3 tenants (alpha with three times the clients of the others, so a
    first-come-first-served queue would give it most of the slots), with web1 cut off for 6 s mid-submission while
    the clients retry on web2 with their Idempotency-Key."""
    stack = deployment.stack
    forwarders = [stack.forwarder_start(host, FORWARD_CONCURRENCY="12") for host in FORWARDERS]
    forwarders_ready(forwarders)
    counts = {"alpha": 500, "bravo": 300, "charlie": 200}
    jobs = jobs_for("big", counts)
    cut = {"at": 0.0, "seconds": 6.0}

    def cut_web1(acked: int) -> None:
        if acked == 250:
            def outage() -> None:
                with cut_off("web1"):
                    cut["at"] = time.time()
                    time.sleep(cut["seconds"])
            threading.Thread(target=outage, name="web1-outage", daemon=True).start()

    try:
        with QueueSampler(prompt_prefix="big-") as sampler:
            sent = submit_all(jobs, api_keys=deployment.api_keys, threads={"alpha": 6, "bravo": 2, "charlie": 2},
                              on_ack=cut_web1)
            # A submit given up on (an answer clients do not retry, such as a 500 while Redis was cut off) is
            # named here, rather than showing as a phase that never completes.
            assert not sent.failures, sent.failures[:3]
            phase_settled("big-", expected=1000, timeout=240)
    finally:
        for process in forwarders:
            process.stop()

    # Every accepted submit exists exactly once, under the id the client was given, and nothing else was created.
    assert cut["at"], "web1 was never cut off"
    assert len(sent.acks) == 1000
    rows = phase_rows("big")
    by_prompt = Counter(row["prompt"] for row in rows)
    assert len(rows) == 1000 and set(by_prompt.values()) == {1}
    by_public_id = {row["public_id"]: row for row in rows}
    assert all(by_public_id[ack.generation_id]["prompt"] == ack.job.prompt for ack in sent.acks)
    with database() as conn:
        recorded = dict(conn.execute(
            "SELECT r.key, g.public_id FROM generations_idempotencyrecord r"
            " JOIN generations_generation g ON g.id = r.generation_id WHERE r.key LIKE 'big-%%'"
        ).fetchall())
    assert {ack.job.key: ack.generation_id for ack in sent.acks} == recorded

    # Sent upstream once, settled once.
    upstream = sandbox_prompt_counts()
    calls = Counter(upstream.get(row["prompt"], 0) for row in rows)
    assert calls == {1: 1000}, calls
    settled_once(rows)
    assert {row["attempts"] for row in rows} == {1}
    versions, _deleted = stored_objects()
    keys = [key for found in images_of([row["id"] for row in rows]).values() for key, _sha in found]
    assert all(len(versions.get(key, [])) == 1 for key in keys)

    # Fair: while every tenant had generations waiting, each got a third of the claims, never more running than its
    # plan's max_concurrent, and no tenant finished before another started. First come, first served would have
    # given alpha its share of the queue (~60 %) up to its cap: 16 of the 36 slots, 44 %.
    contended = [s for s in sampler.samples if all(s.queued.get(tenant, 0) > 0 for tenant in TENANTS)]
    assert len(contended) >= 8, f"too short a contended window to judge ({len(contended)} samples)"
    start, end = contended[0].at, contended[-1].at
    claims = Counter(row["tenant"] for row in rows if start <= row["started"] < end)
    shares = {tenant: claims[tenant] / sum(claims.values()) for tenant in TENANTS}
    peaks = {tenant: max(s.running.get(tenant, 0) for s in sampler.samples) for tenant in TENANTS}
    first_start = {t: min(r["started"] for r in rows if r["tenant"] == t) for t in TENANTS}
    last_finish = {t: max(r["finished"] for r in rows if r["tenant"] == t) for t in TENANTS}
    submitted_first = {t: min(r["created"] for r in rows if r["tenant"] == t) for t in TENANTS}
    # (A claim stamps started_at with the time it began, so a generation committed during the claim shows < 0.)
    waits = {t: max(first_start[t] - submitted_first[t], 0.0) for t in TENANTS}
    total = max(r["finished"] for r in rows) - min(r["created"] for r in rows)
    report(
        f"1000 generations (alpha 500 with 6 clients, bravo 300 and charlie 200 with 2 each) in {total:.1f} s"
        f" ({1000 / total:.1f}/s, 3 forwarders x 12 slots, upstream {LATENCY:g} s); upstream calls per"
        f" generation: {dict(calls)}; one CAPTURE each"
    )
    report(
        f"fairness over {end - start:.1f} s with all three queued: claim shares "
        + ", ".join(f"{t} {shares[t]:.0%}" for t in TENANTS)
        + f"; peak running {peaks} (max_concurrent {MAX_CONCURRENT}); first claim after first submit "
        + ", ".join(f"{t} {waits[t]:.2f} s" for t in TENANTS)
    )
    report(
        f"web1 cut off for {cut['seconds']:g} s after 250 accepted submits: {len(sent.acks)} accepted, "
        f"{sent.retries} retries, answers {dict(sorted(sent.answers.items()))}; 1000 generations, one per key"
    )
    assert all(0.28 <= share <= 0.39 for share in shares.values()), shares
    assert all(peak <= MAX_CONCURRENT for peak in peaks.values()), peaks
    assert all(last_finish[a] > first_start[b] for a in TENANTS for b in TENANTS)


def test_forwarder_cut_off_for_three_leases_settles_nothing_taken_over_and_overwrites_no_file(
    deployment, report
) -> None:
    """fwd1's cable is pulled for 3 lease periods while it holds a full set of calls; fwd2 and fwd3 requeue and
    take over what it held; then fwd1 is back, with its stalled calls, uploads and settlements resuming (or finding
    their connections dropped)."""
    stack = deployment.stack
    # Short, but not so short that a forwarder starved of CPU by this shared machine misses its renewals (every
    # lease / 3): at 3 s the healthy forwarders lost leases too.
    lease = 5
    settings = {"FORWARD_CONCURRENCY": "6", "FORWARD_LEASE_SECONDS": str(lease), "FORWARD_REAP_SECONDS": "1",
                "LOG_LEVEL": "INFO"}
    forwarders = [stack.forwarder_start(host, **settings) for host in FORWARDERS]
    forwarders_ready(forwarders)
    fwd1 = forwarders[0]
    jobs = jobs_for("cut", dict.fromkeys(TENANTS, 30))
    outage = 3 * lease + 0.5
    try:
        submitting = Background(lambda: submit_all(jobs, api_keys=deployment.api_keys,
                                                   threads=dict.fromkeys(TENANTS, 1)))
        with database() as conn:
            # 3 forwarders x 6 slots all busy: fwd1 holds 6 calls.
            wait_until(lambda: running_count(conn, "cut-") >= 18, timeout=60, what="every slot busy")
        with cut_off("fwd1"):
            time.sleep(outage)
        sent = submitting.result(timeout=120)
        assert not sent.failures, sent.failures[:3]
        phase_settled("cut-", expected=90, timeout=180)
        rows = phase_rows("cut")
        taken_ids = {row["public_id"] for row in rows if row["unknown_outcomes"] > 0}
        # fwd1's stalled connections resume (or are found dead); wait until every forwarder that lost a claim has
        # noticed, so that nothing it does late is missed below.
        wait_until(lambda: taken_ids <= {gen for gen, _attempt in lost_claims(forwarders)}, timeout=60,
                   what="the forwarders to notice every lease they lost")
        time.sleep(1.0)  # the last deletions of files stored too late
        # Each forwarder's own /metrics, scraped from this host: together they settled each generation once.
        settled_by = {
            process.host: sum(
                sample.value
                for sample in metrics_scrape(
                    f"http://{address(process.host)}:{FORWARDER_METRICS_PORT}/metrics"
                )["imagegen_settlements"]
                if sample.name == "imagegen_settlements_total" and sample.labels["outcome"] == "succeeded"
            )
            for process in forwarders
        }
    finally:
        for process in forwarders:
            process.stop()

    settled_once(rows)
    assert sum(settled_by.values()) == len(rows), settled_by
    lost = lost_claims(forwarders)
    by_fwd1 = lease_events(fwd1)
    assert by_fwd1, "fwd1 lost no claim"
    assert {gen for gen, _attempt in lost} == taken_ids
    # No forwarder settled a claim it lost, and each taken-over generation's files are those of a later attempt (keys
    # carry the attempt). (A healthy forwarder may lose a lease too when this shared machine starves it; the same
    # rules hold for it.)
    assert not lost & set().union(*(events_of(p, "generation.succeeded") for p in forwarders))
    images = images_of([row["id"] for row in rows])
    last_lost = {}
    for gen, attempt in lost:
        last_lost[gen] = max(attempt, last_lost.get(gen, 0))
    for row in rows:
        if row["public_id"] in taken_ids:
            assert row["attempts"] > last_lost[row["public_id"]]
            assert all(f"/attempt-{row['attempts']}/" in key for key, _sha in images[row["id"]])

    # No stored file was overwritten: each recorded key has exactly one version (the bucket keeps every write),
    # holding the bytes the settlement recorded. What a forwarder uploaded after losing its lease went beside them
    # and was deleted by it.
    versions, deleted = stored_objects()
    s3 = s3_client()
    recorded_keys = set()
    for row in rows:
        for key, sha in images[row["id"]]:
            recorded_keys.add(key)
            assert len(versions.get(key, [])) == 1 and key not in deleted, (key, versions.get(key))
            body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
            assert hashlib.sha256(body).hexdigest() == sha
    prefixes = tuple(f"/{row['public_id']}/" for row in rows)
    late = {key for key in versions if any(p in key for p in prefixes)} - recorded_keys
    upstream = sandbox_prompt_counts()
    calls = Counter(upstream.get(row["prompt"], 0) for row in rows if row["public_id"] in taken_ids)
    report(
        f"fwd1 cut off {outage:g} s (3 leases of {lease} s) with its 6 slots busy: it lost {len(by_fwd1)} claims,"
        f" the healthy forwarders {len(lost - by_fwd1)}; {len(taken_ids)} generations taken over and settled once"
        f" (upstream calls for them: {dict(calls)}); no lost claim settled; {len(late)} files stored after a lost"
        f" lease went beside the recorded ones ({len(late & deleted)} deleted by their forwarder); recorded files"
        f" overwritten: 0 of {len(recorded_keys)}; settlements on the forwarders' /metrics {settled_by}"
    )
    # A forwarder whose settlement answered "not yours" deletes its files; one whose settlement could not reach the
    # database until its lease ran out cannot tell whether it committed, and keeps them.
    undecided = set().union(*(events_of(p, "generation.lease_expired_before_settle") for p in forwarders))
    left = {key for key in late - deleted if claim_of(key) not in undecided}
    assert not left, f"files stored after a lost lease were left behind: {sorted(left)}"


def test_billing_check_is_clean_and_every_host_healthy_at_the_end(deployment, report) -> None:
    check = deployment.stack.manage("maint", "billing_check", check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    health = {
        host: httpx.get(f"http://{address(host)}:{WEB_PORT}/healthz", timeout=10).json() for host in WEB_HOSTS
    }
    report(f"{check.stdout.strip()} /healthz: {health}")
    assert all(body["status"] == "ok" for body in health.values()), health
    # /metrics from another host: with the token only.
    url = f"http://{address('web1')}:{WEB_PORT}/metrics"
    assert httpx.get(url, timeout=10).status_code == 404
    families = metrics_scrape(url, token=METRICS_TOKEN)
    assert "imagegen_generations_open" in families, sorted(families)


def test_a_plan_saved_on_one_host_is_served_by_every_web_host_at_once(deployment, report) -> None:
    """The web hosts keep plans in their in-process read cache behind a version token in the shared cache (Redis
    here): a save on the maintenance host is seen by both on their next request."""

    def concurrent_limits() -> dict[str, int]:
        headers = {"Authorization": f"Bearer {deployment.api_keys['charlie']}"}
        limits = {}
        for host in WEB_HOSTS:
            lines = httpx.get(f"http://{address(host)}:{WEB_PORT}/v1/quota", headers=headers, timeout=10).json()
            limits[host] = next(line["limit"] for line in lines["limits"] if line["name"] == "concurrent_generations")
        return limits

    assert concurrent_limits() == dict.fromkeys(WEB_HOSTS, MAX_CONCURRENT)  # cached by both
    deployment.stack.manage("maint", "shell", "-c", (
        "from accounts.services import SYSTEM; from billing.models import Plan; from billing.services.plans import"
        f" plan_save; plan = Plan.objects.get(name='multihost'); plan.max_concurrent = {MAX_CONCURRENT + 4};"
        " plan_save(plan=plan, actor=SYSTEM)"
    ))
    assert concurrent_limits() == dict.fromkeys(WEB_HOSTS, MAX_CONCURRENT + 4)
