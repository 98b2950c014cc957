"""`churnwh build --engine spark`: the same SQL models and the same model, run on Apache Spark.

Spark storage (``[spark] storage``, see churnwh.spark.storage) is the system of record of the models;
the private DuckDB file on the driver gets only what the later stages and the published file need.
The engine

1. compiles every model with :mod:`churnwh.spark.dialect` and stops before any job starts if one
   construct would not give identical results (``churnwh lint --engine spark`` lists them);
2. exports the raw columns the models read to Parquet in storage, for Spark to read;
3. runs every model on Spark in dependency order, each written as Parquet in a run folder there and
   read back by the models downstream, and runs its header checks and audits (the DuckDB engine's own,
   compiled the same way) as Spark queries over that Parquet: only counts come back;
4. in ONE DuckDB transaction, loads the ``driver_tables`` (training set, scoring set, the published
   marts, consent state, active periods) into the private file, read by DuckDB from the Parquet files
   (``read_parquet``, streamed; with a URI storage the files are first copied to a local temporary folder,
   file by file), and drops every other model's table from it; a failure anywhere leaves every previous
   table as it was, and the run folder is removed; then the run's tables replace ``tables/``;
5. training runs on the driver (one machine): the training set reaching it is bounded by
   ``[spark] training_rows`` (above it, a sample of whole customers);
6. scoring runs on Spark with ``mapInArrow`` calling :func:`churnwh.ml.train.predict_proba` through
   :mod:`churnwh.spark.score`; the executors write the scored rows as Parquet, DuckDB reads them, and
   tiers and ranks are written by the DuckDB path's own SQL.

Raw Parquet (which holds identifiers) is deleted when the run ends, whatever happens; an erasure
deletes the model tables from storage (``erase_tables``) before the rebuild writes them again.
"""

from __future__ import annotations

import atexit
import functools
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb

from churnwh.config import SparkConfig
from churnwh.errors import ChurnwhError, ModelError
from churnwh.privacy import publish
from churnwh.privacy.proofs import CONSENT_STATE, OBSERVATION_DATES, SPINE
from churnwh.spark import session as spark_session
from churnwh.spark.dialect import Compiled, to_spark
from churnwh.spark.session import SparkUnavailable, error_line  # noqa: F401 - SparkUnavailable is part of this API
from churnwh.spark.storage import SPARK_DIR, Storage, duckdb_select, open_storage
from churnwh.sqlmodels import incremental
from churnwh.sqlmodels.project import Project
from churnwh.sqlmodels.run_models import (
    ID_COLUMN,
    MAX_EXAMPLES,
    ModelResult,
    check_declared_columns,
    current_fingerprints,
    model_audits,
    model_checks,
    write_comments,
)
from churnwh.stages import monitor
from churnwh.store import warehouse

log = logging.getLogger("churnwh.spark")

DEFAULT_MASTER = "local[2]"
ACTIVE_PERIODS = "staging.active_periods"
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


DRIVER_READS = (CONSENT_STATE, ACTIVE_PERIODS)
"""Model tables that stages after the models read in the private file: consent (the score stage's check,
the publish consent check, contacts, access requests, the audit's counts) and the active periods
(backtest, pilots, uplift)."""
SPARK_MASTER_META = "spark_master"
"""_churnwh.meta: the master of the last build whose models ran on Spark (``forget`` rebuilds there)."""
KIND = "parquet"
"""``_churnwh.model_state.kind`` of a model that stays in Spark storage only (no table in the private file)."""
SAMPLE_BUCKETS = 1_000_000


def driver_tables(project: Project, training) -> list[str]:
    """The models whose rows reach the private file: the training set (bounded, see ``training_sample``)
    and the scoring set, the marts the published file holds, and ``DRIVER_READS``; in build order."""
    wanted = {training.model, training.scoring_model, *DRIVER_READS} | {source for source, _ in publish.ALLOWLIST}
    return [name for name in project.order if name in wanted]


