"""Hosts for the multi-host test: Linux network namespaces on one bridge, and the stack's processes in them.

Every host is a namespace `mh-<name>` with one veth (`eth0`, 10.213.0.<n>/24) whose other end (`p-<name>`) is a
port of the bridge `br0` in the namespace `mh-switch`; the machine's own networking is never touched except for one
veth, `mh-root` (10.213.0.1), that gives this test process (the clients and the checks) a port on the same switch.
Cutting a host off is its switch port going down: the host's NIC loses carrier, its packets go nowhere, its open
connections stall (nothing is reset) — a pulled cable. Traffic goes only to the hosts made here.

Each process is configured by its environment alone (`app_environment`): nothing in it names localhost.
"""

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PREFIX = "mh-"
SWITCH = f"{PREFIX}switch"
ROOT_LINK = f"{PREFIX}root"
SUBNET = "10.213.0"
ROOT_ADDRESS = f"{SUBNET}.1"
# Host name → last octet. Hosts are made in this order.
HOSTS = {
    "postgres": 10, "redis": 11, "s3": 12, "sandbox": 13,
    "web1": 21, "web2": 22,
    "fwd1": 31, "fwd2": 32, "fwd3": 33,
    "maint": 41,
}
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)), None)
BUCKET = "imagegen-multihost"
UPSTREAM_KEY = "sk-multihost"
METRICS_TOKEN = "multihost-metrics-token"
WEB_PORT = 8000
FORWARDER_METRICS_PORT = 9300


def address(host: str) -> str:
    return f"{SUBNET}.{HOSTS[host]}"


def netns(host: str) -> str:
    return f"{PREFIX}{host}"


def tools_missing() -> list[str]:
    """What this test needs from the machine and does not find (CI fails on any; elsewhere the test skips)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (network namespaces)")
    for tool in ("ip", "runuser", "redis-server"):
        if shutil.which(tool) is None:
            missing.append(tool)
    if PG_BIN is None or not (PG_BIN / "initdb").exists():
        missing.append("PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
    for tool in ("moto_server", "gunicorn"):
        if not (BIN / tool).exists():
            missing.append(f"{BIN / tool}")
    return missing


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


# --- the network --------------------------------------------------------------------------------------------


def network_leftovers_remove() -> None:
    """A crashed earlier run may have left namespaces (and processes in them): kill those processes, delete
    them. Only names with this test's prefix are touched."""
    listed = _ip("netns", "list", check=False).stdout.split("\n")
    for name in (line.split()[0] for line in listed if line.strip()):
        if not name.startswith(PREFIX):
            continue
        for pid in _ip("netns", "pids", name, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        _ip("netns", "del", name, check=False)
    _ip("link", "del", ROOT_LINK, check=False)


def network_create() -> None:
    network_leftovers_remove()
    for stale in Path(tempfile.gettempdir()).glob("mh-pg-*"):  # a crashed run's cluster, its postgres now killed
        shutil.rmtree(stale, ignore_errors=True)
    taken = _ip("-4", "route", "show", f"{SUBNET}.0/24").stdout.strip()
    if taken:
        raise RuntimeError(f"{SUBNET}.0/24 is already routed on this machine ({taken}); the test needs it free")
    _ip("netns", "add", SWITCH)
    _ip("-n", SWITCH, "link", "set", "lo", "up")
    _ip("-n", SWITCH, "link", "add", "br0", "type", "bridge")
    _ip("-n", SWITCH, "link", "set", "br0", "up")
    for host in HOSTS:
        name = netns(host)
        _ip("netns", "add", name)
        _ip("-n", name, "link", "set", "lo", "up")
        _ip("-n", SWITCH, "link", "add", f"p-{host}", "type", "veth", "peer", "name", "eth0", "netns", name)
        _ip("-n", SWITCH, "link", "set", f"p-{host}", "master", "br0", "up")
        _ip("-n", name, "addr", "add", f"{address(host)}/24", "dev", "eth0")
        _ip("-n", name, "link", "set", "eth0", "up")
    # This process's own port on the switch (the peer is created in this process's namespace).
    _ip("-n", SWITCH, "link", "add", "p-root", "type", "veth", "peer", "name", ROOT_LINK, "netns", str(os.getpid()))
    _ip("-n", SWITCH, "link", "set", "p-root", "master", "br0", "up")
    _ip("addr", "add", f"{ROOT_ADDRESS}/24", "dev", ROOT_LINK)
    _ip("link", "set", ROOT_LINK, "up")


def network_destroy() -> None:
    network_leftovers_remove()


@contextlib.contextmanager
def machine_reserved() -> Iterator[None]:
    """One run at a time on a machine: the namespaces, the subnet and the leftovers cleanup are shared by name, so
    a second run (two test sessions at once) waits here instead of deleting the first one's hosts. A SIGTERM (a CI
    runner's timeout, `kill`) is turned into KeyboardInterrupt so pytest still runs the teardown and no namespace,
    process or PostgreSQL cluster outlives the run."""

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    with open(Path(tempfile.gettempdir()) / "imagegen-multihost.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        previous = signal.signal(signal.SIGTERM, interrupted)
        try:
            yield
        finally:
            signal.signal(signal.SIGTERM, previous)
            fcntl.flock(lock, fcntl.LOCK_UN)


def host_cut(host: str) -> None:
    """Pull the host's cable at the switch."""
    _ip("-n", SWITCH, "link", "set", f"p-{host}", "down")


def host_restore(host: str) -> None:
    _ip("-n", SWITCH, "link", "set", f"p-{host}", "up")


# --- processes ----------------------------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    host: str
    child: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.child.poll() is None

    def pause(self) -> None:
        os.killpg(self.child.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.child.pid, signal.SIGCONT)

    def stop(self, sig: int = signal.SIGKILL, timeout: float = 20.0) -> None:
        if self.child.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.child.pid, sig)
        try:
            self.child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.child.pid, signal.SIGKILL)
            self.child.wait(timeout=10)


