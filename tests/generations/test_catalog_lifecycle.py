"""The living catalog: staff edit models in the admin (validated, audited, served at once), lifecycle states show in
GET /v1/models and on submits (deprecation headers, 410, or the replacement runs and is charged), and prices can
only be set for catalog models."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone
from django.utils.http import http_date

from accounts.models import AuditEvent, User
from accounts.services import SYSTEM
from billing.models import LedgerEntry, Plan, Price
from billing.services.prices import price_set
from generations.forwarder import forward_drain
from generations.models import CatalogModel, Generation
from generations.services.catalog import catalog_model_save

SHUTDOWN = datetime(2027, 3, 1, tzinfo=UTC)


@pytest.fixture
def staff(db: None) -> Client:
    client = Client()
    client.force_login(User.objects.create_superuser("catalog@example.com", "pw-123456789"))
    return client


def set_status(model_id: str, status: str, **fields) -> CatalogModel:
    row = CatalogModel.objects.get(model_id=model_id)
    row.status = status
    for name, value in fields.items():
        setattr(row, name, value)
    return catalog_model_save(row=row, actor=SYSTEM)


def models_by_id(client) -> dict[str, dict]:
    response = client.get("/v1/models")
    assert response.status_code == 200
    return {model["id"]: model for model in response.json()["data"]}


@pytest.mark.django_db
def test_a_deprecated_model_still_runs_and_says_so_in_headers_and_the_list(make_customer) -> None:
    customer = make_customer()
    set_status("openai/gpt-image-2", "deprecated", shutdown_at=SHUTDOWN,
               replacement=CatalogModel.objects.get(model_id="google/gemini-3-pro-image"))

    response = customer.client.post(
        "/v1/generations", {"model": "gpt-image-2", "prompt": "a fox", "quality": "low"}, format="json"
    )
    listed = models_by_id(customer.client)["openai/gpt-image-2"]

    assert response.status_code == 202
    deprecated_at = CatalogModel.objects.get(model_id="openai/gpt-image-2").deprecated_at
    assert response.headers["Deprecation"] == f"@{int(deprecated_at.timestamp())}"
    assert response.headers["Sunset"] == http_date(SHUTDOWN.timestamp())
    assert response.headers["Link"] == '</v1/models/google/gemini-3-pro-image>; rel="successor-version"'
    assert listed["lifecycle"] == {
        "status": "deprecated",
        "shutdown_at": "2027-03-01T00:00:00Z",
        "replacement": "google/gemini-3-pro-image",
    }
    assert listed["available"] is True


@pytest.mark.django_db
def test_an_active_model_has_no_deprecation_headers(make_customer) -> None:
    customer = make_customer()
    response = customer.client.post(
        "/v1/generations", {"model": "gpt-image-2", "prompt": "a fox", "quality": "low"}, format="json"
    )
    assert response.status_code == 202 and "Deprecation" not in response.headers and "Sunset" not in response.headers


@pytest.mark.django_db
def test_a_retired_model_answers_410_naming_its_replacement_and_charges_nothing(make_customer) -> None:
    customer = make_customer()
    set_status("openai/gpt-image-2", "retired", shutdown_at=timezone.now() - timedelta(days=1),
               replacement=CatalogModel.objects.get(model_id="google/gemini-3-pro-image"))

    response = customer.client.post(
        "/v1/generations", {"model": "gpt-image-2", "prompt": "a fox", "quality": "low"}, format="json"
    )

    assert response.status_code == 410
    error = response.json()["error"]
    assert error["code"] == "model_retired" and error["param"] == "model"
    assert "google/gemini-3-pro-image" in error["message"]
    assert not Generation.objects.exists() and customer.ledger() == []
    listed = models_by_id(customer.client)["openai/gpt-image-2"]
    assert (listed["available"], listed["unavailable_reason"]) == (False, "retired")


@pytest.mark.django_db(transaction=True)
def test_a_retired_model_served_with_its_replacement_runs_and_is_charged_as_the_replacement(
    make_customer, forwarding
) -> None:
    customer = make_customer()
    set_status("openai/gpt-image-2", "retired", shutdown_at=timezone.now() - timedelta(days=1),
               replacement=CatalogModel.objects.get(model_id="google/gemini-3-pro-image"), serve_with_replacement=True)

    response = customer.client.post(
        "/v1/generations", {"model": "gpt-image-2", "prompt": "a fox"}, format="json"
    )
    assert response.status_code == 202, response.json()
    assert response.headers["Link"] == '</v1/models/google/gemini-3-pro-image>; rel="successor-version"'
    forward_drain()
    generation = customer.client.get(f"/v1/generations/{response.json()['id']}").json()

    assert generation["status"] == "succeeded"
    assert (generation["model"], generation["requested_model"]) == ("google/gemini-3-pro-image", "openai/gpt-image-2")
    # Its shipped 1K price, 0.134 USD, + the default plan's 20 % markup: the replacement's price, not gpt-image-2's.
    assert generation["charged_usd"] == "0.160800"
    assert customer.ledger(generation["id"]) == [("hold", 160_800), ("capture", 160_800)]
    assert [request.path for request in forwarding.requests] == [
        "/gemini/v1beta/models/gemini-3-pro-image:generateContent"
    ]
    listed = models_by_id(customer.client)["openai/gpt-image-2"]
    assert listed["available"] is True and listed["lifecycle"]["status"] == "retired"


@pytest.mark.django_db(transaction=True)
def test_a_model_added_in_the_admin_is_served_at_once(make_customer, forwarding, staff) -> None:
    customer = make_customer()
    assert "bfl/flux-3-pro" not in models_by_id(customer.client)  # this process has the catalog cached now
    rules = {
        "sizes": {"default": "1:1", "presets": ["1:1", "16:9"], "field": "aspect_ratio"},
        "n_style": "none",
        "seed_range": [0, 2147483647],
        "max_input_images": 1,
        "extras": [{"name": "raw", "type": "boolean", "default": False}],
    }

    response = staff.post(
        "/admin/generations/catalogmodel/add/",
        {
            "model_id": "bfl/flux-3-pro", "alias": "flux-3-pro", "display_name": "FLUX 3 [pro]",
            "description": "", "family": "predictions", "edit_family": "", "operations": '["edit", "generate"]',
            "rules": json.dumps(rules), "status": "active", "shutdown_at_0": "", "shutdown_at_1": "",
            "replacement": "", "notes": "",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    price_set(model_id="bfl/flux-3-pro", quality="*", size="*", cost_micros=20_000, actor=SYSTEM)

    listed = models_by_id(customer.client)["bfl/flux-3-pro"]
    created = customer.client.post(
        "/v1/generations", {"model": "flux-3-pro", "prompt": "a fox", "size": "16:9", "params": {"raw": True}},
        format="json",
    )
    forward_drain()

    assert listed["available"] is True and listed["sizes"]["presets"] == ["1:1", "16:9"]
    assert created.status_code == 202
    assert customer.client.get(f"/v1/generations/{created.json()['id']}").json()["status"] == "succeeded"
    assert forwarding.requests[-1].json == {"input": {"prompt": "a fox", "aspect_ratio": "16:9", "raw": True}}
    event = AuditEvent.objects.get(action="catalog_model.created")
    assert event.actor_user.email == "catalog@example.com" and event.after["model_id"] == "bfl/flux-3-pro"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("rules", "field", "message"),
    [
        ({"sizes": {"default": "9:9", "presets": ["1:1"]}}, "rules", "sizes.default"),
        ({"sizes": {"default": "1:1", "presets": ["1:1"]}, "n_max": 0}, "rules", "n_max"),
        ({"sizes": {"default": "1:1", "presets": ["1:1"]}, "extras": [{"name": "x", "type": "colour"}]}, "rules",
         "extras[0].type"),
        ({"sizes": {"default": "1:1", "presets": ["1:1"]}, "bogus": 1}, "rules", "bogus"),
    ],
)
def test_invalid_rules_are_refused_at_save_with_a_clear_message(staff, rules, field, message) -> None:
    response = staff.post(
        "/admin/generations/catalogmodel/add/",
        {
            "model_id": "bfl/broken", "alias": "broken", "display_name": "Broken", "description": "",
            "family": "predictions", "edit_family": "", "operations": '["generate"]', "rules": json.dumps(rules),
            "status": "active", "shutdown_at_0": "", "shutdown_at_1": "", "replacement": "", "notes": "",
        },
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field])
    assert not CatalogModel.objects.filter(model_id="bfl/broken").exists()


@pytest.mark.django_db
def test_models_a_tenant_cannot_use_are_marked_with_the_reason(make_customer) -> None:
    plan = Plan.objects.create(name="narrow", allowed_models=["openai/gpt-image-2", "qianfan/irag-1.0"])
    customer = make_customer(plan=plan)

    models = models_by_id(customer.client)

    assert (models["openai/gpt-image-2"]["available"], models["openai/gpt-image-2"]["unavailable_reason"]) == (True, None)
    assert models["qianfan/irag-1.0"]["unavailable_reason"] == "not_priced"
    assert models["ideogram/V3"]["unavailable_reason"] == "not_in_plan"


@pytest.mark.django_db
def test_set_price_refuses_unknown_models_and_resolves_aliases() -> None:
    with pytest.raises(CommandError, match="not a catalog model"):
        call_command("set_price", "totally/bogus-model", "--usd", "0.01")
    call_command("set_price", "irag-1.0", "--usd", "0.02")

    assert not Price.objects.filter(model_id="totally/bogus-model").exists()
    assert Price.objects.get(model_id="qianfan/irag-1.0", effective_to__isnull=True).cost_micros == 20_000


@pytest.mark.django_db
def test_the_admin_price_form_refuses_unknown_models_and_resolves_aliases(staff) -> None:
    fields = {"quality": "*", "size": "*", "cost_usd": "0.02", "effective_from_0": "2026-01-01",
              "effective_from_1": "00:00:00", "note": ""}
    refused = staff.post("/admin/billing/price/add/", {"model_id": "nope/nothing", **fields})
    saved = staff.post("/admin/billing/price/add/", {"model_id": "ideogram-v3", **fields})

    assert refused.status_code == 200 and "not a catalog model" in str(refused.context["adminform"].form.errors)
    assert saved.status_code == 302
    assert Price.objects.filter(model_id="ideogram/V3").exists()


@pytest.mark.django_db
def test_the_shutdown_page_lists_models_nearing_shutdown_and_their_tenants_this_month(staff, make_customer) -> None:
    customer = make_customer()
    set_status("openai/gpt-image-2", "deprecated", shutdown_at=timezone.now() + timedelta(days=20))
    customer.client.post("/v1/generations", {"model": "gpt-image-2", "prompt": "a fox", "quality": "low"}, format="json")
    old = Generation.objects.create(
        tenant=make_customer("old-user").tenant, model_id="openai/gpt-image-2", operation="generate", prompt="x", n=1
    )
    Generation.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=62))

    response = staff.get("/admin/generations/catalogmodel/shutdowns/")

    assert response.status_code == 200
    rows = {row.model_id: row for row, _days, _overdue in response.context["rows"]}
    assert [(use.tenant_slug, use.generations) for use in rows["openai/gpt-image-2"].tenants] == [("studio", 1)]
    assert "google/imagen-4.0-generate-001" in rows  # seeded deprecated: Google shut Imagen down on 2026-08-17
    assert "google/gemini-3-pro-image" not in rows
    assert b"studio (1 / 0)" in response.content


@pytest.mark.django_db
def test_catalog_edits_are_audited_with_before_and_after() -> None:
    set_status("ideogram/V3", "deprecated", shutdown_at=SHUTDOWN)
    event = AuditEvent.objects.filter(action="catalog_model.changed").latest("id")
    assert (event.before["status"], event.after["status"]) == ("active", "deprecated")
    assert LedgerEntry.objects.count() == 0


@pytest.mark.django_db
def test_shipped_deprecations_are_dated_when_the_vendor_gave_notice_never_after_the_sunset(make_customer) -> None:
    # gpt-image-1.5: notice 2026-06-02, shut down 2026-12-01 (../shared/aihubmix/NOTES.md). The seed used to stamp
    # the migration's own run time, a date after the Sunset.
    customer = make_customer()
    set_status("openai/gpt-image-1.5", "retired", serve_with_replacement=True)

    response = customer.client.post(
        "/v1/generations", {"model": "gpt-image-1.5", "prompt": "a fox"}, format="json"
    )

    assert response.status_code == 202, response.json()
    row = CatalogModel.objects.get(model_id="openai/gpt-image-1.5")
    assert row.deprecated_at == datetime(2026, 6, 2, tzinfo=UTC)
    assert response.headers["Deprecation"] == f"@{int(datetime(2026, 6, 2, tzinfo=UTC).timestamp())}"
    assert response.headers["Sunset"] == http_date(datetime(2026, 12, 1, tzinfo=UTC).timestamp())
    for row in CatalogModel.objects.exclude(status="active"):
        assert row.deprecated_at is not None and row.deprecated_at <= row.shutdown_at, row.model_id


@pytest.mark.django_db
def test_a_model_retired_after_its_shutdown_date_never_announces_a_deprecation_after_its_sunset(make_customer) -> None:
    customer = make_customer()
    shutdown = timezone.now() - timedelta(days=3)
    set_status("openai/gpt-image-2", "retired", shutdown_at=shutdown, serve_with_replacement=True,
               replacement=CatalogModel.objects.get(model_id="google/gemini-3-pro-image"))

    response = customer.client.post("/v1/generations", {"model": "gpt-image-2", "prompt": "a fox"}, format="json")

    assert response.status_code == 202, response.json()
    assert response.headers["Deprecation"] == f"@{int(shutdown.timestamp())}"
    assert response.headers["Sunset"] == http_date(shutdown.timestamp())


@pytest.mark.django_db
def test_the_deprecation_dates_migration_fixes_rows_seeded_with_their_run_time() -> None:
    from importlib import import_module

    from django.apps import apps

    migration = import_module("generations.migrations.0020_deprecation_dates")
    CatalogModel.objects.filter(model_id="openai/gpt-image-1.5").update(deprecated_at=timezone.now())  # as 0010 did
    earlier = datetime(2026, 5, 1, tzinfo=UTC)
    CatalogModel.objects.filter(model_id="openai/gpt-image-1").update(deprecated_at=earlier)  # staff's own, earlier

    migration.deprecation_dates(apps, None)

    dates = dict(CatalogModel.objects.exclude(status="active").values_list("model_id", "deprecated_at"))
    assert dates["openai/gpt-image-1.5"] == datetime(2026, 6, 2, tzinfo=UTC)
    assert dates["openai/gpt-image-1"] == earlier
    assert dates["google/imagen-4.0-generate-001"] == datetime(2026, 8, 17, tzinfo=UTC)


@pytest.mark.django_db
def test_every_current_price_is_for_a_catalog_model() -> None:
    # Billing's first seed (0003) priced google/imagen-3.0-generate-002, which the catalog never had.
    catalog = set(CatalogModel.objects.values_list("model_id", flat=True))
    current = set(Price.objects.filter(effective_to__isnull=True).values_list("model_id", flat=True))
    assert current and current <= catalog, current - catalog


@pytest.mark.django_db
def test_the_price_service_refuses_unknown_models_and_stores_aliases_as_catalog_ids() -> None:
    from billing.model_ids import UnknownPricedModel

    with pytest.raises(UnknownPricedModel) as refused:
        price_set(model_id="google/imagen-3.0-generate-002", quality="*", size="*", cost_micros=30_000, actor=SYSTEM)
    price = price_set(model_id="irag-1.0", quality="*", size="*", cost_micros=20_000, actor=SYSTEM)

    assert (refused.value.code, refused.value.param) == ("unknown_model", "model_id")
    assert not Price.objects.filter(model_id="google/imagen-3.0-generate-002", effective_to__isnull=True).exists()
    assert price.model_id == "qianfan/irag-1.0"


@pytest.mark.django_db
def test_the_stray_prices_migration_ends_prices_of_unknown_models_and_leaves_the_others() -> None:
    from importlib import import_module

    from django.apps import apps

    migration = import_module("generations.migrations.0021_end_stray_prices")
    started = timezone.now() - timedelta(days=30)
    stray = Price.objects.create(model_id="google/imagen-3.0-generate-002", cost_micros=30_000, effective_from=started)
    future = Price.objects.create(model_id="nope/later", cost_micros=1, effective_from=timezone.now() + timedelta(days=1))
    valid = {price.pk: (price.effective_to, price.cost_micros) for price in Price.objects.exclude(pk__in=[stray.pk, future.pk])}

    migration.stray_prices_end(apps, None)

    stray.refresh_from_db()
    assert stray.effective_to is not None and started < stray.effective_to <= timezone.now()
    assert not Price.objects.filter(pk=future.pk).exists()  # never in effect: nothing to keep
    assert {price.pk: (price.effective_to, price.cost_micros) for price in Price.objects.exclude(pk=stray.pk)} == valid
