"""SELECTs built once with Peewee's query builder, their SQL text kept.

Peewee rebuilds a query's SQL text on every execution: ~0.3 ms for a one-row SELECT,
ten times what SQLite needs to run it, and the larger part of a ``GetWebHooks`` call's
store time (cProfile). The per-call reads of the API (the account behind the
credentials, the listing) and of ingest (the account and webhooks of an event) build
theirs here once per database kind and shape, and bind new values on each call. Rows
come back as model instances holding the selected columns, converted as Peewee
converts them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import NamedTuple

from peewee import Model

from soapservice.models import db


class _Compiled(NamedTuple):
    sql: str
    names: list[str]
    converters: list[Callable]


def _flat(values: tuple) -> list:
    out = []
    for value in values:
        if isinstance(value, list | tuple):
            out.extend(value)
        else:
            out.append(value)
    return out


class Prepared:
    """``build(*values)`` returns a Peewee query whose parameters are exactly
    ``values``, in order, a list value standing for its items (an ``IN``); checked
    when the SQL is first built. Constants go in as values too, so that nothing the
    query binds is folded into the cached text. A query with variants (which filters
    are on, a row lock or not) is called with a ``shape`` naming the variant and built
    as ``build(shape, *values)``; the database kind and the length of each list are
    part of the key, so the build may ask :func:`soapservice.store.is_postgres`.
    """

    def __init__(self, model: type[Model], build: Callable):
        self.model, self._build = model, build
        self._compiled: dict[tuple, _Compiled] = {}
        self._lock = threading.Lock()

    def _compile(self, key: tuple, shape, values: tuple) -> _Compiled:
        query = self._build(*values) if shape is None else self._build(shape, *values)
        sql, params = query.sql()
        if list(params) != _flat(values):
            raise ValueError(f"{self.model.__name__}: the query's parameters {params!r} "
                             f"are not the values it was built with {values!r}")
        fields = getattr(query, "selected_columns", None) or []
        compiled = _Compiled(sql, [getattr(f, "name", None) for f in fields],
                             [getattr(f, "python_value", None) for f in fields])
        with self._lock:
            self._compiled[key] = compiled
        return compiled

    def _run(self, shape, values: tuple):
        database = db.obj
        key = (type(database), database.param, shape,
               tuple(len(v) if isinstance(v, list | tuple) else -1 for v in values))
        compiled = self._compiled.get(key) or self._compile(key, shape, values)
        return compiled, database.execute_sql(compiled.sql, _flat(values))

    def rows(self, *values, shape=None) -> list[Model]:
        """The rows as instances of the model (plain columns of it selected)."""
        compiled, cursor = self._run(shape, values)
        names, converters, model = compiled.names, compiled.converters, self.model
        if None in converters:
            raise ValueError(f"{model.__name__}: rows() needs plain columns of the model")
        return [model(**{name: None if value is None else convert(value)
                         for name, convert, value in zip(names, converters, row, strict=True)})
                for row in cursor.fetchall()]

    def tuples(self, *values, shape=None) -> list[tuple]:
        """The rows as the driver returns them."""
        return self._run(shape, values)[1].fetchall()

    def execute(self, *values, shape=None) -> int:
        """Run an UPDATE or DELETE; the number of rows it changed."""
        return self._run(shape, values)[1].rowcount
