"""GET /v1/models lists the enabled catalog with the rules needed to build a valid request."""

import pytest


@pytest.mark.django_db
def test_the_models_list_gives_each_model_its_rules(admin_client) -> None:
    response = admin_client.get("/v1/models")

    assert response.status_code == 200
    models = {model["id"]: model for model in response.json()["data"]}
    gpt = models["openai/gpt-image-2"]
    assert gpt["alias"] == "gpt-image-2"
    assert (gpt["family"], gpt["edit_family"]) == ("predictions", "openai_compat")
    assert gpt["lifecycle"] == {"status": "active", "shutdown_at": None, "replacement": None}
    assert gpt["operations"] == ["edit", "generate"]
    assert gpt["n"] == {"min": 1, "max": 10, "default": 1}
    assert gpt["qualities"] == ["low", "medium", "high", "auto"]
    assert gpt["sizes"]["presets"][:3] == ["1024x1024", "1024x1536", "1536x1024"] and "auto" in gpt["sizes"]["presets"]
    glm = models["openai/glm-image"]
    assert glm["sizes"]["custom"] == {
        "min_side": 1024,
        "max_side": 2048,
        "max_aspect_ratio": None,
        "max_pixels": 4194304,
        "multiple_of": 32,
        "min_pixels": None,
    }
    watermark = next(
        param for param in models["doubao/doubao-seedream-4-0"]["params"] if param["name"] == "watermark"
    )
    assert (watermark["type"], watermark["default"]) == ("boolean", False)
    assert models["bfl/flux-kontext-max"]["seed"] == {"min": 0, "max": 2147483647}


@pytest.mark.django_db
def test_disabled_models_are_not_listed_and_one_model_is_found_by_alias(admin_client, settings) -> None:
    settings.DISABLED_MODELS = ["ideogram/V3"]

    listed = [model["id"] for model in admin_client.get("/v1/models").json()["data"]]
    one = admin_client.get("/v1/models/bfl/flux-kontext-max")
    missing = admin_client.get("/v1/models/ideogram-v3")

    assert "ideogram/V3" not in listed
    assert one.json()["alias"] == "flux-kontext-max"
    assert (missing.status_code, missing.json()["error"]["code"]) == (400, "unknown_model")


@pytest.mark.django_db
def test_the_models_list_needs_an_api_key(api_client) -> None:
    assert api_client().get("/v1/models").status_code == 401


@pytest.mark.django_db
def test_models_show_this_tenants_prices(make_customer) -> None:
    customer = make_customer()
    models = {model["id"]: model for model in customer.client.get("/v1/models").json()["data"]}
    low_square = [p for p in models["openai/gpt-image-2"]["prices"] if (p["quality"], p["size"]) == ("low", "1024x1024")]
    assert low_square == [{"quality": "low", "size": "1024x1024", "unit_price_usd": "0.007200"}]
    assert models["qianfan/irag-1.0"]["prices"] == []  # the one model without a published price
    detail = customer.client.get("/v1/models/gpt-image-2").json()
    assert any(p["unit_price_usd"] == "0.007200" for p in detail["prices"])
