import secrets

from django.db import models
from django.db.models import Q

from accounts.models import ApiKey, Tenant


def generation_public_id() -> str:
    return f"gen_{secrets.token_hex(12)}"


class Generation(models.Model):
    """One tenant request for n images from one model, and everything needed to bill and audit it."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELED = "canceled", "Canceled"

    FINAL_STATUSES = (Status.SUCCEEDED, Status.FAILED, Status.CANCELED)

    public_id = models.CharField(max_length=40, unique=True, default=generation_public_id, editable=False)
    # gen_tenant_created leads with the tenant: no index of its own (one write less per submit).
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="generations", db_index=False)
    api_key = models.ForeignKey(ApiKey, null=True, on_delete=models.SET_NULL, related_name="generations")

    model_id = models.CharField(max_length=120)
    operation = models.CharField(max_length=16)
    prompt = models.TextField()
    negative_prompt = models.TextField(blank=True, default="")
    n = models.PositiveSmallIntegerField()
    size = models.CharField(max_length=32, blank=True, default="")
    quality = models.CharField(max_length=32, blank=True, default="")
    seed = models.BigIntegerField(null=True, blank=True)
    params = models.JSONField(default=dict, blank=True)
    upstream_body = models.JSONField(default=dict, help_text="The exact upstream request body, images excluded.")
    upstream_interface = models.CharField(
        max_length=16, blank=True, default="", help_text="openai_compat, predictions, async_task or gemini, chosen at submit."
    )
    requested_model_id = models.CharField(
        max_length=120, blank=True, default="",
        help_text="The model the client asked for, when a retired model was served by its replacement (model_id).",
    )

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    cancel_requested = models.BooleanField(default=False)
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=4)
    not_before = models.DateTimeField(null=True, blank=True)
    # `Cancel-After`: not started by then → canceled `deadline_exceeded`, never sent; running then → canceled.
    deadline_at = models.DateTimeField(null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)

    error_code = models.CharField(max_length=64, blank=True, default="")
    error_message = models.TextField(blank=True, default="")
    upstream_status = models.PositiveSmallIntegerField(null=True, blank=True)
    upstream_trace_id = models.CharField(max_length=200, blank=True, default="")
    upstream_task_id = models.CharField(max_length=300, blank=True, default="")
    upstream_response = models.TextField(
        blank=True, default="", help_text="An upstream answer we could not read, kept for staff (not retried)."
    )
    unknown_outcomes = models.PositiveSmallIntegerField(
        default=0, help_text="Calls whose outcome is unknown (timed out after sending): the upstream may have charged."
    )

    price_id = models.BigIntegerField(null=True, blank=True)
    unit_cost_micros = models.BigIntegerField(default=0)
    unit_price_micros = models.BigIntegerField(default=0)
    estimate_micros = models.BigIntegerField(default=0)
    images_returned = models.PositiveSmallIntegerField(default=0)
    charged_micros = models.BigIntegerField(null=True, blank=True)
    upstream_cost_micros = models.BigIntegerField(null=True, blank=True)

    usage = models.JSONField(
        null=True, blank=True, help_text="Token usage as the upstream reported it (OpenAI's `usage` object)."
    )

    webhook_url = models.CharField(max_length=2048, blank=True, default="", help_text="Per-request webhook URL.")
    webhook_events_filter = models.JSONField(default=list, blank=True)
    files_deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="When its input and output files were removed (on request or by retention)."
    )

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="gen_tenant_created"),
            # The retention purge looks for finished generations whose files are still kept.
            models.Index(fields=["finished_at"], name="gen_files_kept", condition=Q(files_deleted_at__isnull=True)),
            models.Index(fields=["status", "not_before"], name="gen_claimable", condition=Q(status="queued")),
            models.Index(fields=["lease_expires_at"], name="gen_running_lease", condition=Q(status="running")),
            # The fair claim walks each tenant's queue head and counts its running generations.
            models.Index(fields=["tenant", "created_at", "id"], name="gen_tenant_queued", condition=Q(status="queued")),
            models.Index(fields=["tenant"], name="gen_tenant_running", condition=Q(status="running")),
            # The deadline sweep: only open generations that have a deadline (few), so it costs nothing otherwise.
            models.Index(
                fields=["deadline_at"],
                name="gen_open_deadline",
                condition=Q(deadline_at__isnull=False, status__in=("queued", "running")),
            ),
        ]

    def __str__(self) -> str:
        return self.public_id

    def images_known_empty(self) -> None:
        """Mark a generation that cannot have images yet (just submitted), so rendering it reads none."""
        empty = GenerationImage.objects.none()
        # Evaluated already, as prefetch_related leaves it: iterating even a none() queryset compiles its SQL.
        empty._result_cache, empty._prefetch_done = [], True
        self._prefetched_objects_cache = {"images": empty}

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL_STATUSES


class GenerationImage(models.Model):
    class ReviewStatus(models.TextChoices):
        NOT_REQUIRED = "not_required", "Not required"
        PENDING = "pending", "Pending review"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="images")
    index = models.PositiveSmallIntegerField()
    storage_key = models.CharField(max_length=300)
    content_type = models.CharField(max_length=32)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    byte_size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    revised_prompt = models.TextField(blank=True, default="")
    review_status = models.CharField(max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.NOT_REQUIRED)
    withheld = models.BooleanField(default=False, help_text="Hidden from the tenant until a moderator approves it.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["generation_id", "index"]
        constraints = [models.UniqueConstraint(fields=["generation", "index"], name="genimage_unique_index")]

    def __str__(self) -> str:
        return f"{self.generation.public_id}#{self.index}"


class GenerationInputImage(models.Model):
    generation = models.ForeignKey(Generation, on_delete=models.CASCADE, related_name="input_images")
    index = models.PositiveSmallIntegerField()
    role = models.CharField(max_length=16, default="image", help_text="image or mask")
    storage_key = models.CharField(max_length=300)
    content_type = models.CharField(max_length=32)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    byte_size = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)

    class Meta:
        ordering = ["generation_id", "index"]
        constraints = [models.UniqueConstraint(fields=["generation", "index"], name="geninput_unique_index")]


class IdempotencyRecord(models.Model):
    """Stripe-style idempotency: one row per (tenant, key), naming the generation the key created (a replay answers
    it as it is now)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    generation = models.ForeignKey(Generation, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="idempotency_unique_tenant_key")]