def spark_schema(project: Project, sources: dict, compiled: dict[str, Compiled]) -> dict:
    """{schema: {table: {column: DuckDB type}}} of the raw tables and every model, for compiling checks."""
    schema = {db: dict(tables) for db, tables in sources.items() if db == warehouse.RAW_SCHEMA}
    for name in project.order:
        model = project.models[name]
        schema.setdefault(model.schema, {})[model.table] = compiled[name].columns
    return schema


def _spark_count(spark, model, what: str, sql: str, schema: dict, variables: dict[str, Any]) -> int:
    result = to_spark(sql, schema=schema, variables=variables)
    if result.refusals:
        refusal = result.refusals[0]
        raise ModelError(f"{model.path}: {what} of model {model.name} cannot run on Spark: {refusal.construct}: "
                         f"{refusal.detail}; nothing was loaded")
    try:
        return spark.sql(result.sql).collect()[0][0]
    except Exception as err:  # noqa: BLE001 - Spark errors are long: headline and root cause
        raise ModelError(f"{model.path}: {what} of model {model.name} cannot run on Spark: {error_line(err)}; "
                         "nothing was loaded") from None


def verify_on_spark(spark, model, output_columns: dict[str, str], schema: dict, variables: dict[str, Any],
                    pseudonyms_known: bool) -> None:
    """The model's header checks and audits (the DuckDB engine's, ``run_models.model_checks`` and
    ``model_audits``) as Spark queries over its Parquet table; only counts, and at most five pseudonyms of
    a failing check, come back to the driver.

    As on DuckDB (``run_models.verify``), one aggregate query screens every check that has a screen, and a
    check counts its own bad rows only when its screen is positive or it has none; a unique or grain check
    that the model's SQL guarantees by its structure is left out (the SQL is the same on both engines)."""
    checks = [check for check in model_checks(model, output_columns) + model_audits(model) if not check.proven]
    values = _screen_on_spark(spark, model, checks, schema, variables)
    counted: dict[tuple[str, ...], int] = {}  # unique(x) and grain (x) group by the same keys: once
    for check in checks:
        if check.screen in values and not values[check.screen]:
            continue  # the screen proves there is no bad row
        bad_rows = check.bad_rows_sql
        if check.keys:
            # DuckDB's `(a, b) IN (SELECT (a, b) ...)` has no Spark spelling: the rows of duplicated keys,
            # grouped the same way (NULLs equal, -0.0 = 0.0), counted without joining back
            keys = ", ".join(warehouse.quote_identifier(key) for key in check.keys)
            bad_rows = (f"SELECT {keys}, n FROM (SELECT {keys}, count(*) AS n FROM {model.name} GROUP BY {keys}) "
                        "AS counted WHERE n > 1")
            counting = f"SELECT coalesce(sum(n), 0) AS n FROM ({bad_rows}) AS bad"
        else:
            counting = f"SELECT count(*) AS n FROM ({bad_rows}) AS bad"
        if check.keys and check.keys in counted:
            count = counted[check.keys]
        else:
            count = _spark_count(spark, model, check.what, counting, schema, variables)
        if check.keys:
            counted[check.keys] = count
        if not count:
            continue
        examples = ""
        if ID_COLUMN in output_columns and pseudonyms_known and (not check.keys or ID_COLUMN in check.keys):
            # only values that are pseudonyms: an audit may select anything under that name
            listed = to_spark(
                f"SELECT DISTINCT {ID_COLUMN} FROM ({bad_rows}) AS bad WHERE CAST({ID_COLUMN} AS VARCHAR) "
                f"IN (SELECT customer_pseudonym FROM {warehouse.RAW_SCHEMA}.customer_keys) ORDER BY 1 LIMIT {MAX_EXAMPLES}",
                schema=schema, variables=variables)
            try:
                rows = [] if listed.refusals else spark.sql(listed.sql).collect()
            except Exception:  # noqa: BLE001 - the count is the finding; examples are a courtesy
                rows = []
            examples = " (e.g. " + ", ".join(str(row[0]) for row in rows) + ")" if rows else ""
        raise ModelError(
            f"{model.path}: {check.what} failed for model {model.name}: {count} bad row{'s' if count != 1 else ''}"
            f"{examples}: fix the data or the model; the previous table is kept"
        )


