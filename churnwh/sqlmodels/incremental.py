"""Incremental models by time range: declared in the header, processed from the last processed day on.

A model whose header has an ``[incremental]`` table is built in full once; later builds delete its
rows dated (``time_column``) on or after the restate day and insert what its SQL returns with
``getvariable('incremental_start')`` set to that day. The restate day is the table's last day (restated
in case it was partly loaded), at most ``as_of``, less ``lookback`` days; ``_churnwh.incremental_state``
holds it per model (column ``processed_until``) with what the increment rests on. The SQL filters on it: on a full build it is ``FULL_START`` (0001-01-01), so the same SQL builds
everything. In the spirit of SQLMesh's INCREMENTAL_BY_TIME_RANGE and dbt's incremental models.

An increment is right only if no row it does not rebuild could have changed. The header therefore
lists every table the model reads (``[[incremental.inputs]]``) with how its rows are dated
(``time``, an SQL expression over its columns) and which of its columns the model reads: the build
records the count and an order-independent hash of the input rows dated before the processed day,
and the next build compares them first. A late-arriving row (dated before that day), a deleted one
(an erasure) or a changed one, a changed model SQL or variable (``as_of`` excepted), a changed
column or type of an input, or an ``as_of`` that moved back all give a full rebuild, named in the
build's output. An input without ``time`` is an append-only lookup whose existing rows never change
(the customer keys: a key rotation rebuilds everything with ``--full-refresh``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import duckdb

from churnwh.store import warehouse

START_VARIABLE = "incremental_start"
FULL_START = dt.date(1, 1, 1)
"""``incremental_start`` of a full build: before every date, so the SQL's filter keeps everything."""
RANGE_VARIABLES = frozenset({"as_of"})
"""Variables that move the time range rather than change the definition (checked to only move on)."""


@dataclass(frozen=True)
class Input:
    """One table an incremental model reads, and which of its rows the already-built rows depend on."""

    relation: str
    time: str | None
    """SQL over the relation's columns dating a row; rows dated before the processed day must not change."""
    columns: tuple[str, ...] | None
    """The columns hashed (None: all; empty: count only, for append-only raw tables)."""


@dataclass(frozen=True)
class Incremental:
    time_column: str
    inputs: tuple[Input, ...]
    lookback: str = "0"
    """Days before the last processed day that are rebuilt too (an SQL integer expression): for rows whose
    past can change, e.g. a re-signup within churn_gap_days merging a period that had ended."""


@dataclass(frozen=True)
class State:
    definition: str
    schema: str
    processed_until: dt.date | None
    as_of: str | None
    history: str


def ensure_state_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {warehouse.META_SCHEMA}.incremental_state (
            model VARCHAR PRIMARY KEY, definition VARCHAR NOT NULL, input_schema VARCHAR NOT NULL,
            processed_until DATE, as_of VARCHAR, history VARCHAR NOT NULL, mode VARCHAR NOT NULL,
            built_at TIMESTAMP NOT NULL)"""
    )


def load_state(con: duckdb.DuckDBPyConnection, model: str) -> State | None:
    rows = con.execute(
        f"SELECT definition, input_schema, processed_until, as_of, history "
        f"FROM {warehouse.META_SCHEMA}.incremental_state WHERE model = ?",
        [model],
    ).fetchall()
    return State(*rows[0]) if rows else None


def definition(text: str, variables: dict[str, Any]) -> str:
    """What must stay the same for an increment: the SQL and the variables that are not the time range."""
    payload = {"text": text, "variables": {k: str(v) for k, v in sorted(variables.items()) if k not in RANGE_VARIABLES}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def input_schema(con: duckdb.DuckDBPyConnection, spec: Incremental) -> str:
    """Columns and types of every input, as one string (a change means a full rebuild)."""
    relations = sorted({item.relation for item in spec.inputs})
    return json.dumps({relation: warehouse.columns(con, relation) for relation in relations}, sort_keys=True)


def history(con: duckdb.DuckDBPyConnection, spec: Incremental, until: dt.date | None) -> str:
    """Count and hash of each input's rows dated before ``until``; one query per input."""
    if until is None:
        return "[]"
    found = []
    for item in spec.inputs:
        if item.time is None:
            found.append(None)
            continue
        columns = item.columns if item.columns is not None else tuple(warehouse.columns(con, item.relation))
        hashed = (f"coalesce(sum(hash({', '.join(warehouse.quote_identifier(c) for c in columns)})::HUGEINT), 0)" if columns else "0")
        count, total = con.execute(
            f"SELECT count(*), {hashed} FROM {item.relation} WHERE ({item.time}) < ?", [until]
        ).fetchone()
        found.append(f"{count}:{total}")
    return json.dumps(found)


def processed_until(con: duckdb.DuckDBPyConnection, model: str, spec: Incremental, as_of: str | None) -> dt.date | None:
    """The day the next build restates from: the table's last day, at most ``as_of`` (rows dated later,
    such as transactions that will be loaded after the data end, are always restated), less the lookback."""
    value = con.execute(f"SELECT max({warehouse.quote_identifier(spec.time_column)}) FROM {model}").fetchone()[0]
    if isinstance(value, dt.datetime):
        value = value.date()
    if value is None:
        return None
    if as_of is not None:
        value = min(value, dt.date.fromisoformat(as_of))
    days = con.execute(f"SELECT CAST(({spec.lookback}) AS INTEGER)").fetchone()[0]
    return value - dt.timedelta(days=int(days or 0))


def why_full(
    con: duckdb.DuckDBPyConnection,
    spec: Incremental,
    state: State | None,
    current_definition: str,
    current_schema: str,
    as_of: str | None,
) -> str | None:
    """Why the model must be rebuilt in full (one line), or None: an increment gives the full result."""
    if state is None:
        return "no processed range recorded"
    if state.processed_until is None:
        return "the table was empty"
    if state.definition != current_definition:
        return "its SQL or variables changed"
    if state.schema != current_schema:
        return "an input's columns changed"
    if as_of is not None and state.as_of is not None and as_of < state.as_of:
        return f"as_of moved back from {state.as_of} to {as_of}"
    if history(con, spec, state.processed_until) != state.history:
        changed = _changed_input(con, spec, state)
        return f"{changed} has rows dated before {state.processed_until} that were added, removed or changed"
    return None


def record(con: duckdb.DuckDBPyConnection, model: str, spec: Incremental, current_definition: str,
           current_schema: str, as_of: str | None, mode: str) -> None:
    """Write the processed range and the input history it rests on (in the model's transaction)."""
    until = processed_until(con, model, spec, as_of)
    con.execute(
        f"INSERT OR REPLACE INTO {warehouse.META_SCHEMA}.incremental_state VALUES (?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
        [model, current_definition, current_schema, until, as_of, history(con, spec, until), mode],
    )


def _changed_input(con: duckdb.DuckDBPyConnection, spec: Incremental, state: State) -> str:
    try:
        before = json.loads(state.history)
    except ValueError:
        return "an input"
    now = json.loads(history(con, spec, state.processed_until))
    for item, old, new in zip(spec.inputs, before, now):
        if old != new:
            return item.relation
    return "an input"
