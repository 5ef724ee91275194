"""Prometheus metrics: what each process counts, what `/metrics` reads from the database at scrape time, and the
endpoint itself.

prometheus_client (the Prometheus project's own client) does the counting and the text format. Not
django-prometheus: it wraps every database query and cache call in counters, a cost on the submit path we measured
to the microsecond, for figures an operator does not act on.

- Counted in process: web requests by route pattern and status (`MetricsMiddleware`) here; the forwarder's calls,
  upstream latency and failures, and settlements in `generations/metrics.py`.
- Several processes on one host (gunicorn's workers, a forwarder beside them): set `PROMETHEUS_MULTIPROC_DIR` to an
  empty directory for all of them (`scripts/run.sh` does) and `/metrics` adds up every process's counters from it.
  A forwarder on a host of its own serves its own `/metrics` on `FORWARD_METRICS_PORT`.
- Read at scrape time: each app registers a collector of the figures only the database knows (queue depth, money
  held, webhook backlog, the reaper's age) with `metrics_collector_register`; they run on the web process's scrape
  only, never in the forwarder's.

`/metrics` answers a request carrying `Authorization: Bearer <METRICS_TOKEN>`, or with no token configured, a
request from loopback only (a scraper on the host or a sidecar); anything else is 404, as if it did not exist.
"""

import hmac
import os
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from project.hybrid_middleware import HybridMiddleware

HTTP_REQUESTS = Counter(
    "imagegen_http_requests_total", "Requests answered, by method, URL pattern and status.",
    ["method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "imagegen_http_request_duration_seconds", "Time to answer a request (a Prefer: wait counts its wait).",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)

_scrape_collectors: list[Collector] = []


def metrics_collector_register(collector: Collector) -> None:
    """Add a collector that runs on each scrape of the web process's `/metrics` (figures read from the database)."""
    if collector not in _scrape_collectors:
        _scrape_collectors.append(collector)


def _route(request: HttpRequest) -> str:
    """The URL pattern, never the path: ids in paths would make a series per generation."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        return "unmatched"
    return "/" + (match.route or match.view_name or "unknown").lstrip("^")


class MetricsMiddleware(HybridMiddleware):
    """Counts and times every response. Sync and async alike (no thread hop)."""

    def _observe(self, request: HttpRequest, response: HttpResponse, started: float) -> None:
        route, method = _route(request), request.method or "GET"
        HTTP_REQUESTS.labels(method, route, str(response.status_code)).inc()
        HTTP_SECONDS.labels(method, route).observe(time.perf_counter() - started)

    def _call(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        self._observe(request, response, started)
        return response

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = await self.get_response(request)
        self._observe(request, response, started)
        return response


def metrics_text(*, with_scrape_collectors: bool) -> bytes:
    """This process's metrics, or with PROMETHEUS_MULTIPROC_DIR every process's of this host, in the text format."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    if not with_scrape_collectors:
        return generate_latest(registry)
    scrape = CollectorRegistry(auto_describe=False)
    for collector in _scrape_collectors:
        scrape.register(collector)
    return generate_latest(registry) + generate_latest(scrape)


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(given.encode(), token.encode())
    return request.META.get("REMOTE_ADDR") in ("127.0.0.1", "::1")


def metrics_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    if not _allowed(request):
        return HttpResponse(status=404)
    return HttpResponse(metrics_text(with_scrape_collectors=True), content_type=CONTENT_TYPE_LATEST)


def metrics_serve(*, port: int, host: str = "0.0.0.0") -> Callable[[], None]:
    """Serve this process's own metrics on a port of its own (the forwarder on a host without a web process);
    returns the function that stops it."""
    from prometheus_client import start_http_server

    server, thread = start_http_server(port, addr=host)

    def stop() -> None:
        server.shutdown()
        thread.join(timeout=5)

    return stop
