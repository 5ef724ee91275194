"""The async-task family: tasks stay pending for the latency, and the sandbox's own list of task models is the
catalog's."""

import time

import httpx

from aihubmix_sandbox.families.tasks import ASYNC_MODELS
from aihubmix_sandbox.server import SandboxHandle
from generations.catalog.registry import catalog_seed_specs

AUTH = {"Authorization": "Bearer sk-sandbox-test"}


def test_async_tasks_stay_pending_for_the_latency(aihubmix_sandbox: SandboxHandle) -> None:
    # One client made up front and a latency of a second: on a loaded machine a fresh client per call (SSL context
    # and all) took longer than a short latency, and the first poll already saw Ready.
    aihubmix_sandbox.latency = 1.0
    with httpx.Client(headers=AUTH, timeout=10) as client:
        submitted = client.post(
            f"{aihubmix_sandbox.base_url}/models/bfl/flux-2-pro/predictions",
            json={"input": {"prompt": "a red fox", "aspect_ratio": "1:1"}},
        )
        task_id = submitted.json()["output"][0]["taskId"]

        first = client.get(f"{aihubmix_sandbox.tasks_url}/{task_id}").json()
        time.sleep(1.05)
        later = client.get(f"{aihubmix_sandbox.tasks_url}/{task_id}").json()

    assert first["status"] == "Pending"
    assert later["status"] == "Ready" and later["result"]["sample"].startswith("http://")
    assert (aihubmix_sandbox.calls["tasks.submit"], aihubmix_sandbox.calls["tasks.poll"]) == (1, 2)


def test_an_unknown_task_id_is_not_found(aihubmix_sandbox: SandboxHandle) -> None:
    answer = httpx.get(f"{aihubmix_sandbox.tasks_url}/api.sbx.nope", headers=AUTH).json()
    assert answer == {"id": "api.sbx.nope", "status": "Task not found"}


def test_the_sandbox_runs_as_tasks_exactly_the_models_the_catalog_sends_as_tasks() -> None:
    # Every catalog model, enabled or not: DISABLED_MODELS must not hide a disagreement.
    catalog_task_models = {spec.upstream_model for spec in catalog_seed_specs() if "async_task" in spec.interfaces}
    assert catalog_task_models == ASYNC_MODELS
