"""One error shape for the whole native API.

    {"error": {"code": "<stable machine code>", "message": "<human text>", "param": "<field>"|null,
               "fields": {"<field>": ["<message>", ...]}}}   # "fields" only on validation errors

Services raise plain domain errors (`project.errors`); this module is the one place that maps their category to an
HTTP status. `ApiError` remains for refusals that only exist at the HTTP layer (a malformed header, a body too big).
"""

from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from project import errors as domain

# Most specific first: the first category in a class's MRO that is listed here gives the status.
_STATUS_BY_CATEGORY: dict[type[domain.DomainError], int] = {
    domain.InvalidRequest: 400,
    domain.Unauthenticated: 401,
    domain.PaymentRequired: 402,
    domain.Forbidden: 403,
    domain.NotFound: 404,
    domain.Conflict: 409,
    domain.Gone: 410,
    domain.TooLarge: 413,
    domain.Unprocessable: 422,
    domain.RateLimited: 429,
    domain.LegallyUnavailable: 451,
    domain.UpstreamFailed: 502,
    domain.TimedOut: 504,
}


def domain_error_status(exc: domain.DomainError) -> int:
    for klass in type(exc).__mro__:
        if klass in _STATUS_BY_CATEGORY:
            return _STATUS_BY_CATEGORY[klass]
    return 400


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
    return {"error": {"code": code, "message": message, "param": param, **extra}}


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
