"""`churnwh build --engine spark`: the same SQL models and the same model, run on Apache Spark.

The private DuckDB file stays the system of record. The engine

1. compiles every model with :mod:`churnwh.spark.dialect` and stops before any job starts if one
   construct would not give identical results (``churnwh lint --engine spark`` lists them);
2. exports the raw columns the models read to Parquet in ``[spark] storage`` (churnwh.spark.storage:
   ``spark/`` beside the private file, a shared folder or a URI every node reaches), for Spark to read;
3. runs every model on Spark in dependency order, each written as Parquet there and read back by the
   models downstream;
4. loads all model tables into the private warehouse in ONE DuckDB transaction, with the same
   checks, audits and column comments as the DuckDB engine: a failure leaves every previous table
   as it was, and the run's Parquet folder is removed;
5. training runs on the driver as before (the training set is in the private warehouse);
6. scoring runs on Spark with ``mapInArrow`` calling :func:`churnwh.ml.train.predict_proba` through
   :mod:`churnwh.spark.score`, then tiers and ranks are written by the DuckDB path's own SQL.

Raw Parquet (which holds identifiers) is deleted when the run ends, whatever happens.
"""

from __future__ import annotations

import atexit
import functools
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb

from churnwh.config import SparkConfig
from churnwh.errors import ChurnwhError, ModelError
from churnwh.spark import session as spark_session
from churnwh.spark.dialect import Compiled, to_spark
from churnwh.spark.session import SparkUnavailable, error_line  # noqa: F401 - SparkUnavailable is part of this API
from churnwh.spark.storage import SPARK_DIR, Storage, open_storage  # noqa: F401
from churnwh.sqlmodels import incremental
from churnwh.sqlmodels.project import Project
from churnwh.sqlmodels.run_models import (
    ModelResult,
    check_declared_columns,
    current_fingerprints,
    run_audits,
    run_checks,
    write_comments,
)
from churnwh.store import warehouse

DEFAULT_MASTER = "local[2]"
LOG_DIR = "logs"
"""Under the private file's ``spark/`` folder (on the driver): the JVM's output, ``driver.log``."""


# --- compile ------------------------------------------------------------------------------------


def source_schema(con: duckdb.DuckDBPyConnection) -> dict:
    schema: dict = {}
    rows = con.execute(
        "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_catalog = current_database() ORDER BY table_schema, table_name, ordinal_position"
    ).fetchall()
    for db, table, column, kind in rows:
        schema.setdefault(db, {}).setdefault(table, {})[column] = kind
    return schema


def compile_project(project: Project, sources: dict, variables: dict[str, Any]) -> dict[str, Compiled]:
    """Every model as Spark SQL, in build order; model output types feed the models downstream."""
    schema = {db: dict(tables) for db, tables in sources.items() if db == warehouse.RAW_SCHEMA}
    # Spark builds every model in full: an incremental model's start is before every date
    variables = {**variables, incremental.START_VARIABLE: incremental.FULL_START}
    compiled: dict[str, Compiled] = {}
    for name in project.order:
        model = project.models[name]
        try:
            result = to_spark(model.text, schema=schema, variables=variables)
        except Exception as err:  # noqa: BLE001 - sqlglot raises many kinds; name the file
            result = Compiled(sql="", columns={}, refusals=[])
            from churnwh.spark.dialect import SparkRefusal

            result.refusals.append(SparkRefusal("unsupported", None, f"cannot be carried to Spark: {str(err).splitlines()[0]}"))
        compiled[name] = result
        schema.setdefault(model.schema, {})[model.table] = result.columns
    return compiled


def refusal_lines(project: Project, compiled: dict[str, Compiled]) -> list[str]:
    lines = []
    for name, result in compiled.items():
        path = project.models[name].path
        for refusal in result.refusals:
            where = f"{path}:{refusal.line}" if refusal.line else f"{path}"
            text = f" `{refusal.text}`" if refusal.text else ""
            lines.append(f"{where}: {refusal.construct}{text}: {refusal.detail}")
    return lines


def check_compiled(project: Project, compiled: dict[str, Compiled]) -> None:
    lines = refusal_lines(project, compiled)
    if lines:
        more = f" (and {len(lines) - 1} more: `churnwh lint --engine spark` lists them)" if len(lines) > 1 else ""
        raise ModelError(f"{lines[0]}{more}; nothing was built")


# --- session (churnwh.spark.session) ------------------------------------------------------------


def session(master: str = DEFAULT_MASTER, settings: SparkConfig | None = None, log_dir: Path | None = None):
    """A Spark session for ``master`` (see churnwh.spark.session.session)."""
    return spark_session.session(master, settings, log_dir)


