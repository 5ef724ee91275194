"""Wake-ups between processes: "generation N is final" for waiting clients, "work is queued" for drains,
"generation N was asked to cancel" for the drain running it, "generation N has a partial image" for its event
streams (the image itself is in the cache: generations/services/partials.py). (Over 400 lines: three transports behind one listener
and one subscription type; split, each would re-export the others' halves.)

The transport follows the deployment:
- Redis pub/sub when Redis is the broker (Q_BROKER=redis): published after commit. Redis channels ignore the db
  number, so channel names carry the database name (tests and checkouts sharing one Redis never cross-talk).
- PostgreSQL LISTEN/NOTIFY otherwise: `pg_notify` runs inside the writer's transaction, so it is delivered exactly
  when (and only if) the change commits.
- Local datagram sockets on SQLite (the zero-setup default, one machine by definition): each listening process
  binds a Unix datagram socket in a directory named after the database file, and a writer sends one datagram to
  each socket there after commit. Without it a forwarder found new work only on its next poll (p50 0.9 s in the
  queue). If the directory cannot be used, subscribers fall back to a short timer (NOTIFY_POLL_SECONDS).

Notifications are hints, never the record: a subscriber always re-reads the database after `wait()` returns, and
`wait()` returns at least every `recheck_seconds` even without one, so a lost notification (listener reconnecting,
broker down) delays a wake-up by at most that long and never loses work or a result.

Each process has at most one listener (a daemon thread with one connection) shared by all its subscribers, sync or
async, on any event loop; it starts with the first subscription and stops NOTIFY_LISTENER_LINGER_SECONDS after the
last one ends.
"""

import asyncio
import contextlib
import hashlib
import os
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial

import psycopg
import redis
import structlog
from django.conf import settings
from django.db import connections, transaction

logger = structlog.get_logger(__name__)

GENERATION_FINISHED = "generation_finished"
GENERATION_CANCEL = "generation_cancel"
WORK_AVAILABLE = "work_available"
GENERATION_PARTIAL = "generation_partial"
_CHANNELS = (GENERATION_FINISHED, GENERATION_CANCEL, WORK_AVAILABLE, GENERATION_PARTIAL)
_PG_PREFIX = "imagegen_"


def notifications_transport() -> str:
    """'redis', 'postgres', 'local' (SQLite: datagram sockets on this machine) or 'poll'."""
    if settings.Q_BROKER == "redis":
        return "redis"
    if connections["default"].vendor == "postgresql":
        return "postgres"
    if settings.NOTIFY_LOCAL_SOCKETS and _local_socket_dir() is not None:
        return "local"
    return "poll"


_SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes on Linux; leave room for the file name's terminator


_socket_dirs: dict[tuple[str, str], str | None] = {}


def _local_socket_dir() -> str | None:
    """The directory of this database's listening sockets (created on first use), None if it can't be made.
    Named after the database file, so two checkouts or a test database never wake each other's processes."""
    name = str(connections["default"].settings_dict["NAME"])
    key = (str(settings.NOTIFY_SOCKET_DIR), name)
    if key not in _socket_dirs:
        _socket_dirs[key] = _local_socket_dir_make(name)
    return _socket_dirs[key]


def _local_socket_dir_make(name: str) -> str | None:
    digest = hashlib.sha1(os.path.abspath(name).encode()).hexdigest()[:12]
    for base in (str(settings.NOTIFY_SOCKET_DIR), os.path.join(tempfile.gettempdir(), "imagegen-notify")):
        directory = os.path.join(base, digest)
        if len(directory) + 40 > _SOCKET_PATH_MAX:
            continue  # a deep checkout: the socket path would not fit, try the temporary directory
        try:
            os.makedirs(directory, mode=0o700, exist_ok=True)
        except OSError:
            continue
        return directory
    return None


def _redis_channel(channel: str) -> str:
    return f"imagegen:{connections['default'].settings_dict['NAME']}:{channel}"


# --- Sending ------------------------------------------------------------------------------------------------

_redis_sender: redis.Redis | None = None
_redis_sender_down_until = 0.0


def _redis_publish(channel: str, payload: str) -> None:
    """Best effort: the change is committed; a failed publish only delays subscribers until their recheck."""
    global _redis_sender, _redis_sender_down_until
    if time.monotonic() < _redis_sender_down_until:
        return  # Redis just failed: don't make every request pay its connect timeout
    try:
        if _redis_sender is None:
            _redis_sender = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
        _redis_sender.publish(_redis_channel(channel), payload)
    except redis.RedisError as error:
        _redis_sender_down_until = time.monotonic() + 1.0
        logger.warning("notification_publish_failed", channel=channel, error=str(error))


