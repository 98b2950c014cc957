"""Privacy checks of a build: source classification, consent input validation, the lineage proof.

The lineage proof runs sqlglot column lineage over every model, one model at a time against the
catalog (each model's output columns -> the columns of the relations it reads), and composes the
edges in build order. A model output column that a direct-identifier source column reaches fails
the build; the only way a customer leaves ``raw`` is ``raw.customer_keys.customer_pseudonym``,
which lineage sees as its own column (it is computed in Python with the key). Edges are cached per
model in ``_churnwh.lineage_proof``, keyed by a fingerprint of the model's SQL and the columns of
everything it reads.

Lineage follows values, not filters: a column used only in a WHERE or JOIN condition does not
"reach" an output. A value scan of the published file (``churnwh.privacy.publish``) backs this up.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.lineage import lineage

from churnwh.errors import ChurnwhError, ModelError
from churnwh.privacy import classification
from churnwh.sqlmodels.lineage import catalog_schema, source_columns
from churnwh.sqlmodels.project import DIALECT, Project
from churnwh.store import warehouse

PROOF_TABLE = f"{warehouse.META_SCHEMA}.lineage_proof"
CONSENT_SOURCE = f"{warehouse.RAW_SCHEMA}.consent_events"
CONSENT_PURPOSES = ("profiling", "marketing")
FUTURE_ALLOWANCE = dt.timedelta(hours=24)
"""Clock skew allowed before a consent timestamp counts as 'in the future' (sources without time zone)."""


class LineageError(ModelError):
    """A model carries a direct identifier into an output column."""


@dataclass
class LineageReport:
    models: int
    columns: int
    cached: int
    seconds: float = 0.0
    edges: dict[str, dict[str, list[str]]] = field(default_factory=dict, repr=False)


# --- lineage proof --------------------------------------------------------------------------------


def _ensure_proof_table(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {PROOF_TABLE} (model VARCHAR PRIMARY KEY, fingerprint VARCHAR NOT NULL, "
        "edges VARCHAR NOT NULL, proved_at TIMESTAMP NOT NULL)"
    )


def _classification_version() -> str:
    return hashlib.sha256(json.dumps(classification.SOURCE_COLUMNS, sort_keys=True).encode()).hexdigest()


def _model_fingerprint(model, schema_columns: dict[str, dict[str, str]], version: str) -> str:
    payload = {
        "text": model.text,
        "reads": {ref: sorted(schema_columns.get(ref, {})) for ref in sorted(model.references)},
        "classification": version,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def model_edges(model, schema: dict) -> dict[str, list[str]]:
    """Output column -> the ``schema.table.column`` inputs its value is computed from (one step)."""
    try:
        nodes = lineage(None, model.text, schema=schema, dialect=DIALECT)
    except sqlglot.errors.SqlglotError as err:
        raise LineageError(
            f"{model.path}: cannot prove the lineage of model {model.name}: {str(err).splitlines()[0]}: "
            "simplify the SELECT so sqlglot can trace every output column"
        ) from None
    return {column: sorted(str(source) for source in source_columns(node)) for column, node in nodes.items()}


ROW_GENERATORS = frozenset({"range", "generate_series", "unnest", "json_each", "json_tree"})
"""The table functions a model may use: they make rows from values, they read nothing."""
OUTSIDE_SCALARS = frozenset({"getenv", "current_setting", "current_query", "json_execute_serialized_sql",
                             "json_deserialize_sql", "query", "query_table"})
"""Scalar functions that read the environment, the configuration or run SQL text: refused in models."""
_PATH_CHARS = set("/\\*?.")


def _function_name(function: exp.Expression) -> str:
    return (function.name if isinstance(function, exp.Anonymous) else function.sql_name()).lower()


def outside_reads(sql: str) -> list[str]:
    """What in ``sql`` reads outside the warehouse: table functions other than row generators
    (read_text, read_csv, read_parquet, glob, query, ...), a file path used as a table name
    (DuckDB's replacement scan of ``FROM 'x.csv'``), and scalar functions that read the environment
    or run SQL text. Lineage follows columns, so a file read would otherwise pass it."""
    found: list[str] = []
    try:
        statements = [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except sqlglot.errors.SqlglotError:
        return []  # the models stage names the parse error with its line
    for statement in statements:
        for table in statement.find_all(exp.Table):
            if isinstance(table.this, exp.Func):
                name = "range" if isinstance(table.this, exp.GenerateSeries) else _function_name(table.this)
                if name not in ROW_GENERATORS:
                    found.append(f"{name}(...)")
            elif _PATH_CHARS & set(table.name):
                found.append("a file path as a table name")
        for function in statement.find_all(exp.Func):
            name = _function_name(function)
            if name in OUTSIDE_SCALARS or name.startswith(("read_", "parquet_", "sniff_")) or name == "glob":
                found.append(f"{name}(...)")
    return sorted(set(found))


def check_reads_inside(project: Project) -> None:
    """Refuse a model (or one of its audits) that reads outside the warehouse (``outside_reads``)."""
    for name in project.order:
        model = project.models[name]
        for what, sql in ((f"model {name}", model.text),
                          *((f"audit {audit.name} of model {name}", audit.sql) for audit in model.audits)):
            reads = outside_reads(sql)
            if reads:
                raise LineageError(
                    f"{model.path}: {what} reads outside the warehouse with {', '.join(reads)}: models read only "
                    "raw.* and other models (load a file as a declared source in churnwh.toml instead)"
                )


def prove_lineage(con: duckdb.DuckDBPyConnection, project: Project) -> LineageReport:
    """Prove that no model reads outside the warehouse and no direct identifier reaches any model
    output column; raise LineageError if one does."""
    import time

    started = time.perf_counter()
    check_reads_inside(project)
    _ensure_proof_table(con)
    # sources from the catalog; model outputs inferred by sqlglot in build order, so the proof runs
    # before any model is materialized (a leaking model never writes its table)
    schema_columns = {
        name: warehouse.columns(con, name) for name in warehouse.relations(con) if name not in project.models
    }
    cached = dict(
        (model, (fp, edges))
        for model, fp, edges in con.execute(f"SELECT model, fingerprint, edges FROM {PROOF_TABLE}").fetchall()
    )
    version = _classification_version()

    # taint: relation -> column -> direct-identifier source columns that reach it
    taint: dict[str, dict[str, set[str]]] = {}
    for table, column in classification.direct_identifiers():
        taint.setdefault(table, {})[column] = {f"{table}.{column}"}

    report = LineageReport(models=0, columns=0, cached=0)
    for name in project.order:
        model = project.models[name]
        for column_name, column in model.columns.items():
            if column.privacy == classification.DIRECT_IDENTIFIER:
                raise LineageError(
                    f"{model.path}: model {name} declares output column {column_name} a direct_identifier: "
                    "direct identifiers stay in raw; output the pseudonym instead"
                )
        fingerprint = _model_fingerprint(model, schema_columns, version)
        if name in cached and cached[name][0] == fingerprint:
            edges = json.loads(cached[name][1])
            report.cached += 1
        else:
            edges = model_edges(model, catalog_schema({ref: schema_columns[ref] for ref in model.references
                                                       if ref in schema_columns}))
            con.execute(
                f"INSERT OR REPLACE INTO {PROOF_TABLE} VALUES (?, ?, ?, now()::TIMESTAMP)",
                [name, fingerprint, json.dumps(edges)],
            )
        report.models += 1
        report.edges[name] = edges
        schema_columns[name] = {column: "UNKNOWN" for column in edges}
        model_taint: dict[str, set[str]] = {}
        for column, inputs in edges.items():
            reached: set[str] = set()
            for source in inputs:
                relation, _, source_column = source.rpartition(".")
                reached |= taint.get(relation, {}).get(source_column, set())
            report.columns += 1
            if reached and _generalized(model, column, reached):
                reached = set()
            if reached:
                raise LineageError(
                    f"{model.path}: lineage violation: model {name} output column {column} is computed from "
                    f"{sorted(reached)[0]} (a direct identifier): only {'.'.join(classification.PSEUDONYM_SOURCE)} "
                    "may carry a customer out of raw"
                )
            model_taint[column] = reached
        taint[name] = model_taint
    report.seconds = time.perf_counter() - started
    return report


def _generalized(model, column: str, reached: set[str]) -> bool:
    """True when ``column`` is a reviewed generalization (classification.GENERALIZATIONS) that applies.

    Judged by the expression's structure, not its text: every way a value reaches the output must go
    through the generalizing function (``coalesce(birth_date, date_trunc('month', birth_date))``
    contains the function but passes the exact date on, so it is refused).
    """
    rule = classification.GENERALIZATIONS.get((model.name, column))
    if rule is None or reached != {rule[0]}:
        return False
    statement = sqlglot.parse_one(model.text, read=DIALECT)
    ctes = {cte.alias_or_name: cte.this for cte in statement.find_all(exp.CTE)}
    for projection in statement.selects:
        if projection.alias_or_name == column:
            return _only_through(projection.unalias(), rule[1].lower(), ctes)
    return False


COARSE_UNITS = {"MONTH", "QUARTER", "YEAR", "DECADE", "CENTURY", "MILLENNIUM"}
"""date_trunc units that generalize a date (a day, an hour or a week would keep it nearly exact)."""


def _only_through(node: exp.Expression, function: str, ctes: dict[str, exp.Expression]) -> bool:
    """Whether every column value in ``node`` reaches its result only through ``function``.

    CASE conditions choose a branch but are not the value (a condition's outcome is at most a
    NULL or not); casts and parentheses pass the value on; any other operation on a column outside
    the function (coalesce, arithmetic, string functions) could carry the exact value and is refused.
    """
    if not any(True for _ in node.find_all(exp.Column)):
        return True
    if isinstance(node, (exp.Cast, exp.TryCast, exp.Paren)):
        return _only_through(node.this, function, ctes)
    if isinstance(node, exp.Case):
        branches = [branch.args.get("true") for branch in node.args.get("ifs") or []] + [node.args.get("default")]
        return all(branch is None or _only_through(branch, function, ctes) for branch in branches)
    if isinstance(node, exp.If):
        return all(branch is None or _only_through(branch, function, ctes)
                   for branch in (node.args.get("true"), node.args.get("false")))
    if function == "date_trunc" and isinstance(node, (exp.DateTrunc, exp.TimestampTrunc)):
        unit = node.args.get("unit")
        unit_name = (unit.name if unit is not None else "").upper()
        return unit_name in COARSE_UNITS and _plain_column(node.this, ctes, depth=0)
    return False


def _plain_column(node: exp.Expression, ctes: dict[str, exp.Expression], depth: int,
                  seen: frozenset = frozenset()) -> bool:
    """A column, cast or not, that each CTE defining it passes on unchanged (so no upstream
    arithmetic can smuggle the day into what the function keeps)."""
    while isinstance(node, (exp.Cast, exp.TryCast, exp.Paren)):
        node = node.this
    if not isinstance(node, exp.Column) or depth > 20:
        return False
    if node.table and node.table not in ctes:
        return True  # a source table's column: the raw value itself
    for name, select in ctes.items():
        if (node.table and name != node.table) or (name, node.name) in seen:
            continue
        for projection in getattr(select, "selects", []):
            if projection.alias_or_name == node.name and not _plain_column(
                    projection.unalias(), ctes, depth + 1, seen | {(name, node.name)}):
                return False
    return True


# --- consent --------------------------------------------------------------------------------------


def check_consent_events(con: duckdb.DuckDBPyConnection, *, now: dt.datetime | None = None) -> int:
    """Refuse consent input the models could misread; return the number of events checked.

    Unknown purposes, unreadable timestamps and timestamps in the future (beyond a clock-skew
    allowance) stop the build before any model runs: silently dropping or misdating a withdrawal
    would profile a customer who objected. Messages hold counts, never values.
    """
    if CONSENT_SOURCE not in warehouse.relations(con):
        return 0
    columns = warehouse.columns(con, CONSENT_SOURCE)
    for needed in ("customer_id", "purpose", "action", "event_ts"):
        if needed not in columns:
            raise ChurnwhError(f"{CONSENT_SOURCE} has no column {needed!r}: the consent source needs it")
    limit = (now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)) + FUTURE_ALLOWANCE
    total, unknown, unreadable, future = con.execute(
        f"""SELECT count(*),
            count(*) FILTER (WHERE coalesce(lower(trim(CAST(purpose AS VARCHAR))), '') NOT IN ?),
            count(*) FILTER (WHERE TRY_CAST(event_ts AS TIMESTAMP) IS NULL),
            count(*) FILTER (WHERE TRY_CAST(event_ts AS TIMESTAMP) > ?)
        FROM {CONSENT_SOURCE}""",
        [list(CONSENT_PURPOSES), limit],
    ).fetchone()
    if unknown:
        raise ChurnwhError(
            f"{CONSENT_SOURCE}: {unknown} event{'s have' if unknown != 1 else ' has'} an unknown purpose "
            f"(allowed: {', '.join(CONSENT_PURPOSES)}): map the purpose in the source; nothing was built or published"
        )
    if unreadable:
        raise ChurnwhError(
            f"{CONSENT_SOURCE}: {unreadable} event{'s have' if unreadable != 1 else ' has'} no readable event_ts: "
            "fix the timestamps in the source; nothing was built or published"
        )
    if future:
        raise ChurnwhError(
            f"{CONSENT_SOURCE}: {future} event{'s have' if future != 1 else ' has'} an event_ts in the future "
            f"(after {limit:%Y-%m-%d %H:%M} UTC): fix the source clock or the timestamps; nothing was built or published"
        )
    return total


def unmatched_consent_events(con: duckdb.DuckDBPyConnection) -> int:
    """Consent events whose customer id (normalised at load like every id) names no customer.

    They got no pseudonym (``warehouse.KEYLESS_SOURCES``), so the models cannot apply them: a
    withdrawal spelt differently from its customer's id (another case, an inner space) would
    otherwise be counted as an objection while the real customer stays profiled. Counted, never named.
    """
    relations = warehouse.relations(con)
    keys_table = f"{warehouse.RAW_SCHEMA}.customer_keys"
    if CONSENT_SOURCE not in relations or keys_table not in relations:
        return 0
    return con.execute(
        f"SELECT count(*) FROM {CONSENT_SOURCE} WHERE customer_id IS NULL OR CAST(customer_id AS VARCHAR) "
        f"NOT IN (SELECT customer_id FROM {keys_table})"
    ).fetchone()[0]


UNMATCHED_CONSENT_HINT = ("ids must match the customer table's exactly (case and inner characters; surrounding "
                          "spaces are removed): fix them in the consent source, or the customer was erased")


CONSENT_STATE = "staging.consent_state"
SPINE = "features.observation_spine"
OBSERVATION_DATES = f"{warehouse.META_SCHEMA}.observation_dates"
"""The spine's distinct observation dates, written by a Spark build (whose spine stays in Spark storage) so
that its audit entry counts the consent exclusions as a DuckDB build's does; no customer in it."""


def consent_exclusions(con: duckdb.DuckDBPyConnection, as_of: dt.date) -> dict[str, Any]:
    """Counts of what consent removed from the build, by reason; never who."""
    relations = warehouse.relations(con)
    if CONSENT_STATE not in relations:
        return {}
    rows = con.execute(
        f"""WITH withdrawn AS (
                SELECT * FROM {CONSENT_STATE} WHERE purpose = 'profiling' AND state = 'withdrawn'
            ),
            deciding AS (
                -- the current decision if it is a withdrawal, else the one in force on as_of
                SELECT customer_pseudonym, arg_max(withdrawal_reason, valid_from) AS reason
                FROM withdrawn
                WHERE valid_to IS NULL OR (valid_from <= ? AND valid_to > ?)
                GROUP BY customer_pseudonym
            )
            SELECT reason, count(*) FROM deciding GROUP BY reason ORDER BY reason""",
        [as_of, as_of],
    ).fetchall()
    result: dict[str, Any] = {"customers_excluded": {reason: count for reason, count in rows}}
    dates = _observation_dates_relation(con, relations)
    if dates and "staging.active_periods" in relations:
        all_rows, objector_rows, gap_rows = con.execute(
            f"""WITH dates AS (SELECT DISTINCT observation_date FROM {dates} UNION SELECT CAST(? AS DATE)),
            active AS (
                SELECT p.customer_pseudonym, d.observation_date
                FROM dates AS d JOIN staging.active_periods AS p
                  ON p.period_start < d.observation_date AND (p.period_end IS NULL OR p.period_end >= d.observation_date)
            ),
            withdrawn AS (SELECT * FROM {CONSENT_STATE} WHERE purpose = 'profiling' AND state = 'withdrawn'),
            objectors AS (
                SELECT DISTINCT customer_pseudonym FROM withdrawn
                WHERE valid_to IS NULL OR (valid_from <= ? AND valid_to > ?)
            ),
            labelled AS (
                SELECT a.*,
                    a.customer_pseudonym IN (SELECT customer_pseudonym FROM objectors) AS objector,
                    EXISTS (SELECT 1 FROM withdrawn AS w WHERE w.customer_pseudonym = a.customer_pseudonym
                            AND w.valid_from <= a.observation_date
                            AND (w.valid_to IS NULL OR w.valid_to > a.observation_date)) AS gap
                FROM active AS a
            )
            SELECT count(*), count(*) FILTER (WHERE objector), count(*) FILTER (WHERE gap AND NOT objector)
            FROM labelled""",
            [as_of, as_of, as_of],
        ).fetchone()
        result["observation_rows_excluded"] = {
            "objection_as_of_build": objector_rows,
            "consent_not_held_on_date": gap_rows,
        }
        result["observation_rows_before_consent"] = all_rows
    return result


def _observation_dates_relation(con: duckdb.DuckDBPyConnection, relations: dict[str, str]) -> str | None:
    """Where the spine's observation dates are: the spine itself (a DuckDB build), else the dates a Spark
    build recorded (``OBSERVATION_DATES``), else nowhere."""
    if SPINE in relations:
        return SPINE
    schema, table = OBSERVATION_DATES.split(".")
    found = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
                        "AND table_schema = ? AND table_name = ?", [schema, table]).fetchone()[0]
    return OBSERVATION_DATES if found else None


