"""One error shape for the whole service (admin pages aside).

    {"error": {"code": "<stable machine code>", "message": "<human text>", "param": "<field>"|null,
               "request_id": "<the X-Request-Id of this response>",
               "fields": {"<field>": ["<message>", ...]}}}   # "fields" only on validation errors

Services raise plain domain errors (`project.errors`); this module is the one place that maps their category to an
HTTP status. `ApiError` remains for refusals that only exist at the HTTP layer (a malformed header, a body too big).
Django's own error views (`handler404`, `handler500`, ...) answer in the same shape, so an unknown path, a crash or
a database outage outside DRF never shows an HTML page or a traceback. A higher layer may register another shape for
a path prefix (`error_shape_register`: the OpenAI-compatible API under /v1/images/), which these views then use.
"""

import logging
import sys
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults as django_error_views
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework import exceptions, status
from rest_framework.response import Response

from project import errors as domain
from project.db_outage import database_outage_record
from project.request_id import current_request_id

logger = logging.getLogger(__name__)
# The database errors that mean "not reachable right now" rather than "this query is wrong".
DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)
# Redis (CACHE_URL, the broker) unreachable: a dependency outage like the database's, answered the same way (503,
# the client retries with its Idempotency-Key), never a 500. The paths a submit takes fall back without it where
# they can (read cache, rate limit, failed-login counter); this catches the rest.
CACHE_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError)

# Most specific first: the first category in a class's MRO that is listed here gives the status.
_STATUS_BY_CATEGORY: dict[type[domain.DomainError], int] = {
    domain.InvalidRequest: 400,
    domain.Unauthenticated: 401,
    domain.PaymentRequired: 402,
    domain.Forbidden: 403,
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.Gone: 410,
    domain.Unprocessable: 422,
    domain.RateLimited: 429,
    domain.LegallyUnavailable: 451,
    domain.UpstreamFailed: 502,
    domain.Unavailable: 503,
    domain.TimedOut: 504,
}


def domain_error_class_status(error_class: type[domain.DomainError]) -> int:
    for klass in error_class.__mro__:
        if klass in _STATUS_BY_CATEGORY:
            return _STATUS_BY_CATEGORY[klass]
    return 400


def domain_error_status(exc: domain.DomainError) -> int:
    return domain_error_class_status(type(exc))


class ApiError(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_request"
    default_detail = "The request is invalid."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        param: str | None = None,
        status_code: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.code = code or self.default_code
        self.message = message or str(self.default_detail)
        self.param = param
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers or {}
        super().__init__(detail=self.message, code=self.code)


_DRF_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.NotAuthenticated: "authentication_required",
    exceptions.AuthenticationFailed: "invalid_api_key",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.ParseError: "malformed_request",
    exceptions.Throttled: "rate_limited",
    exceptions.ValidationError: "validation_error",
}


def error_body(code: str, message: str, *, param: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "param": param, "request_id": current_request_id(), **extra}}


class DatabaseUnavailable(domain.Unavailable):
    pass


def database_unavailable() -> DatabaseUnavailable:
    return DatabaseUnavailable(retry_after_seconds=settings.DATABASE_UNAVAILABLE_RETRY_AFTER_SECONDS)


