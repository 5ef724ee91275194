"""`GET /v1/models`: the enabled catalog with the rules a client needs to build a valid request."""

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from billing.money import micros_to_usd
from billing.selectors import TenantPrice, tenant_price_list
from generations.catalog import ModelSpec, ParamSpec, model_catalog, model_get, size_rule_text


class CatalogCustomSizeSerializer(serializers.Serializer):
    min_side = serializers.IntegerField()
    max_side = serializers.IntegerField()
    max_aspect_ratio = serializers.FloatField(
        allow_null=True, help_text="Longest side / shortest side, at most."
    )
    max_pixels = serializers.IntegerField(allow_null=True)
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
    type = serializers.ChoiceField(choices=["boolean", "integer", "number", "string"])
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


class CatalogModelSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="`<vendor>/<model>`; the alias is accepted too.")
    alias = serializers.CharField()
    display_name = serializers.CharField()
    vendor = serializers.CharField()
    family = serializers.ChoiceField(choices=["openai_compat", "predictions", "async_task"])
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


class ModelListView(APIView):
    @extend_schema(
        operation_id="models_list",
        summary="List the available models and their parameter rules",
        responses={200: CatalogModelListSerializer},
    )
    def get(self, request: Request) -> Response:
        context = {"prices": tenant_price_list(tenant=request.tenant)}
        data = CatalogModelSerializer(model_catalog(), many=True, context=context).data
        return Response({"object": "list", "data": data})


class ModelDetailView(APIView):
    @extend_schema(
        operation_id="models_retrieve",
        summary="One model and its parameter rules (by id or alias)",
        responses={200: CatalogModelSerializer},
    )
    def get(self, request: Request, model: str) -> Response:
        context = {"prices": tenant_price_list(tenant=request.tenant)}
        return Response(CatalogModelSerializer(model_get(model), context=context).data)
