"""Plain domain errors: what went wrong, in words and a stable code, with no HTTP in them.

Services raise subclasses defined beside the code that raises them (`billing.services.quotas.InsufficientCredit`).
Each subclasses one of the categories below, which say what kind of refusal it is; the API's single exception
handler (`project.api.errors`) maps a category to an HTTP status and renders the one error shape. Admin pages and
management commands catch the same exceptions and show `message`.
"""

from typing import ClassVar


class DomainError(Exception):
    code: ClassVar[str] = "invalid_request"
    message: ClassVar[str] = "The request is invalid."

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        param: str | None = None,
        retry_after_seconds: int | None = None,
    ) -> None:
        # Instance attributes shadow the class defaults, so a raise site can be more precise than its class.
        self.message = message or type(self).message
        self.code = code or type(self).code
        self.param = param
        self.retry_after_seconds = retry_after_seconds
        super().__init__(self.message)


class InvalidRequest(DomainError):
    """The input breaks a rule; sending it again unchanged will fail again."""


class Unauthenticated(DomainError):
    code = "authentication_required"
    message = "Authentication is required."


class Forbidden(DomainError):
    code = "permission_denied"
    message = "This operation is not allowed."


class NotFound(DomainError):
    code = "not_found"
    message = "Not found."


class Conflict(DomainError):
    """The target's current state does not allow this (already finished, still in progress, ...)."""

    code = "conflict"


class Gone(DomainError):
    code = "gone"
    message = "This resource is no longer available."


class Unprocessable(DomainError):
    code = "unprocessable"


class PaymentRequired(DomainError):
    code = "payment_required"


class RateLimited(DomainError):
    code = "rate_limited"
    message = "Too many requests. Retry later."


class LegallyUnavailable(DomainError):
    """Withheld for legal or policy reasons (moderation)."""

    code = "unavailable_for_legal_reasons"


class UpstreamFailed(DomainError):
    """The upstream refused or failed in a way the caller cannot fix by changing the request."""

    code = "upstream_error"


class TimedOut(DomainError):
    code = "timeout"


class Unavailable(DomainError):
    """A dependency (the database) is down; the same request is expected to work again shortly."""

    code = "service_unavailable"
    message = "The service is temporarily unavailable. Retry shortly."
