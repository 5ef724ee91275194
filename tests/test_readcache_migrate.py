"""A deploy's `migrate` reaches running processes: the read cache's shared version token changes, so rows a
migration wrote (with no save signal) are served without a restart."""

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from generations.models import CatalogModel
from project.readcache import VERSION_KEY, readcache_bump_after_migrate, readcache_get

pytestmark = pytest.mark.django_db


def test_migrate_changes_the_shared_version_token() -> None:
    readcache_get("probe", lambda: "cached")
    before = caches["default"].get(VERSION_KEY)
    assert before is not None

    call_command("migrate", verbosity=0)

    assert caches["default"].get(VERSION_KEY) not in (None, before)


def test_a_row_written_by_a_migration_is_served_after_migrate() -> None:
    model = CatalogModel.objects.order_by("pk").first()
    assert model is not None

    def load() -> str:
        return CatalogModel.objects.get(pk=model.pk).display_name

    first = readcache_get(("display_name", model.pk), load)
    # What a data migration does: a QuerySet write, no save signal, no bump.
    CatalogModel.objects.filter(pk=model.pk).update(display_name=first + " (renamed)")
    assert readcache_get(("display_name", model.pk), load) == first  # stale until something bumps

    call_command("migrate", verbosity=0)

    assert readcache_get(("display_name", model.pk), load) == first + " (renamed)"


@override_settings(CACHES={"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache",
                                       "LOCATION": "no_such_cache_table"}})
def test_a_missing_cache_table_does_not_break_migrate() -> None:
    readcache_bump_after_migrate()  # a fresh database: createcachetable has not run yet

    # The failed statement was rolled back to its savepoint: the connection still works.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)