def app_environment(**extra: str) -> dict[str, str]:
    """What every app process (web, forwarder, maintenance, one-off commands) gets: addresses of the other hosts
    only, nothing inherited from this machine's environment but PATH and the locale."""
    pg, redis_host, s3 = address("postgres"), address("redis"), address("s3")
    sandbox = f"http://{address('sandbox')}:9100/v1"
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "HOME": tempfile.gettempdir(),
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SECRET_KEY": "multihost-test-secret-key-shared-by-every-host-0123456789",
        "DJANGO_ALLOWED_HOSTS": f"{address('web1')},{address('web2')}",
        "PUBLIC_BASE_URL": f"http://{address('web1')}:{WEB_PORT}",
        "DATABASE_URL": f"postgres://postgres@{pg}:5432/imagegen",
        "Q_BROKER": "redis",
        "REDIS_URL": f"redis://{redis_host}:6379/0",
        "CACHE_URL": f"redis://{redis_host}:6379/1",
        "Q_CLUSTER_NAME": "multihost",
        "Q_WORKERS": "1",
        "STORAGE_BACKEND": "s3",
        "AWS_STORAGE_BUCKET_NAME": BUCKET,
        "AWS_S3_ENDPOINT_URL": f"http://{s3}:5000",
        "AWS_S3_REGION_NAME": "us-east-1",
        "AWS_ACCESS_KEY_ID": "multihost",
        "AWS_SECRET_ACCESS_KEY": "multihost-secret",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AIHUBMIX_API_KEY": UPSTREAM_KEY,
        "AIHUBMIX_BASE_URL": sandbox,
        "AIHUBMIX_TASKS_URL": f"{sandbox}/tasks",
        # The sandbox is on a private address; a real upstream is public.
        "OUTPUT_FETCH_ALLOW_PRIVATE": "true",
        # /metrics on the web hosts is scraped from another host: with a token (without one, loopback only).
        "METRICS_TOKEN": METRICS_TOKEN,
        "LOG_LEVEL": "WARNING",
        **extra,
    }


