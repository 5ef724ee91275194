"""Waking the forwarder. The ORM broker writes the task row inside the caller's transaction (or the caller's one
statement, `forward_wakeup_row`), so a committed generation always has its wake-up; with Redis (or sync mode)
the task is sent only after commit."""

from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ
from django_q.tasks import async_task

FORWARD_TASK = "generations.tasks.forward_generations"


def _enqueue(broker: Any = None) -> None:
    async_task(
        FORWARD_TASK,
        group="forward",
        # read per call (django-q2 reads its settings once at import), so sync mode can be switched in tests
        sync=bool(settings.Q_CLUSTER.get("sync")),
        q_options={"timeout": settings.FORWARD_TASK_TIMEOUT_SECONDS, **({"broker": broker} if broker else {})},
    )


def _writes_rows() -> bool:
    return settings.Q_BROKER == "orm" and not settings.Q_CLUSTER.get("sync")


def forward_wakeup() -> None:
    if _writes_rows():
        _enqueue()
    else:
        transaction.on_commit(_enqueue)


class _RowBroker:
    """Takes django-q2's signed task package instead of writing it, so the row can join the caller's statement."""

    def __init__(self) -> None:
        self.list_key = Conf.CLUSTER_NAME
        self.row: OrmQ | None = None

    def enqueue(self, package: str) -> int:
        self.row = OrmQ(key=self.list_key, payload=package, lock=timezone.now())
        return 0


def forward_wakeup_row() -> OrmQ | None:
    """The wake-up as an unsaved ORM-broker row for the caller to insert with its own rows, or None when the broker
    is not the database (then call `forward_wakeup_after_commit`)."""
    if not _writes_rows():
        return None
    broker = _RowBroker()
    _enqueue(broker)
    return broker.row


def forward_wakeup_after_commit() -> None:
    transaction.on_commit(_enqueue)