def _screen_on_spark(spark, model, checks: list, schema: dict, variables: dict[str, Any]) -> dict[str, Any]:
    """Screen expression -> its value over the model's table, in one Spark query; {} when the screens
    cannot run there (every check then counts its own bad rows). Keyed screens hash with DuckDB's
    ``hash``, which Spark has not: those checks always count."""
    screens = list(dict.fromkeys(check.screen for check in checks if check.screen is not None and not check.keys))
    if not screens:
        return {}
    select = ", ".join(f"{expression} AS s{number}" for number, expression in enumerate(screens))
    result = to_spark(f"SELECT count(*) AS row_count, {select} FROM {model.name}", schema=schema, variables=variables)
    if result.refusals:
        return {}
    try:
        row = spark.sql(result.sql).collect()[0]
    except Exception:  # noqa: BLE001 - a screen that cannot run: each check runs on its own and names itself
        return {}
    return dict(zip(screens, list(row)[1:]))


def measure_on_spark(frame, model, withheld: set[str]) -> tuple:
    """The data-quality measures ``stages.monitor.measure_quality`` takes on DuckDB, of a table Spark left in
    storage: one aggregate query (and one grouping by the grain); a row of ``monitor.SPARK_QUALITY``."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    kinds = {field.name: ("DATE" if isinstance(field.dataType, T.DateType) else
                          "TIMESTAMP" if isinstance(field.dataType, (T.TimestampType, T.TimestampNTZType)) else
                          field.dataType.simpleString()) for field in frame.schema.fields}
    date_column = monitor.quality_date_column(model, kinds, withheld)
    columns = list(kinds)
    aggregates = [F.count(F.lit(1))] + [F.avg(F.when(frame[c].isNull(), F.lit(1.0)).otherwise(F.lit(0.0)))
                                        for c in columns]
    if date_column:
        aggregates.append(F.max(frame[date_column]).cast("date"))
    row = list(frame.agg(*aggregates).collect()[0])
    count, shares = row[0], [float(value or 0.0) for value in row[1:1 + len(columns)]]
    freshest = row[-1] if date_column and count else None
    grain = [g for g in model.grain if g in kinds]
    duplicates = 0
    if grain and count:
        duplicates = frame.groupBy(*grain).count().agg(F.coalesce(F.sum(F.col("count") - 1), F.lit(0))).collect()[0][0]
    worst = max(range(len(shares)), key=lambda i: shares[i]) if shares else 0  # the first of equal shares
    return (model.name, int(count), len(columns), max(shares) if shares else 0.0,
            columns[worst] if columns else None, int(duplicates), freshest)


def partition_columns(model, columns: list[str]) -> tuple[str, ...]:
    """The model's ``partition_by`` columns, each checked to be one of its output ``columns``."""
    for column in model.partition_by:
        if column not in columns:
            raise ModelError(f"{model.path}: partition_by names {column!r}, which is not a column of model "
                             f"{model.name}: name one of its columns or remove partition_by; nothing was loaded")
    if model.partition_by and len(model.partition_by) >= len(columns):
        raise ModelError(f"{model.path}: partition_by names every column of model {model.name}: keep at least one "
                         "column out of it; nothing was loaded")
    return model.partition_by


_SPARK_TO_DUCKDB = {"string": "VARCHAR", "date": "DATE", "int": "INTEGER", "bigint": "BIGINT", "smallint": "SMALLINT",
                    "tinyint": "TINYINT", "boolean": "BOOLEAN", "double": "DOUBLE", "timestamp": "TIMESTAMP"}


def _duckdb_type(inferred: str | None, field) -> str:
    """A column's DuckDB type for reading it back: the one the dialect inferred, else from Spark's type."""
    if inferred and inferred != "UNKNOWN":
        return inferred
    return _SPARK_TO_DUCKDB.get(field.dataType.simpleString(), "VARCHAR")


def read_table(spark, uri: str, schema=None):
    """A model table Spark wrote at ``uri``, its columns in the written order (``schema``, a StructType): a
    partitioned table's partition columns come back from the folder names, last and typed by inference, which
    the schema undoes."""
    if schema is None:
        return spark.read.parquet(uri)
    return spark.read.schema(schema).parquet(uri).select(*schema.fieldNames())


