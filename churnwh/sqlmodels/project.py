"""SQL models: files under ``sql/``, their TOML headers, inferred dependencies and build order.

Every ``sql/<schema>/<name>.sql`` is one model ``<schema>.<name>``: a single SELECT. A leading block
comment ``/* ... */`` holds the model's metadata as TOML. Dependencies are read from the SQL with
sqlglot (CTE names skipped), never declared by hand.
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.optimizer.scope import traverse_scope

from churnwh.errors import ModelError
from churnwh.sqlmodels import slices as slicing
from churnwh.sqlmodels.incremental import KEYS_VARIABLE, START_VARIABLE, Incremental, Input

DIALECT = "duckdb"
PRIVACY_CLASSES = ("direct_identifier", "quasi_identifier", "sensitive", "pseudonym", "plain")
MATERIALIZATIONS = ("table", "view")
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_HEADER = re.compile(r"\A\s*/\*(.*?)\*/", re.DOTALL)


@dataclass(frozen=True)
class Column:
    name: str
    description: str = ""
    privacy: str = "plain"
    not_null: bool = False
    unique: bool = False
    accepted_values: tuple[Any, ...] | None = None
    range: tuple[float | None, float | None] | None = None


@dataclass(frozen=True)
class Audit:
    name: str
    sql: str


@dataclass(frozen=True)
class Model:
    name: str
    path: Path
    text: str
    materialized: str
    description: str
    grain: tuple[str, ...]
    columns: dict[str, Column]
    audits: tuple[Audit, ...]
    references: dict[str, int]
    """Every ``schema.table`` the SQL reads, with the line of its first mention."""
    tags: tuple[str, ...] = ()
    incremental: Incremental | None = None
    """Set for a model incremental by time range (churnwh.sqlmodels.incremental)."""
    slices: slicing.Slices | None = None
    """Set for a model built one key range at a time (churnwh.sqlmodels.slices)."""
    partition_by: tuple[str, ...] = ()
    """Columns Spark storage partitions the model's Parquet table by (``partition_by = ["purpose"]``): columns
    of few values that the models reading the table filter on with a constant. The DuckDB engine ignores it."""

    @property
    def schema(self) -> str:
        return self.name.split(".")[0]

    @property
    def table(self) -> str:
        return self.name.split(".")[1]


@dataclass(frozen=True)
class Project:
    models: dict[str, Model]
    order: tuple[str, ...]
    dependencies: dict[str, frozenset[str]] = field(repr=False)
    """Model -> the models it reads (sources excluded)."""

    def column_docs(self, name: str) -> dict[str, Column]:
        """Column metadata of ``name``: its own header, else that of a same-named column upstream.

        Only documentation travels (description, privacy tag); checks stay where they are declared.
        A column passed through several models is documented once, where it is computed.
        """
        docs: dict[str, Column] = {}
        for dependency in sorted(self.dependencies[name]):
            for column_name, column in self.column_docs(dependency).items():
                docs.setdefault(column_name, Column(column_name, column.description, column.privacy))
        docs.update(self.models[name].columns)
        return docs

    def sources(self) -> set[str]:
        return {ref for model in self.models.values() for ref in model.references if ref not in self.models}

    def downstream(self, name: str) -> set[str]:
        found = {name}
        for candidate in self.order:
            if self.dependencies[candidate] & found:
                found.add(candidate)
        return found

    def upstream(self, name: str) -> set[str]:
        found = {name}
        for candidate in reversed(self.order):
            if candidate in found:
                found |= self.dependencies[candidate]
        return found

    def select(self, selector: str) -> list[str]:
        """Models matching ``NAME``, ``NAME+`` (and downstream) or ``+NAME`` (and upstream), in build order."""
        name = selector.strip("+")
        resolved = self.resolve(name)
        chosen = {resolved}
        if selector.endswith("+"):
            chosen |= self.downstream(resolved)
        if selector.startswith("+"):
            chosen |= self.upstream(resolved)
        return [model for model in self.order if model in chosen]

    def resolve(self, name: str) -> str:
        if name in self.models:
            return name
        matches = [model for model in self.models if model.split(".")[1] == name]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ModelError(f"model name {name!r} is ambiguous: write one of {', '.join(sorted(matches))}")
        raise ModelError(f"no model named {name!r}: `churnwh dag` lists the models")


def load_project(sql_dir: Path, known_sources: set[str] | None = None) -> Project:
    """Read every model under ``sql_dir``, infer dependencies and order them.

    ``known_sources`` are the tables that exist outside the models (e.g. ``raw.*``); a reference to a
    name that is neither a model nor a known source is an error naming the file and the name. With
    ``known_sources=None`` references are not checked.
    """
    if not sql_dir.is_dir():
        raise ModelError(f"sql folder {sql_dir} does not exist: create it or set sql.path in churnwh.toml")
    models: dict[str, Model] = {}
    for path in sorted(sql_dir.rglob("*.sql")):
        model = parse_model(path, sql_dir)
        models[model.name] = model
    if not models:
        raise ModelError(f"no .sql files under {sql_dir}: add models as sql/<schema>/<name>.sql")

    dependencies: dict[str, frozenset[str]] = {}
    for model in models.values():
        for ref, line in model.references.items():
            if ref == model.name:
                raise ModelError(f"{model.path}:{line}: model {model.name} reads itself: a model cannot reference its own table")
            if ref not in models and known_sources is not None and ref not in known_sources:
                raise ModelError(
                    f"{model.path}:{line}: {ref} is neither a model nor a source table: "
                    "fix the name or load the source first"
                )
        dependencies[model.name] = frozenset(ref for ref in model.references if ref in models)
    return Project(models=models, order=build_order(dependencies, models), dependencies=dependencies)


def build_order(dependencies: dict[str, frozenset[str]], models: dict[str, Model]) -> tuple[str, ...]:
    """Topological order; ties broken by name so the order is stable. A cycle names every model in it."""
    sorter = TopologicalSorter({name: sorted(deps) for name, deps in sorted(dependencies.items())})
    try:
        sorter.prepare()
    except CycleError as err:
        cycle = err.args[1]
        files = ", ".join(str(models[name].path.name) for name in cycle[:-1])
        raise ModelError(
            f"dependency cycle: {' -> '.join(cycle)} ({files}): break the cycle by removing one reference"
        ) from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready())
        order.extend(ready)
        sorter.done(*ready)
    return tuple(order)


def parse_model(path: Path, sql_dir: Path) -> Model:
    relative = path.relative_to(sql_dir)
    if len(relative.parts) != 2:
        raise ModelError(f"{path}: a model lives at sql/<schema>/<name>.sql: move it into a schema folder")
    schema, table = relative.parts[0], relative.stem
    for part in (schema, table):
        if not _NAME.match(part):
            raise ModelError(f"{path}: {part!r} is not a valid name: use lowercase letters, digits and _")
    name = f"{schema}.{table}"
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"{path}: not UTF-8 text: save the file as UTF-8") from None
    header = parse_header(text, path)
    references = parse_references(text, path)
    return _model_from_header(name, path, text, header, references)


def parse_header(text: str, path: Path) -> dict[str, Any]:
    match = _HEADER.match(text)
    if not match:
        return {}
    body = match.group(1)
    first_line = text[: match.start(1)].count("\n") + 1
    try:
        return tomllib.loads(body)
    except tomllib.TOMLDecodeError as err:
        position = re.search(r"\(at line (\d+), column \d+\)", str(err))
        line = first_line + (int(position.group(1)) - 1 if position else 0)
        reason = re.sub(r"\s*\(at line.*?\)", "", str(err)) or "syntax"
        raise ModelError(f"{path}:{line}: header is not valid TOML ({reason}): fix the header comment") from None


@functools.lru_cache(maxsize=256)
def parse_sql(text: str) -> tuple[exp.Expression, ...]:
    """A model's statements, parsed once per text (shared: do not modify the trees)."""
    return tuple(statement for statement in sqlglot.parse(text, read=DIALECT) if statement is not None)


