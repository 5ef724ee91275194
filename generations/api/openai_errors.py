"""OpenAI's error shape for the OpenAI-compatible API (everything under /v1/images/), so the `openai` SDK raises its
own error classes with our codes: `{"error": {"message", "type", "param", "code", "request_id"}}`, the native
statuses and codes kept. DRF errors are reshaped by the views' exception handler (`openai_views.py`); unknown paths,
crashes and outages outside DRF by Django's error views, where `GenerationsConfig.ready` registers this shape for the
prefix (`project.api.errors.error_shape_register`)."""

from typing import Any

OPENAI_PATH_PREFIX = "/v1/images/"

_TYPE_BY_STATUS = {
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    429: "rate_limit_error",
}


def openai_error_type(status: int) -> str:
    # OpenAI's own types: a refused request is an `invalid_request_error` unless a more specific type exists; a
    # failure on our side is an `api_error`.
    return _TYPE_BY_STATUS.get(status) or ("invalid_request_error" if status < 500 else "api_error")


def openai_error_body(body: Any, status: int) -> dict[str, Any]:
    """The native error body (project.api.errors.error_body) in OpenAI's shape."""
    native = body.get("error", {}) if isinstance(body, dict) else {}
    return {
        "error": {
            "message": native.get("message", ""),
            "type": openai_error_type(status),
            "param": native.get("param"),
            "code": native.get("code"),
            "request_id": native.get("request_id"),
        }
    }