atexit.register(spark_session.stop_sessions)


# --- run ----------------------------------------------------------------------------------------


def view_name(schema: str, table: str) -> str:
    return f"{schema}__{table}"


def _raw_columns(compiled: dict[str, Compiled], sources: dict) -> dict[str, list[str]]:
    """Raw table -> the columns the models read (identifier columns not read stay in DuckDB)."""
    import sqlglot
    from sqlglot import exp

    from churnwh.spark.dialect import ChurnSpark

    wanted: dict[str, set[str]] = {}
    raw = sources.get(warehouse.RAW_SCHEMA, {})
    for result in compiled.values():
        tree = sqlglot.parse_one(result.sql, read=ChurnSpark)
        aliases: dict[str, str] = {}
        for table in tree.find_all(exp.Table):
            prefix = f"{warehouse.RAW_SCHEMA}__"
            if table.name.startswith(prefix) and table.name[len(prefix):] in raw:
                aliases[table.alias_or_name] = table.name[len(prefix):]
                wanted.setdefault(table.name[len(prefix):], set())
        for column in tree.find_all(exp.Column):
            if column.table in aliases:
                wanted[aliases[column.table]].add(column.name)
    return {table: [c for c in raw[table] if c in columns] for table, columns in sorted(wanted.items())}


def export_raw(con: duckdb.DuckDBPyConnection, columns: dict[str, list[str]], folder: Path) -> dict[str, str]:
    """Each raw table's columns as one Parquet file in the local ``folder``; the file names."""
    names = {}
    for table, wanted in columns.items():
        name = f"{warehouse.RAW_SCHEMA}__{table}.parquet"
        selected = ", ".join(f'"{column}"' for column in wanted) or "*"
        con.execute(f"COPY (SELECT {selected} FROM {warehouse.RAW_SCHEMA}.{table}) TO '{folder / name}' (FORMAT parquet)")
        names[table] = name
    return names


def build_models(
    con: duckdb.DuckDBPyConnection,
    project: Project,
    variables: dict[str, Any],
    private_path: Path,
    *,
    master: str = DEFAULT_MASTER,
    settings: SparkConfig | None = None,
    on_model=None,
) -> list[ModelResult]:
    """Compile, run on Spark, then load every model into DuckDB in one transaction."""
    settings = settings or SparkConfig()
    sources = source_schema(con)
    compiled = compile_project(project, sources, variables)
    check_compiled(project, compiled)
    spark = session(master, settings, private_path.parent / SPARK_DIR / LOG_DIR)
    storage = open_storage(settings.storage, private_path, spark)
    run = f"run-{uuid.uuid4().hex[:12]}"
    try:
        with storage.writable(run, "raw") as local:
            raw_files = export_raw(con, _raw_columns(compiled, sources), local)
        for table, file in raw_files.items():
            spark.read.parquet(storage.uri(run, "raw", file)).createOrReplaceTempView(
                view_name(warehouse.RAW_SCHEMA, table))
        timings: dict[str, float] = {}
        for name in project.order:
            model = project.models[name]
            started = time.perf_counter()
            target = storage.uri(run, "tables", model.schema, model.table)
            try:
                spark.sql(compiled[name].sql).write.mode("overwrite").parquet(target)
            except Exception as err:  # noqa: BLE001 - Spark errors are long: headline and root cause
                raise ModelError(f"{model.path}: model {name} failed on Spark: {error_line(err)}; nothing was loaded") from None
            spark.read.parquet(target).createOrReplaceTempView(view_name(model.schema, model.table))
            timings[name] = time.perf_counter() - started
        storage.remove(run, "raw")
        with storage.readable(run, "tables") as tables:
            results = load_into_duckdb(con, project, variables, tables, timings)
        storage.replace((run, "tables"), ("tables",))
        for name in project.order:
            model = project.models[name]
            spark.read.parquet(storage.uri("tables", model.schema, model.table)).createOrReplaceTempView(
                view_name(model.schema, model.table)
            )
        if on_model:
            for result in results:
                on_model(result)
        return results
    finally:
        storage.remove(run)


