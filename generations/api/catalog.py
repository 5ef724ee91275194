"""`GET /v1/models`: the enabled catalog with the rules a client needs to build a valid request, each model's
lifecycle, and whether this tenant can use it (and why not)."""



from django.utils.http import http_date
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.money import micros_to_usd
from billing.selectors.limits import Limits, tenant_limits
from billing.selectors.prices import TenantPrice, tenant_price_list
from generations.catalog.lookup import UnknownModel, catalog_entry_get, catalog_list
from generations.catalog.registry import CatalogEntry
from generations.catalog.specs import PARAM_TYPES, ModelSpec, ParamSpec
from generations.catalog.validation import size_rule_text


class CatalogCustomSizeSerializer(serializers.Serializer):
    min_side = serializers.IntegerField()
    max_side = serializers.IntegerField()
    max_aspect_ratio = serializers.FloatField(
        allow_null=True, help_text="Longest side / shortest side, at most."
    )
    max_pixels = serializers.IntegerField(allow_null=True)
    min_pixels = serializers.IntegerField(allow_null=True)
    multiple_of = serializers.IntegerField(allow_null=True, help_text="Both sides must be divisible by this.")


class CatalogSizeRuleSerializer(serializers.Serializer):
    default = serializers.CharField(help_text="Used when the request gives no size.")
    presets = serializers.ListField(child=serializers.CharField(), help_text="Accepted values as they are.")
    custom = CatalogCustomSizeSerializer(
        allow_null=True, help_text="When set, other `WxH` sizes within these limits too."
    )
    description = serializers.SerializerMethodField()

    def get_description(self, rule: object) -> str:
        return size_rule_text(self.context["spec"])


class CatalogNRangeSerializer(serializers.Serializer):
    min = serializers.IntegerField(source="n_min")
    max = serializers.IntegerField(source="n_max")
    default = serializers.IntegerField(source="n_default")


class CatalogSeedRangeSerializer(serializers.Serializer):
    min = serializers.IntegerField(source="seed_min")
    max = serializers.IntegerField(source="seed_max")


class CatalogModelParamSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="Give it as `params.<name>`.")
    type = serializers.ChoiceField(choices=list(PARAM_TYPES))
    description = serializers.CharField()
    choices = serializers.ListField(child=serializers.JSONField(), help_text="Allowed values; empty: any.")
    minimum = serializers.FloatField(allow_null=True)
    maximum = serializers.FloatField(allow_null=True)
    max_length = serializers.IntegerField(allow_null=True)
    default = serializers.JSONField(
        allow_null=True, help_text="What the model does when the param is omitted."
    )
    operations = serializers.SerializerMethodField(help_text="Operations that take this param.")

    def get_operations(self, param: ParamSpec) -> list[str]:
        return sorted(param.operations)


class CatalogPriceSerializer(serializers.Serializer):
    quality = serializers.CharField(help_text="`*`: any quality.")
    size = serializers.CharField(help_text="`*`: any size.")
    unit_price_usd = serializers.SerializerMethodField(help_text="Your price per image returned.")

    def get_unit_price_usd(self, price: TenantPrice) -> str:
        return micros_to_usd(price.unit_price_micros)


class CatalogLifecycleSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["active", "deprecated", "retired"])
    shutdown_at = serializers.DateTimeField(allow_null=True, help_text="When the upstream stops serving it.")
    replacement = serializers.CharField(allow_null=True, help_text="The model to move to.")


_FAMILIES = ["openai_compat", "predictions", "async_task", "gemini"]


class CatalogModelSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="`<vendor>/<model>`; the alias is accepted too.")
    alias = serializers.CharField()
    display_name = serializers.CharField()
    vendor = serializers.CharField()
    family = serializers.ChoiceField(choices=_FAMILIES, help_text="Upstream interface of generations.")
    edit_family = serializers.SerializerMethodField(help_text="Upstream interface of edits (null: no edits).")
    description = serializers.CharField()
    operations = serializers.SerializerMethodField()
    prompt_max_length = serializers.IntegerField()
    n = serializers.SerializerMethodField()
    sizes = serializers.SerializerMethodField()
    qualities = serializers.ListField(
        child=serializers.CharField(), help_text="Empty: the model has no quality."
    )
    default_quality = serializers.CharField()
    negative_prompt_max_length = serializers.IntegerField(allow_null=True, help_text="null: not supported.")
    seed = serializers.SerializerMethodField()
    max_input_images = serializers.IntegerField(help_text="For edits; generations take no input image.")
    params = serializers.SerializerMethodField()
    prices = serializers.SerializerMethodField(
        help_text="Your current prices. The most specific row applies; no row: the model cannot be used yet."
    )
    lifecycle = serializers.SerializerMethodField()
    available = serializers.SerializerMethodField(help_text="Whether your requests to this model can run.")
    unavailable_reason = serializers.SerializerMethodField(
        help_text="Why not: not_priced, not_in_plan or retired (null when available)."
    )

    @extend_schema_field(serializers.ChoiceField(choices=_FAMILIES, allow_null=True))
    def get_edit_family(self, spec: ModelSpec) -> str | None:
        return spec.family_for("edit") if "edit" in spec.operations else None

    @extend_schema_field(CatalogLifecycleSerializer)
    def get_lifecycle(self, spec: ModelSpec) -> dict:
        entry = self.context["entries"][spec.id]
        return {
            "status": entry.status,
            "shutdown_at": serializers.DateTimeField().to_representation(entry.shutdown_at)
            if entry.shutdown_at
            else None,
            "replacement": entry.replacement,
        }

    def get_available(self, spec: ModelSpec) -> bool:
        return self.get_unavailable_reason(spec) is None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_unavailable_reason(self, spec: ModelSpec) -> str | None:
        return _unavailable_reason(self.context["entries"][spec.id], self.context)

    def get_operations(self, spec: ModelSpec) -> list[str]:
        return sorted(spec.operations)

    @extend_schema_field(CatalogNRangeSerializer)
    def get_n(self, spec: ModelSpec) -> dict:
        return CatalogNRangeSerializer(spec).data

    @extend_schema_field(CatalogSizeRuleSerializer)
    def get_sizes(self, spec: ModelSpec) -> dict:
        return CatalogSizeRuleSerializer(spec.sizes, context={"spec": spec}).data

    @extend_schema_field(CatalogSeedRangeSerializer(allow_null=True))
    def get_seed(self, spec: ModelSpec) -> dict | None:
        return CatalogSeedRangeSerializer(spec).data if spec.seed_range else None

    @extend_schema_field(CatalogModelParamSerializer(many=True))
    def get_params(self, spec: ModelSpec) -> list:
        return CatalogModelParamSerializer(spec.extras, many=True).data

    @extend_schema_field(CatalogPriceSerializer(many=True))
    def get_prices(self, spec: ModelSpec) -> list:
        return CatalogPriceSerializer(self.context["prices"].get(spec.id, []), many=True).data


class CatalogModelListSerializer(serializers.Serializer):
    object = serializers.CharField(default="list")
    data = CatalogModelSerializer(many=True)


def _unavailable_reason(entry: CatalogEntry, context: dict) -> str | None:
    """The first thing that stops this tenant's requests to the model: what it would be served as must be priced
    and allowed by the plan; a retired model is served only by its replacement, when staff switched that on."""
    served = entry
    if entry.status == "retired":
        replacement = context["entries"].get(entry.replacement or "")
        if not (entry.serve_with_replacement and replacement and replacement.status != "retired"):
            return "retired"
        served = replacement
    limits: Limits = context["limits"]
    if not limits.allows_model(served.id):
        return "not_in_plan"
    if not context["prices"].get(served.id):
        return "not_priced"
    return None


def _context(request: Request) -> dict:
    return {
        "prices": tenant_price_list(tenant=request.tenant),
        "limits": tenant_limits(tenant=request.tenant),
        "entries": {entry.id: entry for entry in catalog_list()},
    }


class ModelListView(APIView):
    @extend_schema(
        operation_id="models_list",
        summary="List the models, their parameter rules and lifecycle, and whether you can use each",
        responses={200: CatalogModelListSerializer},
    )
    def get(self, request: Request) -> Response:
        context = _context(request)
        specs = [entry.spec for entry in context["entries"].values()]
        data = CatalogModelSerializer(specs, many=True, context=context).data
        return Response({"object": "list", "data": data})


class ModelDetailView(APIView):
    @extend_schema(
        operation_id="models_retrieve",
        summary="One model and its parameter rules (by id or alias)",
        responses={200: CatalogModelSerializer},
    )
    def get(self, request: Request, model: str) -> Response:
        entry = catalog_entry_get(model)
        return Response(CatalogModelSerializer(entry.spec, context=_context(request)).data)


def lifecycle_headers(*, model: str) -> dict[str, str]:
    """`Deprecation` (RFC 9745) and `Sunset` (RFC 8594) for a deprecated or retired model, and a `Link` to its
    replacement, so clients learn about a shutdown from the responses they already read."""
    try:
        entry = catalog_entry_get(model)
    except UnknownModel:
        return {}
    if entry.status == "active":
        return {}
    headers = {}
    since = entry.deprecated_at or entry.shutdown_at
    if since and entry.shutdown_at and since > entry.shutdown_at:
        # Marked deprecated only after its shutdown date (staff caught up late): it was deprecated by then at the
        # latest, and RFC 9745 wants the Sunset no earlier than the Deprecation.
        since = entry.shutdown_at
    headers["Deprecation"] = f"@{int(since.timestamp())}" if since else "true"
    if entry.shutdown_at:
        headers["Sunset"] = http_date(entry.shutdown_at.timestamp())
    if entry.replacement:
        headers["Link"] = f'</v1/models/{entry.replacement}>; rel="successor-version"'
    return headers
