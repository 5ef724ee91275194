"""Waking the forwarder. The ORM broker writes the task row inside the caller's transaction, so a committed
generation always has its wake-up; with Redis (or sync mode) the task is sent only after commit."""

from django.conf import settings
from django.db import transaction
from django_q.tasks import async_task

FORWARD_TASK = "generations.tasks.forward_generations"


def _enqueue() -> None:
    async_task(
        FORWARD_TASK,
        group="forward",
        # read per call (django-q2 reads its settings once at import), so sync mode can be switched in tests
        sync=bool(settings.Q_CLUSTER.get("sync")),
        q_options={"timeout": settings.FORWARD_TASK_TIMEOUT_SECONDS},
    )


def forward_wakeup() -> None:
    if settings.Q_BROKER == "orm" and not settings.Q_CLUSTER.get("sync"):
        _enqueue()
    else:
        transaction.on_commit(_enqueue)