def parse_references(text: str, path: Path) -> dict[str, int]:
    """Tables a model reads, as ``schema.table`` -> line; CTE references are skipped."""
    try:
        statements = list(parse_sql(text))
    except sqlglot.errors.ParseError as err:
        detail = err.errors[0] if err.errors else {}
        where = f"{path}:{detail.get('line', '?')}:{detail.get('col', '?')}"
        description = str(detail.get("description", err)).split("<Token")[0].strip().rstrip(".")
        raise ModelError(f"{where}: SQL syntax error: {description}") from None
    except sqlglot.errors.TokenError as err:
        raise ModelError(f"{path}: SQL syntax error: {str(err).splitlines()[0]}") from None
    if len(statements) != 1:
        raise ModelError(f"{path}: holds {len(statements)} statements: a model is exactly one SELECT")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        raise ModelError(f"{path}: is a {statement.key.upper()} statement: a model is exactly one SELECT")
    references: dict[str, int] = {}
    for scope in traverse_scope(statement):
        for source in scope.sources.values():
            if not isinstance(source, exp.Table) or not source.name:
                continue
            if isinstance(source.this, exp.Anonymous | exp.Func):
                continue  # table functions such as range(...) read no table
            if not source.db:
                line = source.this.meta.get("line", 1)
                raise ModelError(
                    f"{path}:{line}: table {source.name!r} has no schema: write it as schema.{source.name}"
                )
            references.setdefault(f"{source.db}.{source.name}".lower(), source.this.meta.get("line", 1))
    return references


