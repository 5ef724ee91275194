"""Wake-ups between processes: delivered on commit (never for a rollback), over PostgreSQL, Redis and the local
sockets of the SQLite default, and a subscriber whose notification is lost still sees the change on its recheck."""

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import redis
from django.db import transaction

from generations import notifications
from generations.notifications import (
    GENERATION_FINISHED,
    WORK_AVAILABLE,
    notify_generation_finished,
    notify_work_available,
    subscribe,
    wait_for_generation,
)

pytestmark = pytest.mark.django_db(transaction=True)


def _redis_available() -> bool:
    from django.conf import settings

    try:
        return bool(redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture
def socket_dir(settings, monkeypatch):
    """The local transport (what SQLite uses) on any database: it is plain sockets, whatever the vendor."""
    directory = tempfile.mkdtemp(prefix="ntf")  # short: a socket path must fit in 108 bytes
    settings.NOTIFY_SOCKET_DIR = directory
    monkeypatch.setattr(notifications, "notifications_transport", lambda: "local")
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=["postgres", pytest.param("redis", marks=pytest.mark.skipif(
    not os.environ.get("CI") and not _redis_available(), reason="Redis is not reachable")), "local"])
def transport(request, settings):
    from django.db import connection

    if request.param == "local":
        request.getfixturevalue("socket_dir")
    elif connection.vendor != "postgresql":
        pytest.skip("LISTEN/NOTIFY and the Redis transport are exercised on PostgreSQL")
    settings.Q_BROKER = "redis" if request.param == "redis" else "orm"
    settings.NOTIFY_RECHECK_SECONDS = 30.0  # a wake-up inside the test's bound can only be the notification
    notifications.notifications_stop()
    yield request.param
    notifications.notifications_stop()


def test_sqlite_uses_the_local_sockets(settings) -> None:
    from django.db import connection

    if connection.vendor != "sqlite":
        pytest.skip("the default transport on SQLite")
    assert notifications.notifications_transport() == "local"


def test_a_commit_in_another_process_wakes_the_subscriber_at_once(transport) -> None:
    if transport != "local":
        pytest.skip("the cross-process case of the local sockets (the others are servers)")
    with subscribe(WORK_AVAILABLE) as work:
        assert notifications._listener.connected.is_set()
        directory = notifications._local_socket_dir()
        # Another process on this machine (a web worker that committed a submit) sends its notice.
        code = (
            "import sys; from generations.notifications import _local_publish; "
            "_local_publish(sys.argv[1], 'work_available', '')"
        )
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings"}
        started = time.monotonic()
        subprocess.run([sys.executable, "-c", code, directory], check=True, env=env, timeout=60)
        assert work.wait_sync(5) is True
        assert time.monotonic() - started < 5  # the process start; the notice itself takes microseconds


def test_a_dead_listener_socket_is_removed_and_does_not_block_the_sender(socket_dir) -> None:
    directory = notifications._local_socket_dir()
    stale = os.path.join(directory, "999999-dead.sock")
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as dead:
        dead.bind(stale)  # closed without unlinking: what a killed process leaves behind
    with subscribe(GENERATION_FINISHED, key="5") as waiter:
        with transaction.atomic():
            notify_generation_finished(generation_id=5)
        assert waiter.wait_sync(5) is True
    assert not os.path.exists(stale)
    notifications.notifications_stop()


def test_a_commit_wakes_the_subscriber_at_once_and_a_rollback_never(transport) -> None:
    with subscribe(GENERATION_FINISHED, key="41") as other, subscribe(GENERATION_FINISHED, key="42") as mine:
        assert notifications._listener.connected.is_set()
        try:
            with transaction.atomic():
                notify_generation_finished(generation_id=42)
                raise RuntimeError
        except RuntimeError:
            pass
        assert mine.wait_sync(0.5) is False
        with transaction.atomic():
            notify_generation_finished(generation_id=42)
            assert mine.wait_sync(0.3) is False  # not before the commit
        started = time.monotonic()
        assert mine.wait_sync(5) is True
        assert time.monotonic() - started < 1
        assert other.wait_sync(0.2) is False  # another generation's waiter is not woken


def test_work_notices_are_coalesced_for_a_drain(transport) -> None:
    with subscribe(WORK_AVAILABLE) as work:
        for _ in range(20):
            notify_work_available()
        assert work.wait_sync(5) is True
        time.sleep(0.2)  # the rest arrive; they are one wake-up, not twenty
        work.wait_sync(0.1)
        assert work.wait_sync(0.3) is False


def test_an_async_waiter_holds_no_thread_and_wakes_on_the_notification(transport) -> None:
    finished = threading.Event()

    async def is_final() -> bool:
        return finished.is_set()

    def finish_later() -> None:
        time.sleep(0.3)
        finished.set()
        notify_generation_finished(generation_id=7)

    async def main() -> tuple[bool, float]:
        started = time.monotonic()
        threading.Thread(target=finish_later).start()
        result = await wait_for_generation(generation_id=7, is_final=is_final, timeout_seconds=10)
        return result, time.monotonic() - started

    result, elapsed = asyncio.run(main())
    assert result is True and elapsed < 2


def test_without_a_notification_the_waiter_rechecks_and_times_out(settings) -> None:
    settings.NOTIFY_RECHECK_SECONDS = 0.1
    settings.NOTIFY_POLL_SECONDS = 0.1
    checks = []
    state = {"final": False}

    async def is_final() -> bool:
        checks.append(time.monotonic())
        if len(checks) == 4:
            state["final"] = True  # changed without any notification (a lost one)
        return state["final"]

    assert asyncio.run(wait_for_generation(generation_id=1, is_final=is_final, timeout_seconds=10)) is True
    assert asyncio.run(wait_for_generation(generation_id=2, is_final=lambda: asyncio.sleep(0, False),
                                           timeout_seconds=0.3)) is False
    notifications.notifications_stop()
