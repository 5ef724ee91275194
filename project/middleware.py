"""The middleware stack as the API sees it: no browser-only layers, and no thread hops.

Under ASGI, Django runs each `MiddlewareMixin` hook (process_request, process_view, process_response) of an
async-mode chain through `sync_to_async`: a hop to a thread and back, copying the context both ways. With ten such
layers the hops were most of a submit's CPU (py-spy on a web worker under load: the DRF view ~12 % of the time the
GIL was held, asgiref's hop machinery ~60 %). One sync-only layer in the middle (WhiteNoise) also forced the chain
back and forth between modes. So here:

- layers whose hooks do no I/O (security headers, CommonMiddleware, X-Frame-Options) run them inline in either mode;
- layers the API never uses (static files, sessions, CSRF, Django auth, messages) let API requests straight through,
  and behave exactly as Django's own for browser pages (the staff admin), hops included;
- the request log runs inline for API requests (it reads no session or user there).

API requests (`/v1/…`, `/healthz`) authenticate with API keys in DRF and never read a session or a CSRF token:
every DRF view is csrf_exempt anyway. So an API request crosses one thread hop (into its sync view) instead of
about twenty. Every class here is a subclass of the library's own, so settings and behaviour stay theirs.
"""

import asyncio
from typing import Any

import structlog
from asgiref.sync import sync_to_async
from django.contrib.auth.middleware import AuthenticationMiddleware as DjangoAuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware as DjangoMessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.http import HttpRequest, HttpResponse
from django.middleware.clickjacking import XFrameOptionsMiddleware as DjangoXFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware as DjangoCommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware as DjangoCsrfViewMiddleware
from django.middleware.security import SecurityMiddleware as DjangoSecurityMiddleware
from django_structlog import signals as django_structlog_signals
from django_structlog.app_settings import app_settings
from django_structlog.middlewares import RequestMiddleware as StructlogRequestMiddleware
from whitenoise.middleware import WhiteNoiseMiddleware

from project.hybrid_middleware import HybridMiddleware

API_PREFIXES = ("/v1/", "/healthz", "/metrics")
logger = structlog.get_logger("django_structlog.middlewares.request")


def is_api_request(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIXES)


class _InlineHooks:
    """For a MiddlewareMixin whose hooks only look at the request and response: no hop in async mode."""

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        response = self.process_request(request) if hasattr(self, "process_request") else None
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            response = self.process_response(request, response)
        return response


class _BrowserOnly:
    """For a MiddlewareMixin the API never needs: API requests go straight to the next layer (no hop)."""

    def __call__(self, request: HttpRequest) -> Any:
        if is_api_request(request):
            return self.get_response(request)  # a coroutine in async mode, awaited by the caller
        return super().__call__(request)


class SecurityMiddleware(_InlineHooks, DjangoSecurityMiddleware):
    pass


class CommonMiddleware(_InlineHooks, DjangoCommonMiddleware):
    pass


class XFrameOptionsMiddleware(_InlineHooks, DjangoXFrameOptionsMiddleware):
    pass


class SessionMiddleware(_BrowserOnly, DjangoSessionMiddleware):
    pass


class AuthenticationMiddleware(_BrowserOnly, DjangoAuthenticationMiddleware):
    pass


class MessageMiddleware(_BrowserOnly, DjangoMessageMiddleware):
    pass


class CsrfViewMiddleware(_BrowserOnly, DjangoCsrfViewMiddleware):
    """Also its process_view: Django would wrap a sync one in a hop for every request, API requests included."""

    def __init__(self, get_response: Any) -> None:
        super().__init__(get_response)
        if self.async_mode:
            self.process_view = self._aprocess_view  # type: ignore[method-assign]

    def process_view(self, request: HttpRequest, callback: Any, args: Any, kwargs: Any) -> HttpResponse | None:
        if is_api_request(request):
            return None
        return super().process_view(request, callback, args, kwargs)

    async def _aprocess_view(self, request: HttpRequest, callback: Any, args: Any, kwargs: Any) -> HttpResponse | None:
        if is_api_request(request):
            return None
        # Reads the POST body for the token: off the event loop, as Django would run it.
        return await sync_to_async(DjangoCsrfViewMiddleware.process_view, thread_sensitive=True)(
            self, request, callback, args, kwargs
        )


class StaticFilesMiddleware(HybridMiddleware, WhiteNoiseMiddleware):
    """WhiteNoise is sync-only, which forced Django to switch the chain's mode around it; here it is both."""

    def __init__(self, get_response: Any = None, **kwargs: Any) -> None:
        WhiteNoiseMiddleware.__init__(self, get_response, **kwargs)
        self._mode_adopt(get_response)

    def _call(self, request: HttpRequest) -> HttpResponse:
        return WhiteNoiseMiddleware.__call__(self, request)

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        if not is_api_request(request):
            static_file = (
                self.find_file(request.path_info) if self.autorefresh else self.files.get(request.path_info)
            )
            if static_file is not None:
                return await sync_to_async(self.serve, thread_sensitive=True)(static_file, request)  # opens a file
        return await self.get_response(request)


class RequestLogMiddleware(StructlogRequestMiddleware):
    """django-structlog's request log; inline for API requests, where it reads no session or user."""

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        if not is_api_request(request):
            return await super().__acall__(request)  # binding the user may load it from the session: a hop
        self.prepare(request)
        try:
            response = await self.get_response(request)
        except asyncio.CancelledError:
            logger.log(app_settings.REQUEST_CANCELLED_LOG_LEVEL, "request_cancelled")
            raise
        self.handle_response(request, response)
        return response


def request_log_bind_finished(sender: Any, request: HttpRequest, log_kwargs: dict, **_: Any) -> None:
    """One log line per request: request_started is at DEBUG, so its user agent goes on request_finished."""
    log_kwargs["user_agent"] = request.META.get("HTTP_USER_AGENT")


django_structlog_signals.bind_extra_request_finished_metadata.connect(
    request_log_bind_finished, dispatch_uid=__name__
)
