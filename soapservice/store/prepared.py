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

from peewee import Field, Model

from soapservice.models import db


class _Compiled(NamedTuple):
    sql: str
    names: list[str]
    converters: list[Callable]


class Prepared:
    """``build(*values)`` returns a Peewee SELECT of ``model``'s columns whose
    parameters are exactly ``values``, in order (checked when the SQL is first built).
    A query with variants (which filters are on, a row lock or not) is called with a
    ``shape`` naming the variant and built as ``build(shape, *values)``; the database
    kind is part of the key, so the build may ask :func:`soapservice.store.is_postgres`.
    """

    def __init__(self, model: type[Model], build: Callable):
        self.model, self._build = model, build
        self._compiled: dict[tuple, _Compiled] = {}
        self._lock = threading.Lock()

    def _compile(self, key: tuple, shape, values: tuple) -> _Compiled:
        query = self._build(*values) if shape is None else self._build(shape, *values)
        sql, params = query.sql()
        if list(params) != list(values):
            raise ValueError(f"{self.model.__name__}: the query's parameters {params!r} "
                             f"are not the values it was built with {values!r}")
        fields = query.selected_columns
        if not all(isinstance(f, Field) and f.model is self.model for f in fields):
            raise ValueError(f"{self.model.__name__}: select plain columns of the model")
        compiled = _Compiled(sql, [f.name for f in fields], [f.python_value for f in fields])
        with self._lock:
            self._compiled[key] = compiled
        return compiled

    def rows(self, *values, shape=None) -> list[Model]:
        database = db.obj
        key = (type(database), database.param, shape)
        compiled = self._compiled.get(key) or self._compile(key, shape, values)
        cursor = database.execute_sql(compiled.sql, values)
        names, converters, model = compiled.names, compiled.converters, self.model
        return [model(**{name: None if value is None else convert(value)
                         for name, convert, value in zip(names, converters, row, strict=True)})
                for row in cursor.fetchall()]
