"""The API key page with the key's monthly budget typed in dollars."""

from django import forms
from django.contrib import admin

from accounts.admin import ApiKeyAdmin
from accounts.models import ApiKey
from billing.admin.money import UsdFormField


class ApiKeyBudgetForm(forms.ModelForm):
    monthly_budget_micros = UsdFormField(
        required=False, label="Monthly budget (USD)", help_text="Empty: no budget beyond the tenant's limits."
    )

    class Meta:
        model = ApiKey
        fields = ["monthly_budget_micros"]


# accounts cannot parse or show money, so billing swaps in its key page with the budget typed in dollars.
admin.site.unregister(ApiKey)


@admin.register(ApiKey)
class ApiKeyBillingAdmin(ApiKeyAdmin):
    form = ApiKeyBudgetForm
