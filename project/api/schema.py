"""What the OpenAPI schema says beyond what drf-spectacular infers from the views: the error responses each
operation can give (one reusable component per status, listing its error codes), and the headers every response
carries. A drf-spectacular postprocessing hook (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]).

The codes per status come from the domain error classes themselves (every `project.errors.DomainError` subclass
of the loaded apps, mapped by the same table the exception handler uses), plus the codes chosen at raise sites
and the HTTP-layer ones listed below.
"""

from typing import Any

from project import errors as domain
from project.api.errors import domain_error_class_status

# Codes not declared as a class attribute: chosen where raised (catalog validation, input images, keys) or
# produced by DRF and the HTTP layer.
_CODES_AT_RAISE_SITES: dict[int, set[str]] = {
    400: {"invalid_request", "validation_error", "malformed_request", "operation_not_supported", "prompt_required", "invalid_n",
          "missing_input_image", "unexpected_input_image", "too_many_input_images", "unsupported_size",
          "unsupported_quality", "unsupported_parameter", "prompt_too_long", "input_image_too_large",
          "input_image_unreachable"},
    401: {"malformed_authorization", "malformed_api_key", "invalid_api_key", "api_key_revoked", "api_key_expired"},
    403: {"admin_key_required", "permission_denied"},
    404: {"not_found"},
    413: {"request_too_large"},
    415: {"unsupported_media_type"},
    429: {"rate_limited"},
    500: {"internal_error"},
    502: {"upstream_error", "upstream_rejected", "upstream_unavailable", "upstream_quota_exhausted",
          "upstream_auth_failed", "upstream_empty_result", "upstream_task_failed", "output_not_image",
          "output_fetch_failed", "worker_lost"},
}

_TITLES = {
    400: "BadRequest", 401: "Unauthorized", 402: "PaymentRequired", 403: "Forbidden", 404: "NotFound",
    409: "Conflict", 410: "Gone", 413: "PayloadTooLarge", 415: "UnsupportedMediaType", 422: "Unprocessable",
    429: "TooManyRequests", 451: "UnavailableForLegalReasons", 500: "InternalError", 502: "BadGateway",
    503: "ServiceUnavailable", 504: "GatewayTimeout",
}
_MEANINGS = {
    400: "The request is invalid; `param` names the field.",
    401: "Missing or invalid API key (`WWW-Authenticate: Bearer`).",
    402: "Not enough credit, or a spend limit or key budget is reached.",
    403: "The key may not do this, the tenant is suspended, or the image awaits review.",
    404: "No such object in this tenant (or no such path).",
    409: "The object's current state does not allow this.",
    410: "Gone: the resource was deleted, or the model was retired (its replacement is named).",
    413: "The body is too large.",
    415: "The Content-Type is not accepted.",
    422: "The Idempotency-Key was used with a different body.",
    429: "A rate limit, quota or the failed-authentication limit: retry after `Retry-After` seconds.",
    451: "Rejected by moderation.",
    500: "An unexpected error; quote `request_id` to support.",
    502: "The upstream failed the generation.",
    503: "Temporarily unavailable (the database): retry after `Retry-After` seconds.",
    504: "The generation did not finish in time.",
}
_RETRY_AFTER = {429, 503}

# Statuses beyond the common ones, by operation.
_EXTRA_STATUSES: dict[str, set[int]] = {
    "generations_create": {402, 409, 410, 422},
    "generations_cancel": {409},
    "generations_image": {451},
    "openai_images_generate": {402, 410, 502, 504},
    "openai_images_edit": {402, 410, 502, 504},
}

REQUEST_ID_HEADER = {
    "description": "This request's id (a sane incoming `X-Request-Id` is echoed); also `error.request_id` and in "
    "our logs.",
    "schema": {"type": "string"},
}
RETRY_AFTER_HEADER = {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}
_GENERATION_CREATE_HEADERS = {
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored response of an earlier request with the same "
        "Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    },
    "Preference-Applied": {
        "description": "`wait=N` when the `Prefer: wait=N` header was honoured (RFC 7240).",
        "schema": {"type": "string"},
    },
}

ERROR_SCHEMA = {
    "type": "object",
    "description": "The one error shape. The OpenAI-compatible endpoints add OpenAI's `type`.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Stable machine-readable code."},
                "message": {"type": "string", "description": "Human-readable explanation."},
                "param": {"type": "string", "nullable": True, "description": "The offending field, if any."},
                "request_id": {"type": "string", "nullable": True, "description": "Equals `X-Request-Id`."},
                "type": {"type": "string", "description": "OpenAI-compatible endpoints only."},
                "fields": {
                    "type": "object",
                    "description": "Validation errors only: every invalid field with its messages.",
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
        }
    },
}


def _all_subclasses(klass: type) -> list[type]:
    found: list[type] = []
    for sub in klass.__subclasses__():
        found.append(sub)
        found.extend(_all_subclasses(sub))
    return found


def error_codes_by_status() -> dict[int, list[str]]:
    codes: dict[int, set[str]] = {status: set(values) for status, values in _CODES_AT_RAISE_SITES.items()}
    for klass in _all_subclasses(domain.DomainError):
        if klass.__module__ == domain.__name__:
            continue  # a category: its default code is always overridden by the concrete error
        codes.setdefault(domain_error_class_status(klass), set()).add(klass.code)
    return {status: sorted(values) for status, values in sorted(codes.items())}


def _error_response(status: int, codes: list[str]) -> dict[str, Any]:
    headers = {"X-Request-Id": REQUEST_ID_HEADER}
    if status in _RETRY_AFTER:
        headers["Retry-After"] = RETRY_AFTER_HEADER
    listed = ", ".join(f"`{code}`" for code in codes)
    return {
        "description": f"{_MEANINGS.get(status, '')} Error codes: {listed}.",
        "headers": headers,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _statuses_for(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    statuses = {400, 401, 403, 429, 500, 503}
    if "{" in path:
        statuses.add(404)
    if "requestBody" in operation:
        statuses |= {413, 415}
    return statuses | _EXTRA_STATUSES.get(operation.get("operationId", ""), set())


def error_responses_hook(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    codes = error_codes_by_status()
    components = result.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    responses = components.setdefault("responses", {})
    for status, title in _TITLES.items():
        if codes.get(status):
            responses[title] = _error_response(status, codes[status])
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            documented = operation.setdefault("responses", {})
            for code, response in documented.items():
                if "$ref" not in response:
                    response.setdefault("headers", {})["X-Request-Id"] = REQUEST_ID_HEADER
                    if int(code) < 300 and operation.get("operationId") == "generations_create":
                        response["headers"].update(_GENERATION_CREATE_HEADERS)
            for status in sorted(_statuses_for(path, method, operation)):
                if _TITLES[status] not in responses:
                    continue
                key = str(status)
                if key not in documented or not documented[key].get("content"):
                    documented[key] = {"$ref": f"#/components/responses/{_TITLES[status]}"}
    return result