def _local_publish(directory: str, channel: str, payload: str) -> None:
    """One datagram to every process listening on this database. Best effort, never blocking: a full receiver
    queue drops the hint (the receiver re-reads on its recheck anyway), and a socket whose process died is
    removed."""
    message = f"{channel}\n{payload}".encode()
    try:
        names = os.listdir(directory)
    except OSError:
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sender:
        sender.setblocking(False)
        for name in names:
            if not name.endswith(".sock"):
                continue
            path = os.path.join(directory, name)
            try:
                sender.sendto(message, path)
            except (ConnectionRefusedError, FileNotFoundError):
                with contextlib.suppress(OSError):
                    os.unlink(path)  # its process is gone
            except OSError:
                pass  # BlockingIOError (queue full) and the like: a lost hint only delays until the recheck


def _send(channel: str, payload: str) -> None:
    transport = notifications_transport()
    if transport == "postgres":
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_notify(%s, %s)", [_PG_PREFIX + channel, payload])
    elif transport == "redis":
        # robust: a publish error must never turn a committed change into an error answer
        transaction.on_commit(partial(_redis_publish, channel, payload), robust=True)
    elif transport == "local":
        directory = _local_socket_dir()
        if directory is not None:
            transaction.on_commit(partial(_local_publish, directory, channel, payload), robust=True)


def notify_generation_finished(*, generation_id: int) -> None:
    """Call inside the transaction that makes the generation final; sent when it commits."""
    _send(GENERATION_FINISHED, str(generation_id))


def notify_generations_finished(*, generation_ids: list[int]) -> None:
    """`notify_generation_finished` for a batch, in one statement on PostgreSQL."""
    if notifications_transport() == "postgres" and generation_ids:
        with connections["default"].cursor() as cursor:
            cursor.execute(
                # One comma-joined text: adapting a Python list as an array costs more than the whole notify.
                "SELECT pg_notify(%s, id) FROM unnest(string_to_array(%s, ',')) AS id",
                [_PG_PREFIX + GENERATION_FINISHED, ",".join(str(gid) for gid in generation_ids)],
            )
        return
    for generation_id in generation_ids:
        notify_generation_finished(generation_id=generation_id)


def notify_generation_cancel(*, generation_id: int) -> None:
    """Call inside the transaction that marks a running generation cancel-requested; sent when it commits."""
    _send(GENERATION_CANCEL, str(generation_id))


def notify_generation_partial(*, generation_id: int) -> None:
    """A partial image of the generation is in the cache. Sent at once outside a transaction (the forwarder's
    case), else at commit."""
    _send(GENERATION_PARTIAL, str(generation_id))


def notify_work_available() -> None:
    """Call inside (or after) the transaction that makes work claimable; sent when it commits. Many calls are
    coalesced by the subscribers: a drain is woken once, then claims everything there is."""
    _send(WORK_AVAILABLE, "")


def work_available_notice_sql() -> tuple[str, list[str]] | None:
    """`notify_work_available` as an SQL expression, for a caller that writes in one statement and would otherwise
    spend a second round trip on the notice; None when the transport is not PostgreSQL (then call
    `notify_work_available`)."""
    if notifications_transport() != "postgres":
        return None
    return "pg_notify(%s, %s)", [_PG_PREFIX + WORK_AVAILABLE, ""]


# --- Listening ----------------------------------------------------------------------------------------------


