"""The predictions family answers output URLs the sandbox serves, with each vendor's default image count."""

import httpx

from aihubmix_sandbox.server import SandboxHandle

AUTH = {"Authorization": "Bearer sk-sandbox-test"}


def test_predictions_answer_output_urls_that_the_sandbox_serves(aihubmix_sandbox: SandboxHandle) -> None:
    response = httpx.post(
        f"{aihubmix_sandbox.base_url}/models/qianfan/irag-1.0/predictions",
        headers=AUTH,
        json={"input": {"prompt": "a red fox", "n": 2, "size": "768x1024"}},
    )

    urls = [item["url"] for item in response.json()["output"]]
    image = httpx.get(urls[1])

    assert response.status_code == 200 and len(urls) == 2
    assert (image.status_code, image.headers["content-type"]) == (200, "image/png")
    assert aihubmix_sandbox.calls["predictions"] == 1
    assert aihubmix_sandbox.calls["model:qianfan/irag-1.0"] == 1
    assert aihubmix_sandbox.calls["files"] == 1


def test_imagen_makes_four_images_when_not_told_otherwise_like_the_upstream(
    aihubmix_sandbox: SandboxHandle,
) -> None:
    response = httpx.post(
        f"{aihubmix_sandbox.base_url}/models/google/imagen-4.0-generate-001/predictions",
        headers=AUTH,
        json={"input": {"prompt": "a red fox"}},
    )
    assert len(response.json()["output"]) == 4
