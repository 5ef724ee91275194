from rest_framework import serializers

from accounts.models import ApiKey
from project.api.serializers import StrictFieldsMixin


class ApiKeySerializer(serializers.ModelSerializer):
    # The key's primary key embeds its hash; clients address keys by their public prefix.
    id = serializers.CharField(source="prefix", read_only=True)
    created_at = serializers.DateTimeField(source="created", read_only=True)

    class Meta:
        model = ApiKey
        fields = ["id", "prefix", "name", "is_admin", "created_at", "last_used_at", "revoked", "revoked_at"]
        read_only_fields = fields


class ApiKeyCreateSerializer(StrictFieldsMixin, serializers.Serializer):
    name = serializers.CharField(max_length=50)
    is_admin = serializers.BooleanField(default=False)


class IssuedApiKeySerializer(ApiKeySerializer):
    key = serializers.SerializerMethodField(help_text="The full secret. Shown once; store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields

    def get_key(self, obj: ApiKey) -> str:
        return self.context["secret"]
