"""What every request family shares: the call we make, what comes back, and how failures are classified.

This package speaks HTTP to AIHubMix and imports none of our apps: it takes a validated call and returns outputs
or raises one of the errors below, each carrying the upstream status, a stable code, the message and trace id.
"""

import re
from dataclasses import dataclass, field
from typing import Any

import httpx
import msgspec

# How much of an answer we could not read is kept on the generation for staff.
BODY_EXCERPT_CHARS = 8000


@dataclass
class InputImage:
    data: bytes
    content_type: str
    filename: str


@dataclass
class ProviderCall:
    """One upstream request. `body` is the exact upstream JSON (or multipart form fields) without the images,
    which the family module attaches in the shape its endpoint wants."""

    model_id: str
    family: str
    operation: str
    body: dict[str, Any]
    images: list[InputImage] = field(default_factory=list)
    mask: InputImage | None = None


@dataclass
class RawOutput:
    url: str | None
    b64_json: str | None
    revised_prompt: str | None = None


@dataclass
class ProviderResult:
    outputs: list[RawOutput]
    usage: dict[str, Any] | None
    upstream_task_id: str | None
    trace_id: str | None


class ProviderError(Exception):
    default_code = "upstream_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        trace_id: str | None = None,
        detail: str = "",
    ) -> None:
        super().__init__(message)
        # `message` ends up in front of tenants (the generation's error); `detail` (exception reprs, addresses)
        # only in our logs.
        self.message = message
        self.detail = detail
        self.code = code or self.default_code
        self.status = status
        self.trace_id = trace_id

    def __str__(self) -> str:
        status = f" (HTTP {self.status})" if self.status else ""
        detail = f" [{self.detail}]" if self.detail else ""
        return f"{self.code}{status}: {self.message}{detail}"


class TransientProviderError(ProviderError):
    """Nothing was generated (or we were told to come back later): retrying is safe."""

    default_code = "upstream_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class PermanentProviderError(ProviderError):
    """The upstream refused this request; sending it again would fail the same way."""

    default_code = "upstream_rejected"


class ContentPolicyError(PermanentProviderError):
    default_code = "content_policy_violation"


class UnknownOutcomeError(ProviderError):
    """The request reached the upstream but we never learnt the result: it may have generated and charged us."""

    default_code = "upstream_timeout"


