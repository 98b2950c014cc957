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
and the next build compares them first (both are sums: the build measures the rows before the old
processed day once, for that comparison, and adds the rows since for the new day: ``Known``). A
late-arriving row (dated before that day), a deleted one (an erasure) or a changed one, a changed
model SQL or variable (``as_of`` excepted), a changed column or type of an input, or an ``as_of``
that moved back all give a full rebuild, named in the build's output. An input without ``time`` is an append-only lookup whose existing rows never change
(the customer keys: a key rotation rebuilds everything with ``--full-refresh``).

A model whose every row reads only the input rows of its own key (``key`` in the header: a customer's
features read only that customer's events) need not be rebuilt for a changed earlier row: the build
also records one hash per key of the earlier rows of every input holding that column (stored by the
key's hash, never the key), finds the keys whose hash moved and restates only them, running the SQL
from ``FULL_START`` with ``getvariable('incremental_keys')`` set to their list (NULL: every key). At
a million customers about 170 a day withdraw their profiling consent, which removes their earlier
spine rows: a full rebuild took 682 s of a 1,435 s day. A changed input without the key column, or
more than ``MAX_RESTATED_SHARE`` of the keys, still rebuilds in full.
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
KEYS_VARIABLE = "incremental_keys"
"""The keys a restatement rebuilds (a list), NULL on every other run: a keyed model's SQL filters on it."""
MAX_RESTATED_SHARE = 0.1
"""Above this share of keys restated, a full rebuild costs about as much and is simpler to trust."""
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
    key: str | None = None
    """The column each output row shares with every input row it reads: changed earlier rows restate only
    their keys (None: they rebuild the whole table)."""


@dataclass(frozen=True)
class State:
    definition: str
    schema: str
    processed_until: dt.date | None
    as_of: str | None
    history: str


@dataclass(frozen=True)
class Restatement:
    """Keys an increment rebuilds in full besides the new time range: their hashes, and the keys still in
    the inputs, are in the temp table ``RESTATED`` (the keys never leave DuckDB)."""

    why: str


RESTATED = "_churnwh_restated"
KEY_STATE = f"{warehouse.META_SCHEMA}.incremental_keys"


def ensure_state_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {warehouse.META_SCHEMA}.incremental_state (
            model VARCHAR PRIMARY KEY, definition VARCHAR NOT NULL, input_schema VARCHAR NOT NULL,
            processed_until DATE, as_of VARCHAR, history VARCHAR NOT NULL, mode VARCHAR NOT NULL,
            built_at TIMESTAMP NOT NULL)"""
    )
    con.execute(f"CREATE TABLE IF NOT EXISTS {KEY_STATE} (model VARCHAR NOT NULL, key_hash UBIGINT NOT NULL, "
                "digest HUGEINT NOT NULL)")


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


def _row_hash(con: duckdb.DuckDBPyConnection, item: Input, *salt: str) -> str | None:
    """SQL hashing one row of ``item`` over the columns the model reads (None: count only)."""
    columns = item.columns if item.columns is not None else tuple(warehouse.columns(con, item.relation))
    if not columns and not salt:
        return None
    return f"hash({', '.join([*salt, *(warehouse.quote_identifier(c) for c in columns)])})"


@dataclass(frozen=True)
class Known:
    """What this build already measured of the inputs' rows dated before ``until`` (counts and hash sums
    add up, so the next processed day's need only the rows since): ``history``, and with a restatement the
    per-key digests in the temp table ``KEY_DIGESTS``."""

    until: dt.date
    history: str
    key_digests: bool = False


KEY_DIGESTS = "_churnwh_key_digests"


def history(con: duckdb.DuckDBPyConnection, spec: Incremental, until: dt.date | None, known: Known | None = None) -> str:
    """Count and hash of each input's rows dated before ``until``; one query per input (over the rows since
    ``known.until`` only, added to ``known.history``)."""
    if until is None:
        return "[]"
    since = known.until if known is not None and known.until <= until else None
    before = json.loads(known.history) if since is not None else [None] * len(spec.inputs)
    found = []
    for item, earlier in zip(spec.inputs, before):
        if item.time is None:
            found.append(None)
            continue
        row_hash = _row_hash(con, item)
        hashed = f"coalesce(sum({row_hash})::HUGEINT, 0)" if row_hash else "0"
        window = f"({item.time}) < ?" + (f" AND ({item.time}) >= ?" if since is not None else "")
        count, total = con.execute(f"SELECT count(*), {hashed} FROM {item.relation} WHERE {window}",
                                   [until] + ([since] if since is not None else [])).fetchone()
        if since is not None:
            earlier_count, earlier_total = (int(part) for part in earlier.split(":"))
            count, total = count + earlier_count, total + earlier_total
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


def keyed_inputs(con: duckdb.DuckDBPyConnection, spec: Incremental) -> list[tuple[int, Input]]:
    """The dated inputs holding the key column, with their place in the header (a hash salt)."""
    if spec.key is None:
        return []
    return [(index, item) for index, item in enumerate(spec.inputs)
            if item.time is not None and spec.key in warehouse.columns(con, item.relation)]


def _key_digests(con: duckdb.DuckDBPyConnection, spec: Incremental, until: dt.date,
                 since: dt.date | None = None) -> tuple[str, list]:
    """SQL (and parameters) for one row per key: the key, hash(key) and one hash of its rows dated before
    ``until`` (and from ``since`` on) over every keyed input (order-independent: a sum)."""
    key = warehouse.quote_identifier(spec.key)
    window = "({time}) < ?" + (" AND ({time}) >= ?" if since is not None else "")
    parts = [f"SELECT {key} AS key, {_row_hash(con, item, str(index))} AS h FROM {item.relation} "
             f"WHERE {window.format(time=item.time)} AND {key} IS NOT NULL" for index, item in keyed_inputs(con, spec)]
    sql = f"SELECT key, hash(key) AS key_hash, sum(h)::HUGEINT AS digest FROM ({' UNION ALL '.join(parts)}) GROUP BY key"
    return sql, ([until] + ([since] if since is not None else [])) * len(parts)


def record_keys(con: duckdb.DuckDBPyConnection, model: str, spec: Incremental, until: dt.date | None,
                known: Known | None = None) -> None:
    con.execute(f"DELETE FROM {KEY_STATE} WHERE model = ?", [model])
    if until is None or not keyed_inputs(con, spec):
        return
    if known is not None and known.key_digests and known.until <= until:
        sql, params = _key_digests(con, spec, until, since=known.until)
        con.execute(f"""INSERT INTO {KEY_STATE} SELECT ?, key_hash, sum(digest)::HUGEINT FROM (
                            SELECT key_hash, digest FROM {KEY_DIGESTS} UNION ALL SELECT key_hash, digest FROM ({sql}))
                        GROUP BY key_hash""", [model, *params])
        return
    sql, params = _key_digests(con, spec, until)
    con.execute(f"INSERT INTO {KEY_STATE} SELECT ?, key_hash, digest FROM ({sql})", [model, *params])


def restatement(con: duckdb.DuckDBPyConnection, model: str, spec: Incremental, state: State,
                changed: list[Input]) -> Restatement | str:
    """The keys whose rows dated before the processed day changed (in ``RESTATED``), or why the whole
    table must be rebuilt instead."""
    keyed = {item for _, item in keyed_inputs(con, spec)}
    whole = (f"{', '.join(dict.fromkeys(item.relation for item in changed))} has rows dated before "
             f"{state.processed_until} that were added, removed or changed")
    if not keyed or any(item not in keyed for item in changed):
        return whole
    total = con.execute(f"SELECT count(*) FROM {KEY_STATE} WHERE model = ?", [model]).fetchone()[0]
    if not total:
        return f"{whole} (no hashes per {spec.key} recorded to restate only theirs)"
    sql, params = _key_digests(con, spec, state.processed_until)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {KEY_DIGESTS} AS {sql}", params)  # reused by record_keys
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {RESTATED} AS
            WITH was AS (SELECT key_hash, digest FROM {KEY_STATE} WHERE model = ?)
            SELECT coalesce(now.key_hash, was.key_hash) AS key_hash, now.key AS key
            FROM {KEY_DIGESTS} AS now FULL JOIN was USING (key_hash) WHERE now.digest IS DISTINCT FROM was.digest""",
        [model],
    )
    count = con.execute(f"SELECT count(*) FROM {RESTATED}").fetchone()[0]
    if count > MAX_RESTATED_SHARE * total:
        return f"{whole}: {count:,} of {total:,} {spec.key} values, too many to restate one by one"
    return Restatement(f"{count:,} {spec.key} values restated: {whole}")