def _model_from_header(name: str, path: Path, text: str, header: dict[str, Any], references: dict[str, int]) -> Model:
    known = {"materialized", "description", "grain", "columns", "audits", "tags", "incremental", "slices",
             "partition_by"}
    for key in header:
        if key not in known:
            raise ModelError(f"{path}: unknown header key {key!r}: allowed are {', '.join(sorted(known))}")
    materialized = header.get("materialized", "table")
    if materialized not in MATERIALIZATIONS:
        raise ModelError(f"{path}: materialized = {materialized!r} is not allowed: use 'table' or 'view'")
    grain = header.get("grain", [])
    if isinstance(grain, str):
        grain = [grain]
    if not isinstance(grain, list) or not all(isinstance(item, str) for item in grain):
        raise ModelError(f"{path}: grain must be a list of column names")
    columns = {
        column_name: _column(path, column_name, spec)
        for column_name, spec in _table(path, header.get("columns", {}), "columns").items()
    }
    audit_specs = header.get("audits", [])
    if not isinstance(audit_specs, list):
        raise ModelError(f"{path}: audits must be a list of [[audits]] tables with name and sql")
    audits = tuple(_audit(path, spec) for spec in audit_specs)
    tags = header.get("tags", [])
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
        raise ModelError(f"{path}: tags must be a list of strings, e.g. tags = [\"daily\"]")
    partition_by = header.get("partition_by", [])
    if isinstance(partition_by, str):
        partition_by = [partition_by]
    if not isinstance(partition_by, list) or not all(isinstance(item, str) and item for item in partition_by):
        raise ModelError(f"{path}: partition_by must be a list of column names, e.g. partition_by = [\"purpose\"]")
    return Model(
        name=name,
        path=path,
        text=text,
        materialized=materialized,
        description=str(header.get("description", "")),
        grain=tuple(grain),
        columns=columns,
        audits=audits,
        references=references,
        tags=tuple(str(tag) for tag in tags),
        partition_by=tuple(partition_by),
        incremental=(_incremental(path, header["incremental"], materialized, references, text)
                     if "incremental" in header else None),
        slices=_slices(path, header["slices"], materialized, references, text) if "slices" in header else None,
    )


def _slices(path: Path, spec: Any, materialized: str, references: dict[str, int], text: str) -> slicing.Slices:
    if materialized != "table":
        raise ModelError(f"{path}: a model built in slices is materialized as a table: remove materialized = 'view'")
    return slicing.parse(path, spec, references, text)


def _incremental(path: Path, spec: Any, materialized: str, references: dict[str, int], text: str) -> Incremental:
    """The ``[incremental]`` header table: time_column and one [[incremental.inputs]] per table read."""
    spec = _table(path, spec, "incremental")
    for key in spec:
        if key not in ("time_column", "inputs", "lookback", "key"):
            raise ModelError(f"{path}: unknown key incremental.{key}: allowed are inputs, key, lookback, time_column")
    if materialized != "table":
        raise ModelError(f"{path}: an incremental model is materialized as a table: remove materialized = 'view'")
    time_column = spec.get("time_column")
    if not isinstance(time_column, str) or not time_column:
        raise ModelError(f"{path}: incremental.time_column must name the output column that dates each row")
    if START_VARIABLE not in text:
        raise ModelError(
            f"{path}: an incremental model filters on getvariable('{START_VARIABLE}'): keep only rows dated on "
            f"or after it (its {time_column} >= that day)"
        )
    items = spec.get("inputs", [])
    if not isinstance(items, list):
        raise ModelError(f"{path}: incremental.inputs must be a list of [[incremental.inputs]] tables")
    inputs = tuple(_input(path, item) for item in items)
    declared = {item.relation for item in inputs}
    for ref, line in references.items():
        if ref not in declared:
            raise ModelError(
                f"{path}:{line}: incremental model reads {ref}: declare it in [[incremental.inputs]] "
                "(relation, time, columns) so a late or changed row rebuilds the model in full"
            )
    for relation in sorted(declared - set(references)):
        raise ModelError(f"{path}: [[incremental.inputs]] names {relation}, which the model does not read: remove it")
    lookback = spec.get("lookback", 0)
    if isinstance(lookback, bool) or not isinstance(lookback, (int, str)) or (isinstance(lookback, int) and lookback < 0):
        raise ModelError(f"{path}: incremental.lookback is a number of days (>= 0) or an SQL integer expression")
    if isinstance(lookback, str):
        try:
            sqlglot.parse_one(lookback, read=DIALECT)
        except sqlglot.errors.SqlglotError:
            raise ModelError(f"{path}: incremental.lookback is not a valid SQL expression") from None
    key = spec.get("key")
    if key is not None and (not isinstance(key, str) or not key):
        raise ModelError(f"{path}: incremental.key must name the column each output row shares with its inputs")
    if key is not None and f"getvariable('{KEYS_VARIABLE}')" not in text:
        raise ModelError(f"{path}: a model with incremental.key filters its {key} on getvariable('{KEYS_VARIABLE}') "
                         "(a list of keys to rebuild; NULL: every key)")
    return Incremental(time_column=time_column, inputs=inputs, lookback=str(lookback), key=key)


