"""Composing several ORM writes into one PostgreSQL statement (data-modifying CTEs), so a short transaction is one
round trip and holds its row locks for the time of one statement. The SQL comes from Django's own compilers, so
column lists, defaults (`auto_now`, callables) and value adaptation stay exactly what `save()` would write."""

import functools
from typing import Any

from django.db import connection
from django.db.models import Field, Model
from django.db.models.sql import InsertQuery

CHAIN_SOURCE = "chain_head"  # the name `execute_chained` gives its first statement


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
    params = [field.get_db_prep_save(field.pre_save(obj, add=True), connection=connection) for field in fields]
    return template.format(source=source), params


def execute_chained(first: tuple[str, list[Any]], then: list[tuple[str, list[Any]]]) -> list[Any]:
    """Run `first` and every statement of `then` (each reading its rows `FROM CHAIN_SOURCE`) as one statement; return the
    value `first` returned and each `then`'s returned pk (None where nothing was written)."""
    names = [CHAIN_SOURCE, *(f"then_{index}" for index in range(len(then)))]
    parts, params = [], []
    for name, (text, values) in zip(names, [first, *then], strict=True):
        parts.append(f"{name} AS ({text})")
        params += values
    selects = ", ".join(f"(SELECT * FROM {name} LIMIT 1)" for name in names)
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(parts)} SELECT {selects}", params)
        return list(cursor.fetchone())
