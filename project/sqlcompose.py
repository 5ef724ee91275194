"""Composing several ORM writes into one PostgreSQL statement (data-modifying CTEs), so a short transaction is one
round trip and holds its row locks for the time of one statement. The SQL comes from Django's own compilers, so
column lists, defaults (`auto_now`, callables) and value adaptation stay exactly what `save()` would write."""

import functools
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Field, Model
from django.db.models.sql import InsertQuery

CHAIN_SOURCE = "chain_head"  # the name `execute_chained` gives its first statement

# psycopg keeps the parsed form of a query's placeholders only for queries of at most 50 parameters (and 4 KiB); a
# chained submit has about 60, so psycopg re-parsed its text on every execution (~6 % of a submit's CPU). Chained
# texts are few and fixed (one per chain shape), so keeping them cached is safe.
_PSYCOPG_CACHE_LIMITS = {"MAX_CACHED_STATEMENT_PARAMS": 256, "MAX_CACHED_STATEMENT_LENGTH": 16384}


def _psycopg_query_cache_widen() -> bool:
    """Raise psycopg's cache limits, which are private names of `psycopg._queries` read by its query converters
    on each execution. They are touched only when they exist with the shape this relies on (module-level ints
    that both converters read); otherwise nothing is changed and long statements are parsed per execution as in
    plain psycopg: slower, never wrong. `tests/test_sqlcompose.py` fails when a psycopg release moves them, so
    an upgrade cannot silently drop the gain."""
    try:
        from psycopg import _queries
    except ImportError:
        return False
    converters = [getattr(getattr(_queries, name, None), "convert", None)
                  for name in ("PostgresQuery", "PostgresClientQuery")]
    for name in _PSYCOPG_CACHE_LIMITS:
        if not isinstance(getattr(_queries, name, None), int):
            return False
        if not all(name in getattr(getattr(convert, "__code__", None), "co_names", ()) for convert in converters):
            return False
    for name, limit in _PSYCOPG_CACHE_LIMITS.items():
        setattr(_queries, name, max(getattr(_queries, name), limit))
    return True


PSYCOPG_QUERY_CACHE_WIDENED = _psycopg_query_cache_widen()


@functools.cache
def _insert_template(model: type[Model], with_pk: bool) -> tuple[str, tuple[Field, ...]]:
    """The INSERT text for a model, compiled once: `INSERT INTO t (…) SELECT %s, … FROM {source} RETURNING pk`."""
    meta = model._meta
    fields = tuple(field for field in meta.local_concrete_fields if with_pk or field is not meta.auto_field)
    query = InsertQuery(model)
    query.insert_values(fields, [model()], raw=False)
    ((text, _),) = query.get_compiler(connection=connection).as_sql()
    head, separator, values = text.partition(" VALUES (")
    if not separator or not values.endswith(")") or values[:-1].replace("%s", "").strip(", "):
        raise ValueError(f"unexpected INSERT shape: {text[:200]}")
    pk = connection.ops.quote_name(meta.pk.column)
    return f"{head} SELECT {values[:-1]} FROM {{source}} RETURNING {pk}", fields


def insert_from_sql(obj: Model, *, source: str) -> tuple[str, list[Any]]:
    """`obj.save()` (an INSERT) as `INSERT … SELECT … FROM source RETURNING pk`: one row per row of `source`, so
    none when `source` (a CTE) produced none. Values are prepared as `save()` prepares them (`pre_save` fills
    `auto_now` fields on `obj`); the SQL text is compiled once per model."""
    template, fields = _insert_template(type(obj), obj.pk is not None)
    db = connections[DEFAULT_DB_ALIAS]  # not the `connection` proxy: each attribute read through it costs a lookup
    params = [field.get_db_prep_save(field.pre_save(obj, add=True), connection=db) for field in fields]
    return template.format(source=source), params


def execute_chained(
    first: tuple[str, list[Any]], then: list[tuple[str, list[Any]]], *, also: list[tuple[str, list[Any]]] = ()
) -> list[Any]:
    """Run `first` and every statement of `then` (each reading its rows `FROM CHAIN_SOURCE`) as one statement; return the
    value `first` returned and each `then`'s returned pk (None where nothing was written). Each expression of `also`
    (e.g. a `pg_notify(…)`) is evaluated in the same statement, once, and only when `first` returned a row."""
    names = [CHAIN_SOURCE, *(f"then_{index}" for index in range(len(then)))]
    parts, params = [], []
    for name, (text, values) in zip(names, [first, *then], strict=True):
        parts.append(f"{name} AS ({text})")
        params += values
    selects = [f"(SELECT * FROM {name} LIMIT 1)" for name in names]
    for expression, values in also:
        selects.append(f"(SELECT {expression} FROM {CHAIN_SOURCE} LIMIT 1)")
        params += values
    with prepared_cursor() as cursor:
        cursor.execute(f"WITH {', '.join(parts)} SELECT {', '.join(selects)}", params)
        return list(cursor.fetchone())[: len(names)]


def prepared_cursor() -> Any:
    """A cursor whose statements PostgreSQL keeps prepared on the connection (psycopg binds the parameters on the
    server and prepares a text it has run `prepare_threshold` times), for the few fixed statements every request
    runs. Planning a chained statement cost PostgreSQL three times what running it did (0.9 of 1.2 ms CPU per
    submit), the rate counter's upsert half its cost; prepared, each is planned once per connection. PostgreSQL only.
    Django's own cursors bind on the client, which cannot prepare; the pool keeps connections, and so their
    prepared statements, across requests. Wrapped like any Django cursor (query logging, error translation)."""
    from django.db.backends.postgresql.base import ServerBindingCursor

    connection.ensure_connection()
    raw = ServerBindingCursor(connection.connection)
    return connection.make_debug_cursor(raw) if connection.queries_logged else connection.make_cursor(raw)