def training_sample(spark, frame, rows: int, bound: int, id_column: str):
    """The training set as the driver gets it: all of it up to ``bound`` rows, else whole customers chosen
    by a hash of their pseudonym (the same customers for the same data) for about ``bound`` rows."""
    if rows <= bound:
        return None
    from pyspark.sql import functions as F

    kept = max(1, int(SAMPLE_BUCKETS * bound / rows))
    return frame.where(F.pmod(F.xxhash64(F.col(id_column).cast("string")), F.lit(SAMPLE_BUCKETS)) < kept)


def _model_failed(model, err: BaseException) -> ModelError:
    return ModelError(f"{model.path}: model {model.name} failed on Spark: {error_line(err)}; nothing was loaded")


def build_models(
    con: duckdb.DuckDBPyConnection,
    project: Project,
    variables: dict[str, Any],
    private_path: Path,
    *,
    training,
    master: str = DEFAULT_MASTER,
    settings: SparkConfig | None = None,
    on_model=None,
) -> list[ModelResult]:
    """Compile, run every model on Spark as Parquet in storage with its checks and audits as Spark queries,
    then load only ``driver_tables`` into DuckDB (from those Parquet files) in one transaction."""
    settings = settings or SparkConfig()
    sources = source_schema(con)
    compiled = compile_project(project, sources, variables)
    check_compiled(project, compiled)
    schema = spark_schema(project, sources, compiled)
    spark = session(master, settings, private_path.parent / SPARK_DIR / LOG_DIR)
    storage = open_storage(settings.storage, private_path, spark)
    remove_stale_runs(storage)
    run = f"run-{uuid.uuid4().hex[:12]}"
    try:
        raw_columns = _raw_columns(compiled, sources)
        keys_table = "customer_keys"
        if keys_table in sources.get(warehouse.RAW_SCHEMA, {}):  # check examples name known pseudonyms only
            read = raw_columns.setdefault(keys_table, [])
            if "customer_pseudonym" not in read:
                read.append("customer_pseudonym")
        with storage.writable(run, "raw") as local:
            raw_files = export_raw(con, raw_columns, local)
        for table, file in raw_files.items():
            spark.read.parquet(storage.uri(run, "raw", file)).createOrReplaceTempView(
                view_name(warehouse.RAW_SCHEMA, table))
        timings: dict[str, float] = {}
        counts: dict[str, int] = {}
        driver = driver_tables(project, training)
        withheld = monitor.withheld_columns(project)
        quality: list[tuple] = []
        written = {}  # model -> the schema it was written with
        for name in project.order:
            model = project.models[name]
            started = time.perf_counter()
            target = storage.uri(run, "tables", model.schema, model.table)
            try:
                result = spark.sql(compiled[name].sql)  # analysis errors (a missing function) are raised here
            except Exception as err:  # noqa: BLE001 - Spark errors are long: headline and root cause
                raise _model_failed(model, err) from None
            writer = result.write.mode("overwrite")
            if partition_columns(model, result.columns):
                writer = writer.partitionBy(*model.partition_by)
            try:
                writer.parquet(target)
            except Exception as err:  # noqa: BLE001
                raise _model_failed(model, err) from None
            written[name] = result.schema
            frame = read_table(spark, target, written[name])
            frame.createOrReplaceTempView(view_name(model.schema, model.table))
            output_columns = {column: compiled[name].columns.get(column, "UNKNOWN") for column in frame.columns}
            check_declared_columns(model, output_columns)
            verify_on_spark(spark, model, output_columns, schema, variables, keys_table in raw_files)
            counts[name] = frame.count()
            if name not in driver:  # the monitor stage measures the driver's tables in DuckDB
                quality.append(measure_on_spark(frame, model, withheld))
            timings[name] = time.perf_counter() - started
        storage.remove(run, "raw")
        sampled = {}
        if training.model in driver:
            frame = read_table(spark, storage.uri(run, "tables", *training.model.split(".")), written[training.model])
            sample = training_sample(spark, frame, counts[training.model], settings.training_rows, training.id_column)
            if sample is not None:
                sample.write.mode("overwrite").parquet(storage.uri(run, "sample", *training.model.split(".")))
                sampled[training.model] = (run, "sample", *training.model.split("."))
        layouts = {name: {field.name: _duckdb_type(compiled[name].columns.get(field.name), field)
                          for field in written[name].fields}
                   for name in driver if project.models[name].partition_by and name not in sampled}
        results = load_into_duckdb(con, project, variables, storage, run, driver, sampled, counts, timings, master,
                                   quality, observation_dates(spark, project, driver), layouts)
        if sampled:
            kept = con.execute(f"SELECT count(*) FROM {training.model}").fetchone()[0]
            log.warning("%s: %d of %d rows reached the driver for training (whole customers; [spark] training_rows "
                        "= %d)", training.model, kept, counts[training.model], settings.training_rows)
        storage.replace((run, "tables"), ("tables",))
        for name in project.order:
            model = project.models[name]
            read_table(spark, storage.uri("tables", model.schema, model.table), written[name]).createOrReplaceTempView(
                view_name(model.schema, model.table)
            )
        if on_model:
            for result in results:
                on_model(result)
        return results
    finally:
        storage.remove(run)


