"""The prompt blocklist and per-tenant review modes: changes go through the audited moderation services."""

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from accounts.services import actor_from_staff
from generations.models import PromptBlockRule, TenantReviewSetting
from generations.services.moderation import prompt_block_rule_save, prompt_pattern_check, review_setting_save


class PromptBlockRuleForm(forms.ModelForm):
    class Meta:
        model = PromptBlockRule
        fields = ["tenant", "kind", "pattern", "enabled", "note"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("pattern"):
            prompt_pattern_check(kind=data.get("kind", PromptBlockRule.Kind.TERM), pattern=data["pattern"])
        return data


@admin.register(PromptBlockRule)
class PromptBlockRuleAdmin(admin.ModelAdmin):
    """Rules are switched off rather than deleted, so audit events keep pointing at them."""

    form = PromptBlockRuleForm
    list_display = ["pattern", "kind", "scope", "enabled", "note", "updated_at"]
    list_filter = ["enabled", "kind", ("tenant", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["pattern", "note", "tenant__slug"]
    autocomplete_fields = ["tenant"]
    list_select_related = ["tenant"]

    @admin.display(description="applies to", ordering="tenant__slug")
    def scope(self, rule: PromptBlockRule) -> str:
        return rule.tenant.slug if rule.tenant else "every tenant"

    def save_model(self, request: HttpRequest, obj: PromptBlockRule, form: forms.ModelForm, change: bool) -> None:
        prompt_block_rule_save(rule=obj, actor=actor_from_staff(request=request))

    def has_delete_permission(self, request: HttpRequest, obj: PromptBlockRule | None = None) -> bool:
        return False


class TenantReviewSettingForm(forms.ModelForm):
    class Meta:
        model = TenantReviewSetting
        fields = ["tenant", "mode", "sample_percent"]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("mode") == TenantReviewSetting.Mode.SAMPLE and not 0 < (data.get("sample_percent") or 0) <= 100:
            raise ValidationError({"sample_percent": "Sampling needs a percentage between 1 and 100."})
        return data


@admin.register(TenantReviewSetting)
class TenantReviewSettingAdmin(admin.ModelAdmin):
    form = TenantReviewSettingForm
    list_display = ["tenant", "mode", "sample_percent", "updated_at"]
    list_filter = ["mode"]
    search_fields = ["tenant__slug", "tenant__name"]
    autocomplete_fields = ["tenant"]

    def get_readonly_fields(self, request: HttpRequest, obj: TenantReviewSetting | None = None) -> list[str]:
        return ["tenant"] if obj is not None else []

    def save_model(self, request: HttpRequest, obj: TenantReviewSetting, form: forms.ModelForm, change: bool) -> None:
        review_setting_save(setting=obj, actor=actor_from_staff(request=request))

    def has_delete_permission(self, request: HttpRequest, obj: TenantReviewSetting | None = None) -> bool:
        return False
