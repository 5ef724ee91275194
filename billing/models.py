from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import ApiKey, Tenant

ANY = "*"


class Price(models.Model):
    """What AIHubMix charges us for one image of a model at a quality and size, over a period of time.

    `quality` or `size` may be `*` (any). The most specific current row wins, so a model can have one flat price
    and a few exceptions. Rows are never rewritten: a new price is a new row, and the previous one is closed by
    setting `effective_to` (`billing.services.prices.price_set`), so every HOLD and CAPTURE can point at the row it used.
    """

    model_id = models.CharField(
        max_length=100, db_index=True, help_text="Catalog id, e.g. openai/gpt-image-1."
    )
    quality = models.CharField(max_length=32, default=ANY, help_text="'*' for any quality.")
    size = models.CharField(max_length=32, default=ANY, help_text="'*' for any size.")
    cost_micros = models.BigIntegerField(help_text="Upstream cost of one image, in micro-USD.")
    effective_from = models.DateTimeField(default=timezone.now)
    effective_to = models.DateTimeField(null=True, blank=True, help_text="Empty: still in effect.")
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model_id", "quality", "size", "-effective_from"]
        constraints = [
            models.CheckConstraint(condition=Q(cost_micros__gte=0), name="price_cost_not_negative"),
            models.CheckConstraint(
                condition=Q(effective_to__isnull=True) | Q(effective_to__gt=F("effective_from")),
                name="price_period_not_empty",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_id} {self.quality} {self.size}"


class TokenPrice(models.Model):
    """What the upstream charges per million tokens of each kind, for a model whose answers report token usage
    (gpt-image-2, the Gemini image models): the actual cost of a call is its usage × these prices, booked on the
    CAPTURE beside the per-image estimate (`Price`). A kind left at 0 is not charged separately (or not published:
    the seeded Gemini rows price only image output). Effective-dated like `Price`: a new row ends the current one
    (`billing.services.token_prices.token_price_set`)."""

    model_id = models.CharField(max_length=100, db_index=True, help_text="Catalog id, e.g. openai/gpt-image-2.")
    text_input_micros = models.BigIntegerField(default=0, help_text="Per 1M text input tokens, micro-USD.")
    image_input_micros = models.BigIntegerField(default=0, help_text="Per 1M image input tokens, micro-USD.")
    text_output_micros = models.BigIntegerField(
        default=0, help_text="Per 1M text (and thinking) output tokens, micro-USD."
    )
    image_output_micros = models.BigIntegerField(default=0, help_text="Per 1M image output tokens, micro-USD.")
    effective_from = models.DateTimeField(default=timezone.now)
    effective_to = models.DateTimeField(null=True, blank=True, help_text="Empty: still in effect.")
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["model_id", "-effective_from"]
        constraints = [
            models.CheckConstraint(
                condition=Q(text_input_micros__gte=0, image_input_micros__gte=0, text_output_micros__gte=0,
                            image_output_micros__gte=0),
                name="tokenprice_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(effective_to__isnull=True) | Q(effective_to__gt=F("effective_from")),
                name="tokenprice_period_not_empty",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_id} tokens"


class Plan(models.Model):
    """Markup and limits. A limit left empty means unlimited."""

    name = models.CharField(max_length=64, unique=True)
    is_default = models.BooleanField(
        default=False, help_text="Tenants without an assigned plan use this one."
    )
    markup_bps = models.IntegerField(
        default=2000, help_text="Added to cost, in basis points: 2000 = cost + 20%."
    )
    allowed_models = models.JSONField(
        default=list, blank=True, help_text="List of catalog ids; an empty list allows every model."
    )
    max_n = models.PositiveIntegerField(default=10, help_text="Most images in one request.")
    max_concurrent = models.PositiveIntegerField(
        null=True, blank=True, help_text="Generations running at once; more are accepted and wait in the queue."
    )
    max_queued = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Generations that may wait for a running slot; a submit beyond it is refused (429 queue_full).",
    )
    max_concurrent_waits = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Clients waiting on a result at once (Prefer: wait, /v1/images/*); beyond it the native API "
        "answers 202 without waiting and /v1/images/* answers 429.",
    )
    images_per_day = models.PositiveIntegerField(null=True, blank=True, help_text="Per UTC day.")
    images_per_month = models.PositiveIntegerField(null=True, blank=True, help_text="Per UTC calendar month.")
    monthly_spend_limit_micros = models.BigIntegerField(null=True, blank=True)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    key_monthly_budget_micros = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="Default per-key monthly budget; a key's own budget takes precedence.",
    )
    retention_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Days a finished generation's image files are kept before they are deleted; empty or 0: kept "
        "until the tenant deletes them.",
    )
    low_balance_threshold_micros = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="A capture that leaves the available money (balance + credit limit − held) at or below this "
        "sends one wallet.low_balance webhook event; empty: no alert.",
    )
    spend_alert_percent = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text="A capture that brings the month's spend to this percentage of the monthly spend limit sends one "
        "spend_limit.near webhook event; empty: no alert.",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="plan_one_default"
            ),
            models.CheckConstraint(condition=Q(markup_bps__gte=-10_000), name="plan_markup_not_below_free"),
        ]

    def __str__(self) -> str:
        return self.name


class TenantPlan(models.Model):
    """A tenant's plan and its per-tenant overrides. An empty override inherits the plan's value."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="billing_plan")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="tenants")
    markup_bps = models.IntegerField(null=True, blank=True)
    allowed_models = models.JSONField(null=True, blank=True, help_text="Empty: the plan's list.")
    max_n = models.PositiveIntegerField(null=True, blank=True)
    max_concurrent = models.PositiveIntegerField(null=True, blank=True)
    max_queued = models.PositiveIntegerField(null=True, blank=True)
    max_concurrent_waits = models.PositiveIntegerField(null=True, blank=True)
    images_per_day = models.PositiveIntegerField(null=True, blank=True)
    images_per_month = models.PositiveIntegerField(null=True, blank=True)
    monthly_spend_limit_micros = models.BigIntegerField(null=True, blank=True)
    requests_per_minute = models.PositiveIntegerField(null=True, blank=True)
    key_monthly_budget_micros = models.BigIntegerField(null=True, blank=True)
    retention_days = models.PositiveIntegerField(
        null=True, blank=True, help_text="Empty: the plan's retention. 0: keep files until the tenant deletes them."
    )
    low_balance_threshold_micros = models.BigIntegerField(null=True, blank=True)
    spend_alert_percent = models.PositiveSmallIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "tenant plan and overrides"
        verbose_name_plural = "tenant plans and overrides"

    def __str__(self) -> str:
        return f"{self.tenant} on {self.plan}"


class Wallet(models.Model):
    """A tenant's money. available = balance − held + credit limit, and it never goes below zero.

    `open_holds` and `open_hold_images` count unsettled holds, and the period counters sum the captures of the
    current UTC month (`month_images`, `month_spend_micros`) and day (`day_images`), so a submit checks every quota
    in its one conditional `UPDATE` of this row instead of aggregating the ledger. A counter belongs to the period
    in `month_start`/`day_start`; a capture in a later period starts it over (`billing.services`), and a reader
    treats a counter of an earlier period as zero. `billing_check` verifies all of them against the ledger.
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.PROTECT, related_name="wallet")
    balance_micros = models.BigIntegerField(default=0)
    held_micros = models.BigIntegerField(default=0)
    credit_limit_micros = models.BigIntegerField(default=0)
    open_holds = models.IntegerField(default=0)
    open_hold_images = models.IntegerField(default=0)
    month_start = models.DateField(null=True, blank=True, help_text="UTC month of the month counters.")
    month_images = models.IntegerField(default=0, help_text="Images captured in month_start's month.")
    month_spend_micros = models.BigIntegerField(default=0, help_text="Amount captured in month_start's month.")
    day_start = models.DateField(null=True, blank=True, help_text="UTC day of day_images.")
    day_images = models.IntegerField(default=0, help_text="Images captured on day_start.")
    # Alerts fire once per crossing (`billing.services.alerts`): set when the event is sent, cleared when the
    # wallet is back above the threshold.
    low_balance_alerted = models.BooleanField(default=False)
    spend_alerted = models.BooleanField(default=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(held_micros__gte=0), name="wallet_held_not_negative"),
            models.CheckConstraint(
                condition=Q(credit_limit_micros__gte=0), name="wallet_credit_limit_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(balance_micros__gte=F("held_micros") - F("credit_limit_micros")),
                name="wallet_available_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"wallet of {self.tenant}"

    @property
    def available_micros(self) -> int:
        return self.balance_micros - self.held_micros + self.credit_limit_micros


class RequestCount(models.Model):
    """Requests of a tenant in the current minute, for the rate limit when no Redis cache is configured
    (`billing.throttles`). One row per tenant, started over when the minute changes."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, primary_key=True, related_name="+")
    minute = models.BigIntegerField(help_text="Unix time // 60.")
    count = models.IntegerField()


class LedgerImmutable(Exception):
    pass


class LedgerEntry(models.Model):
    """Append-only money movements. Refused here on update/delete, and by a trigger on PostgreSQL.

    `amount_micros` is positive for every kind except ADJUST (signed). HOLD: amount reserved. CAPTURE: amount
    charged (the rest of the hold is released with it). RELEASE: the whole hold returned. A hold is settled by
    exactly one CAPTURE or one RELEASE with the same `reference`.
    """

    class Kind(models.TextChoices):
        GRANT = "grant", "Grant"
        HOLD = "hold", "Hold"
        CAPTURE = "capture", "Capture"
        RELEASE = "release", "Release"
        ADJUST = "adjust", "Adjustment"

    # No single-column indexes: ledger_tenant_kind_created and ledger_key_kind_created lead with these columns,
    # and every index is one more write on each submit's hold.
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="ledger_entries", db_index=False)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    reference = models.CharField(max_length=100, help_text="e.g. a generation id; unique per kind.")
    amount_micros = models.BigIntegerField()
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    price = models.ForeignKey(Price, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    model_id = models.CharField(max_length=100, blank=True)
    quality = models.CharField(max_length=32, blank=True)
    size = models.CharField(max_length=32, blank=True)
    images = models.IntegerField(default=0)
    unit_cost_micros = models.BigIntegerField(default=0)
    unit_price_micros = models.BigIntegerField(default=0)
    cost_micros = models.BigIntegerField(
        default=0,
        help_text="Upstream cost we bore (on CAPTURE, and on RELEASE when the tenant was refunded).",
    )
    upstream_cost_actual_micros = models.BigIntegerField(
        null=True,
        blank=True,
        help_text=(
            "CAPTURE: the upstream cost from the answer's token usage × the model's token prices, in place of the"
            " answered call's estimate within cost_micros; empty when the answer reported no usage or the model"
            " has no token prices."
        ),
    )
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    note = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "ledger entry"
        verbose_name_plural = "ledger entries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["reference", "kind"], name="ledger_unique_reference_kind")
        ]
        indexes = [
            models.Index(fields=["tenant", "kind", "created_at"], name="ledger_tenant_kind_created"),
            models.Index(fields=["api_key", "kind", "created_at"], name="ledger_key_kind_created"),
            models.Index(fields=["kind", "created_at"], name="ledger_kind_created"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.reference}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise LedgerImmutable("Ledger entries are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise LedgerImmutable("Ledger entries are append-only")


class StatementImmutable(Exception):
    pass


class Statement(models.Model):
    """A closed calendar month (UTC) for one tenant. Created once, never changed."""

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="statements")
    period_start = models.DateField(help_text="First day of the month.")
    period_end = models.DateField(help_text="First day of the next month (exclusive).")
    images = models.IntegerField(default=0)
    charges_micros = models.BigIntegerField(default=0)
    credits_micros = models.BigIntegerField(default=0, help_text="Grants and adjustments in the period.")
    closing_balance_micros = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-period_start", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "period_start"], name="statement_one_per_tenant_month")
        ]

    def __str__(self) -> str:
        return f"{self.tenant} {self.period_start:%Y-%m}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise StatementImmutable("Statements are immutable")
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise StatementImmutable("Statements are immutable")


class StatementLine(models.Model):
    class Charge(models.TextChoices):
        # images × unit price = amount holds on these lines.
        IMAGES = "images", "Images delivered"
        # What the upstream charged us for work canceled while it ran: no image delivered, no unit price.
        CANCELED = "canceled", "Canceled while running (upstream cost)"

    statement = models.ForeignKey(Statement, on_delete=models.PROTECT, related_name="lines")
    charge = models.CharField(max_length=16, choices=Charge.choices, default=Charge.IMAGES)
    model_id = models.CharField(max_length=100)
    quality = models.CharField(max_length=32, blank=True)
    size = models.CharField(max_length=32, blank=True)
    images = models.IntegerField(help_text="Images delivered (0 on a canceled line).")
    unit_price_micros = models.BigIntegerField()
    amount_micros = models.BigIntegerField()

    class Meta:
        # "-charge": a model's delivered images ("images") before what canceled work cost ("canceled").
        ordering = ["model_id", "quality", "size", "-charge", "unit_price_micros", "id"]

    def __str__(self) -> str:
        return f"{self.model_id} {self.quality} {self.size} × {self.images}"

    def save(self, *args: object, **kwargs: object) -> None:
        if not self._state.adding:
            raise StatementImmutable("Statement lines are immutable")
        super().save(*args, **kwargs)

    def delete(self, *args: object, **kwargs: object) -> tuple[int, dict[str, int]]:
        raise StatementImmutable("Statement lines are immutable")


class DailyUsage(models.Model):
    """The billing report's sums of one closed UTC day per tenant, key, model, quality and size: a rollup of the
    CAPTURE and RELEASE rows, written once per day (`billing.selectors.rollup`) and never changed, so the report,
    its CSV and the dashboard read a few thousand rows instead of a month of ledger rows. Days in `DailyUsageDay`
    are complete; the current day and anything later are always read from the ledger itself."""

    day = models.DateField()
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    api_key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    model_id = models.CharField(max_length=100, blank=True)
    quality = models.CharField(max_length=32, blank=True)
    size = models.CharField(max_length=32, blank=True)
    requests = models.IntegerField(default=0)
    images = models.IntegerField(default=0)
    price_micros = models.BigIntegerField(default=0)
    cost_micros = models.BigIntegerField(default=0)
    refunded_cost_micros = models.BigIntegerField(default=0)
    # The captures whose actual upstream cost is known: their images, actual cost and estimate (cost_micros).
    actual_images = models.IntegerField(default=0)
    actual_cost_micros = models.BigIntegerField(default=0)
    actual_estimate_micros = models.BigIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["day"], name="dailyusage_day"),
            models.Index(fields=["tenant", "day"], name="dailyusage_tenant_day"),
        ]


class DailyUsageDay(models.Model):
    """A UTC day whose `DailyUsage` rows are written (inserted in the same transaction as them)."""

    day = models.DateField(primary_key=True)
    created_at = models.DateTimeField(default=timezone.now)
