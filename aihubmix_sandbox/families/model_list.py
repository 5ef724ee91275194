"""AIHubMix's public model list, `GET /api/v1/models?type=image_generation` (no key): the image models the sandbox
speaks, named as AIHubMix lists them (bare names), plus one chat model that the type filter leaves out.

The upstream's list is its own, not read from our catalog (the sandbox imports none of our apps):
tests/aihubmix_sandbox/test_model_list.py checks that catalog sync finds nothing to report against it. Tests and
the command make it differ: `model_list_hide(name)` drops a listed model, `model_list_add(name, ...)` lists a new one.
"""

from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

if TYPE_CHECKING:
    from aihubmix_sandbox.server import SandboxHandler

IMAGE = "image_generation"

# (model_id, model_name, pricing). gpt-image-1 stays listed although OpenAI shut it down: AIHubMix's own pages still
# list some shut-down models (NOTES.md "Shut down by the vendors").
IMAGE_MODELS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("gpt-image-1", "GPT Image 1", {"input": 5, "output": 40}),
    ("gpt-image-2", "GPT Image 2", {"input": 8, "output": 30}),
    ("gemini-3.1-flash-image", "Nano Banana 2", {"input": 0.5, "output": 60}),
    ("gemini-3-pro-image", "Nano Banana Pro", {"input": 2, "output": 120}),
    ("doubao-seedream-4-0", "Seedream 4.0", {"per_image": 0.03}),
    ("doubao-seedream-4-5", "Seedream 4.5", {"per_image": 0.04}),
    ("doubao-seedream-5.0-lite", "Seedream 5.0 lite", {"per_image": 0.035}),
    ("wan2.7-image-pro", "Wan 2.7 Image Pro", {"per_image": 0.075}),
    ("wan2.7-image", "Wan 2.7 Image", {"per_image": 0.03}),
    ("wan2.6-t2i", "Wan 2.6 T2I", {"per_image": 0.03}),
    ("qwen-image-2.0-pro", "Qwen Image 2.0 Pro", {"per_image": 0.075}),
    ("qwen-image-2.0", "Qwen Image 2.0", {"per_image": 0.035}),
    ("qwen-image-max", "Qwen Image Max", {"per_image": 0.075}),
    ("qwen-image-plus", "Qwen Image Plus", {"per_image": 0.03}),
    ("qwen-image-edit", "Qwen Image Edit", {"per_image": 0.045}),
    ("qwen-image-edit-plus", "Qwen Image Edit Plus", {"per_image": 0.03}),
    ("qwen-image-edit-max", "Qwen Image Edit Max", {"per_image": 0.075}),
    ("glm-image", "GLM Image", {"per_image": 0.015}),
    ("irag-1.0", "ERNIE iRAG", {}),
    ("ideogram-v3", "Ideogram V3", {"per_image": 0.06}),
    ("FLUX-1.1-pro", "FLUX 1.1 [pro]", {"per_image": 0.04}),
    ("FLUX.1-Kontext-pro", "FLUX.1 Kontext [pro]", {"per_image": 0.04}),
    ("flux-kontext-max", "FLUX.1 Kontext [max]", {"per_image": 0.08}),
    ("flux-2-pro", "FLUX.2 [pro]", {"per_image": 0.03}),
    ("flux-2-flex", "FLUX.2 [flex]", {"per_image": 0.05}),
)
OTHER_MODELS = (("gpt-5-mini", "GPT-5 mini", "llm"),)


def _entry(model_id: str, model_name: str, types: str, pricing: dict[str, Any]) -> dict[str, Any]:
    return {"model_id": model_id, "model_name": model_name, "desc": "", "types": types, "pricing": pricing}


def model_list(http: "SandboxHandler", query: str) -> None:
    http.state.count("models.list")
    with http.state.lock:
        hidden = {name.lower() for name in http.state.model_list_hidden}
        added = list(http.state.model_list_added)
    entries = [_entry(model_id, name, IMAGE, pricing) for model_id, name, pricing in IMAGE_MODELS]
    entries += [_entry(model_id, name, kind, {"input": 0.25, "output": 2}) for model_id, name, kind in OTHER_MODELS]
    entries += [_entry(item["model_id"], item["model_name"], IMAGE, item["pricing"]) for item in added]
    wanted = parse_qs(query).get("type", [""])[0]
    data = [
        entry for entry in entries
        if entry["model_id"].lower() not in hidden and (not wanted or wanted in entry["types"].split(","))
    ]
    http.reply_json(200, {"success": True, "data": data})