def rows_read(con: duckdb.DuckDBPyConnection) -> int:
    """Rows in every raw table (what the build read)."""
    total = 0
    for relation in sorted(warehouse.relations(con)):
        if relation.startswith(f"{warehouse.RAW_SCHEMA}.") and relation != "raw.customer_keys":
            total += con.execute(f"SELECT count(*) FROM {warehouse.quote_relation(relation)}").fetchone()[0]
    return total


# --- build stages (plain functions over churnwh.pipeline.BuildContext) ------------------------------


def classify_stage(ctx) -> str:
    """Every source column classified; consent input readable (before any model runs)."""
    columns = classification.classify_sources(ctx.con)
    events = check_consent_events(ctx.con)
    unmatched = unmatched_consent_events(ctx.con)
    ctx.privacy["consent_events_unmatched"] = unmatched
    if unmatched:
        named = f"{unmatched} consent event{'s name' if unmatched != 1 else ' names'} no customer"
        return (f"{columns} source columns classified, {events} consent events checked; {named} and "
                f"{'were' if unmatched != 1 else 'was'} not applied: {UNMATCHED_CONSENT_HINT}")
    return f"{columns} source columns classified, {events} consent events checked"


def lineage_stage(ctx) -> str:
    """The lineage proof over every model, before any model is built (and so before training)."""
    from churnwh.sqlmodels.project import load_project

    sources = {name for name in warehouse.relations(ctx.con) if name.startswith(f"{warehouse.RAW_SCHEMA}.")}
    project = ctx.project or load_project(ctx.config.sql, known_sources=sources)
    report = prove_lineage(ctx.con, project)
    ctx.privacy["lineage"] = {"models": report.models, "columns": report.columns, "seconds": round(report.seconds, 3)}
    return (
        f"{report.columns} columns of {report.models} models reach no direct identifier "
        f"({report.cached} cached, {report.seconds:.2f} s)"
    )


