import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_openapi_schema_generates_without_warnings(capsys) -> None:
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null")
    assert "Warning" not in capsys.readouterr().err


def test_schema_declares_bearer_security(client) -> None:
    schema = client.get("/v1/schema/?format=json").json()
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "http", "scheme": "bearer", "description": "An API key issued to your tenant."
    }


def test_swagger_ui_uses_local_assets(client) -> None:
    page = client.get("/v1/docs/").content.decode()
    assert "swagger-ui" in page
    assert "cdn" not in page.lower() and "unpkg" not in page


def test_healthz_reports_database_cache_storage(client, settings, tmp_path) -> None:
    settings.MEDIA_ROOT = str(tmp_path)
    response = client.get("/healthz", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    names = " ".join(response.json())
    for check in ("Database", "Cache", "Storage"):
        assert check in names
