from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from accounts.models import ApiKey, Tenant
        from project.readcache import readcache_bump_after_migrate, readcache_invalidate_on_change

        # Once per `migrate` (post_migrate is sent once per app; this app's is enough): running processes see rows
        # the migrations wrote without a restart.
        post_migrate.connect(readcache_bump_after_migrate, sender=self, dispatch_uid="readcache-after-migrate")

        # A new key or tenant cannot be cached before it exists; a change (revocation, suspension) must be seen.
        readcache_invalidate_on_change(ApiKey, Tenant, skip_creation=True)
