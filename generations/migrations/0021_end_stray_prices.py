"""End the prices of model ids the catalog does not know (billing 0003 seeded google/imagen-3.0-generate-002, which
the catalog never had): no request can be charged at them, yet they showed as current prices. A stray price is
ended now, as `price_set` ends a price (rows are never rewritten otherwise); one not yet in effect is deleted.
Prices of catalog models are not touched; an empty catalog (a flushed test database) ends nothing."""

from django.db import migrations
from django.utils import timezone


def stray_prices_end(apps, schema_editor):
    CatalogModel = apps.get_model("generations", "CatalogModel")
    Price = apps.get_model("billing", "Price")
    known = list(CatalogModel.objects.values_list("model_id", flat=True))
    if not known:
        return
    now = timezone.now()
    stray = Price.objects.exclude(model_id__in=known).filter(effective_to__isnull=True)
    stray.filter(effective_from__gte=now).delete()
    stray.filter(effective_from__lt=now).update(effective_to=now)


class Migration(migrations.Migration):
    dependencies = [
        ("generations", "0020_deprecation_dates"),
        ("billing", "0003_default_plan_and_known_prices"),
    ]

    # Nothing to undo: a price no request could use stays ended.
    operations = [migrations.RunPython(stray_prices_end, migrations.RunPython.noop)]
