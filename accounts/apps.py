from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from accounts.models import ApiKey, Tenant
        from project.readcache import readcache_invalidate_on_change

        # A new key or tenant cannot be cached before it exists; a change (revocation, suspension) must be seen.
        readcache_invalidate_on_change(ApiKey, Tenant, skip_creation=True)