def load_into_duckdb(
    con: duckdb.DuckDBPyConnection,
    project: Project,
    variables: dict[str, Any],
    tables: Path,
    timings: dict[str, float],
) -> list[ModelResult]:
    """Every Spark-built table replaces its DuckDB table, checked and audited, in one transaction."""
    warehouse.set_variables(con, {**variables, incremental.START_VARIABLE: incremental.FULL_START})
    incremental.ensure_state_table(con)
    existing = warehouse.relations(con)
    fingerprints = current_fingerprints(con, project, variables, existing)
    results = []
    con.execute("BEGIN TRANSACTION")
    try:
        for name in project.order:
            model = project.models[name]
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {model.schema}")
            if existing.get(name) == "view":
                con.execute(f"DROP VIEW {name}")
            folder = (tables / model.schema / model.table).resolve()
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM read_parquet('{folder}/*.parquet')")
            output_columns = warehouse.columns(con, name)
            check_declared_columns(model, output_columns)
            run_checks(con, model, output_columns)
            run_audits(con, model, output_columns)
            write_comments(con, model)
            rows = con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
            # "spark:" fingerprints make the next DuckDB-engine build rebuild these models itself
            con.execute(
                f"INSERT OR REPLACE INTO {warehouse.META_SCHEMA}.model_state VALUES (?, ?, ?, ?, ?, now()::TIMESTAMP)",
                [name, "spark:" + fingerprints[name], "table", rows, timings.get(name, 0.0)],
            )
            # built in full on Spark: the next DuckDB build of an incremental model starts in full too
            con.execute(f"DELETE FROM {warehouse.META_SCHEMA}.incremental_state WHERE model = ?", [name])
            results.append(ModelResult(name, "built", rows, timings.get(name, 0.0)))
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return results


def score(
    con: duckdb.DuckDBPyConnection,
    config,
    model_directory: Path,
    version: str,
    run_id: str,
    *,
    master: str = DEFAULT_MASTER,
) -> int:
    """Score the scoring set on Spark with mapInArrow, then tier and rank it with the DuckDB SQL."""
    from churnwh.spark import score as spark_score
    from churnwh.stages.score import _STAGING, check_features, check_segments, project_or_none, publish_scores

    private_path = config.warehouse.private
    spark = session(master, config.spark, private_path.parent / SPARK_DIR / LOG_DIR)
    storage = open_storage(config.spark.storage, private_path, spark)
    relation = config.training.scoring_model
    schema, table = relation.split(".")
    if not storage.exists("tables", schema, table):
        raise ChurnwhError(f"{relation} was not built on Spark (in {storage}): run `churnwh build --engine spark`")
    frame = spark.read.parquet(storage.uri("tables", schema, table))
    import polars as pl

    from churnwh.stages import registry

    model = registry.load(config.warehouse.models, version)
    empty = pl.from_arrow(con.sql(f"SELECT * FROM {relation} LIMIT 0").to_arrow_table())
    check_features(model, empty.schema, relation, version)
    check_segments(config, empty.columns, relation, project_or_none(config))
    function = functools.partial(
        spark_score.score_batches,
        version=version,
        payload=spark_score.model_payload(model_directory),
        id_column=config.training.id_column,
        date_column=config.training.date_column,
        value_column=config.scoring.value_column,
        batch_rows=config.scoring.batch_rows,
    )
    scored = frame.mapInArrow(function, spark_score.scored_schema_ddl())
    try:
        table_out = scored.toArrow()
    except Exception as err:  # noqa: BLE001 - an executor's failure: headline and root cause
        raise ChurnwhError(f"scoring {relation} failed on Spark: {error_line(err)}") from None
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {_STAGING} (customer_pseudonym VARCHAR, as_of DATE, "
        "churn_probability DOUBLE, monthly_value DOUBLE)"
    )
    con.register("_scored_spark", table_out)
    try:
        con.execute(f"INSERT INTO {_STAGING} SELECT * FROM _scored_spark")
    finally:
        con.unregister("_scored_spark")
    return publish_scores(con, config, version, run_id)


# --- pipeline stages (churnwh.pipeline dispatches here for --engine spark) ---------------------------


def preflight(master: str, config=None) -> None:
    """Fail fast, before any stage runs: pyspark, Java and the master must be usable; with the project's
    ``config``, the session starts here too (so a master that does not answer stops the build first)."""
    spark_session.preflight(master)
    if config is not None:
        session(master, config.spark, config.warehouse.private.parent / SPARK_DIR / LOG_DIR)


def build_models_stage(ctx, selected) -> list[ModelResult]:
    if selected is not None:
        raise ChurnwhError("--select is not supported with --engine spark: build every model (drop --select)")
    return build_models(
        ctx.con,
        ctx.project,
        ctx.config.variables,
        ctx.config.warehouse.private,
        master=ctx.options.master,
        settings=ctx.config.spark,
        on_model=ctx.on_model,
    )


def score_stage(ctx, record) -> int:
    from churnwh.stages import registry

    directory = registry.model_dir(ctx.config.warehouse.models, record.version)
    return score(ctx.con, ctx.config, directory, record.version, record.run_id, master=ctx.options.master)