def changed_inputs(spec: Incremental, state: State, now: str) -> list[Input]:
    """The inputs whose rows dated before the processed day differ from the recorded history (``now``:
    ``history`` at that day)."""
    try:
        before = json.loads(state.history)
    except ValueError:
        return list(spec.inputs)
    current = json.loads(now)
    if len(before) != len(current):
        return list(spec.inputs)
    return [item for item, old, new in zip(spec.inputs, before, current) if old != new]


def why_full(
    con: duckdb.DuckDBPyConnection,
    spec: Incremental,
    state: State | None,
    current_definition: str,
    current_schema: str,
    as_of: str | None,
) -> str | None:
    """Why the model must be rebuilt in full (one line), or None: an increment (with a restatement of the
    keys whose earlier rows changed, when the history differs: ``restatement``) gives the full result."""
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
    return None


def record(con: duckdb.DuckDBPyConnection, model: str, spec: Incremental, current_definition: str,
           current_schema: str, as_of: str | None, mode: str, known: Known | None = None) -> None:
    """Write the processed range and the input history it rests on (in the model's transaction)."""
    until = processed_until(con, model, spec, as_of)
    con.execute(
        f"INSERT OR REPLACE INTO {warehouse.META_SCHEMA}.incremental_state VALUES (?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
        [model, current_definition, current_schema, until, as_of, history(con, spec, until, known), mode],
    )
    record_keys(con, model, spec, until, known)