def observation_dates(spark, project: Project, driver: list[str]) -> list | None:
    """The spine's distinct observation dates, when the spine stays in storage (None: it reaches the driver,
    or there is none): the build's audit entry counts consent exclusions per date (``proofs.consent_exclusions``).
    Dates only: one aggregate query, no customer."""
    if SPINE not in project.models or SPINE in driver:
        return None
    model = project.models[SPINE]
    rows = spark.sql(f"SELECT DISTINCT observation_date FROM {view_name(model.schema, model.table)}").collect()
    return sorted(row[0] for row in rows if row[0] is not None)


def load_into_duckdb(
    con: duckdb.DuckDBPyConnection,
    project: Project,
    variables: dict[str, Any],
    storage: Storage,
    run: str,
    driver: list[str],
    sampled: dict[str, tuple[str, ...]],
    counts: dict[str, int],
    timings: dict[str, float],
    master: str,
    quality: list[tuple] = (),
    spine_dates: list | None = None,
    layouts: dict[str, dict[str, str]] | None = None,
) -> list[ModelResult]:
    """In one transaction: each model of ``driver`` replaces its DuckDB table, read by DuckDB from the run's
    Parquet files (``sampled``: from the sample's); every other model's table is dropped from the private
    file (it lives in Spark storage only); ``model_state`` records every model."""
    warehouse.set_variables(con, {**variables, incremental.START_VARIABLE: incremental.FULL_START})
    incremental.ensure_state_table(con)
    existing = warehouse.relations(con)
    fingerprints = current_fingerprints(con, project, variables, existing)
    results = []
    con.execute("BEGIN TRANSACTION")
    try:
        for name in project.order:
            model = project.models[name]
            if existing.get(name) == "view" or (name not in driver and name in existing):
                con.execute(f"DROP {existing[name].upper()} {name}")
            if name in driver:
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {model.schema}")
                with storage.readable(*sampled.get(name, (run, "tables", model.schema, model.table))) as folder:
                    layout = (layouts or {}).get(name)
                    select = duckdb_select(folder, layout, model.partition_by if layout else ())
                    con.execute(f"CREATE OR REPLACE TABLE {name} AS {select}")
                write_comments(con, model)
            # "spark:" fingerprints make the next DuckDB-engine build rebuild these models itself
            con.execute(
                f"INSERT OR REPLACE INTO {warehouse.META_SCHEMA}.model_state VALUES (?, ?, ?, ?, ?, now()::TIMESTAMP)",
                [name, "spark:" + fingerprints[name], "table" if name in driver else KIND, counts[name],
                 timings.get(name, 0.0)],
            )
            # built in full on Spark: the next DuckDB build of an incremental model starts in full too
            con.execute(f"DELETE FROM {warehouse.META_SCHEMA}.incremental_state WHERE model = ?", [name])
            results.append(ModelResult(name, "built", counts[name], timings.get(name, 0.0)))
        warehouse.set_meta(con, SPARK_MASTER_META, master)
        con.execute(f"""CREATE OR REPLACE TABLE {monitor.SPARK_QUALITY} (model VARCHAR, rows BIGINT, columns INTEGER,
                        max_null_share DOUBLE, worst_column VARCHAR, duplicate_grain_rows BIGINT, freshest_date DATE)""")
        if quality:
            con.executemany(f"INSERT INTO {monitor.SPARK_QUALITY} VALUES (?, ?, ?, ?, ?, ?, ?)", list(quality))
        con.execute(f"DROP TABLE IF EXISTS {OBSERVATION_DATES}")
        if spine_dates is not None:
            con.execute(f"CREATE TABLE {OBSERVATION_DATES} (observation_date DATE)")
            con.executemany(f"INSERT INTO {OBSERVATION_DATES} VALUES (?)", [(date,) for date in spine_dates])
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
    """Score the scoring set on Spark with mapInArrow: executors write the scored rows as Parquet in
    storage, DuckDB reads them from there; then tiers and ranks are written by the DuckDB path's SQL."""
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
    run = f"run-{uuid.uuid4().hex[:12]}"
    try:
        try:
            scored.write.mode("overwrite").parquet(storage.uri(run, "scored"))
        except Exception as err:  # noqa: BLE001 - an executor's failure: headline and root cause
            raise ChurnwhError(f"scoring {relation} failed on Spark: {error_line(err)}") from None
        columns = ", ".join(spark_score.SCORED_COLUMNS)
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {_STAGING} (customer_pseudonym VARCHAR, as_of DATE, "
            "churn_probability DOUBLE, monthly_value DOUBLE)"
        )
        with storage.readable(run, "scored") as folder:
            con.execute(f"INSERT INTO {_STAGING} SELECT {columns} FROM read_parquet('{folder}/*.parquet')")
    finally:
        storage.remove(run)
    return publish_scores(con, config, version, run_id)


