"""The async-task family: a predictions call for a FLUX model answers a task id at once; GET /v1/tasks/<id>
says Pending until the latency has passed, then Ready with an image URL."""

import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aihubmix_sandbox.faults import fault_task_answer
from aihubmix_sandbox.outputs import output_url
from aihubmix_sandbox.render import format_for, size_parse

if TYPE_CHECKING:
    from aihubmix_sandbox.server import SandboxHandler

# The upstream's own list, not read from our catalog: the sandbox stands in for AIHubMix and imports none of our
# apps. tests/aihubmix_sandbox/families/test_tasks.py checks that it agrees with the catalog.
# FLUX.1-Kontext-pro is not among them: it answers in one step ("使用通用接口,一步到位").
ASYNC_MODELS = frozenset({"flux-kontext-max", "flux-2-flex", "flux-2-pro"})


@dataclass
class Task:
    prompt: str
    model: str
    width: int
    height: int
    image_format: str
    ready_at: float
    fault: str | None


def task_submit(
    http: "SandboxHandler", *, model_path: str, prompt: str, size: Any, output_format: Any, fault: str | None
) -> None:
    http.state.count("tasks.submit")
    width, height = size_parse(size)
    task_id = f"api.sbx.{uuid.uuid4().hex}"
    task = Task(
        prompt=prompt,
        model=model_path,
        width=width,
        height=height,
        image_format=str(output_format or "jpeg"),
        ready_at=time.monotonic() + http.state.latency,
        fault=fault,
    )
    http.state.task_add(task_id, task)
    http.reply_json(
        200, {"output": [{"taskId": task_id, "polling_url": f"{http.public_base()}/v1/tasks/{task_id}"}]}
    )


def task_poll(http: "SandboxHandler", task_id: str) -> None:
    http.state.count("tasks.poll")
    task = http.state.task_get(task_id)
    # An unknown id answers exactly like the `task-not-found` fault.
    ready = task is not None and time.monotonic() >= task.ready_at
    faulted = fault_task_answer(task_id, task.fault if task else "task-not-found", ready=ready)
    if faulted is not None:
        http.reply_json(200, faulted)
        return
    if not ready:
        http.reply_json(200, {"id": task_id, "status": "Pending", "progress": None})
        return
    _, _, ext = format_for(task.image_format)
    url = output_url(
        base=http.public_base(),
        prompt=task.prompt,
        model=task.model,
        width=task.width,
        height=task.height,
        index=0,
        ext=ext,
        fault=task.fault,
    )
    http.reply_json(200, {"id": task_id, "status": "Ready", "result": {"sample": url, "prompt": task.prompt}})