# --- Moderation -------------------------------------------------------------------------------------------


class PromptBlockRule(models.Model):
    """A staff-managed term or regular expression that refuses prompts, for one tenant or for every tenant."""

    class Kind(models.TextChoices):
        TERM = "term", "Plain term (whole words, any case)"
        REGEX = "regex", "Regular expression (any case)"

    tenant = models.ForeignKey(
        Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+", help_text="Empty: every tenant."
    )
    kind = models.CharField(max_length=8, choices=Kind.choices, default=Kind.TERM)
    pattern = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True, help_text="Why this rule exists (staff only).")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["pattern", "id"]
        verbose_name = "prompt blocklist rule"

    def __str__(self) -> str:
        return f"{self.get_kind_display().split(' ')[0].lower()} {self.pattern!r}"


class TenantReviewSetting(models.Model):
    """How a tenant's output images are reviewed. A tenant without a row is not reviewed (`off`)."""

    class Mode(models.TextChoices):
        OFF = "off", "Off"
        SAMPLE = "sample", "Sample a percentage"
        HOLD = "hold", "Hold every image until approved"

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="review_setting")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.OFF)
    sample_percent = models.PositiveSmallIntegerField(
        default=0, help_text="With mode 'sample': the share of images (0–100) that enter the moderation queue."
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "tenant review mode"
        constraints = [
            models.CheckConstraint(condition=Q(sample_percent__lte=100), name="review_sample_percent_max_100")
        ]

    def __str__(self) -> str:
        return f"{self.tenant}: {self.mode}"


class ImageReport(models.Model):
    """A tenant flagged one of its images; it goes (back) into the moderation queue. One report per image."""

    image = models.OneToOneField(GenerationImage, on_delete=models.CASCADE, related_name="report")
    api_key = models.ForeignKey(ApiKey, null=True, on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"report on {self.image}"


class ImageReview(models.Model):
    """A moderator's decision on an image. Decisions are appended, so the history of an image stays visible."""

    class Decision(models.TextChoices):
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"

    image = models.ForeignKey(GenerationImage, on_delete=models.CASCADE, related_name="reviews")
    decision = models.CharField(max_length=8, choices=Decision.choices)
    reason = models.CharField(max_length=500, blank=True)
    reviewer = models.ForeignKey("accounts.User", null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.decision} {self.image}"


class ModerationQueueItem(GenerationImage):
    """The admin's moderation queue: images whose review status is pending."""

    class Meta:
        proxy = True
        verbose_name = "moderation queue"
        verbose_name_plural = "moderation queue"
        permissions = [("review_images", "Can approve and reject images in the moderation queue")]


# --- Model catalog --------------------------------------------------------------------------------------


class CatalogModel(models.Model):
    """One upstream model as staff keep it: its rules (read by `generations.catalog.specs.spec_from_dict`) and
    its lifecycle. Seeded from generations/catalog/data/models.json; edits are served at once (the catalog cache
    is keyed by a version bumped on every save)."""

    class Status(models.TextChoices):
        # A draft is a row staff have not finished (added from the upstream's model list by catalog sync): it is not
        # in the served catalog at all (not listed, not accepted, not priceable, never sent upstream).
        DRAFT = "draft", "Draft (not offered until staff set its family, rules and status)"
        ACTIVE = "active", "Active"
        DEPRECATED = "deprecated", "Deprecated (still served, with Deprecation/Sunset headers)"
        RETIRED = "retired", "Retired (410 model_retired, or served by its replacement)"

    class Family(models.TextChoices):
        OPENAI_COMPAT = "openai_compat", "OpenAI-compatible (/images/generations, /images/edits)"
        PREDICTIONS = "predictions", "Predictions (/models/<vendor>/<model>/predictions)"
        ASYNC_TASK = "async_task", "Async task (predictions, then /tasks/<id> polling)"
        GEMINI = "gemini", "Gemini (/gemini/v1beta/models/<model>:generateContent, x-goog-api-key)"

    model_id = models.CharField(
        max_length=100, unique=True, help_text="<vendor>/<model> exactly as in the upstream path, e.g. bfl/flux-2-pro."
    )
    alias = models.CharField(max_length=100, unique=True, help_text="Short name clients may use instead of the id.")
    display_name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    family = models.CharField(
        max_length=16, choices=Family.choices, blank=True,
        help_text="Interface used for generations; empty only on a draft (staff choose it before publishing).",
    )
    edit_family = models.CharField(
        max_length=16, choices=Family.choices, blank=True, help_text="Interface used for edits; empty: the same."
    )
    operations = models.JSONField(default=list, help_text='["generate"], ["edit"] or ["edit", "generate"].')
    rules = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            "Size, n, quality, seed, prompt and image rules, extra params with their defaults, fixed fields (see"
            " generations/catalog/data/models.json for every key)."
        ),
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    deprecated_at = models.DateTimeField(null=True, blank=True, help_text="Set when the status becomes deprecated.")
    shutdown_at = models.DateTimeField(null=True, blank=True, help_text="When the upstream stops serving it.")
    replacement = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaces",
        help_text="Suggested to clients of a deprecated or retired model.",
    )
    serve_with_replacement = models.BooleanField(
        default=False, help_text="Retired: run requests on the replacement (and charge its price) instead of 410."
    )
    former_ids = models.JSONField(
        default=list, blank=True,
        help_text="Ids this model was published under before (still accepted, e.g. bfl/flux-kontext-pro).",
    )
    notes = models.TextField(blank=True, help_text="Staff only.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model_id"]
        verbose_name = "catalog model"
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["draft", "active", "deprecated", "retired"]), name="catalogmodel_status_known"
            ),
            models.CheckConstraint(condition=Q(status="draft") | ~Q(family=""), name="catalogmodel_family_unless_draft"),
            models.CheckConstraint(
                condition=Q(serve_with_replacement=False) | Q(replacement__isnull=False),
                name="catalogmodel_serving_needs_replacement",
            ),
        ]

    def __str__(self) -> str:
        return self.model_id


