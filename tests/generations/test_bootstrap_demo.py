import pytest
from django.core.management import call_command
from rest_framework.test import APIClient

from accounts.models import ApiKey
from billing.models import Price, Wallet
from generations.forwarder import forward_drain
from tests.generations.images_support import RED_URL

pytestmark = pytest.mark.django_db


def test_bootstrap_demo_creates_a_funded_tenant_and_reprints_the_same_key(tmp_path, capsys) -> None:
    key_file = tmp_path / "demo-key"
    call_command("bootstrap_demo", "--key-file", str(key_file))
    first = capsys.readouterr().out.strip().splitlines()[-1]
    call_command("bootstrap_demo", "--key-file", str(key_file))
    second = capsys.readouterr().out.strip().splitlines()[-1]
    assert first == second == key_file.read_text().strip()
    assert ApiKey.objects.filter(tenant__slug="demo").count() == 1
    assert Wallet.objects.get(tenant__slug="demo").balance_micros == 100_000_000


def test_bootstrap_demo_replaces_a_revoked_key(tmp_path, capsys) -> None:
    key_file = tmp_path / "demo-key"
    call_command("bootstrap_demo", "--key-file", str(key_file))
    first = capsys.readouterr().out.strip().splitlines()[-1]
    ApiKey.objects.filter(tenant__slug="demo").update(revoked=True)
    call_command("bootstrap_demo", "--key-file", str(key_file))
    second = capsys.readouterr().out.strip().splitlines()[-1]
    assert second != first and ApiKey.objects.get(tenant__slug="demo", revoked=False).is_valid(second)


def _demo_client(key_file) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key_file.read_text().strip()}")
    return client


def _request_for(model: dict) -> dict:
    """The smallest valid request for a listed model, built only from what GET /v1/models says about it."""
    body: dict = {"model": model["id"], "prompt": "a lighthouse at dawn"}
    if "generate" not in model["operations"]:
        body["input_images"] = [RED_URL]
    return body


@pytest.mark.slow  # every catalog model
@pytest.mark.django_db(transaction=True)
def test_in_sandbox_mode_every_model_listed_for_the_demo_tenant_succeeds_end_to_end(
    tmp_path, capsys, forwarding
) -> None:
    key_file = tmp_path / "demo-key"
    call_command("bootstrap_demo", "--key-file", str(key_file))
    assert "unpriced models now cost a demo" in capsys.readouterr().out
    client = _demo_client(key_file)

    models = client.get("/v1/models").json()["data"]
    usable = [model for model in models if model["available"]]
    unusable = {model["id"]: model["unavailable_reason"] for model in models if not model["available"]}
    created = {}
    # The demo tenant is on the default plan: at most 8 generations in flight.
    for start in range(0, len(usable), 8):
        for model in usable[start : start + 8]:
            response = client.post("/v1/generations", _request_for(model), format="json")
            assert response.status_code == 202, (model["id"], response.json())
            created[model["id"]] = response.json()["id"]
        forward_drain()

    finished = {model_id: client.get(f"/v1/generations/{public_id}").json() for model_id, public_id in created.items()}
    failed = {model_id: g["error"] for model_id, g in finished.items() if g["status"] != "succeeded"}
    assert failed == {}
    assert all(generation["images_returned"] >= 1 for generation in finished.values())
    # Everything the shipped catalog serves is usable in the sandbox, the retired models aside; the shipped data
    # prices every model but irag-1.0, the one the demo prices.
    retired = {"openai/gpt-image-1", "openai/gpt-image-1.5", "google/imagen-4.0-generate-001",
               "google/imagen-4.0-ultra-generate-001", "google/imagen-4.0-fast-generate-001"}
    assert unusable == dict.fromkeys(retired, "retired") and len(usable) == len(models) - 5 >= 24
    demo_priced = Price.objects.filter(note__startswith="DEMO PRICE").values_list("model_id", flat=True)
    assert set(demo_priced) == {"qianfan/irag-1.0"}


def test_against_the_real_upstream_bootstrap_demo_sets_no_demo_prices(tmp_path, settings) -> None:
    settings.AIHUBMIX_BASE_URL = "https://aihubmix.com/v1"
    call_command("bootstrap_demo", "--key-file", str(tmp_path / "demo-key"))
    assert not Price.objects.filter(note__startswith="DEMO PRICE").exists()
