"""Run SQL models in DuckDB: fingerprints, one transaction per model, checks, audits, column comments.

A model is built inside a transaction together with its checks and audits; if any of them fails
the transaction rolls back and the model's previous table stays exactly as it was.

Checks and audits cost one scan of the new table: every check that can be written as an aggregate
over the table (not_null, accepted_values, range, audits that only filter ``this``; unique and
grain as equal neighbours among sorted key hashes) is computed in one ``SELECT`` (``verify``).
That aggregate is a screen: it is positive whenever the check's own bad-rows query returns rows,
so only a positive screen (or an audit that joins) runs the check's own query, which counts and
names the bad rows exactly as before.
If the screening query fails (a check that cannot run; DuckDB then aborts the transaction) the model
is built again with every check run on its own, in header order, so the error names the check.
A unique or grain check that the model's SQL guarantees by its structure (``unique_by_structure``:
the outermost SELECT groups by exactly those columns, keeps the first ``row_number()`` of a
partition by them, or is DISTINCT on them) is left out of the screen; run one by one it still runs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import duckdb
import sqlglot
from sqlglot import exp

from churnwh.errors import ModelError
from churnwh.sqlmodels import incremental
from churnwh.sqlmodels import slices as slicing
from churnwh.sqlmodels.project import DIALECT, Column, Model, Project, parse_sql
from churnwh.store import faults, warehouse

ID_COLUMN = "customer_pseudonym"
MAX_EXAMPLES = 5
_NUMBER = re.compile(r"^(U?(TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT)|FLOAT|DOUBLE|DECIMAL\(\d+,\s*\d+\))$")


@dataclass(frozen=True)
class ModelResult:
    name: str
    status: str  # "built" | "skipped"
    rows: int
    seconds: float
    """The model's whole transaction, commit included (``_churnwh.model_state`` holds it without the commit)."""
    sql_seconds: float = 0.0
    """Of ``seconds``: what running the SQL file directly also costs, its CREATE statement and the COMMIT."""
    check_seconds: float = 0.0
    """Of ``seconds``: its header checks and audits."""
    mode: str = "full"
    """"full", or "incremental" when only the new time range was processed (churnwh.sqlmodels.incremental)."""
    note: str = ""
    """Why an incremental model was rebuilt in full (one line), when it was."""
    slices: int = 1
    """How many key ranges the SQL ran for (churnwh.sqlmodels.slices)."""


@dataclass(frozen=True)
class Check:
    """One header check or audit of a model."""

    what: str
    """As error messages name it: ``check not_null(x)``, ``grain (a, b) unique``, ``audit name``."""
    bad_rows_sql: str
    """The rows it fails on: counted, and the first pseudonyms named, only when the screen is positive."""
    screen: str | None
    """An aggregate over the model's table, > 0 whenever ``bad_rows_sql`` returns a row (None: no screen)."""
    proven: bool = False
    """The model's SQL guarantees the check passes (``unique_by_structure``): a screening run skips it."""
    keys: tuple[str, ...] = ()
    """A unique or grain check: the columns that must be unique together (the Spark engine groups by them)."""


def run_models(
    con: duckdb.DuckDBPyConnection,
    project: Project,
    variables: dict[str, Any],
    *,
    selected: Iterable[str] | None = None,
    full_refresh: bool = False,
    on_model: Callable[[ModelResult], None] | None = None,
) -> list[ModelResult]:
    """Build ``selected`` models (default: all) in dependency order, skipping unchanged ones."""
    warehouse.set_variables(con, variables)
    warehouse.set_variables(con, {incremental.START_VARIABLE: incremental.FULL_START})
    incremental.ensure_state_table(con)
    chosen = set(selected) if selected is not None else set(project.order)
    existing = warehouse.relations(con)
    stored = dict(con.execute(f"SELECT model, fingerprint FROM {warehouse.META_SCHEMA}.model_state").fetchall())
    fingerprints = current_fingerprints(con, project, variables, existing)
    results = []
    for name in project.order:
        model = project.models[name]
        if name not in chosen:
            continue
        if not full_refresh and stored.get(name) == fingerprints[name] and name in existing:
            result = ModelResult(name, "skipped", _row_count(con, model), 0.0)
        elif model.incremental is not None:
            result = build_incremental(con, model, fingerprints[name], project.column_docs(name), variables,
                                       full_refresh=full_refresh or name not in existing)
        else:
            result = build_model(con, model, fingerprints[name], project.column_docs(name))
        results.append(result)
        if on_model:
            on_model(result)
    return results


