"""Catalog sync: `manage.py catalog_sync` and the staff page read AIHubMix's public model list (the sandbox's, over
HTTP), report the models we offer that it no longer lists and the image models it lists that we lack, and change
nothing unless asked; disabling retires a model, adding a draft creates a row nobody can use until staff publish
it. Every action is audited."""

import json
from io import StringIO

import httpx
import pytest
from django.contrib.admin.utils import quote
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.test import Client

from accounts.models import AuditEvent, User
from aihubmix_sandbox.server import SandboxHandle
from billing.models import Price
from generations.models import CatalogModel, Generation
from generations.providers.model_list import (
    ModelListUnavailable,
    UpstreamModel,
    model_list_fetch,
    model_list_parse,
)
from generations.selectors.catalog_sync import CatalogName, catalog_sync_diff

UPSTREAM_PAGE = "/admin/generations/catalogmodel/upstream/"


def sync(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("catalog_sync", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def report(*args: str) -> dict:
    return json.loads(sync("--json", *args)[0])


@pytest.fixture
def upstream_differs(aihubmix_sandbox: SandboxHandle) -> SandboxHandle:
    """AIHubMix stopped listing gpt-image-2 and lists a gpt-image-3 we do not have."""
    aihubmix_sandbox.model_list_hide("gpt-image-2")
    aihubmix_sandbox.model_list_add("gpt-image-3", "GPT Image 3", {"input": 8, "output": 32})
    return aihubmix_sandbox


def staff_client(*, superuser: bool = True, permissions: tuple[str, ...] = ()) -> Client:
    if superuser:
        user = User.objects.create_superuser("sync@example.com", "pw-123456789")
    else:
        user = User.objects.create_user(f"viewer-{len(permissions)}@example.com", "pw-123456789", is_staff=True)
        user.user_permissions.set(Permission.objects.filter(codename__in=permissions))
    client = Client()
    client.force_login(user)
    return client


# --- The command against the sandbox's list --------------------------------------------------------------------


@pytest.mark.django_db
def test_the_sandboxs_own_list_agrees_with_the_shipped_catalog(aihubmix_sandbox: SandboxHandle) -> None:
    out, _ = sync()
    assert report() == {"listed": 25, "missing_upstream": [], "new_upstream": []}
    assert "The catalog and the upstream's list agree." in out
    # The public list needs no key and was read on the base URL's host, outside /v1.
    assert [request.path for request in aihubmix_sandbox.requests] == ["/api/v1/models", "/api/v1/models"]
    assert "authorization" not in aihubmix_sandbox.requests[0].headers


@pytest.mark.django_db
def test_catalog_sync_reports_a_missing_and_a_new_model_and_changes_nothing(upstream_differs: SandboxHandle) -> None:
    before = list(CatalogModel.objects.order_by("pk").values_list("model_id", "status"))

    out, _ = sync()
    data = report()

    assert data["missing_upstream"] == [
        {"model_id": "openai/gpt-image-2", "alias": "gpt-image-2", "status": "active", "action": "disable"}
    ]
    assert data["new_upstream"] == [
        {"model_id": "gpt-image-3", "model_name": "GPT Image 3", "pricing": {"input": 8, "output": 32},
         "suggested_id": "openai/gpt-image-3", "action": "add_draft"}
    ]
    assert "openai/gpt-image-2 (gpt-image-2, active)  -> catalog_sync --disable openai/gpt-image-2" in out
    assert "gpt-image-3" in out and "--add-draft gpt-image-3 (as openai/gpt-image-3)" in out
    assert list(CatalogModel.objects.order_by("pk").values_list("model_id", "status")) == before
    assert not AuditEvent.objects.filter(action__startswith="catalog_model.").exists()


@pytest.mark.django_db
def test_disable_retires_the_model_audited_and_submits_answer_410(upstream_differs, make_customer) -> None:
    customer = make_customer()

    _, err = sync("--disable", "openai/gpt-image-2")
    response = customer.client.post(
        "/v1/generations", {"model": "gpt-image-2", "prompt": "a fox", "quality": "low"}, format="json"
    )

    row = CatalogModel.objects.get(model_id="openai/gpt-image-2")
    assert row.status == "retired" and row.deprecated_at is not None
    assert "retired by catalog sync" in row.notes
    assert "Disabled openai/gpt-image-2" in err
    event = AuditEvent.objects.get(action="catalog_model.disabled")
    assert (event.actor_type, event.target_id) == ("system", str(row.pk))
    assert (event.before["status"], event.after["status"]) == ("active", "retired")
    assert (response.status_code, response.json()["error"]["code"]) == (410, "model_retired")
    assert not Generation.objects.exists()
    assert report()["missing_upstream"] == []  # retired: no longer offered, so no longer reported


@pytest.mark.django_db
def test_add_draft_creates_a_row_nobody_can_list_use_or_price(upstream_differs, make_customer) -> None:
    customer = make_customer()

    _, err = sync("--add-draft", "gpt-image-3")

    row = CatalogModel.objects.get(model_id="openai/gpt-image-3")
    assert (row.status, row.family, row.alias, row.display_name) == ("draft", "", "gpt-image-3", "GPT Image 3")
    assert "'gpt-image-3'" in row.notes and "{'input': 8, 'output': 32}" in row.notes
    assert "Added openai/gpt-image-3 as a draft" in err
    event = AuditEvent.objects.get(action="catalog_model.drafted")
    assert event.before is None and event.after["status"] == "draft"

    listed = {model["id"] for model in customer.client.get("/v1/models").json()["data"]}
    submit = customer.client.post("/v1/generations", {"model": "gpt-image-3", "prompt": "a fox"}, format="json")
    assert "openai/gpt-image-3" not in listed
    assert (submit.status_code, submit.json()["error"]["code"]) == (400, "unknown_model")
    detail = customer.client.get("/v1/models/openai/gpt-image-3")
    assert (detail.status_code, detail.json()["error"]["code"]) == (400, "unknown_model")  # as for any unknown id
    with pytest.raises(CommandError, match="not a catalog model"):
        call_command("set_price", "openai/gpt-image-3", "--usd", "0.05")
    assert not Price.objects.filter(model_id="openai/gpt-image-3").exists()
    assert not Generation.objects.exists()
    assert report()["new_upstream"] == []  # known now: suggested once


@pytest.mark.django_db
def test_actions_outside_the_report_are_refused_and_change_nothing(upstream_differs) -> None:
    with pytest.raises(CommandError, match="bfl/flux-2-pro is not a model we offer that AIHubMix's list leaves out"):
        sync("--disable", "bfl/flux-2-pro")  # still listed upstream
    with pytest.raises(CommandError, match="gpt-image-1 is not an image model AIHubMix lists that the catalog"):
        sync("--add-draft", "gpt-image-1")  # listed, but a (retired) catalog model
    with pytest.raises(CommandError, match="gpt-5-mini is not an image model"):
        sync("--add-draft", "gpt-5-mini")  # a chat model: the type filter leaves it out

    assert CatalogModel.objects.get(model_id="bfl/flux-2-pro").status == "active"
    assert not CatalogModel.objects.filter(status="draft").exists()
    assert not AuditEvent.objects.filter(action__startswith="catalog_model.").exists()


@pytest.mark.django_db
def test_a_draft_whose_cleaned_up_name_is_taken_is_refused(aihubmix_sandbox) -> None:
    aihubmix_sandbox.model_list_add("gpt image 2")  # not a name we know, but it becomes openai/gpt-image-2

    with pytest.raises(CommandError, match=r"Nothing changed: .*already names another catalog model"):
        sync("--add-draft", "gpt image 2")

    assert not CatalogModel.objects.filter(status="draft").exists()


@pytest.mark.django_db
def test_an_unreachable_list_is_an_error_naming_the_url(settings) -> None:
    settings.AIHUBMIX_BASE_URL = "http://127.0.0.1:9/v1"  # discard port: nothing listens
    with pytest.raises(CommandError) as raised:
        sync()
    assert raised.value.returncode == 2
    assert "http://127.0.0.1:9/api/v1/models?type=image_generation" in str(raised.value)


def test_an_answer_that_is_not_the_list_is_an_error_naming_the_url(aihubmix_sandbox) -> None:
    url = aihubmix_sandbox.base_url.replace("/v1", "/api/v1/nothing-here")
    with pytest.raises(ModelListUnavailable, match=f"AIHubMix's model list at {url} answered HTTP 404"):
        model_list_fetch(url=url)


# --- The staff page ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_catalog_list_links_the_page_and_the_page_shows_the_report_with_a_button_per_row(upstream_differs) -> None:
    staff = staff_client()

    changelist = staff.get("/admin/generations/catalogmodel/")
    page = staff.get(UPSTREAM_PAGE)

    assert b"Check upstream model list" in changelist.content and UPSTREAM_PAGE.encode() in changelist.content
    assert page.status_code == 200
    assert [row.model_id for row in page.context["report"].missing] == ["openai/gpt-image-2"]
    assert [row.name for row in page.context["report"].new] == ["gpt-image-3"]
    html = page.content.decode()
    assert 'name="model" value="openai/gpt-image-2"' in html and 'value="Disable"' in html
    assert 'name="model" value="gpt-image-3"' in html and 'value="Add as draft"' in html
    assert "csrfmiddlewaretoken" in html


@pytest.mark.django_db
def test_the_buttons_disable_and_draft_audited_as_the_staff_user(upstream_differs) -> None:
    staff = staff_client()

    disabled = staff.post(UPSTREAM_PAGE, {"action": "disable", "model": "openai/gpt-image-2"})
    drafted = staff.post(UPSTREAM_PAGE, {"action": "add_draft", "model": "gpt-image-3"}, follow=True)

    assert (disabled.status_code, disabled.headers["Location"]) == (302, UPSTREAM_PAGE)
    assert CatalogModel.objects.get(model_id="openai/gpt-image-2").status == "retired"
    assert CatalogModel.objects.get(model_id="openai/gpt-image-3").status == "draft"
    assert "Added openai/gpt-image-3 as a draft" in drafted.content.decode()
    assert drafted.context["report"].missing == () and drafted.context["report"].new == ()
    events = AuditEvent.objects.filter(action__in=["catalog_model.disabled", "catalog_model.drafted"])
    assert {(event.action, event.actor_type, event.actor_user.email) for event in events} == {
        ("catalog_model.disabled", "staff", "sync@example.com"),
        ("catalog_model.drafted", "staff", "sync@example.com"),
    }


@pytest.mark.django_db
def test_a_stale_button_changes_nothing_and_says_why(upstream_differs) -> None:
    staff = staff_client()
    upstream_differs.reset()  # the upstream lists gpt-image-2 again and no longer gpt-image-3

    answer = staff.post(UPSTREAM_PAGE, {"action": "disable", "model": "openai/gpt-image-2"}, follow=True)

    assert "Nothing changed: openai/gpt-image-2 is not a model we offer that AIHubMix" in answer.content.decode()
    assert CatalogModel.objects.get(model_id="openai/gpt-image-2").status == "active"
    assert not AuditEvent.objects.filter(action="catalog_model.disabled").exists()


@pytest.mark.django_db
def test_viewers_see_the_report_without_buttons_and_cannot_post(upstream_differs) -> None:
    viewer = staff_client(superuser=False, permissions=("view_catalogmodel",))

    page = viewer.get(UPSTREAM_PAGE)
    disable = viewer.post(UPSTREAM_PAGE, {"action": "disable", "model": "openai/gpt-image-2"})
    draft = viewer.post(UPSTREAM_PAGE, {"action": "add_draft", "model": "gpt-image-3"})

    assert page.status_code == 200 and 'value="Disable"' not in page.content.decode()
    assert (disable.status_code, draft.status_code) == (403, 403)
    assert staff_client(superuser=False, permissions=()).get(UPSTREAM_PAGE).status_code == 403
    assert CatalogModel.objects.get(model_id="openai/gpt-image-2").status == "active"
    assert not CatalogModel.objects.filter(status="draft").exists()


@pytest.mark.django_db
def test_a_post_without_the_csrf_token_is_refused(upstream_differs) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(User.objects.create_superuser("csrf@example.com", "pw-123456789"))

    answer = client.post(UPSTREAM_PAGE, {"action": "disable", "model": "openai/gpt-image-2"})

    assert answer.status_code == 403
    assert CatalogModel.objects.get(model_id="openai/gpt-image-2").status == "active"


@pytest.mark.django_db
def test_the_page_names_an_unreachable_list(settings) -> None:
    settings.AIHUBMIX_BASE_URL = "http://127.0.0.1:9/v1"
    staff = staff_client()

    page = staff.get(UPSTREAM_PAGE)
    refused = staff.post(UPSTREAM_PAGE, {"action": "disable", "model": "openai/gpt-image-2"}, follow=True)

    assert page.status_code == 200 and "http://127.0.0.1:9/api/v1/models?type=image_generation" in page.content.decode()
    assert "Nothing changed" in refused.content.decode()
    assert CatalogModel.objects.get(model_id="openai/gpt-image-2").status == "active"


# --- Publishing a draft ---------------------------------------------------------------------------------------------


def _change_form(row: CatalogModel, **changes: object) -> dict:
    data = {
        "model_id": row.model_id, "alias": row.alias, "display_name": row.display_name,
        "description": row.description, "family": row.family, "edit_family": row.edit_family,
        "operations": json.dumps(row.operations), "rules": json.dumps(row.rules), "status": row.status,
        "shutdown_at_0": "", "shutdown_at_1": "", "replacement": "", "notes": row.notes,
    }
    return {**data, **changes}


@pytest.mark.django_db
def test_a_draft_is_published_only_once_staff_set_its_vendor_family_and_rules(upstream_differs, make_customer) -> None:
    upstream_differs.model_list_add("zeta-image-1")
    upstream_differs.model_list_add("doubao-seedream-9")
    sync("--add-draft", "zeta-image-1", "--add-draft", "doubao-seedream-9")
    staff = staff_client()
    row = CatalogModel.objects.get(alias="zeta-image-1")
    assert row.model_id == "unknown/zeta-image-1"
    url = f"/admin/generations/catalogmodel/{quote(row.pk)}/change/"
    rules = {"sizes": {"default": "1024x1024", "presets": ["1024x1024"]}}

    no_family = staff.post(url, _change_form(row, model_id="zeta/zeta-image-1", status="active", rules=json.dumps(rules)))
    no_vendor = staff.post(url, _change_form(row, status="active", family="predictions", rules=json.dumps(rules)))
    published = staff.post(url, _change_form(
        row, model_id="zeta/zeta-image-1", status="active", family="predictions", rules=json.dumps(rules)
    ))

    assert no_family.context["adminform"].form.errors["family"] == [
        "family: must be one of openai_compat, predictions, async_task, gemini."
    ]
    assert no_vendor.context["adminform"].form.errors["model_id"] == [
        "Set the vendor: 'unknown/zeta-image-1' starts with the placeholder 'unknown'."
    ]
    assert published.status_code == 302
    customer = make_customer()
    listed = {model["id"] for model in customer.client.get("/v1/models").json()["data"]}
    assert "zeta/zeta-image-1" in listed
    assert CatalogModel.objects.get(model_id="doubao/doubao-seedream-9").status == "draft"


@pytest.mark.django_db
def test_a_published_model_cannot_go_back_to_draft_nor_be_replaced_by_one(upstream_differs) -> None:
    sync("--add-draft", "gpt-image-3")
    staff = staff_client()
    gpt2 = CatalogModel.objects.get(model_id="openai/gpt-image-2")
    draft = CatalogModel.objects.get(model_id="openai/gpt-image-3")
    url = f"/admin/generations/catalogmodel/{quote(gpt2.pk)}/change/"

    back_to_draft = staff.post(url, _change_form(gpt2, status="draft"))
    replaced_by_draft = staff.post(url, _change_form(
        gpt2, status="deprecated", shutdown_at_0="2027-03-01", shutdown_at_1="00:00:00", replacement=str(draft.pk)
    ))

    assert "cannot go back to draft" in str(back_to_draft.context["adminform"].form.errors)
    assert "is a draft, not offered yet" in str(replaced_by_draft.context["adminform"].form.errors)
    assert CatalogModel.objects.get(model_id="openai/gpt-image-2").status == "active"


# --- The comparison and the list's reading, without I/O ------------------------------------------------------------


def test_names_match_by_upstream_name_alias_or_former_id_in_any_case() -> None:
    catalog = [
        CatalogName("bfl/FLUX-1.1-pro", "flux-1.1-pro", "active"),
        CatalogName("ideogram/V3", "ideogram-v3", "active"),
        CatalogName("bfl/flux-kontext-pro", "flux-kontext-pro", "active", former_ids=("bfl/FLUX.1-Kontext-pro",)),
        CatalogName("openai/gpt-image-1", "gpt-image-1", "retired"),
        CatalogName("openai/gpt-image-3", "gpt-image-3", "draft"),
        CatalogName("google/imagen-4", "imagen-4", "deprecated"),
    ]
    upstream = [UpstreamModel(name) for name in ("flux-1.1-PRO", "IDEOGRAM-V3", "flux.1-kontext-pro", "gpt-image-1",
                                                 "gpt-image-3", "FLUX-2-max", "newco-art", "bfl/flux-3")]

    result = catalog_sync_diff(catalog=catalog, upstream=upstream)

    assert [row.model_id for row in result.missing] == ["google/imagen-4"]  # deprecated still counts as offered
    assert {row.name: row.suggested_id for row in result.new} == {
        "FLUX-2-max": "bfl/FLUX-2-max", "newco-art": "unknown/newco-art", "bfl/flux-3": "bfl/flux-3",
    }
    assert result.listed == 8


def test_the_list_is_read_tolerantly() -> None:
    payload = {"data": [
        {"model_id": "gpt-image-2", "model_name": "GPT Image 2", "types": "image_generation", "pricing": {"x": 1}},
        {"model_id": "seedream", "types": ["image_generation", "image_edit"]},
        {"model_id": "gpt-5", "types": "llm"},
        {"model_id": "  "}, {"model_name": "no id"}, "junk",
        {"model_id": "untyped", "pricing": "n/a"},
    ]}

    models = model_list_parse(payload)

    assert [(m.model_id, m.model_name, m.pricing) for m in models] == [
        ("gpt-image-2", "GPT Image 2", {"x": 1}), ("seedream", "", {}), ("untyped", "", {}),
    ]
    with pytest.raises(ValueError, match='no "data" list'):
        model_list_parse({"models": []})


def test_the_sandbox_serves_the_list_without_a_key_and_filters_by_type(aihubmix_sandbox: SandboxHandle) -> None:
    root = aihubmix_sandbox.base_url.removesuffix("/v1")
    images = httpx.get(f"{root}/api/v1/models", params={"type": "image_generation"}).json()["data"]
    everything = httpx.get(f"{root}/api/v1/models").json()["data"]

    assert {entry["types"] for entry in images} == {"image_generation"}
    assert "gpt-5-mini" in {entry["model_id"] for entry in everything} - {entry["model_id"] for entry in images}
    assert set(images[0]) >= {"model_id", "model_name", "types", "pricing"}
    assert aihubmix_sandbox.calls["models.list"] == 2 and aihubmix_sandbox.calls["unauthorized"] == 0
