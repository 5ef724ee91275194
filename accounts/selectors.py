from accounts.models import ApiKey, Tenant


def tenant_get_by_slug(*, slug: str) -> Tenant | None:
    return Tenant.objects.filter(slug=slug).first()


def demo_key_is_usable(*, secret: str, tenant: Tenant) -> bool:
    if not secret:
        return False
    api_key = ApiKey.objects.filter(prefix=secret.partition(".")[0], tenant=tenant, revoked=False).first()
    return api_key is not None and api_key.is_valid(secret)
