"""Lifecycle by the calendar: a model past its shutdown date is retired without any staff edit (410, nothing sent,
nothing charged), queued work of such a model is released unsent, the shipped data retires what the vendors shut
down, every current model is priced on migrate (irag-1.0 aside), and every id ever shipped still resolves."""

import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import User
from accounts.services import SYSTEM
from billing.models import Price
from generations.catalog.lookup import catalog_entry_find, model_id_resolve
from generations.catalog.registry import catalog_seed_data
from generations.models import CatalogModel, Generation
from generations.services.catalog import catalog_model_save
from generations.services.leases import generation_claim_batch
from tests.generations.support import LOW_SQUARE

# Every id and alias a shipped catalog version published (generations/catalog/data/models.json through its history,
# and the Python catalog before it): each must keep resolving, to the model or to its 410.
SHIPPED_IDS = sorted(
    {name for entry in catalog_seed_data() for name in (entry["id"], entry["alias"])} | {"bfl/flux-kontext-pro"}
)


@pytest.fixture
def staff_user_client(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("calendar@example.com", "pw-123456789"))
    return client


def deprecate_until(model_id: str, shutdown_at) -> None:
    row = CatalogModel.objects.get(model_id=model_id)
    row.status = "deprecated"
    row.shutdown_at = shutdown_at
    catalog_model_save(row=row, actor=SYSTEM)


@pytest.mark.django_db
def test_the_shipped_data_retires_what_the_vendors_shut_down(make_customer) -> None:
    customer = make_customer()
    models = {model["id"]: model for model in customer.client.get("/v1/models").json()["data"]}
    for model_id, replacement in (
        ("openai/gpt-image-1", "openai/gpt-image-2"),
        ("openai/gpt-image-1.5", "openai/gpt-image-2"),
        ("google/imagen-4.0-generate-001", "google/gemini-3.1-flash-image"),
        ("google/imagen-4.0-ultra-generate-001", "google/gemini-3.1-flash-image"),
        ("google/imagen-4.0-fast-generate-001", "google/gemini-3.1-flash-image"),
    ):
        assert models[model_id]["lifecycle"]["status"] == "retired"
        assert models[model_id]["lifecycle"]["replacement"] == replacement
        response = customer.client.post("/v1/generations", {"model": model_id, "prompt": "a fox"}, format="json")
        assert response.status_code == 410
        assert response.json()["error"]["code"] == "model_retired" and replacement in response.json()["error"]["message"]
    assert not Generation.objects.exists()
    assert customer.ledger() == []


@pytest.mark.django_db
def test_a_model_past_its_shutdown_date_is_retired_without_any_edit(make_customer) -> None:
    customer = make_customer()
    deprecate_until("openai/gpt-image-2", timezone.now() + timedelta(seconds=1))
    assert customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "before"}, format="json").status_code == 202

    time.sleep(1.1)  # the date passes; no row changes, no cache is bumped

    listed = {model["id"]: model for model in customer.client.get("/v1/models").json()["data"]}
    response = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "after"}, format="json")
    assert listed["openai/gpt-image-2"]["lifecycle"]["status"] == "retired"
    assert (response.status_code, response.json()["error"]["code"]) == (410, "model_retired")
    assert Generation.objects.count() == 1


@pytest.mark.django_db
def test_a_queued_generation_whose_model_retires_is_failed_and_released_unsent(make_customer) -> None:
    customer = make_customer()
    deprecate_until("openai/gpt-image-2", timezone.now() + timedelta(seconds=1))
    queued = customer.client.post("/v1/generations", {**LOW_SQUARE, "prompt": "late"}, format="json").json()
    assert customer.wallet().held_micros > 0

    time.sleep(1.1)
    claims = generation_claim_batch(limit=10, lease_seconds=60)

    generation = Generation.objects.get(public_id=queued["id"])
    assert claims == []  # nothing goes to the forwarder, so nothing is sent upstream
    assert (generation.status, generation.error_code, generation.charged_micros) == ("failed", "model_retired", 0)
    wallet = customer.wallet()
    assert (wallet.held_micros, wallet.balance_micros) == (0, 50_000_000)
    assert [kind for kind, _ in customer.ledger(queued["id"])] == ["hold", "release"]


@pytest.mark.django_db
@pytest.mark.parametrize("name", SHIPPED_IDS)
def test_every_id_a_shipped_catalog_published_still_resolves(name: str) -> None:
    assert model_id_resolve(name) is not None


@pytest.mark.django_db
def test_a_former_id_finds_the_model_it_became(make_customer) -> None:
    customer = make_customer()
    assert catalog_entry_find("bfl/flux-kontext-pro", enabled_only=True).id == "bfl/FLUX.1-Kontext-pro"
    assert customer.client.get("/v1/models/bfl/flux-kontext-pro").json()["id"] == "bfl/FLUX.1-Kontext-pro"


@pytest.mark.django_db
def test_every_model_but_irag_is_priced_after_migrate_with_its_source() -> None:
    retired = {e["id"] for e in catalog_seed_data() if (e.get("lifecycle") or {}).get("status") == "retired"}
    current = {e["id"] for e in catalog_seed_data()} - retired
    priced = set(Price.objects.values_list("model_id", flat=True))
    assert current - priced == {"qianfan/irag-1.0"}
    assert all(
        e["pricing"]["source"] for e in catalog_seed_data() if e["id"] in current - {"qianfan/irag-1.0"}
    )
    assert not Price.objects.filter(model_id__in=current, note="").exists()


@pytest.mark.django_db
def test_the_openai_wait_covers_a_slow_models_read_timeout(settings) -> None:
    from generations.api.openai_views import openai_wait_seconds

    settings.OPENAI_COMPAT_WAIT_SECONDS = 100
    settings.OPENAI_COMPAT_WAIT_MARGIN_SECONDS = 15
    settings.OPENAI_COMPAT_WAIT_MAX_SECONDS = 330
    settings.AIHUBMIX_MODEL_READ_TIMEOUT_SECONDS = {"openai/gpt-image-2": 300, "bfl/flux-2-pro": 30}
    assert openai_wait_seconds(model="gpt-image-2") == 315  # high quality takes 90-130 s: never a 504 at 100 s
    assert openai_wait_seconds(model="glm-image") == 100
    assert openai_wait_seconds(model="flux-2-pro") == 100  # never shorter than the default
    settings.OPENAI_COMPAT_WAIT_MAX_SECONDS = 200
    assert openai_wait_seconds(model="openai/gpt-image-2") == 200


@pytest.mark.django_db
def test_the_staff_catalog_list_shows_the_status_the_calendar_gives(staff_user_client) -> None:
    deprecate_until("openai/gpt-image-2", timezone.now() + timedelta(days=30))
    deprecate_until("google/gemini-3-pro-image", timezone.now() + timedelta(seconds=1))
    time.sleep(1.1)  # its shutdown date passes; the row still says deprecated

    response = staff_user_client.get("/admin/generations/catalogmodel/", {"q": "image"})

    shown = {
        row.model_id: response.context["cl"].model_admin.status_code(row) for row in response.context["cl"].result_list
    }
    html = response.content.decode()
    assert CatalogModel.objects.get(model_id="google/gemini-3-pro-image").status == "deprecated"
    assert shown["google/gemini-3-pro-image"] == "retired"
    assert shown["openai/gpt-image-2"] == "deprecated"
    assert shown["google/gemini-3.1-flash-image"] == "active"
    assert html.count('<td class="field-status_code">retired</td>') == sum(s == "retired" for s in shown.values())