def _flatten_validation(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors" and not prefix:
                name = "non_field_errors"
            fields.update(_flatten_validation(value, name))
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            fields[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                fields.update(_flatten_validation(item, f"{prefix}[{index}]"))
    else:
        fields[prefix or "non_field_errors"] = [str(detail)]
    return fields


def _validation_response(exc: exceptions.ValidationError) -> Response:
    fields = _flatten_validation(exc.detail)
    param, messages = next(iter(fields.items()), ("non_field_errors", ["Invalid input."]))
    shown_param = None if param == "non_field_errors" else param
    message = f"{shown_param}: {messages[0]}" if shown_param else messages[0]
    body = error_body("validation_error", message, param=shown_param, fields=fields)
    return Response(body, status=status.HTTP_400_BAD_REQUEST)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        exc = ApiError("The request body is too large.", code="request_too_large", status_code=413)
    elif isinstance(exc, (TooManyFieldsSent, TooManyFilesSent)):
        exc = ApiError("The request has too many fields or files.", code="request_too_large", status_code=413)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, DATABASE_UNAVAILABLE):
        logger.error("database unavailable", exc_info=exc)
        database_outage_record(error=exc)
        exc = database_unavailable()
    elif isinstance(exc, CACHE_UNAVAILABLE):
        logger.error("cache unavailable", exc_info=exc)
        exc = database_unavailable()  # the same 503 and Retry-After: to a client, one dependency is down

    if isinstance(exc, domain.DomainError):
        response = Response(error_body(exc.code, exc.message, param=exc.param), status=domain_error_status(exc))
        if exc.retry_after_seconds is not None:
            response["Retry-After"] = str(max(1, exc.retry_after_seconds))
        if response.status_code == 401:
            response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response
    if isinstance(exc, ApiError):
        response = Response(error_body(exc.code, exc.message, param=exc.param), status=exc.status_code)
        for name, value in exc.headers.items():
            response[name] = value
        return response
    if isinstance(exc, exceptions.ValidationError):
        return _validation_response(exc)

    # Imported here: rest_framework.views imports the authentication classes, which import this module.
    from rest_framework.views import exception_handler as drf_exception_handler

    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = _DRF_CODES.get(type(exc))
    if code is None:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        code = codes if isinstance(codes, str) else "error"
    message = str(exc.detail) if isinstance(exc, exceptions.APIException) else str(exc)
    response.data = error_body(code, message)
    return response


# --- Django's error views (ROOT_URLCONF handler400/403/404/500) ----------------------------------------------


ErrorReshape = Callable[[dict[str, Any], int], dict[str, Any]]  # (the one error body, status) -> the body to send
_SHAPES_BY_PREFIX: dict[str, ErrorReshape] = {}


def error_shape_register(*, path_prefix: str, reshape: ErrorReshape) -> None:
    """Have Django's error views below answer requests under `path_prefix` with `reshape(body, status)`. Registered
    by the app that owns those paths (at start-up), so this module needs not know it."""
    _SHAPES_BY_PREFIX[path_prefix] = reshape


def _is_admin(request: HttpRequest) -> bool:
    return request.path.startswith("/admin/")


def json_error_response(
    request: HttpRequest, status_code: int, code: str, message: str, *, headers: dict[str, str] | None = None
) -> JsonResponse:
    """An error answered outside DRF, in the shape registered for the request's path (else the one shape)."""
    body = error_body(code, message)
    for prefix, reshape in _SHAPES_BY_PREFIX.items():
        if request.path.startswith(prefix):
            body = reshape(body, status_code)
            break
    return JsonResponse(body, status=status_code, headers=headers)


def bad_request_view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_admin(request):
        return django_error_views.bad_request(request, exception)
    return json_error_response(request, 400, "invalid_request", "The request is invalid.")


def permission_denied_view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_admin(request):
        return django_error_views.permission_denied(request, exception)
    return json_error_response(request, 403, "permission_denied", "This operation is not allowed.")


def not_found_view(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_admin(request):
        return django_error_views.page_not_found(request, exception)
    return json_error_response(request, 404, "not_found", "No such resource. GET /v1/docs/ lists the API.")


def server_error_view(request: HttpRequest) -> HttpResponse:
    """Called by Django inside the `except` block that caught the error, so `sys.exc_info()` names it. Nothing of
    the exception reaches the body: the request id lets staff find the traceback in the logs."""
    exc = sys.exc_info()[1]
    if isinstance(exc, DATABASE_UNAVAILABLE + CACHE_UNAVAILABLE):
        if isinstance(exc, DATABASE_UNAVAILABLE):
            database_outage_record(error=exc)
        unavailable = database_unavailable()
        return json_error_response(
            request, 503, unavailable.code, unavailable.message,
            headers={"Retry-After": str(unavailable.retry_after_seconds)},
        )
    if _is_admin(request):
        return django_error_views.server_error(request)
    return json_error_response(
        request, 500, "internal_error", "An internal error occurred. Quote the request id when contacting support."
    )