def current_fingerprints(
    con: duckdb.DuckDBPyConnection, project: Project, variables: dict[str, Any], existing: dict[str, str]
) -> dict[str, str]:
    """Every model's fingerprint for the SQL, variables and source contents as they are now."""
    source_prints = {
        source: warehouse.content_fingerprint(con, source) for source in sorted(project.sources()) if source in existing
    }
    fingerprints: dict[str, str] = {}
    for name in project.order:
        fingerprints[name] = fingerprint(project.models[name], variables, fingerprints, source_prints, project)
    return fingerprints


def fingerprint(
    model: Model,
    variables: dict[str, Any],
    upstream: dict[str, str],
    sources: dict[str, str],
    project: Project,
) -> str:
    """Changes when the model's file, the variables, or anything it reads changes."""
    payload = {
        "text": model.text,
        "variables": {name: str(value) for name, value in sorted(variables.items())},
        "models": {dep: upstream[dep] for dep in sorted(project.dependencies[model.name])},
        "sources": {ref: sources.get(ref, "missing") for ref in sorted(model.references) if ref not in project.models},
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def build_incremental(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    model_fingerprint: str,
    docs: dict[str, Column] | None,
    variables: dict[str, Any],
    *,
    full_refresh: bool = False,
) -> ModelResult:
    """Process only the new time range of an incremental model, or rebuild it in full when an increment
    cannot give the full result (churnwh.sqlmodels.incremental.why_full; a failed check on the increment
    too: the full build's checks then decide)."""
    spec = model.incremental
    assert spec is not None
    current_definition = incremental.definition(model.text, variables)
    current_schema = incremental.input_schema(con, spec)
    as_of = str(variables["as_of"]) if variables.get("as_of") is not None else None

    def record(mode: str, known: incremental.Known | None = None) -> Callable[[duckdb.DuckDBPyConnection], None]:
        return lambda c: incremental.record(c, model.name, spec, current_definition, current_schema, as_of, mode,
                                            known)

    reason = "--full-refresh" if full_refresh else None
    if reason is None:
        state = incremental.load_state(con, model.name)
        reason = incremental.why_full(con, spec, state, current_definition, current_schema, as_of)
    restated = None
    try:
        if reason is None:
            known = incremental.Known(state.processed_until, incremental.history(con, spec, state.processed_until))
            if changed := incremental.changed_inputs(spec, state, known.history):
                restated = incremental.restatement(con, model.name, spec, state, changed)
                if isinstance(restated, str):
                    reason, restated = restated, None
                else:
                    known = dataclasses.replace(known, key_digests=True)
        if reason is None:
            try:
                return _build_increment(con, model, model_fingerprint, state.processed_until,
                                        record("incremental", known), restated)
            except IncrementFailed as failed:
                reason = str(failed)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {incremental.KEY_DIGESTS}")
    result = build_model(con, model, model_fingerprint, docs, after=record("full"))
    note = "" if full_refresh else f"full rebuild: {reason}"
    return ModelResult(result.name, result.status, result.rows, result.seconds, result.sql_seconds,
                       result.check_seconds, "full", note, result.slices)


class IncrementFailed(ModelError):
    """The increment failed a check: the model is rebuilt in full instead (whose checks then decide)."""


def _build_increment(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    model_fingerprint: str,
    start: Any,
    after: Callable[[duckdb.DuckDBPyConnection], None],
    restated: incremental.Restatement | None = None,
) -> ModelResult:
    """Delete the rows dated on or after ``start``, insert the model's rows for them, then (``restated``)
    replace every row of the keys whose earlier input rows changed; check the whole table."""
    spec = model.incremental
    started = time.perf_counter()
    con.execute("BEGIN TRANSACTION")
    try:
        warehouse.set_variables(con, {incremental.START_VARIABLE: start})
        sql_started = time.perf_counter()
        column = warehouse.quote_identifier(spec.time_column)
        try:
            con.execute(f"DELETE FROM {model.name} WHERE {column} >= ?", [start])
            key_ranges = _key_ranges(con, model, start)
            for key_range in key_ranges:
                slicing.select(con, key_range)
                con.execute(f"INSERT INTO {model.name} BY NAME SELECT * FROM (\n{_statement(model.text)}\n) AS increment")
            slicing.select(con, slicing.UNBOUNDED)
            if restated is not None:
                _restate_keys(con, model)
        except duckdb.Error as err:
            if warehouse.disk_full(err):
                raise  # the build stops with its one line (churnwh.pipeline), not a full rebuild needing more space
            raise IncrementFailed(f"the increment failed in DuckDB ({warehouse.first_line(err)})") from None
        sql_seconds = time.perf_counter() - sql_started
        faults.point("models.in_increment")
        output_columns = warehouse.columns(con, model.name)
        check_started = time.perf_counter()
        try:
            verify(con, model, output_columns, since=start if restated is None else None)
        except ModelError as err:
            raise IncrementFailed(f"the increment failed its checks ({str(err).split(': ', 1)[-1]})") from None
        check_seconds = time.perf_counter() - check_started
        after(con)
        rows = _row_count(con, model)
        con.execute(
            f"INSERT OR REPLACE INTO {warehouse.META_SCHEMA}.model_state VALUES (?, ?, ?, ?, ?, now()::TIMESTAMP)",
            [model.name, model_fingerprint, model.materialized, rows, time.perf_counter() - started],
        )
        commit_started = time.perf_counter()
        con.execute("COMMIT")
        sql_seconds += time.perf_counter() - commit_started
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        warehouse.set_variables(con, {incremental.START_VARIABLE: incremental.FULL_START})
        slicing.select(con, slicing.UNBOUNDED)
    faults.point("models.after_commit")
    return ModelResult(model.name, "built", rows, time.perf_counter() - started, sql_seconds, check_seconds,
                       "incremental", restated.why if restated is not None else "", slices=len(key_ranges))


def _restate_keys(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    """Every row of the keys in ``incremental.RESTATED``, rebuilt from ``FULL_START`` in one statement."""
    key = warehouse.quote_identifier(model.incremental.key)
    con.execute(f"DELETE FROM {model.name} WHERE hash({key}) IN (SELECT key_hash FROM {incremental.RESTATED})")
    warehouse.set_variables(con, {incremental.START_VARIABLE: incremental.FULL_START})
    con.execute(f"SET VARIABLE {incremental.KEYS_VARIABLE} = "
                f"(SELECT coalesce(list(key), []) FROM {incremental.RESTATED} WHERE key IS NOT NULL)")
    try:
        con.execute(f"INSERT INTO {model.name} BY NAME SELECT * FROM (\n{_statement(model.text)}\n) AS restated")
    finally:
        con.execute(f"RESET VARIABLE {incremental.KEYS_VARIABLE}")


def _key_ranges(con: duckdb.DuckDBPyConnection, model: Model, start: Any = None) -> list[tuple[Any, Any]]:
    """The key ranges to build ``model`` in (churnwh.sqlmodels.slices): one unbounded range for a model
    without ``[slices]``; for an increment from ``start``, counted over the slice relation's rows dated
    from then on where it has the model's time column."""
    spec = model.slices
    if spec is None:
        return [slicing.UNBOUNDED]
    time_column = model.incremental.time_column if model.incremental is not None else None
    if start is not None and time_column in warehouse.columns(con, spec.relation):
        return slicing.key_ranges(con, spec, f"{warehouse.quote_identifier(time_column)} >= ?", [start])
    return slicing.key_ranges(con, spec)


def _statement(text: str) -> str:
    """The model's SELECT without a trailing semicolon, to nest it in an INSERT."""
    return text.rstrip().rstrip(";")


def build_model(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    model_fingerprint: str,
    docs: dict[str, Column] | None = None,
    *,
    screen: bool = True,
    after: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
) -> ModelResult:
    """Create, check, audit, comment and record one model in one transaction (``screen``: see ``verify``)."""
    started = time.perf_counter()
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {model.schema}")
        _drop_other_kind(con, model)
        kind = "VIEW" if model.materialized == "view" else "TABLE"
        sql_started = time.perf_counter()
        key_ranges = _key_ranges(con, model)
        try:
            for index, key_range in enumerate(key_ranges):
                slicing.select(con, key_range)
                con.execute(f"CREATE OR REPLACE {kind} {model.name} AS\n{model.text}" if index == 0 else
                            f"INSERT INTO {model.name} BY NAME SELECT * FROM (\n{_statement(model.text)}\n) AS part")
        except duckdb.Error as err:
            raise ModelError(f"{model.path}: model {model.name} failed in DuckDB: {warehouse.first_line(err)}") from None
        slicing.select(con, slicing.UNBOUNDED)
        sql_seconds = time.perf_counter() - sql_started
        faults.point("models.in_transaction")
        output_columns = warehouse.columns(con, model.name)
        check_declared_columns(model, output_columns)
        check_started = time.perf_counter()
        verify(con, model, output_columns, screen=screen)
        check_seconds = time.perf_counter() - check_started
        write_comments(con, model, output_columns, docs)
        if after is not None:
            after(con)
        rows = _row_count(con, model)
        seconds = time.perf_counter() - started
        con.execute(
            f"INSERT OR REPLACE INTO {warehouse.META_SCHEMA}.model_state VALUES (?, ?, ?, ?, ?, now()::TIMESTAMP)",
            [model.name, model_fingerprint, model.materialized, rows, seconds],
        )
        commit_started = time.perf_counter()
        con.execute("COMMIT")
        sql_seconds += time.perf_counter() - commit_started
    except ScreenFailed:
        # DuckDB aborted the transaction at the error: build again with every check run on its own,
        # so the error names the check that cannot run (or, after a memory error, the build passes)
        con.execute("ROLLBACK")
        return build_model(con, model, model_fingerprint, docs, screen=False, after=after)
    except BaseException:
        con.execute("ROLLBACK")
        slicing.select(con, slicing.UNBOUNDED)
        raise
    faults.point("models.after_commit")
    return ModelResult(model.name, "built", rows, time.perf_counter() - started, sql_seconds, check_seconds,
                       slices=len(key_ranges))


def check_declared_columns(model: Model, output_columns: dict[str, str]) -> None:
    declared = list(model.columns) + list(model.grain)
    missing = [name for name in declared if name not in output_columns]
    if missing:
        raise ModelError(
            f"{model.path}: header names column {missing[0]!r} that model {model.name} does not output: "
            "fix the header or the SELECT"
        )


class ScreenFailed(ModelError):
    """The screening query of ``verify`` failed; DuckDB has aborted the open transaction, if any."""


def run_checks(con: duckdb.DuckDBPyConnection, model: Model, output_columns: dict[str, str]) -> None:
    """Built-in checks from the header, each its own query (``verify`` screens them in one scan)."""
    verify(con, model, output_columns, audits=False, screen=False)


def run_audits(con: duckdb.DuckDBPyConnection, model: Model, output_columns: dict[str, str]) -> None:
    """The header's ``[[audits]]``, each its own query (``verify`` screens them in one scan)."""
    verify(con, model, output_columns, checks=False, screen=False)


def verify(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    output_columns: dict[str, str],
    *,
    checks: bool = True,
    audits: bool = True,
    screen: bool = True,
    since: Any = None,
) -> None:
    """Run the model's checks, then its audits, in header order; raise ModelError at the first that fails.

    With ``screen`` one aggregate query over the table screens every check that has a screen, and
    a check runs its own bad-rows query only when its screen is positive, or when it has none; a
    unique or grain check that the model's SQL guarantees (``unique_by_structure``) is left out.
    If that query fails it raises ScreenFailed (DuckDB aborts a transaction at any error, so no
    check can run after it): run again with ``screen=False`` for the error of the check itself.

    ``since``: an increment wrote only the rows dated (``[incremental] time_column``) from then on, and the
    rows before passed these checks when they were written: the screens read the new rows, and a unique
    or grain check whose keys lack the time column the rows sharing a new row's keys (at a million
    customers the whole-table screen of staging.product_usage took 11 s a day). Audits read the table.
    """
    chosen = (model_checks(model, output_columns, since) if checks else []) + (model_audits(model) if audits else [])
    if screen:  # a check the SQL's structure guarantees needs no screen; without screening (the error path) it runs
        chosen = [check for check in chosen if not check.proven]
    screens = list(dict.fromkeys(check.screen for check in chosen if check.screen is not None)) if screen else []
    values: dict[str, Any] = {}
    if screens:
        select = ",\n    ".join(f"{expression} AS s{number}" for number, expression in enumerate(screens))
        try:  # count(*) first: an aggregate query, one row even if every screen is a subquery
            row = con.execute(f"SELECT\n    count(*) AS row_count,\n    {select}\nFROM {model.name}"
                              + (f"\nWHERE {_since_filter(model, since)}" if since is not None else "")).fetchone()
        except duckdb.Error as err:
            raise ScreenFailed(
                f"{model.path}: the checks and audits of model {model.name} cannot run: {warehouse.first_line(err)}"
            ) from None
        values = dict(zip(screens, row[1:]))
    for check in chosen:
        if check.screen in values and not values[check.screen]:
            continue  # the screen proves there is no bad row
        _fail_if_rows(con, model, output_columns, check.what, check.bad_rows_sql)


def model_checks(model: Model, output_columns: dict[str, str] | None = None, since: Any = None) -> list[Check]:
    """The header's built-in checks (columns in header order, then the grain); ``output_columns``: name -> type;
    ``since``: screens for the rows an increment wrote from then on (``verify``)."""
    types = output_columns or {}
    found = []
    for column in model.columns.values():
        quoted = warehouse.quote_identifier(column.name)
        if column.not_null:
            found.append(_row_check(model, f"not_null({column.name})", f"{quoted} IS NULL",
                                    f"count(*) - count({quoted})"))
        if column.unique:
            found.append(
                Check(
                    f"check unique({column.name})",
                    f"SELECT * FROM {model.name} WHERE "
                    f"{quoted} IN (SELECT {quoted} FROM {model.name} GROUP BY 1 HAVING count(*) > 1)",
                    _duplicates_screen(model, [quoted], since),
                    unique_by_structure(model.text, (column.name,)),
                    (column.name,),
                )
            )
        if column.accepted_values is not None:
            values = ", ".join(warehouse.sql_literal(value) for value in column.accepted_values)
            found.append(_row_check(model, f"accepted_values({column.name})", f"{quoted} NOT IN ({values})"))
        if column.range is not None:
            low, high = column.range
            # a number column: its extremes (statistics, no filter per row) under the same order as < and >
            extremes = (f"CAST(min({quoted}) < {low!r} OR max({quoted}) > {high!r} AS INTEGER)"
                        if _NUMBER.match(types.get(column.name, "")) else None)
            found.append(
                _row_check(model, f"range({column.name}, {low}, {high})", f"{quoted} < {low!r} OR {quoted} > {high!r}",
                           extremes)
            )
    if model.grain:
        quoted_keys = [warehouse.quote_identifier(column) for column in model.grain]
        keys = ", ".join(quoted_keys)
        found.append(
            Check(
                f"grain ({', '.join(model.grain)}) unique",
                f"SELECT * FROM {model.name} WHERE ({keys}) IN "
                f"(SELECT ({keys}) FROM {model.name} GROUP BY ALL HAVING count(*) > 1)",
                _duplicates_screen(model, quoted_keys, since),
                unique_by_structure(model.text, model.grain),
                tuple(model.grain),
            )
        )
    return found


def _row_check(model: Model, name: str, where: str, screen: str | None = None) -> Check:
    """A check failing on the rows where ``where`` holds; screened by counting them (same predicate)."""
    return Check(f"check {name}", f"SELECT * FROM {model.name} WHERE {where}",
                 screen or f"count(*) FILTER (WHERE {where})")


def _since_filter(model: Model, since: Any) -> str:
    """The rows an increment wrote: dated on or after ``since``."""
    return f"{warehouse.quote_identifier(model.incremental.time_column)} >= {warehouse.sql_literal(since)}"


def _duplicates_screen(model: Model, quoted_keys: list[str], since: Any = None) -> str:
    """Positive whenever two rows have equal keys (GROUP BY equality: NULLs, collations and -0.0 included).

    ``hash`` gives equal keys equal hashes (DuckDB groups by the same hash), so two equal
    neighbours among the sorted hashes are necessary for a duplicate; a hash collision only costs
    the exact query. Sorting 8-byte hashes is cheaper than a hash table of them (13M rows: 1.4 s vs
    2.2 s) and spills to disk the same way. ``since`` (an increment): a duplicate has a new row, so only
    the new rows are hashed when the keys hold the time column, else the rows sharing a new row's hash.
    """
    keys = ", ".join(quoted_keys)
    rows = model.name
    if since is not None:
        new = f"(SELECT * FROM {model.name} WHERE {_since_filter(model, since)})"
        time_key = warehouse.quote_identifier(model.incremental.time_column) in quoted_keys
        rows = new if time_key else f"(SELECT * FROM {model.name} WHERE hash({keys}) IN (SELECT hash({keys}) FROM {new}))"
    return (
        "(SELECT count(*) FROM (SELECT h, lead(h) OVER (ORDER BY h) AS next_h FROM "
        f"(SELECT hash({keys}) AS h FROM {rows}) AS hashes) AS sorted WHERE h = next_h)"
    )


# --- uniqueness the SQL guarantees ----------------------------------------------------------------

# Anything in the select list that can turn one row into several (or that sqlglot reads as one).
_ROW_MAKERS = (exp.Unnest, exp.Explode, exp.GenerateSeries, exp.UDTF, exp.Lateral, exp.Columns)
_ROW_MAKER_NAMES = {"unnest", "generate_series", "range", "generate_subscripts", "unlist", "explode", "columns"}


def unique_by_structure(text: str, keys: Iterable[str]) -> bool:
    """True when the model's SQL alone guarantees at most one row per value of ``keys`` (columns).

    Only the outermost SELECT is read (no set operation, no parenthesised query at the top), whose
    select list has no ``*``, no unnest or other row-making function, and outputs each key once:

    - ``GROUP BY`` exactly the keys, each output unchanged (a plain column reference, possibly aliased,
      named the same way in GROUP BY or by its position; ``GROUP BY ALL`` when every other output
      contains an aggregate), no ROLLUP, CUBE or GROUPING SETS;
    - ``QUALIFY row_number() OVER (PARTITION BY <keys or some of them> ...) = 1`` (or ``<= 1``), alone
      or AND-ed with other conditions;
    - ``SELECT DISTINCT`` whose outputs are exactly the keys, or ``DISTINCT ON (<keys or some of them>)``.

    A grouping or partition column that an output alias also names (DuckDB could bind either) and
    anything else not listed (a grouped CTE or subquery, a transformed key, rank(), ...) is not proved.
    """
    try:
        return _unique_by_structure(text, tuple(key.lower() for key in keys))
    except Exception:  # noqa: BLE001 - anything unexpected: not proved, the screen runs
        return False


def _parsed(text: str) -> exp.Expression | None:
    statements = parse_sql(text)  # the tree load_project parsed for the references
    return statements[0] if len(statements) == 1 else None


def _unique_by_structure(text: str, keys: tuple[str, ...]) -> bool:
    select = _parsed(text)
    if not keys or len(set(keys)) != len(keys) or not isinstance(select, exp.Select):
        return False
    items = select.expressions
    if not items or any(item.is_star or _makes_rows(item) for item in items):
        return False
    names = [item.alias_or_name.lower() for item in items]
    if any(names.count(key) != 1 for key in keys):
        return False
    outputs = {name: item.unalias() for name, item in zip(names, items)}
    aliases = {item.alias.lower(): item.unalias() for item in items if isinstance(item, exp.Alias)}

    def key_columns() -> set[tuple[str, ...]] | None:
        """The keys as the plain input columns they are selected from; None if one is not one."""
        found = set()
        for key in keys:
            if not isinstance(outputs[key], exp.Column) or outputs[key].is_star:
                return None
            found.add(_column_id(outputs[key]))
        return found

    def input_columns(terms: list[exp.Expression], positions: bool = False) -> set[tuple[str, ...]] | None:
        """GROUP BY (``positions``: 2 is the second output) / PARTITION BY / DISTINCT ON terms as plain
        input columns; None if one is not one."""
        found = set()
        for term in terms:
            if positions and isinstance(term, exp.Literal) and term.is_int:
                position = int(term.this)
                if not 1 <= position <= len(items):
                    return None
                term = items[position - 1].unalias()
            if not isinstance(term, exp.Column) or term.is_star:
                return None
            alias = aliases.get(term.name.lower()) if not term.table else None
            if alias is not None and not (isinstance(alias, exp.Column) and _column_id(alias) == _column_id(term)):
                return None  # an output alias of that name: DuckDB may bind the term to either
            found.add(_column_id(term))
        return found

    wanted = key_columns()
    group = select.args.get("group")
    if group is not None and wanted is not None:
        if any(value for name, value in group.args.items() if name not in ("expressions", "all")):
            return False  # ROLLUP, CUBE, GROUPING SETS, WITH TOTALS
        if group.args.get("all"):
            others = [item.unalias() for name, item in zip(names, items) if name not in keys]
            if all(_aggregates(other) for other in others):
                return True
        elif input_columns(group.expressions, positions=True) == wanted:
            return True
    qualify = select.args.get("qualify")
    if qualify is not None and wanted is not None:
        for condition in qualify.this.flatten() if isinstance(qualify.this, exp.And) else [qualify.this]:
            partition = _first_row_partition(condition.unnest())
            if partition is not None:
                found = input_columns(partition)
                if found and found <= wanted:
                    return True
    distinct = select.args.get("distinct")
    if distinct is not None:
        on = distinct.args.get("on")
        if on is None:
            return set(names) == set(keys) and len(names) == len(keys)
        terms = on.expressions if isinstance(on, exp.Tuple) else [on]
        found = input_columns(terms) if wanted is not None else None
        return bool(found) and found <= wanted
    return False


def _column_id(column: exp.Column) -> tuple[str, ...]:
    return tuple(part.name.lower() for part in column.parts)


def _makes_rows(item: exp.Expression) -> bool:
    for node in item.walk():
        if isinstance(node, _ROW_MAKERS) or isinstance(node, (exp.Subquery, exp.Select)):
            return True
        if isinstance(node, exp.Anonymous) and str(node.this).lower() in _ROW_MAKER_NAMES:
            return True
    return False


def _aggregates(item: exp.Expression) -> bool:
    """An output that is certainly not a GROUP BY ALL key: it has an aggregate and no window."""
    return item.find(exp.AggFunc) is not None and item.find(exp.Window) is None


def _first_row_partition(condition: exp.Expression) -> list[exp.Expression] | None:
    """The PARTITION BY terms of ``row_number() OVER (PARTITION BY ...) = 1`` (or ``<= 1``, either side)."""
    if isinstance(condition, (exp.EQ, exp.LTE)):
        window, bound = condition.this, condition.expression
    elif isinstance(condition, exp.GTE):
        window, bound = condition.expression, condition.this
    else:
        return None
    if isinstance(condition, exp.EQ) and isinstance(bound, exp.Window):
        window, bound = bound, window
    if not (isinstance(window, exp.Window) and isinstance(window.this, exp.RowNumber) and not window.this.args):
        return None
    if window.args.get("alias") or not window.args.get("partition_by"):
        return None  # a named window (WINDOW w AS ...) is not looked up
    if not (isinstance(bound, exp.Literal) and not bound.is_string and bound.this == "1"):
        return None
    return list(window.args["partition_by"])


def model_audits(model: Model) -> list[Check]:
    """The header's audits with ``this`` bound; an audit that only filters ``this`` gets a screen."""
    found = []
    for audit in model.audits:
        tree = sqlglot.parse_one(audit.sql, read=DIALECT)
        bound = _bind_this_tree(tree, model.name).sql(dialect=DIALECT)
        found.append(Check(f"audit {audit.name}", bound, _filter_screen(tree)))
    return found


def _filter_screen(tree: exp.Expression) -> str | None:
    """``count(*) FILTER (WHERE cond)`` for ``SELECT columns FROM this [AS t] WHERE cond``, else None.

    Only that shape counts the same rows as the filter: no join, grouping, DISTINCT, LIMIT, set
    operation, CTE, subquery, aggregate or window, only plain columns in the select list.
    """
    if not isinstance(tree, exp.Select) or not isinstance(tree.args.get("where"), exp.Where):
        return None
    if any(value for key, value in tree.args.items() if key not in ("expressions", "from", "from_", "where")):
        return None  # anything but the select list, FROM and WHERE (a join, GROUP BY, DISTINCT, LIMIT ...)
    source = tree.args.get("from_") or tree.args.get("from")
    table = source.this if source is not None else None
    if not isinstance(table, exp.Table) or table.db or table.name.lower() != "this" or table.args.get("joins"):
        return None
    if not all(isinstance(item, (exp.Column, exp.Star)) for item in tree.expressions):
        return None  # an alias could be named in the WHERE (DuckDB allows it), a function could add rows
    condition = tree.args["where"].this.copy()
    if condition.find(exp.Subquery, exp.Select, exp.AggFunc, exp.Window, exp.Unnest, exp.Explode):
        return None
    names = {"this", table.alias_or_name.lower()}
    for column in condition.find_all(exp.Column):
        if column.args.get("catalog") or column.args.get("db"):
            return None
        if column.table:
            if column.table.lower() not in names:
                return None
            column.set("table", None)
    return f"count(*) FILTER (WHERE {condition.sql(dialect=DIALECT)})"


def _bind_this_tree(tree: exp.Expression, name: str) -> exp.Expression:
    """A copy of an audit with the table name ``this`` replaced by the model's own table."""
    schema, table = name.split(".")

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and not node.db and node.name.lower() == "this":
            return exp.table_(table, db=schema, alias=node.alias or None)
        return node

    return tree.transform(swap)


def _fail_if_rows(
    con: duckdb.DuckDBPyConnection, model: Model, output_columns: dict[str, str], what: str, bad_rows_sql: str
) -> None:
    try:
        count = con.execute(f"SELECT count(*) FROM ({bad_rows_sql}) AS bad").fetchone()[0]
    except duckdb.Error as err:
        raise ModelError(f"{model.path}: {what} of model {model.name} cannot run: {warehouse.first_line(err)}") from None
    if count == 0:
        return
    examples = ""
    if ID_COLUMN in output_columns:
        # only values that are pseudonyms: an audit may select anything under that name (a raw id, a name)
        keys = f"{warehouse.RAW_SCHEMA}.customer_keys"
        known = (f" WHERE CAST({ID_COLUMN} AS VARCHAR) IN (SELECT customer_pseudonym FROM {keys})"
                 if keys in warehouse.relations(con) else "")
        try:
            rows = con.execute(
                f"SELECT DISTINCT {ID_COLUMN} FROM ({bad_rows_sql}) AS bad{known} ORDER BY 1 LIMIT {MAX_EXAMPLES}"
            ).fetchall()
            examples = " (e.g. " + ", ".join(str(row[0]) for row in rows) + ")" if rows else ""
        except duckdb.Error:
            examples = ""
    raise ModelError(
        f"{model.path}: {what} failed for model {model.name}: {count} bad row{'s' if count != 1 else ''}"
        f"{examples}: fix the data or the model; the previous table is kept"
    )


def write_comments(
    con: duckdb.DuckDBPyConnection,
    model: Model,
    output_columns: dict[str, str] | None = None,
    docs: dict[str, Column] | None = None,
) -> None:
    """Table and column comments; ``docs`` (default: the model's own header) may add inherited ones."""
    output_columns = output_columns if output_columns is not None else warehouse.columns(con, model.name)
    docs = docs if docs is not None else model.columns
    kind = "VIEW" if model.materialized == "view" else "TABLE"
    if model.description:
        con.execute(f"COMMENT ON {kind} {model.name} IS {warehouse.sql_literal(model.description)}")
    for column in docs.values():
        if column.description and column.name in output_columns:
            con.execute(
                f"COMMENT ON COLUMN {model.name}.{warehouse.quote_identifier(column.name)} IS {warehouse.sql_literal(column.description)}"
            )


def _drop_other_kind(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    """A model switched between table and view: drop the old relation of the other kind."""
    current = warehouse.relations(con).get(model.name)
    if current is not None and current != model.materialized:
        con.execute(f"DROP {current.upper()} {model.name}")


def _row_count(con: duckdb.DuckDBPyConnection, model: Model) -> int:
    return con.execute(f"SELECT count(*) FROM {model.name}").fetchone()[0]