class OpenWait(models.Model):
    """A client waiting on a result (`Prefer: wait`, `/v1/images/*`): the wait-slot store when Redis is not
    configured or is down (generations.services.waits). A row past `expires_at` is a slot free to take again."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    token = models.CharField(max_length=32, unique=True)
    expires_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["tenant", "expires_at"], name="openwait_tenant_expiry")]

    def __str__(self) -> str:
        return f"wait {self.token} of tenant {self.tenant_id} until {self.expires_at:%H:%M:%S}"


# --- Daily rollup of generation figures ---------------------------------------------------------------


class DailyGenerationStats(models.Model):
    """The dashboard's generation figures of one closed UTC day (by `created_at`) and tenant, written once
    (`generations.selectors.rollup`) from the generations that were final then: counts, failures per error code, and
    queue-wait and end-to-end latency as log-scale histograms (`{bucket: count}`, buckets 10 % wide), so a month's
    percentiles merge a few thousand rows instead of sorting a million durations."""

    day = models.DateField()
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    requests = models.IntegerField(default=0)
    finished = models.IntegerField(default=0)
    failed = models.IntegerField(default=0)
    failures = models.JSONField(default=dict, help_text="Failed generations per error code.")
    queue_wait = models.JSONField(default=dict, help_text="Histogram of started_at - created_at (seconds).")
    latency = models.JSONField(default=dict, help_text="Histogram of finished_at - created_at of succeeded ones.")

    class Meta:
        indexes = [
            models.Index(fields=["day"], name="dailygenstats_day"),
            models.Index(fields=["tenant", "day"], name="dailygenstats_tenant_day"),
        ]


class DailyGenerationStatsDay(models.Model):
    """A UTC day whose `DailyGenerationStats` rows are written (in the same transaction). `open_ids` are the day's
    generations that were not final yet: they are left out of the rows and read as they are now."""

    day = models.DateField(primary_key=True)
    open_ids = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