# --- erasure (churnwh.pipeline.forget) -----------------------------------------------------------------


def last_master(con: duckdb.DuckDBPyConnection, training_model: str) -> str | None:
    """The master of the last build, when its models ran on Spark (None: they ran on DuckDB)."""
    rows = con.execute(f"SELECT fingerprint FROM {warehouse.META_SCHEMA}.model_state WHERE model = ?",
                       [training_model]).fetchall()
    if not rows or not str(rows[0][0]).startswith("spark:"):
        return None
    return warehouse.get_meta(con, SPARK_MASTER_META) or DEFAULT_MASTER


def remove_stale_runs(storage: Storage) -> list[str]:
    """Run folders a killed build left in storage (its raw export holds identifiers); call under the build's
    write lock, which no other build on this private file holds. Returns their names."""
    stale = [name for name in storage.children() if name.startswith("run-")]
    for name in stale:
        storage.remove(name)
    return stale


def erase_tables(config, master: str | None) -> list[str]:
    """Delete every model table and leftover run folder from Spark storage (an erasure: their rows may hold
    the erased customers' pseudonyms; the rebuild that follows writes them again without). A storage URI
    needs a session: it is started (on ``master``) only when a Spark build ever wrote there. Returns what
    was deleted (folder names)."""
    private_path = config.warehouse.private
    if config.spark.storage is None or "://" not in config.spark.storage:
        storage = open_storage(config.spark.storage, private_path, None)
    elif master is not None:
        storage = open_storage(config.spark.storage, private_path,
                               session(master, config.spark, private_path.parent / SPARK_DIR / LOG_DIR))
    else:
        return []
    deleted = [name for name in storage.children() if name == "tables" or name.startswith("run-")]
    for name in deleted:
        storage.remove(name)
    return deleted


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
        training=ctx.config.training,
        on_model=ctx.on_model,
    )


def score_stage(ctx, record) -> int:
    from churnwh.stages import registry

    directory = registry.model_dir(ctx.config.warehouse.models, record.version)
    return score(ctx.con, ctx.config, directory, record.version, record.run_id, master=ctx.options.master)
