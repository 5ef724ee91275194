"""Staff roles: Django groups and the admin permissions each one carries.

The admin enforces them through ordinary model permissions, plus `generations.review_images` for the moderation
queue. Superusers keep every permission. The data migration `generations/0004_staff_groups` creates the groups;
calling `staff_groups_sync` again (e.g. after a test flushed the tables) recreates them the same way.
"""

from typing import Any

MODERATORS = "Moderators"
BILLING = "Billing"
SUPPORT = "Support"

_READ_ONLY = [
    "accounts.view_tenant",
    "accounts.view_membership",
    "accounts.view_apikey",
    "accounts.view_auditevent",
    "billing.view_price",
    "billing.view_tokenprice",
    "billing.view_plan",
    "billing.view_tenantplan",
    "billing.view_wallet",
    "billing.view_ledgerentry",
    "billing.view_statement",
    "webhooks.view_webhookendpoint",
    "webhooks.view_webhookevent",
    "webhooks.view_webhookdelivery",
    "generations.view_generation",
    "generations.view_generationimage",
    "generations.view_promptblockrule",
    "generations.view_tenantreviewsetting",
    "generations.view_imagereport",
    "generations.view_imagereview",
]

STAFF_ROLES: dict[str, list[str]] = {
    # The queue and nothing else: no tenants, money or keys.
    MODERATORS: ["generations.review_images"],
    # Money: prices, plans and per-tenant overrides, grants and adjustments (`change_wallet`), the billing report
    # (`view_ledgerentry`), closing statements (`add_statement`); and the tenants and audit trail they need.
    BILLING: [
        "accounts.view_tenant",
        "accounts.view_auditevent",
        "billing.view_price",
        "billing.add_price",
        "billing.change_price",
        "billing.view_tokenprice",
        "billing.add_tokenprice",
        "billing.view_plan",
        "billing.add_plan",
        "billing.change_plan",
        "billing.view_tenantplan",
        "billing.add_tenantplan",
        "billing.change_tenantplan",
        "billing.view_wallet",
        "billing.change_wallet",
        "billing.view_ledgerentry",
        "billing.view_statement",
        "billing.add_statement",  # close a month's statements on demand (Tenants → action)
    ],
    # Answers questions: sees everything staff pages show, changes nothing.
    SUPPORT: _READ_ONLY,
}


def staff_groups_sync(*, group_model: Any, permission_model: Any, missing_ok: bool = False) -> None:
    """Create the groups and set exactly their permissions. Takes the models so a migration can pass its own.

    `missing_ok`: skip permissions that do not exist yet — for the migrations that ran before a later one added
    their model (that later migration syncs again); anywhere else a missing permission is an error."""
    for name, perms in STAFF_ROLES.items():
        group, _ = group_model.objects.get_or_create(name=name)
        wanted = []
        for perm in perms:
            app_label, codename = perm.split(".")
            found = permission_model.objects.filter(content_type__app_label=app_label, codename=codename).first()
            if found is None and not missing_ok:
                raise permission_model.DoesNotExist(f"No permission {perm}.")
            if found is not None:
                wanted.append(found)
        group.permissions.set(wanted)