class MalformedResponse(PermanentProviderError):
    """A 2xx answer whose shape we do not understand. It was delivered, so the upstream probably generated and
    charged: sending it again would pay twice for the same misunderstanding. The body is kept for staff."""

    default_code = "upstream_unrecognized_response"

    def __init__(self, message: str, *, body: str = "", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.body = body[:BODY_EXCERPT_CHARS]


TRACE_HEADERS = ("x-request-id", "x-trace-id", "x-oneapi-request-id", "trace-id", "request-id")
_MODERATION_CODES = frozenset(
    {
        "moderation_blocked",
        "content_policy_violation",
        "content_filter",
        "sensitive_content",
        "data_inspection_failed",
    }
)


def trace_id_from(response: httpx.Response, payload: Any = None) -> str | None:
    for name in TRACE_HEADERS:
        if response.headers.get(name):
            return response.headers[name]
    if isinstance(payload, dict):
        for container in (payload, payload.get("error")):
            if isinstance(container, dict):
                for key in ("trace_id", "request_id", "traceId", "requestId"):
                    if isinstance(container.get(key), str):
                        return container[key]
    return None


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None


def response_json(response: httpx.Response) -> Any:
    """The answer's JSON, or None when it is not JSON. msgspec first: a gpt-image-2 answer is ~3 MB of base64 in one
    string, which it parses in ~1.1 ms against the standard library's ~2.7 ms, with the GIL held either way (a
    quarter of a forwarder's GIL time went here). What msgspec refuses but the standard library accepts (NaN, lone
    surrogates, a BOM, UTF-16) is parsed as before, so no answer reads differently."""
    try:
        return msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        pass
    try:
        return response.json()
    except ValueError:
        return None


_MESSAGE_KEYS = ("message", "msg", "detail", "error_message", "error", "errors")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")


def message_in(value: Any, depth: int = 0) -> str | None:
    """The first human-readable string in an upstream error value. Upstreams nest their messages (`{"error":
    {"message": {"detail": "..."}}}`, lists of errors); a nested object is searched, never shown as a Python repr."""
    if isinstance(value, str):
        text = " ".join(_UNPRINTABLE.sub(" ", value).split())
        return text[:500] or None
    if depth > 4:
        return None
    if isinstance(value, dict):
        for key in _MESSAGE_KEYS:
            if (found := message_in(value.get(key), depth + 1)) is not None:
                return found
    elif isinstance(value, list):
        for item in value[:5]:
            if (found := message_in(item, depth + 1)) is not None:
                return found
    return None


def _code_in(error: dict[str, Any]) -> str:
    # Google's errors (the Gemini route) put the HTTP status in `code` and their own code in `status`.
    keys = ("status", "code") if isinstance(error.get("code"), int) and isinstance(error.get("status"), str) else (
        "code", "type")
    for key in keys:
        value = error.get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
            return _UNPRINTABLE.sub(" ", str(value)).strip()[:100]
    return ""


def error_from_response(response: httpx.Response) -> ProviderError:
    """Classify a non-2xx answer (see NOTES.md "Errors"). Its message is the upstream's own words when it gave
    some; otherwise, rather than a raw body (an HTML error page), the status."""
    payload = response_json(response)
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        error = {"message": error}
    upstream_code = _code_in(error)
    message = (
        message_in(error)
        or message_in(payload)
        or f"The upstream answered HTTP {response.status_code} {response.reason_phrase}".strip() + "."
    )
    kwargs: dict[str, Any] = {"status": response.status_code, "trace_id": trace_id_from(response, payload)}
    status = response.status_code
    if status == 429:
        return TransientProviderError(
            message, code="upstream_rate_limited", retry_after=retry_after_seconds(response), **kwargs
        )
    if status >= 500 or status == 408:
        return TransientProviderError(
            message, code="upstream_unavailable", retry_after=retry_after_seconds(response), **kwargs
        )
    if upstream_code in _MODERATION_CODES:
        return ContentPolicyError(message, **kwargs)
    if status == 401:
        return PermanentProviderError(message, code="upstream_auth_failed", **kwargs)
    if status == 403:
        code = "upstream_quota_exhausted" if "quota" in upstream_code else "upstream_forbidden"
        return PermanentProviderError(message, code=code, **kwargs)
    return PermanentProviderError(f"{upstream_code}: {message}" if upstream_code else message, **kwargs)


def _b64(value: Any) -> str | None:
    """A base64 image, without the `data:<type>;base64,` prefix some models put in front."""
    if not isinstance(value, str) or not value:
        return None
    return value.split(",", 1)[1] if value.startswith("data:") and "," in value else value


def _url(value: Any) -> str | None:
    return value if isinstance(value, str) and value.startswith(("http://", "https://")) else None


def _item_outputs(item: Any) -> list[RawOutput]:
    """One element of `data` / `output`: `{url}`, `{b64_json}`, `{bytesBase64, mimeType}` or a bare URL."""
    if _url(item):
        return [RawOutput(url=item, b64_json=None)]
    if not isinstance(item, dict):
        return []
    url = _url(item.get("url"))
    b64 = _b64(item.get("b64_json")) or _b64(item.get("bytesBase64")) or _b64(item.get("bytesBase64Encoded"))
    if not (url or b64):
        return []
    revised = item.get("revised_prompt") if isinstance(item.get("revised_prompt"), str) else None
    return [RawOutput(url=url if not b64 else None, b64_json=b64, revised_prompt=revised)]


def outputs_from_container(container: Any) -> list[RawOutput]:
    """Every documented and observed shape of `data` / `output` (NOTES.md):

    - a list of `{"url"}` / `{"b64_json"}` objects or bare URL strings (`data` on the OpenAI-compatible routes,
      `output` on predictions);
    - an object `{"b64_json": [{"bytesBase64": ..., "mimeType": ...}] | [str], "urls": [str]}` (newer models);
    - a single object `{"url"}` / `{"b64_json"}`, or a single URL string.
    """
    if isinstance(container, list):
        return [output for item in container for output in _item_outputs(item)]
    if isinstance(container, dict) and ("urls" in container or isinstance(container.get("b64_json"), list)):
        outputs: list[RawOutput] = []
        for item in container.get("b64_json") or []:
            outputs.extend(_item_outputs(item) if isinstance(item, dict) else _item_outputs({"b64_json": item}))
        for url in container.get("urls") or []:
            outputs.extend(_item_outputs(url))
        return outputs
    return _item_outputs(container)


def result_from_payload(
    payload: Any, *, trace_id: str | None, body: str = "", task_id: str | None = None
) -> ProviderResult:
    """A 2xx body from either sync family: OpenAI's `data` or the predictions `output`, whichever is there.

    An answer without any image we can read is kept (`body`) and never retried: it was delivered and charged."""
    if not isinstance(payload, dict):
        raise MalformedResponse(
            "the upstream answered 2xx with a body that is not a JSON object", trace_id=trace_id, body=body
        )
    outputs = outputs_from_container(payload.get("data")) or outputs_from_container(payload.get("output"))
    if not outputs:
        empty = any(payload.get(key) == [] for key in ("data", "output"))
        raise MalformedResponse(
            "the upstream answered without any image" if empty else "the upstream's answer has no image we can read",
            code="upstream_empty_result" if empty else None,
            trace_id=trace_id,
            body=body,
        )
    usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else None
    return ProviderResult(outputs=outputs, usage=usage, upstream_task_id=task_id, trace_id=trace_id)


@dataclass
class UpstreamRequest:
    """What a family module asks the shared HTTP layer to send. `path` is relative to the endpoint's base URL:
    "aihubmix" (the base URL, Bearer key) or "gemini" (the Gemini-native route, `x-goog-api-key`)."""

    method: str
    path: str
    json: dict[str, Any] | None = None
    data: dict[str, str] | None = None
    files: list[tuple[str, tuple[str, bytes, str]]] | None = None
    endpoint: str = "aihubmix"


def parse_json_success(response: httpx.Response) -> tuple[Any, str | None]:
    payload = response_json(response)
    trace_id = trace_id_from(response, payload)
    if payload is None:
        raise MalformedResponse(
            f"the upstream answered {response.status_code} with a body that is not JSON",
            status=response.status_code,
            trace_id=trace_id,
            body=response.text,
        )
    return payload, trace_id


def parse_success(response: httpx.Response) -> ProviderResult:
    """A sync family's 2xx answer: images, or MalformedResponse keeping the body."""
    payload, trace_id = parse_json_success(response)
    try:
        return result_from_payload(payload, trace_id=trace_id)
    except MalformedResponse as error:
        # The body's text only when it is kept: decoding a 3 MB answer for every success cost a copy and ~3 ms.
        error.body = response.text[:BODY_EXCERPT_CHARS]
        raise
