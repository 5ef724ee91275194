"""`project/sqlcompose.py` leans on library internals: psycopg's private query-cache limits and Django's insert
compiler and server-binding cursor. These tests fail when an upgrade moves them, instead of the submit path
silently getting slower or writing something `save()` would not."""

import pytest
from django.db import ProgrammingError, connection
from django.test.utils import CaptureQueriesContext
from psycopg import _queries
from psycopg.adapt import Transformer

from accounts.models import Tenant
from project import sqlcompose
from project.sqlcompose import CHAIN_SOURCE, execute_chained, insert_from_sql, prepared_cursor

# --- psycopg's query cache ------------------------------------------------------------------------------


def test_the_installed_psycopg_has_the_cache_limits_sqlcompose_raises() -> None:
    # If this fails after a psycopg upgrade, the names moved: find their new home or drop the tuning.
    assert sqlcompose.PSYCOPG_QUERY_CACHE_WIDENED is True
    assert (_queries.MAX_CACHED_STATEMENT_PARAMS, _queries.MAX_CACHED_STATEMENT_LENGTH) >= (256, 16384)


@pytest.mark.parametrize("query_class", [_queries.PostgresQuery, _queries.PostgresClientQuery])
def test_a_sixty_parameter_statement_is_parsed_once_and_then_served_from_psycopgs_cache(query_class) -> None:
    cached = _queries._query2pg if query_class is _queries.PostgresQuery else _queries._query2pg_client
    text = ("SELECT " + ", ".join(["%s"] * 60) + " /* sqlcompose cache probe */").encode()
    query_class(Transformer()).convert(text, list(range(60)))
    hits = cached.cache_info().hits

    query_class(Transformer()).convert(text, list(range(60)))

    assert cached.cache_info().hits == hits + 1


def test_a_psycopg_without_the_cache_limits_is_left_alone(monkeypatch) -> None:
    monkeypatch.delattr(_queries, "MAX_CACHED_STATEMENT_PARAMS")
    assert sqlcompose._psycopg_query_cache_widen() is False
    assert not hasattr(_queries, "MAX_CACHED_STATEMENT_PARAMS")


def test_a_psycopg_whose_converter_no_longer_reads_the_limits_is_left_alone(monkeypatch) -> None:
    monkeypatch.setattr(_queries, "MAX_CACHED_STATEMENT_LENGTH", 4096)
    monkeypatch.setattr(_queries.PostgresQuery, "convert", lambda self, query, params: None)
    assert sqlcompose._psycopg_query_cache_widen() is False
    assert _queries.MAX_CACHED_STATEMENT_LENGTH == 4096


# --- Django's insert compiler and cursors ---------------------------------------------------------------


def _as_saved(tenant: Tenant) -> dict:
    return {key: value for key, value in Tenant.objects.filter(pk=tenant.pk).values().get().items()
            if key not in ("id", "slug", "created_at")}


@pytest.mark.postgres
@pytest.mark.django_db
@pytest.mark.parametrize("with_pk", [False, True])
def test_a_chained_insert_writes_the_row_save_writes(with_pk: bool) -> None:
    saved = Tenant(slug="saved", name="Same Name")
    saved.save()
    chained = Tenant(slug="chained", name="Same Name", pk=saved.pk + 1000 if with_pk else None)

    head, pk = execute_chained(("SELECT 1", []), [insert_from_sql(chained, source=CHAIN_SOURCE)])

    stored = Tenant.objects.get(pk=pk)
    assert head == 1 and (pk == saved.pk + 1000) is with_pk
    assert _as_saved(stored) == _as_saved(saved) and stored.status == "active"  # the field default
    assert stored.created_at == chained.created_at is not None  # auto_now_add filled as save() fills it


@pytest.mark.postgres
@pytest.mark.django_db
def test_a_chain_whose_head_returns_nothing_writes_nothing() -> None:
    head, pk = execute_chained(("SELECT 1 WHERE false", []), [insert_from_sql(Tenant(slug="x"), source=CHAIN_SOURCE)])
    assert (head, pk) == (None, None) and not Tenant.objects.filter(slug="x").exists()


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_prepared_cursor_prepares_on_the_server_and_stays_a_django_cursor(settings) -> None:
    threshold = settings.DATABASES["default"]["OPTIONS"]["prepare_threshold"]
    text = "SELECT %s::int + 1 /* sqlcompose prepare probe */"
    with CaptureQueriesContext(connection) as queries:
        for _ in range(threshold + 2):
            with prepared_cursor() as cursor:
                cursor.execute(text, [41])
                assert cursor.fetchone() == (42,)

    assert len(queries.captured_queries) == threshold + 2  # each execution logged, as Django's own cursors are
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements WHERE statement LIKE %s",
                       ["%sqlcompose prepare probe%"])
        assert cursor.fetchall() == [("SELECT $1::int + 1 /* sqlcompose prepare probe */",)]
    with pytest.raises(ProgrammingError), prepared_cursor() as cursor:  # Django's error translation
        cursor.execute("SELECT no_such_column FROM accounts_tenant")