class Stack:
    """The processes of one test run, each in its host's namespace; `close()` ends them all."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: list[Process] = []
        self.pg_dir: Path | None = None
        self._counter = 0

    def start(self, host: str, name: str, argv: list[str], *, env: dict[str, str] | None = None) -> Process:
        self._counter += 1
        log = self.logs / f"{self._counter:02d}-{name}.log"
        with log.open("wb") as output:
            child = subprocess.Popen(
                ["ip", "netns", "exec", netns(host), *argv], cwd=ROOT, env=env or app_environment(),
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )
        process = Process(name=name, host=host, child=child, log=log)
        self.processes.append(process)
        return process

    def run(self, host: str, argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 300,
            check: bool = True) -> subprocess.CompletedProcess:
        """A one-off command on a host (migrate, billing_check): run to completion."""
        result = subprocess.run(
            ["ip", "netns", "exec", netns(host), *argv], cwd=ROOT, env=env or app_environment(),
            capture_output=True, text=True, timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{argv} on {host} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    def manage(self, host: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
        return self.run(host, [str(BIN / "python"), "manage.py", *args], **kwargs)

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        if self.pg_dir is not None:
            self._pg_ctl("-m", "immediate", "stop", check=False)
            with contextlib.suppress(OSError):  # kept with the others' logs (postgres cannot write there)
                shutil.copy(self.pg_dir / "server.log", self.logs / "postgres.log")
            shutil.rmtree(self.pg_dir, ignore_errors=True)

    # --- the infrastructure hosts -------------------------------------------------------------------------

    def _pg_ctl(self, *args: str, check: bool = True) -> None:
        assert self.pg_dir is not None
        subprocess.run(
            ["ip", "netns", "exec", netns("postgres"), "runuser", "-u", "postgres", "--",
             str(PG_BIN / "pg_ctl"), "-D", str(self.pg_dir / "data"), "-l", str(self.pg_dir / "server.log"),
             "-w", *args],
            check=check, capture_output=True, timeout=120,
        )

    def postgres_start(self) -> None:
        """Its own cluster on the postgres host. A host cut off mid-transaction keeps its locks (the claim lock,
        wallet rows) until PostgreSQL drops its session, and every other host's claims and settlements (and so
        their lease renewals) wait behind them. TCP keepalives with a user timeout drop a silent peer's session
        within ~2 s (well under a lease, 5 s here) and never a slow but connected one."""
        self.pg_dir = Path(tempfile.mkdtemp(prefix="mh-pg-"))
        os.chmod(self.pg_dir, 0o777)  # initdb and postgres run as the postgres user
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(self.pg_dir / "data"),
             "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )
        with (self.pg_dir / "data" / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {SUBNET}.0/24 trust\n")  # the hosts of this test's switch
        options = (
            f"-c listen_addresses={address('postgres')} -c port=5432 -c unix_socket_directories={self.pg_dir}"
            " -c max_connections=200 -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
            " -c tcp_keepalives_idle=1 -c tcp_keepalives_interval=1 -c tcp_keepalives_count=1"
            " -c tcp_user_timeout=1000 -c log_lock_waits=on -c deadlock_timeout=500ms"
        )
        self._pg_ctl("-o", options, "start")
        with psycopg.connect(f"postgres://postgres@{address('postgres')}:5432/postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE imagegen")

    def redis_start(self) -> None:
        self.start("redis", "redis", [
            "redis-server", "--bind", address("redis"), "--port", "6379", "--save", "", "--appendonly", "no",
            "--protected-mode", "no",
        ])

    def s3_start(self) -> None:
        self.start("s3", "s3", [str(BIN / "moto_server"), "-H", address("s3"), "-p", "5000"])

    def sandbox_start(self, *, latency: float) -> None:
        self.start("sandbox", "sandbox", [
            str(BIN / "python"), "manage.py", "aihubmix_sandbox", "--host", address("sandbox"), "--port", "9100",
            "--latency", str(latency), "--api-key", UPSTREAM_KEY,
        ])

    def services_ready(self) -> None:
        """Wait for Redis, S3 and the sandbox (started beforehand, so that they come up side by side), and make
        the bucket."""
        import redis

        client = redis.Redis(host=address("redis"), socket_connect_timeout=0.5)
        wait_until(lambda: _redis_answers(client), timeout=30, what="redis-server")
        wait_until(lambda: _http_answers(f"http://{address('s3')}:5000/"), timeout=90, what="moto_server")
        wait_until(lambda: _http_answers(sandbox_stats_url()), timeout=90, what="the sandbox")
        s3 = s3_client()
        s3.create_bucket(Bucket=BUCKET)
        # Versioning keeps every write: an overwrite of a stored image would show as a second version.
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})

    # --- the app hosts ------------------------------------------------------------------------------------

    def web_start(self, host: str) -> Process:
        """The Procfile's web line (one worker: two cores serve the whole stack)."""
        process = self.start(host, f"web-{host}", [
            str(BIN / "gunicorn"), "project.asgi", "--worker-class", "uvicorn_worker.UvicornWorker",
            "--bind", f"{address(host)}:{WEB_PORT}", "--workers", "1", "--timeout", "120",
        ], env=app_environment(DATABASE_POOL="true"))
        return process

    def maintenance_start(self) -> Process:
        return self.start("maint", "maintenance", [str(BIN / "python"), "manage.py", "qcluster"])

    def forwarder_start(self, host: str, **settings: str) -> Process:
        """A forwarder, serving its own /metrics on its host's address (no web process there)."""
        metrics = {"FORWARD_METRICS_PORT": str(FORWARDER_METRICS_PORT), "FORWARD_METRICS_HOST": address(host)}
        return self.start(host, f"forwarder-{host}", [str(BIN / "python"), "manage.py", "forwarder"],
                          env=app_environment(**metrics, **settings))