class Subscription:
    """One subscriber's mailbox, on one or more channels. `wait()` returns True when a notification arrived since
    the last wait. An unkeyed subscription receives every notice on its channels and collects their keys
    (`take_keys()`)."""

    def __init__(self, listener: "_Listener | None", channels: tuple[str, ...], key: str | None) -> None:
        self._listener = listener
        self.channels = channels
        self.key = key
        self._flag = threading.Event()
        self._keys: set[str] = set()
        self._keys_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async_event: asyncio.Event | None = None

    @property
    def recheck_seconds(self) -> float:
        """How long a subscriber may go without re-reading the database: short while nothing can wake it."""
        if self._listener is not None and self._listener.connected.is_set():
            return settings.NOTIFY_RECHECK_SECONDS
        return settings.NOTIFY_POLL_SECONDS

    @property
    def live(self) -> bool:
        """Whether notifications can arrive right now (False on SQLite or while the listener reconnects)."""
        return self._listener is not None and self._listener.connected.is_set()

    def _deliver(self, payload: str | None) -> None:  # listener thread
        if payload and self.key is None:
            with self._keys_lock:
                self._keys.add(payload)
        self._flag.set()
        if self._loop is not None and self._async_event is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed; nobody is waiting any more
                self._loop.call_soon_threadsafe(self._async_event.set)

    def _take(self) -> bool:
        notified = self._flag.is_set()
        self._flag.clear()
        if self._async_event is not None:
            self._async_event.clear()
        return notified

    def take_keys(self) -> set[str]:
        """The keys notified since the last call (unkeyed subscriptions only)."""
        with self._keys_lock:
            keys, self._keys = self._keys, set()
        return keys

    async def wait(self, timeout: float) -> bool:
        """Wait for a notification, at most `timeout` and at most `recheck_seconds`; then re-read the database."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop, self._async_event = loop, asyncio.Event()
        if not self._flag.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._async_event.wait(), max(0.0, min(timeout, self.recheck_seconds)))
        return self._take()

    def wait_sync(self, timeout: float) -> bool:
        self._flag.wait(max(0.0, min(timeout, self.recheck_seconds)))
        return self._take()


class _Listener:
    """The process's one listening connection, on a daemon thread."""

    def __init__(self, transport: str) -> None:
        self.transport = transport
        self.connected = threading.Event()
        self.ever_connected = False
        self.stopped = threading.Event()
        self.subscribers: dict[tuple[str, str | None], set[Subscription]] = {}
        self.idle_since: float | None = None
        self.lock = threading.Lock()
        if transport == "local":
            self.socket_dir = _local_socket_dir()
        elif transport == "postgres":
            params = connections["default"].settings_dict
            self.conninfo = {
                "dbname": params["NAME"],
                "user": params.get("USER") or None,
                "password": params.get("PASSWORD") or None,
                "host": params.get("HOST") or None,
                "port": params.get("PORT") or None,
            }
        else:
            self.redis_url = settings.REDIS_URL
            self.redis_channels = {_redis_channel(channel): channel for channel in _CHANNELS}
        self.thread = threading.Thread(target=self._run, name=f"notifications-{transport}", daemon=True)
        self.thread.start()

    # subscribers ---------------------------------------------------------------------------------------
    def add(self, subscription: Subscription) -> None:
        with self.lock:
            for channel in subscription.channels:
                self.subscribers.setdefault((channel, subscription.key), set()).add(subscription)
            self.idle_since = None

    def remove(self, subscription: Subscription) -> None:
        with self.lock:
            for channel in subscription.channels:
                group = self.subscribers.get((channel, subscription.key))
                if group is not None:
                    group.discard(subscription)
                    if not group:
                        del self.subscribers[(channel, subscription.key)]
            if not self.subscribers:
                self.idle_since = time.monotonic()

    def _dispatch(self, channel: str, payload: str) -> None:
        with self.lock:
            # keyed subscribers get their key's notices; unkeyed ones get every notice on the channel
            targets = [*self.subscribers.get((channel, payload), ())] if payload else []
            targets += self.subscribers.get((channel, None), ())
        for subscription in targets:
            subscription._deliver(payload)

    def _wake_everyone(self) -> None:
        with self.lock:
            targets = [subscription for group in self.subscribers.values() for subscription in group]
        for subscription in targets:
            subscription._deliver(None)

    def _should_stop(self) -> bool:
        with self.lock:
            linger = settings.NOTIFY_LISTENER_LINGER_SECONDS
            if self.idle_since is not None and time.monotonic() - self.idle_since >= linger:
                self.stopped.set()
        return self.stopped.is_set()

    # the thread ----------------------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = 0.1
        while not self._should_stop():
            try:
                if self.transport == "postgres":
                    self._listen_postgres()
                elif self.transport == "local":
                    self._listen_local()
                else:
                    self._listen_redis()
                backoff = 0.1
            except Exception as error:  # any failure: reconnect; subscribers fall back to their short recheck
                logger.warning("notification_listener_failed", transport=self.transport, error=str(error))
                self.connected.clear()
                self._wake_everyone()  # what happened while disconnected is unknown: everyone re-reads
                self.stopped.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self.connected.clear()

    def _listen_postgres(self) -> None:
        with psycopg.connect(**self.conninfo, autocommit=True, connect_timeout=5) as connection:
            for channel in _CHANNELS:
                connection.execute(f"LISTEN {_PG_PREFIX}{channel}")
            self._on_connected()
            while not self._should_stop():
                for notice in connection.notifies(timeout=0.5):
                    self._dispatch(notice.channel.removeprefix(_PG_PREFIX), notice.payload)

    def _listen_local(self) -> None:
        if self.socket_dir is None:
            raise OSError("no directory for notification sockets")
        os.makedirs(self.socket_dir, mode=0o700, exist_ok=True)  # removed while we ran (`make clean`)
        path = os.path.join(self.socket_dir, f"{os.getpid()}-{uuid.uuid4().hex[:8]}.sock")
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
            listener.bind(path)
            try:
                listener.settimeout(0.5)
                self._on_connected()
                while not self._should_stop():
                    try:
                        message = listener.recv(4096)
                    except TimeoutError:
                        continue
                    channel, _, payload = message.decode().partition("\n")
                    if channel in _CHANNELS:
                        self._dispatch(channel, payload)
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(path)

    def _listen_redis(self) -> None:
        client = redis.Redis.from_url(self.redis_url, socket_connect_timeout=2, socket_timeout=5)
        try:
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe(*self.redis_channels)
            self._on_connected()
            while not self._should_stop():
                message = pubsub.get_message(timeout=0.5)
                if message is not None and message["type"] == "message":
                    channel = self.redis_channels.get(message["channel"].decode())
                    if channel is not None:
                        self._dispatch(channel, message["data"].decode())
            pubsub.close()
        finally:
            client.close()

    def _on_connected(self) -> None:
        reconnected = self.ever_connected
        self.ever_connected = True
        self.connected.set()
        if reconnected:
            self._wake_everyone()  # notices sent while disconnected are lost: everyone re-reads


