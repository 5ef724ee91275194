"""All configuration, read from the environment once, here. (Over 400 lines: one place to read every setting.)"""

import os
import secrets
import time
from pathlib import Path

import environ
import structlog

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)


def _local_secret_key(path: Path) -> str:
    """Zero-setup runs get a random key kept in var/ and shared by every process of this checkout (never a
    published default: it signs image URLs). Servers on several machines must set DJANGO_SECRET_KEY instead."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # another process may be writing it right now
            if key := path.read_text().strip():
                return key
            time.sleep(0.02)
        raise environ.ImproperlyConfigured(f"{path} is empty; delete it or set DJANGO_SECRET_KEY") from None
    key = secrets.token_urlsafe(50)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(key)
    return key


SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="") or _local_secret_key(VAR_DIR / "secret-key")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "django_structlog",
    "health_check",
    "accounts",
    "billing",
    "webhooks",
    "generations",
    "aihubmix_sandbox",
]

MIDDLEWARE = [
    # Outermost, so every response (errors from the other middleware included) carries X-Request-Id.
    "project.request_id.RequestIdMiddleware",
    # Right after the id: during a database outage API requests answer 503 at once (project/db_outage.py).
    "project.db_outage.DatabaseOutageMiddleware",
    "project.readcache.ReadCacheMiddleware",
    "project.metrics.MetricsMiddleware",
    # project.middleware: Django's and the libraries' own, minus the thread hops and the browser-only layers for
    # API requests (see that module).
    "project.middleware.SecurityMiddleware",
    "project.middleware.StaticFilesMiddleware",
    "project.middleware.SessionMiddleware",
    "project.middleware.CommonMiddleware",
    "project.middleware.CsrfViewMiddleware",
    "project.middleware.AuthenticationMiddleware",
    "project.middleware.MessageMiddleware",
    "project.middleware.XFrameOptionsMiddleware",
    "project.middleware.RequestLogMiddleware",
]

ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------
# SQLite is the zero-setup default. WAL + IMMEDIATE transactions + a busy timeout let the web process and the
# worker write the same file without "database is locked" surprises. PostgreSQL goes through psycopg 3.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASE_IS_SQLITE = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
if DATABASE_IS_SQLITE:
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;",
        }
    )
    DATABASES["default"].setdefault("TEST", {})["NAME"] = env.str("TEST_SQLITE_PATH", default=str(VAR_DIR / "test-db.sqlite3"))
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    # Statements run through a server-binding cursor (project.sqlcompose.prepared_cursor: the submit's money
    # statement, the rate counter) are prepared once they ran this often on a connection; Django's other cursors
    # bind on the client and never are. Empty turns it off (a transaction-mode pgbouncer older than 1.21 cannot keep prepared statements).
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = env.int(
        "DATABASE_PREPARE_THRESHOLD", default=2
    ) if env.str("DATABASE_PREPARE_THRESHOLD", default="2") else None
    if env.bool("DATABASE_POOL", default=False):
        # The ASGI web tier (Procfile) runs each request's sync code on a thread of its own, so a persistent
        # per-thread connection would be opened per request and leak with the thread: connections come from a
        # per-process pool instead and go back at the end of each request (and before a long wait).
        DATABASES["default"]["CONN_MAX_AGE"] = 0
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": 2,
            "max_size": env.int("DATABASE_POOL_MAX_SIZE", default=16),
            # A request waits this long for a connection: past it the pool is exhausted or the server is down,
            # and a fast 503 with Retry-After serves the client better than a slow one (project/db_outage.py).
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=1.0),
        }
# While the database is unreachable, one probe per process tries to connect this often; until it succeeds, API
# requests answer 503 at once (project/db_outage.py).
DATABASE_OUTAGE_PROBE_SECONDS = env.float("DATABASE_OUTAGE_PROBE_SECONDS", default=0.25)

# --- Cache ---------------------------------------------------------------------------------------------
# One cache for every process: by default a database table (`createcachetable` makes `imagegen_cache`), in
# production Redis. It holds the read cache's version token, failed-authentication counts and the reaper's last
# run; on Redis also the requests-per-minute counters (billing/throttles.py).
CACHES = {"default": env.cache_url("CACHE_URL", default="dbcache://imagegen_cache")}
if CACHES["default"]["BACKEND"].endswith("RedisCache"):
    # redis-py waits 5 s to connect and 5 s for an answer: a Redis host cut off would hold every request that
    # touches the cache that long, per operation. Our commands take well under a millisecond; after 1 s the
    # request falls back to the database or answers 503 (project/api/errors.py) instead.
    CACHES["default"].setdefault("OPTIONS", {}).update({"socket_connect_timeout": 1, "socket_timeout": 1})

# --- Static files and storage ---------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
MEDIA_ROOT = env.path("MEDIA_ROOT", default=str(VAR_DIR / "media"))
MEDIA_URL = "media/"
STORAGE_BACKEND = env.str("STORAGE_BACKEND", default="filesystem")
if STORAGE_BACKEND == "s3":
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env.str("AWS_STORAGE_BUCKET_NAME"),
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default=None),
            "region_name": env.str("AWS_S3_REGION_NAME", default=None),
            "access_key": env.str("AWS_ACCESS_KEY_ID", default=None),
            "secret_key": env.str("AWS_SECRET_ACCESS_KEY", default=None),
            "querystring_expire": env.int("AWS_QUERYSTRING_EXPIRE", default=300),
            "default_acl": None,
            "file_overwrite": False,
        },
    }
elif STORAGE_BACKEND == "filesystem":
    _default_storage = {"BACKEND": "django.core.files.storage.FileSystemStorage"}
else:
    raise environ.ImproperlyConfigured(f"STORAGE_BACKEND must be 'filesystem' or 's3', not {STORAGE_BACKEND!r}")
STORAGES = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve app static files (admin, Swagger UI) even before collectstatic has run.
WHITENOISE_USE_FINDERS = True
SIGNED_URL_MAX_AGE_SECONDS = env.int("SIGNED_URL_MAX_AGE_SECONDS", default=300)
# How clients reach this service: image URLs in webhook bodies (rendered without a request) start with it. `make run`
# sets it from HOST and PORT when it is not set (scripts/run-env.sh); processes started otherwise get this default.
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")

# --- API ------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.api.authentication.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.api.permissions.HasTenantKey"],
    "DEFAULT_PAGINATION_CLASS": "project.api.pagination.CreatedCursorPagination",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "project.api.errors.api_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "project.api.parsers.DepthLimitedJSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "UNAUTHENTICATED_USER": None,
    "PAGE_SIZE": 50,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Image generation API",
    "DESCRIPTION": "Multi-tenant AI image generation. Authenticate with `Authorization: Bearer <api key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Error responses (with their codes) and the X-Request-Id / Retry-After / ... headers on every operation.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "project.api.schema.error_responses_hook",
    ],
}
API_KEY_LAST_USED_RESOLUTION_SECONDS = 60
# While the database is unreachable, requests answer 503 `service_unavailable` with this Retry-After.
DATABASE_UNAVAILABLE_RETRY_AFTER_SECONDS = env.int("DATABASE_UNAVAILABLE_RETRY_AFTER_SECONDS", default=5)
# JSON bodies nested deeper than this are refused (400 `malformed_request`) instead of exhausting the stack.
API_JSON_MAX_DEPTH = env.int("API_JSON_MAX_DEPTH", default=64)
# Failed API-key authentications per client address: after this many within the window, 429 with Retry-After
# (counted in CACHES["default"]; a key that authenticated recently still gets through).
AUTH_FAILURE_LIMIT = env.int("AUTH_FAILURE_LIMIT", default=20)
AUTH_FAILURE_WINDOW_SECONDS = env.int("AUTH_FAILURE_WINDOW_SECONDS", default=60)

# --- Background work (django-q2) ------------------------------------------------------------------------
Q_BROKER = env.str("Q_BROKER", default="orm")
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
Q_CLUSTER = {
    "name": env.str("Q_CLUSTER_NAME", default="imagegen"),
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=1200),
    # retry must exceed timeout or a slow task is handed to a second worker while the first still runs it.
    "retry": env.int("Q_RETRY", default=1260),
    "max_attempts": env.int("Q_MAX_ATTEMPTS", default=3),
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 1000,
    "poll": 0.5,
    "label": "Task queue",
}
if Q_BROKER == "redis":
    Q_CLUSTER["redis"] = REDIS_URL
elif Q_BROKER == "orm":
    Q_CLUSTER["orm"] = "default"
else:
    raise environ.ImproperlyConfigured(f"Q_BROKER must be 'orm' or 'redis', not {Q_BROKER!r}")
Q_CLUSTER["sync"] = env.bool("Q_SYNC", default=False)

# --- Security (production values come from the environment) --------------------------------------------
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=False)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env.bool("DJANGO_BEHIND_PROXY", default=False) else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# Staff pages: dates and times as 2026-12-06 18:45:03 (project/formats/en/formats.py).
FORMAT_MODULE_PATH = "project.formats"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Metrics (project/metrics.py) -------------------------------------------------------------------------
# /metrics answers `Authorization: Bearer <METRICS_TOKEN>`; with no token, requests from loopback only.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# A forwarder on a host without a web process serves its own metrics here (0: not at all). Bind an internal
# address: this port has no token.
FORWARD_METRICS_PORT = env.int("FORWARD_METRICS_PORT", default=0)
FORWARD_METRICS_HOST = env.str("FORWARD_METRICS_HOST", default="127.0.0.1")

# --- Logging: structlog JSON lines with request id and tenant ------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_JSON = env.bool("LOG_JSON", default=not DEBUG)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "structured": {
            "()": structlog.stdlib.ProcessorFormatter,
            "processor": (
                structlog.processors.JSONRenderer() if LOG_JSON else structlog.dev.ConsoleRenderer(colors=False)
            ),
            "foreign_pre_chain": [
                structlog.contextvars.merge_contextvars,
                structlog.processors.TimeStamper(fmt="iso"),
                structlog.stdlib.add_logger_name,
                structlog.stdlib.add_log_level,
            ],
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "structured"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
structlog.configure(
    processors=[
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.filter_by_level,
        structlog.processors.TimeStamper(fmt="iso"),
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.stdlib.PositionalArgumentsFormatter(),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ],
    logger_factory=structlog.stdlib.LoggerFactory(),
    cache_logger_on_first_use=True,
)
# One line per request (request_finished, which also carries the user agent: project.middleware); the start line
# only at DEBUG. 10 is logging.DEBUG.
DJANGO_STRUCTLOG_STATUS_START_LOG_LEVEL = 10
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = False  # project.request_id binds REMOTE_ADDR instead

# --- Webhooks -------------------------------------------------------------------------------------------
# Loopback, private and link-local targets are refused unless this is on (tests, local development only).
WEBHOOKS_ALLOW_PRIVATE_TARGETS = env.bool("WEBHOOKS_ALLOW_PRIVATE_TARGETS", default=False)
# Wait after each failed attempt; one attempt more than there are entries, then the delivery gives up.
# The sweep runs every minute, so waits shorter than that are rounded up to it in practice.
WEBHOOKS_RETRY_SCHEDULE_SECONDS = env.list(
    "WEBHOOKS_RETRY_SCHEDULE_SECONDS", cast=int, default=[60, 300, 1800, 7200, 28800, 86400]
)
WEBHOOKS_DISABLE_AFTER_FAILED_DELIVERIES = env.int("WEBHOOKS_DISABLE_AFTER_FAILED_DELIVERIES", default=5)
WEBHOOKS_TIMEOUT_SECONDS = env.float("WEBHOOKS_TIMEOUT_SECONDS", default=10.0)
# One schema enum for the event types, whether a field lists them (endpoint filter) or names one (delivery).
SPECTACULAR_SETTINGS["ENUM_NAME_OVERRIDES"] = {
    **SPECTACULAR_SETTINGS.get("ENUM_NAME_OVERRIDES", {}),
    "WebhookEventTypeEnum": "webhooks.events.EVENT_TYPES",
    "WebhookEventFilterEnum": "webhooks.events.EVENT_FILTER_NAMES",
    "UpstreamInterfaceEnum": "generations.catalog.specs.FAMILIES",
}

# --- Generations: forwarding, outputs ---------------------------------------------------------------------
# The forwarder (`manage.py forwarder`, generations/forwarder/): upstream calls in flight per process. Calls in flight
# = rate x latency: 512 keeps ~5.7 generations/s of 90 s gpt-image-2 calls going (64 gave 0.7/s); a whole burst of
# them answering at once costs ≤ ~0.2 MB each while they wait (docs/performance.md, "Long calls"). The client's
# connection pool (AIHUBMIX_MAX_CONNECTIONS) is never smaller than this.
FORWARD_CONCURRENCY = env.int("FORWARD_CONCURRENCY", default=512)
FORWARD_LEASE_SECONDS = env.int("FORWARD_LEASE_SECONDS", default=90)
FORWARD_MAX_ATTEMPTS = env.int("FORWARD_MAX_ATTEMPTS", default=4)
FORWARD_BACKOFF_BASE_SECONDS = env.float("FORWARD_BACKOFF_BASE_SECONDS", default=2.0)
FORWARD_BACKOFF_MAX_SECONDS = env.float("FORWARD_BACKOFF_MAX_SECONDS", default=120.0)
FORWARD_STORAGE_THREADS = env.int("FORWARD_STORAGE_THREADS", default=8)
# Upstream answers one forwarder holds in memory at once, in MB of answer bodies (generations/providers/budget.py):
# each is read, parsed, decoded and verified (~3-4x its size at the peak) before its files are stored; answers
# beyond it wait, unread, in their sockets. Bounds a forwarder's memory whatever its concurrency.
FORWARD_ANSWER_BUDGET_MB = env.int("FORWARD_ANSWER_BUDGET_MB", default=48)
# Output verification (decoding, checksums) of one forwarder runs on this many threads.
FORWARD_VERIFY_THREADS = env.int("FORWARD_VERIFY_THREADS", default=2)
# Database work of one forwarder runs on this many threads (each with its own connection).
FORWARD_DB_THREADS = env.int("FORWARD_DB_THREADS", default=4)
# Successes are settled in batches: what finishes within this many seconds of the first (at most ..._MAX) is one
# transaction of a few statements.
FORWARD_SETTLE_BATCH_SECONDS = env.float("FORWARD_SETTLE_BATCH_SECONDS", default=0.02)
FORWARD_SETTLE_BATCH_MAX = env.int("FORWARD_SETTLE_BATCH_MAX", default=100)
# A database error is retried with backoff up to this interval, for as long as the generation's lease holds.
FORWARD_DB_RETRY_MAX_SECONDS = env.float("FORWARD_DB_RETRY_MAX_SECONDS", default=2.0)
# Without a notification the forwarder still re-checks for claimable work this often (lost wake-ups, SQLite).
FORWARD_POLL_SECONDS = env.float("FORWARD_POLL_SECONDS", default=1.0)
# In-flight generations are checked for a cancel request this often (cancel notices make it immediate).
FORWARD_CANCEL_POLL_SECONDS = env.float("FORWARD_CANCEL_POLL_SECONDS", default=2.0)
# Each forwarder requeues expired leases (a killed forwarder's generations) this often.
FORWARD_REAP_SECONDS = env.float("FORWARD_REAP_SECONDS", default=15.0)
# On SIGTERM a forwarder stops claiming and waits this long for its calls in flight before exiting.
FORWARD_SHUTDOWN_GRACE_SECONDS = env.float("FORWARD_SHUTDOWN_GRACE_SECONDS", default=60.0)
# With nothing in flight, `forward_drain()` waits this long at most for a retry that is about to become due.
FORWARD_IDLE_WAIT_SECONDS = env.float("FORWARD_IDLE_WAIT_SECONDS", default=5.0)
# Expired deadlines (`Cancel-After`) are swept by each forwarder this often: a queued generation past its deadline
# is canceled within about this long of it, a running one has its call stopped.
FORWARD_DEADLINE_POLL_SECONDS = env.float("FORWARD_DEADLINE_POLL_SECONDS", default=0.5)
# `Cancel-After` on submit (header or `cancel_after` in the body): the shortest and longest deadline accepted. The
# minimum is 1 s, as Replicate's examples count in seconds (`Cancel-After: 2s`); a shorter one could expire before
# the forwarder's claim could even see it.
CANCEL_AFTER_MIN_SECONDS = env.float("CANCEL_AFTER_MIN_SECONDS", default=1.0)
CANCEL_AFTER_MAX_SECONDS = env.float("CANCEL_AFTER_MAX_SECONDS", default=86400.0)
# Output images up to this size are spooled in memory on their way to storage, larger ones on disk.
OUTPUT_SPOOL_BYTES = env.int("OUTPUT_SPOOL_BYTES", default=512 * 1024)
INPUT_IMAGE_MAX_BYTES = env.int("INPUT_IMAGE_MAX_BYTES", default=20 * 1024 * 1024)
INPUT_IMAGES_MAX_TOTAL_BYTES = env.int("INPUT_IMAGES_MAX_TOTAL_BYTES", default=50 * 1024 * 1024)
# All input-image URLs of one request are fetched within this budget, inside the web request.
INPUT_FETCH_BUDGET_SECONDS = env.float("INPUT_FETCH_BUDGET_SECONDS", default=30.0)
# JSON bodies carry input images as base64 data URLs; larger bodies are refused with 413 `request_too_large`.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=64 * 1024 * 1024)
# The OpenAI-compatible endpoints answer synchronously; keep this under the web server's request timeout.
OPENAI_COMPAT_WAIT_SECONDS = env.float("OPENAI_COMPAT_WAIT_SECONDS", default=100.0)
# Event streams (`GET /v1/generations/{id}/events`, `stream: true` on /v1/images/*): a comment line this often keeps
# proxies from closing a quiet stream; a native stream ends after STREAM_MAX_SECONDS (the client resumes with
# Last-Event-ID). Each open stream holds one of the tenant's wait slots (the plan's `max_concurrent_waits`).
STREAM_KEEPALIVE_SECONDS = env.float("STREAM_KEEPALIVE_SECONDS", default=15.0)
STREAM_MAX_SECONDS = env.float("STREAM_MAX_SECONDS", default=600.0)
# Partial images (`partial_images` where the upstream streams them) pass from the forwarder to the streams through the
# shared cache (CACHE_URL) and are kept there this long only: never in our storage, never billed.
STREAM_PARTIAL_TTL_SECONDS = env.int("STREAM_PARTIAL_TTL_SECONDS", default=120)
# A model with its own read timeout (AIHUBMIX_MODEL_READ_TIMEOUT_SECONDS: gpt-image-2) is waited for that long plus
# this margin, at most OPENAI_COMPAT_WAIT_MAX_SECONDS (generations.api.openai_views.openai_wait_seconds).
OPENAI_COMPAT_WAIT_MARGIN_SECONDS = env.float("OPENAI_COMPAT_WAIT_MARGIN_SECONDS", default=15.0)
OPENAI_COMPAT_WAIT_MAX_SECONDS = env.float("OPENAI_COMPAT_WAIT_MAX_SECONDS", default=330.0)

# Wake-ups between processes (generations/notifications.py): Redis pub/sub with the Redis broker, else PostgreSQL
# LISTEN/NOTIFY, else (SQLite) datagram sockets between the processes of this machine. Subscribers re-read the
# database at least this often even when notified nothing, so a lost notification costs at most this much latency;
# while no notification can arrive (the listener reconnecting, no socket directory) they re-read every
# NOTIFY_POLL_SECONDS.
NOTIFY_RECHECK_SECONDS = env.float("NOTIFY_RECHECK_SECONDS", default=1.0)
NOTIFY_POLL_SECONDS = env.float("NOTIFY_POLL_SECONDS", default=0.25)
# SQLite: where the processes of this machine bind their wake-up sockets (a subdirectory per database file);
# NOTIFY_LOCAL_SOCKETS=false falls back to the poll (bench/queue_wait.py compares the two).
NOTIFY_LOCAL_SOCKETS = env.bool("NOTIFY_LOCAL_SOCKETS", default=True)
NOTIFY_SOCKET_DIR = env.path("NOTIFY_SOCKET_DIR", default=str(VAR_DIR / "notify"))
NOTIFY_CONNECT_WAIT_SECONDS = env.float("NOTIFY_CONNECT_WAIT_SECONDS", default=1.0)
NOTIFY_LISTENER_LINGER_SECONDS = env.float("NOTIFY_LISTENER_LINGER_SECONDS", default=30.0)

# --- Billing --------------------------------------------------------------------------------------------
# Per-tenant requests-per-minute from the tenant's plan: counted by Redis when the cache is Redis, otherwise by one
# upsert on the `billing_requestcount` table, exact under concurrency where the database cache's get-then-set
# `incr` is not (billing/throttles.py).
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = ["billing.throttles.TenantRateThrottle"]
# `billing_check` (and the hourly check) warns when a model's actual upstream cost (from the answers' token usage)
# differs from the price list's estimate for the same images by more than this percentage in a UTC month (this
# month and the last), once at least UPSTREAM_COST_DRIFT_MIN_IMAGES images of it have a known actual cost.
UPSTREAM_COST_DRIFT_MAX_PERCENT = env.float("UPSTREAM_COST_DRIFT_MAX_PERCENT", default=10.0)
UPSTREAM_COST_DRIFT_MIN_IMAGES = env.int("UPSTREAM_COST_DRIFT_MIN_IMAGES", default=20)

# --- AIHubMix upstream, model catalog and output fetching ----------------------------------------------
# With no AIHUBMIX_API_KEY, `make run` starts the bundled sandbox and points these URLs at it.
AIHUBMIX_API_KEY = env.str("AIHUBMIX_API_KEY", default="")
AIHUBMIX_BASE_URL = env.str("AIHUBMIX_BASE_URL", default="https://aihubmix.com/v1")
AIHUBMIX_TASKS_URL = env.str("AIHUBMIX_TASKS_URL", default="https://api.aihubmix.com/v1/tasks")
# The Gemini image models' native route (generateContent, x-goog-api-key). Empty: the host of AIHUBMIX_BASE_URL
# with /gemini (https://aihubmix.com/gemini), so pointing the base URL at the sandbox moves it too.
AIHUBMIX_GEMINI_BASE_URL = env.str("AIHUBMIX_GEMINI_BASE_URL", default="")
AIHUBMIX_CONNECT_TIMEOUT_SECONDS = env.float("AIHUBMIX_CONNECT_TIMEOUT_SECONDS", default=10.0)
# Slow models (GLM hd, Wan thinking mode, 4K) take a minute or more before answering.
AIHUBMIX_READ_TIMEOUT_SECONDS = env.float("AIHUBMIX_READ_TIMEOUT_SECONDS", default=180.0)
# Per-model read timeouts (catalog id=seconds, comma-separated), beside the default above: gpt-image-2 at high
# quality answers after 90-130 s, larger sizes later still.
# (Parsed here: django-environ's float cast mangles values whose keys hold digits and dashes.)
AIHUBMIX_MODEL_READ_TIMEOUT_SECONDS = {
    model_id.strip(): float(seconds)
    for model_id, _, seconds in (
        item.partition("=")
        for item in env.list("AIHUBMIX_MODEL_READ_TIMEOUT_SECONDS", default=["openai/gpt-image-2=300"])
    )
    if model_id.strip()
}
AIHUBMIX_POLL_DEADLINE_SECONDS = env.float("AIHUBMIX_POLL_DEADLINE_SECONDS", default=600.0)
AIHUBMIX_POLL_INTERVAL_SECONDS = env.float("AIHUBMIX_POLL_INTERVAL_SECONDS", default=1.0)
AIHUBMIX_MAX_CONNECTIONS = env.int("AIHUBMIX_MAX_CONNECTIONS", default=256)
DISABLED_MODELS = env.list("DISABLED_MODELS", default=[])
OUTPUT_MAX_BYTES = env.int("OUTPUT_MAX_BYTES", default=50 * 1024 * 1024)
OUTPUT_MAX_PIXELS = env.int("OUTPUT_MAX_PIXELS", default=50_000_000)
OUTPUT_FETCH_DEADLINE_SECONDS = env.float("OUTPUT_FETCH_DEADLINE_SECONDS", default=120.0)
# Loopback and private addresses are refused for output URLs; only tests and the local sandbox allow them.
OUTPUT_FETCH_ALLOW_PRIVATE = env.bool("OUTPUT_FETCH_ALLOW_PRIVATE", default=False)
# The maintenance lane (django-q2 qcluster) runs the reaper on this period (schedule in generations migration
# 0002: every minute); /healthz fails once it has not run for 3 periods.
REAPER_PERIOD_SECONDS = env.int("REAPER_PERIOD_SECONDS", default=60)