def publish_stage(ctx) -> str:
    """Append the build's audit entry, then write, verify and install the published file."""
    from churnwh.privacy import audit, keys, publish
    from churnwh.sqlmodels.project import load_project

    run_id = ctx.privacy.setdefault("run_id", audit.new_id())
    as_of = ctx.config.variables.get("as_of")
    excluded = consent_exclusions(ctx.con, as_of) if as_of is not None else {}
    audit.append(
        ctx.con,
        event="build",
        run_id=run_id,
        config=ctx.config,
        key_version=keys.key_id(ctx.key) if ctx.key else None,
        rows_read=rows_read(ctx.con),
        rows_excluded=excluded,
        detail={"lineage": ctx.privacy.get("lineage"), "models": len(ctx.models),
                "consent_events_unmatched": ctx.privacy.get("consent_events_unmatched", 0),
                # only when --allow-stale let stale sources through: which, and by how many days
                **({"stale_override": ctx.privacy["stale_override"]} if "stale_override" in ctx.privacy else {}),
                **({"drift_override": ctx.privacy["drift_override"]} if ctx.privacy.get("drift_override") else {})},
    )
    try:
        project = ctx.project or load_project(ctx.config.sql)
    except ChurnwhError:
        project = None
    result = publish.publish(
        ctx.con, ctx.config, run_id=run_id, quasi_identifiers=classification.quasi_identifier_names(project)
    )
    return f"{len(result.tables)} tables verified and published to {result.path.name} ({result.seconds:.2f} s)"