_listener: _Listener | None = None
_listener_lock = threading.Lock()


def _listener_get() -> _Listener | None:
    global _listener
    transport = notifications_transport()
    if transport == "poll":
        return None
    with _listener_lock:
        if (_listener is None or _listener.stopped.is_set() or not _listener.thread.is_alive()
                or _listener.transport != transport):
            if _listener is not None:
                _listener.stopped.set()
            _listener = _Listener(transport)
        return _listener


def _subscription_open(channel: str, key: str | None, also: tuple[str, ...] = ()) -> Subscription:
    listener = _listener_get()
    subscription = Subscription(listener, (channel, *also), key)
    if listener is not None:
        listener.add(subscription)
    return subscription


def _subscription_close(subscription: Subscription) -> None:
    if subscription._listener is not None:
        subscription._listener.remove(subscription)


@contextlib.contextmanager
def subscribe(channel: str, *, key: str | None = None) -> Iterator[Subscription]:
    """Subscribe, then (inside the block) read the database, then `wait_sync()`; in that order nothing is missed.
    Blocks up to NOTIFY_CONNECT_WAIT_SECONDS for a fresh listener to connect."""
    subscription = _subscription_open(channel, key)
    try:
        if subscription._listener is not None:
            subscription._listener.connected.wait(settings.NOTIFY_CONNECT_WAIT_SECONDS)
        yield subscription
    finally:
        _subscription_close(subscription)


@contextlib.asynccontextmanager
async def asubscribe(
    channel: str, *, key: str | None = None, also: tuple[str, ...] = ()
) -> AsyncIterator[Subscription]:
    """`subscribe` for async code: waits for the listener without blocking the event loop. `also`: more channels
    that wake the same subscription."""
    subscription = _subscription_open(channel, key, also)
    try:
        listener = subscription._listener
        if listener is not None and not listener.connected.is_set():
            deadline = time.monotonic() + settings.NOTIFY_CONNECT_WAIT_SECONDS
            while not listener.connected.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
        yield subscription
    finally:
        _subscription_close(subscription)


async def wait_for_generation(
    *, generation_id: int, is_final: Callable[[], Awaitable[bool]], timeout_seconds: float
) -> bool:
    """Wait until `is_final()` (a database read) says so, re-reading it on each notification for this generation
    and at least every `recheck_seconds`. Holds no thread while waiting. Returns whether it became final."""
    deadline = time.monotonic() + timeout_seconds
    async with asubscribe(GENERATION_FINISHED, key=str(generation_id)) as subscription:
        while True:
            if await is_final():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            await subscription.wait(remaining)


def notifications_stop() -> None:
    """Stop this process's listener now (tests: before the test database is dropped)."""
    global _listener
    with _listener_lock:
        listener, _listener = _listener, None
    if listener is not None:
        listener.stopped.set()
        listener.thread.join(timeout=5)
