"""Models built in slices of a key, so that one statement's working set is one slice's.

A model whose every output row reads only the input rows of its own key (a customer's features read
only that customer's events) can be built one key range at a time: the header's ``[slices]`` table
names the table whose rows the output follows (``relation``, e.g. the observation spine), the
``key`` column and at most how many of its ``rows`` go into one slice. The runner cuts the key's range
at quantiles of that table into as many slices as needed and runs the model once per slice with
``getvariable('slice_from')`` / ``getvariable('slice_to')`` set (from inclusive, to exclusive; NULL:
unbounded), all in the model's one transaction. The SQL filters its driving rows on them; unset (a
small table, Spark, a direct run of the file) both are NULL and the same SQL returns every row.

Why: DuckDB keeps every materialized CTE of a statement until the statement ends. The demo's
``features.customer_features`` at 1,000,000 customers is 12 million spine rows over 200 million
events; as one statement under a 4 GB memory limit it spilled 43 GiB and had not finished after
19 minutes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from churnwh.errors import ModelError
from churnwh.store import warehouse

FROM_VARIABLE = "slice_from"
TO_VARIABLE = "slice_to"
UNBOUNDED: tuple[Any, Any] = (None, None)


@dataclass(frozen=True)
class Slices:
    relation: str
    """The table whose rows the model's rows follow: its row count decides the number of slices."""
    key: str
    """The column an output row shares with every input row it reads (and that the SQL filters on)."""
    rows: int
    """At most this many ``relation`` rows per slice."""


def parse(path: Path, spec: Any, references: dict[str, int], text: str) -> Slices:
    """The ``[slices]`` header table, checked against the model's SQL."""
    if not isinstance(spec, dict):
        raise ModelError(f"{path}: slices must be a TOML table with relation, key and rows")
    for name in spec:
        if name not in ("relation", "key", "rows"):
            raise ModelError(f"{path}: unknown key slices.{name}: allowed are key, relation, rows")
    relation, key, rows = spec.get("relation"), spec.get("key"), spec.get("rows")
    if not isinstance(relation, str) or relation.lower() not in references:
        raise ModelError(f"{path}: slices.relation must name a schema.table the model reads (its rows drive the slices)")
    if not isinstance(key, str) or not key:
        raise ModelError(f"{path}: slices.key must name the column each output row shares with its inputs")
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
        raise ModelError(f"{path}: slices.rows must be a whole number of rows per slice (>= 1)")
    for variable in (FROM_VARIABLE, TO_VARIABLE):
        if f"getvariable('{variable}')" not in text:
            raise ModelError(f"{path}: a sliced model filters its {key} on getvariable('{FROM_VARIABLE}') (inclusive) "
                             f"and getvariable('{TO_VARIABLE}') (exclusive), each NULL for no bound")
    return Slices(relation.lower(), key, rows)


def key_ranges(con: duckdb.DuckDBPyConnection, spec: Slices, where: str = "", params: list | None = None,
               ) -> list[tuple[Any, Any]]:
    """Key ranges (from inclusive, to exclusive; None unbounded) holding at most about ``spec.rows``
    rows of ``spec.relation`` each (those matching ``where``); one unbounded range when all fit."""
    key = warehouse.quote_identifier(spec.key)
    condition = f"WHERE {where}" if where else ""
    total, missing = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE {key} IS NULL) FROM {spec.relation} {condition}", params or []
    ).fetchone()
    count = math.ceil(total / spec.rows)
    if count <= 1:
        return [UNBOUNDED]
    if missing:
        raise ModelError(f"{spec.relation} has {missing} rows without {spec.key}: a sliced model needs the key on "
                         "every row (fix the upstream model, or remove [slices] from the header)")
    cuts = con.execute(
        f"SELECT quantile_disc({key}, ?) FROM {spec.relation} {condition}",
        [[index / count for index in range(1, count)], *(params or [])],
    ).fetchone()[0]
    edges = [None, *sorted(set(cuts)), None]
    return list(zip(edges[:-1], edges[1:]))


def select(con: duckdb.DuckDBPyConnection, key_range: tuple[Any, Any]) -> None:
    """Set the slice variables the model's SQL filters on (``UNBOUNDED``: every row)."""
    warehouse.set_variables(con, {FROM_VARIABLE: key_range[0], TO_VARIABLE: key_range[1]})