def _input(path: Path, spec: Any) -> Input:
    spec = _table(path, spec, "incremental.inputs")
    for key in spec:
        if key not in ("relation", "time", "columns"):
            raise ModelError(f"{path}: unknown key incremental.inputs.{key}: allowed are columns, relation, time")
    relation, time, columns = spec.get("relation"), spec.get("time"), spec.get("columns")
    if not isinstance(relation, str) or relation.count(".") != 1:
        raise ModelError(f"{path}: each [[incremental.inputs]] needs relation = \"schema.table\"")
    if time is not None:
        if not isinstance(time, str):
            raise ModelError(f"{path}: incremental.inputs time of {relation} must be an SQL expression string")
        try:
            sqlglot.parse_one(time, read=DIALECT)
        except sqlglot.errors.SqlglotError:
            raise ModelError(f"{path}: incremental.inputs time of {relation} is not a valid SQL expression") from None
    if columns is not None and (not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)):
        raise ModelError(f"{path}: incremental.inputs columns of {relation} must be a list of column names")
    return Input(relation.lower(), time, tuple(columns) if columns is not None else None)


def _table(path: Path, value: Any, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ModelError(f"{path}: {key} must be a TOML table")
    return value


def _column(path: Path, name: str, spec: Any) -> Column:
    spec = _table(path, spec, f"columns.{name}")
    known = {"description", "privacy", "checks", "accepted_values", "range"}
    for key in spec:
        if key not in known:
            raise ModelError(f"{path}: unknown key columns.{name}.{key}: allowed are {', '.join(sorted(known))}")
    privacy = spec.get("privacy", "plain")
    if privacy not in PRIVACY_CLASSES:
        raise ModelError(
            f"{path}: columns.{name}.privacy = {privacy!r} is not allowed: use one of {', '.join(PRIVACY_CLASSES)}"
        )
    checks = spec.get("checks", [])
    if isinstance(checks, str):
        checks = [checks]
    if not isinstance(checks, list):
        raise ModelError(f"{path}: columns.{name}.checks must be a list, e.g. checks = [\"not_null\", \"unique\"]")
    for check in checks:
        if check not in ("not_null", "unique"):
            raise ModelError(
                f"{path}: columns.{name}.checks has {check!r}: built-in checks are 'not_null' and 'unique' "
                "(use accepted_values or range for the others)"
            )
    accepted = spec.get("accepted_values")
    if accepted is not None and (not isinstance(accepted, list) or not accepted):
        raise ModelError(f"{path}: columns.{name}.accepted_values must be a non-empty list")
    bounds = spec.get("range")
    if bounds is not None:
        if (
            not isinstance(bounds, list)
            or len(bounds) != 2
            or not all(isinstance(b, (int, float)) and not isinstance(b, bool) and math.isfinite(b) for b in bounds)
            or bounds[0] > bounds[1]
        ):
            raise ModelError(f"{path}: columns.{name}.range must be [low, high], two finite numbers with low <= high")
    return Column(
        name=name,
        description=str(spec.get("description", "")),
        privacy=privacy,
        not_null="not_null" in checks,
        unique="unique" in checks,
        accepted_values=tuple(accepted) if accepted is not None else None,
        range=(bounds[0], bounds[1]) if bounds is not None else None,
    )


def _audit(path: Path, spec: Any) -> Audit:
    spec = _table(path, spec, "audits")
    name, sql = spec.get("name"), spec.get("sql")
    if not isinstance(name, str) or not isinstance(sql, str):
        raise ModelError(f"{path}: each [[audits]] entry needs name and sql strings")
    try:
        sqlglot.parse_one(sql, read=DIALECT)
    except sqlglot.errors.ParseError as err:
        detail = err.errors[0] if err.errors else {}
        description = str(detail.get("description", err)).split("<Token")[0].strip().rstrip(".")
        raise ModelError(f"{path}: audit {name!r} has a SQL syntax error: {description}") from None
    except sqlglot.errors.SqlglotError as err:  # TokenError: an unterminated string or comment
        raise ModelError(f"{path}: audit {name!r} has a SQL syntax error: {str(err).splitlines()[0]}") from None
    return Audit(name=name, sql=sql)