def forwarders_ready(processes: list[Process], *, timeout: float = 90) -> None:
    for process in processes:
        wait_until(lambda p=process: "forwarder running" in p.log_text() or not p.alive(), timeout=timeout,
                   what=f"{process.name} to start")
        if not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.log_text()[-3000:]}")


def web_ready(processes: list[Process], *, timeout: float = 90) -> None:
    for process in processes:
        url = f"http://{address(process.host)}:{WEB_PORT}/healthz"
        wait_until(lambda u=url, p=process: _http_answers(u) or not p.alive(), timeout=timeout,
                   what=f"{process.name} to answer")
        if not process.alive():
            raise RuntimeError(f"{process.name} exited:\n{process.log_text()[-3000:]}")


def _redis_answers(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


def _http_answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=2.0)
        return True
    except httpx.TransportError:
        return False


def wait_until(predicate: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    if not predicate():
        raise TimeoutError(f"waited {timeout:.0f} s for {what}")


def s3_client():
    import boto3

    return boto3.client(
        "s3", endpoint_url=f"http://{address('s3')}:5000", region_name="us-east-1",
        aws_access_key_id="multihost", aws_secret_access_key="multihost-secret",
    )


def sandbox_stats_url() -> str:
    return f"http://{address('sandbox')}:9100/_sandbox/stats"


def sandbox_prompt_counts() -> dict[str, int]:
    """Generation requests the sandbox received, per exact prompt."""
    return httpx.get(f"{sandbox_stats_url()}?prompts=1", timeout=10).json()["prompts"]


def database() -> psycopg.Connection:
    return psycopg.connect(f"postgres://postgres@{address('postgres')}:5432/imagegen", autocommit=True)


def setup_script(*, tenants: list[str], max_concurrent: int) -> str:
    """Run by `manage.py shell -c` on the maintenance host: the plan, the tenants with credit, one key each."""
    return f"""
import json
from accounts.services import api_key_create, tenant_create
from billing.models import Plan
from billing.services.wallets import billing_account_open
plan = Plan.objects.create(name="multihost", max_concurrent={max_concurrent}, max_n=10)
keys = {{}}
for slug in {tenants!r}:
    tenant = tenant_create(slug=slug, name=slug.title())
    billing_account_open(tenant=tenant, plan=plan, opening_credit_micros=10_000 * 1_000_000)
    keys[slug] = api_key_create(tenant=tenant, name="multihost").secret
print("KEYS=" + json.dumps(keys))
"""


def keys_from_output(output: str) -> dict[str, str]:
    line = next(line for line in output.splitlines() if line.startswith("KEYS="))
    return json.loads(line.removeprefix("KEYS="))


@contextlib.contextmanager
def cut_off(host: str) -> Iterator[None]:
    host_cut(host)
    try:
        yield
    finally:
        host_restore(host)
