"""Run SQL models in DuckDB: fingerprints, one transaction per model, checks, audits, column comments.

A model is built inside a transaction together with its checks and audits; if any of them fails
the transaction rolls back and the model's previous table stays exactly as it was.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import duckdb
import sqlglot
from sqlglot import exp

from churnwh import faults, warehouse
from churnwh.errors import ModelError
from churnwh.project import DIALECT, Column, Model, Project

ID_COLUMN = "customer_pseudonym"
MAX_EXAMPLES = 5


@dataclass(frozen=True)
class ModelResult:
    name: str
    status: str  # "built" | "skipped"
    rows: int
    seconds: float


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


def build_model(
    con: duckdb.DuckDBPyConnection, model: Model, model_fingerprint: str, docs: dict[str, Column] | None = None
) -> ModelResult:
    started = time.perf_counter()
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {model.schema}")
        _drop_other_kind(con, model)
        kind = "VIEW" if model.materialized == "view" else "TABLE"
        try:
            con.execute(f"CREATE OR REPLACE {kind} {model.name} AS\n{model.text}")
        except duckdb.Error as err:
            raise ModelError(f"{model.path}: model {model.name} failed in DuckDB: {warehouse.first_line(err)}") from None
        faults.point("models.in_transaction")
        output_columns = warehouse.columns(con, model.name)
        check_declared_columns(model, output_columns)
        run_checks(con, model, output_columns)
        run_audits(con, model, output_columns)
        write_comments(con, model, output_columns, docs)
        rows = _row_count(con, model)
        seconds = time.perf_counter() - started
        con.execute(
            f"INSERT OR REPLACE INTO {warehouse.META_SCHEMA}.model_state VALUES (?, ?, ?, ?, ?, now()::TIMESTAMP)",
            [model.name, model_fingerprint, model.materialized, rows, seconds],
        )
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    faults.point("models.after_commit")
    return ModelResult(model.name, "built", rows, seconds)


def check_declared_columns(model: Model, output_columns: dict[str, str]) -> None:
    declared = list(model.columns) + list(model.grain)
    missing = [name for name in declared if name not in output_columns]
    if missing:
        raise ModelError(
            f"{model.path}: header names column {missing[0]!r} that model {model.name} does not output: "
            "fix the header or the SELECT"
        )


def run_checks(con: duckdb.DuckDBPyConnection, model: Model, output_columns: dict[str, str]) -> None:
    """Built-in checks from the header; each is a query returning the bad rows."""
    for check_name, where in _check_queries(model):
        _fail_if_rows(con, model, output_columns, f"check {check_name}", f"SELECT * FROM {model.name} WHERE {where}")
    if model.grain:
        keys = ", ".join(_quote(column) for column in model.grain)
        duplicates = (
            f"SELECT * FROM {model.name} WHERE ({keys}) IN "
            f"(SELECT ({keys}) FROM {model.name} GROUP BY ALL HAVING count(*) > 1)"
        )
        _fail_if_rows(con, model, output_columns, f"grain ({', '.join(model.grain)}) unique", duplicates)


def _check_queries(model: Model) -> list[tuple[str, str]]:
    queries = []
    for column in model.columns.values():
        quoted = _quote(column.name)
        if column.not_null:
            queries.append((f"not_null({column.name})", f"{quoted} IS NULL"))
        if column.unique:
            queries.append(
                (
                    f"unique({column.name})",
                    f"{quoted} IN (SELECT {quoted} FROM {model.name} GROUP BY 1 HAVING count(*) > 1)",
                )
            )
        if column.accepted_values is not None:
            values = ", ".join(warehouse.sql_literal(value) for value in column.accepted_values)
            queries.append((f"accepted_values({column.name})", f"{quoted} NOT IN ({values})"))
        if column.range is not None:
            low, high = column.range
            queries.append(
                (f"range({column.name}, {low}, {high})", f"{quoted} < {low!r} OR {quoted} > {high!r}")
            )
    return queries


def run_audits(con: duckdb.DuckDBPyConnection, model: Model, output_columns: dict[str, str]) -> None:
    for audit in model.audits:
        sql = _bind_this(audit.sql, model.name)
        _fail_if_rows(con, model, output_columns, f"audit {audit.name}", sql)


def _bind_this(sql: str, name: str) -> str:
    """Replace the table name ``this`` in an audit with the model's own table."""
    schema, table = name.split(".")

    def swap(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.Table) and not node.db and node.name.lower() == "this":
            return exp.table_(table, db=schema, alias=node.alias or None)
        return node

    return sqlglot.parse_one(sql, read=DIALECT).transform(swap).sql(dialect=DIALECT)


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
                f"COMMENT ON COLUMN {model.name}.{_quote(column.name)} IS {warehouse.sql_literal(column.description)}"
            )


def _drop_other_kind(con: duckdb.DuckDBPyConnection, model: Model) -> None:
    """A model switched between table and view: drop the old relation of the other kind."""
    current = warehouse.relations(con).get(model.name)
    if current is not None and current != model.materialized:
        con.execute(f"DROP {current.upper()} {model.name}")


def _row_count(con: duckdb.DuckDBPyConnection, model: Model) -> int:
    return con.execute(f"SELECT count(*) FROM {model.name}").fetchone()[0]


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
