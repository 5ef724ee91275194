from datetime import timedelta

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.models import Statement, StatementLine
from billing.money import micros_to_usd
from billing.selectors.quotas import QuotaLine
from billing.selectors.usage import USAGE_GROUPS

MAX_USAGE_DAYS = 366


@extend_schema_field({"type": "string", "example": "0.011000", "pattern": r"^-?\d+\.\d{6}$"})
class UsdField(serializers.Field):
    """Integer micros out as a six-decimal USD string, e.g. 11000 → "0.011000"."""

    def __init__(self, **kwargs: object) -> None:
        kwargs["read_only"] = True
        super().__init__(**kwargs)

    def to_representation(self, value: int) -> str:
        return micros_to_usd(value)


class UsageQuerySerializer(serializers.Serializer):
    start = serializers.DateField(
        required=False, help_text="First day (UTC), inclusive. Default: first of this month."
    )
    end = serializers.DateField(required=False, help_text="Last day (UTC), inclusive. Default: today.")
    group_by = serializers.CharField(
        required=False, default="", help_text=f"Comma-separated, any of: {', '.join(USAGE_GROUPS)}. Without it, `data` is one total row."
    )

    def validate_group_by(self, value: str) -> list[str]:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in USAGE_GROUPS]
        if unknown:
            raise serializers.ValidationError(
                f"Unknown grouping {unknown[0]!r}; use {', '.join(USAGE_GROUPS)}."
            )
        return list(dict.fromkeys(names))

    def validate(self, attrs: dict) -> dict:
        today = timezone.now().date()
        attrs.setdefault("start", today.replace(day=1))
        attrs.setdefault("end", today)
        if attrs["end"] < attrs["start"]:
            raise serializers.ValidationError({"end": "end must not be before start."})
        if attrs["end"] - attrs["start"] > timedelta(days=MAX_USAGE_DAYS):
            raise serializers.ValidationError({"end": f"The range may cover at most {MAX_USAGE_DAYS} days."})
        return attrs


class UsageRowSerializer(serializers.Serializer):
    model = serializers.CharField(required=False)
    quality = serializers.CharField(required=False)
    size = serializers.CharField(required=False)
    day = serializers.DateField(required=False)
    api_key = serializers.CharField(required=False, help_text="The key's prefix.")
    requests = serializers.IntegerField()
    images = serializers.IntegerField()
    amount_usd = UsdField(source="amount_micros")


class UsageTotalsSerializer(serializers.Serializer):
    requests = serializers.IntegerField()
    images = serializers.IntegerField()
    amount_usd = UsdField(source="amount_micros")


class UsageSerializer(serializers.Serializer):
    start = serializers.DateField()
    end = serializers.DateField()
    group_by = serializers.ListField(child=serializers.CharField())
    data = UsageRowSerializer(many=True)
    totals = UsageTotalsSerializer()


class QuotaLineSerializer(serializers.Serializer):
    name = serializers.CharField(
        help_text="`concurrent_generations` (running now; `max_concurrent`), `queued_generations` (accepted, waiting "
        "their turn; `max_queued`), `concurrent_waits` (requests waiting for a result: `Prefer: wait`, "
        "`/v1/images/*`; `max_concurrent_waits`), `images_per_day`, `images_per_month`, `monthly_spend`, "
        "`key_monthly_budget`, `requests_per_minute`. A submit is refused with `queue_full` once running + queued "
        "reach the sum of the first two limits."
    )
    unit = serializers.SerializerMethodField(help_text="images, generations, requests or usd.")
    limit = serializers.SerializerMethodField(help_text="null: unlimited. USD limits are decimal strings.")
    used = serializers.SerializerMethodField()
    remaining = serializers.SerializerMethodField()
    resets_at = serializers.DateTimeField(allow_null=True)

    def _show(self, line: QuotaLine, value: int | None) -> int | str | None:
        if value is None or line.unit != "micros":
            return value
        return micros_to_usd(value)

    def get_unit(self, line: QuotaLine) -> str:
        return "usd" if line.unit == "micros" else line.unit

    def get_limit(self, line: QuotaLine) -> int | str | None:
        return self._show(line, line.limit)

    def get_used(self, line: QuotaLine) -> int | str:
        return self._show(line, line.used)

    def get_remaining(self, line: QuotaLine) -> int | str | None:
        return self._show(line, line.remaining)


class WalletSerializer(serializers.Serializer):
    balance_usd = UsdField(source="balance_micros")
    held_usd = UsdField(source="held_micros")
    credit_limit_usd = UsdField(source="credit_limit_micros")
    available_usd = UsdField(source="available_micros")


class QuotaSerializer(serializers.Serializer):
    plan = serializers.CharField(source="limits.plan_name")
    max_n = serializers.IntegerField(source="limits.max_n")
    allowed_models = serializers.SerializerMethodField(help_text="null: every priced model.")
    retention_days = serializers.IntegerField(
        source="limits.retention_days",
        allow_null=True,
        help_text="Days a finished generation's image files are kept before they are deleted (metadata and charges "
        "stay); null: kept until you delete them (`DELETE /v1/generations/{id}`).",
    )
    wallet = WalletSerializer()
    limits = QuotaLineSerializer(source="lines", many=True)

    def get_allowed_models(self, status: object) -> list[str] | None:
        return list(status.limits.allowed_models) or None  # type: ignore[attr-defined]


class StatementLineSerializer(serializers.ModelSerializer):
    model = serializers.CharField(source="model_id")
    charge = serializers.ChoiceField(
        choices=StatementLine.Charge.choices,
        help_text="`images`: images delivered × unit price = amount. `canceled`: what the upstream charged for "
        "generations canceled while running (no image delivered, so `images` is 0 and there is no unit price).",
    )
    unit_price_usd = UsdField(source="unit_price_micros")
    amount_usd = UsdField(source="amount_micros")

    class Meta:
        model = StatementLine
        fields = ["model", "quality", "size", "charge", "images", "unit_price_usd", "amount_usd"]


class StatementSerializer(serializers.ModelSerializer):
    charges_usd = UsdField(source="charges_micros")
    credits_usd = UsdField(source="credits_micros")
    closing_balance_usd = UsdField(source="closing_balance_micros")

    class Meta:
        model = Statement
        fields = [
            "id",
            "period_start",
            "period_end",
            "images",
            "charges_usd",
            "credits_usd",
            "closing_balance_usd",
            "created_at",
        ]
        read_only_fields = fields


class StatementDetailSerializer(StatementSerializer):
    lines = StatementLineSerializer(many=True, read_only=True)

    class Meta(StatementSerializer.Meta):
        fields = [*StatementSerializer.Meta.fields, "lines"]
        read_only_fields = fields
