"""Parity: every model of the demo project and the scores, on DuckDB and on a local Spark session.

The DuckDB side is the session's ``built_project`` (a 400-customer demo after `churnwh build`); the
Spark side is a copy of it rebuilt with churnwh.spark.engine in this process, on one shared local
session, its model tables read from the Parquet files Spark left in storage (most never reach the
driver's private file). Rows are compared one by one (types may widen, values may not differ); scores
match the DuckDB path within 1e-6. Bad input (refused construct, missing Java, unreachable master) is checked
through the CLI: one line, exit 1, nothing changed.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from pathlib import Path

import duckdb
import pytest

from churnwh import pipeline
from churnwh.config import load_config
from churnwh.errors import ModelError
from churnwh.spark import engine as spark_engine
from churnwh.sqlmodels.project import load_project
from churnwh.stages import registry
from churnwh.store import warehouse
from tests.helpers import churnwh, private
from tests.spark_support import (
    parquet_table,
    parquet_texts,
    partition_folders,
    requires_spark,
    rows_differ,
    sort_key,
    spark_session,
    ulps_apart,
)

pytestmark = requires_spark

PARITY_ULPS = 0
"""DOUBLEs of a model table are bit-equal on both engines (measured on the 400-customer demo); DECIMALs,
integers, text and dates equal."""

BAD_MODEL = """/*
description = "uses constructs Spark cannot reproduce"
*/
SELECT
    customer_pseudonym,
    hash(customer_pseudonym) AS bucket
FROM marts.scoring_set
"""


def model_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [row[0] for row in con.execute(f"SELECT model FROM {warehouse.META_SCHEMA}.model_state ORDER BY 1").fetchall()]


def table_rows(con: duckdb.DuckDBPyConnection, relation: str) -> tuple[list[str], list[tuple]]:
    result = con.execute(f"SELECT * FROM {relation}")
    columns = [d[0] for d in result.description]
    return columns, sorted(result.fetchall(), key=sort_key)


def model_state(project: Path) -> list[tuple]:
    with private(project) as con:
        return con.execute(f"SELECT model, fingerprint, rows FROM {warehouse.META_SCHEMA}.model_state ORDER BY 1").fetchall()


@pytest.fixture(scope="module")
def spark_built(built_project, tmp_path_factory):
    """A copy of the DuckDB-built project whose models and scores were rebuilt on Spark."""
    duck_project, _ = built_project
    project = tmp_path_factory.mktemp("spark") / "project"
    shutil.copytree(duck_project, project)
    spark_session()
    config = load_config(project)
    with warehouse.connect(config.warehouse.private) as con:
        sources = {name for name in warehouse.relations(con) if name.startswith("raw.")}
        models = load_project(config.sql, known_sources=sources)
        results = spark_engine.build_models(con, models, config.variables, config.warehouse.private,
                                            training=config.training)
        record = registry.current(con)
        scored = spark_engine.score(
            con, config, registry.model_dir(config.warehouse.models, record.version), record.version, record.run_id
        )
    return duck_project, project, results, scored


def test_every_model_gives_the_same_rows_on_spark(spark_built):
    duck_project, spark_project, results, _ = spark_built
    assert {result.status for result in results} == {"built"}
    storage = spark_project / "warehouse" / spark_engine.SPARK_DIR
    with private(duck_project) as duck, duckdb.connect() as spark:
        names = model_names(duck)
        assert sorted(result.name for result in results) == names
        for name in names:
            duck_columns, duck_rows = table_rows(duck, name)
            spark_columns, spark_rows = table_rows(spark, parquet_table(storage, name, duck_columns))
            assert spark_columns == duck_columns, name
            assert duck_rows, f"{name} is empty: the parity check would prove nothing"
            assert rows_differ(duck_rows, spark_rows, duck_columns, ulps=PARITY_ULPS) == [], name
            worst = max([ulps_apart(u, v) for a, b in zip(duck_rows, spark_rows) for u, v in zip(a, b)
                         if isinstance(u, float) and isinstance(v, float) and math.isfinite(u) and math.isfinite(v)],
                        default=0.0)
            print(f"{name}: {len(duck_rows)} rows equal, DOUBLEs at most {worst:g} ULP apart")


def test_scores_match_the_duckdb_path(spark_built):
    duck_project, spark_project, _, scored = spark_built
    query = (
        "SELECT customer_pseudonym, as_of, churn_probability, risk_tier, value_at_risk, model_version "
        "FROM ml.churn_scores ORDER BY customer_pseudonym"
    )
    with private(duck_project) as duck, private(spark_project) as spark:
        expected, got = duck.execute(query).fetchall(), spark.execute(query).fetchall()
    assert scored == len(expected) > 0
    assert [row[0] for row in got] == [row[0] for row in expected]
    for want, have in zip(expected, got):
        assert have[1] == want[1] and have[5] == want[5]
        assert abs(have[2] - want[2]) <= 1e-6
        assert abs(have[4] - want[4]) <= 1e-6 * max(1.0, abs(want[4]))
    # tiers come from probabilities; a probability within 1e-6 of a threshold could flip, none here
    assert sum(have[3] != want[3] for want, have in zip(expected, got)) == 0


def test_the_driver_holds_only_what_training_scoring_and_the_published_file_need(spark_built):
    _, spark_project, results, _ = spark_built
    config = load_config(spark_project)
    with private(spark_project) as con:
        models = load_project(config.sql, known_sources={name for name in warehouse.relations(con)
                                                         if name.startswith("raw.")})
        driver = set(spark_engine.driver_tables(models, config.training))
        held = {name for name in warehouse.relations(con) if name in models.models}
        kinds = dict(con.execute(f"SELECT model, kind FROM {warehouse.META_SCHEMA}.model_state").fetchall())
        sample = con.execute("SELECT count(*) FROM marts.training_set").fetchone()[0]
    assert held == driver
    assert {"marts.training_set", "marts.scoring_set", "marts.churn_monthly", "staging.consent_state"} <= driver
    assert "staging.product_usage" not in held and "features.customer_features" not in held
    assert {name for name, kind in kinds.items() if kind == spark_engine.KIND} == set(models.models) - driver
    rows = {result.name: result.rows for result in results}
    assert rows["staging.product_usage"] > 0 and rows["marts.training_set"] == sample  # under the bound: all


def test_data_quality_of_the_models_left_in_spark_storage_is_measured_there_like_on_duckdb(spark_built, tmp_path):
    from churnwh.stages import monitor

    duck_project, spark_project, _, _ = spark_built
    project = tmp_path / "project"
    shutil.copytree(spark_project, project)
    config = load_config(project)
    columns = "model, rows, columns, max_null_share, worst_column, duplicate_grain_rows, freshest_date"
    with warehouse.connect(config.warehouse.private) as con:
        monitor.measure_quality(con, config)
        got = {row[0]: row for row in con.execute(f"SELECT {columns} FROM ml.data_quality").fetchall()}
    with private(duck_project) as duck:
        expected = {row[0]: row for row in duck.execute(f"SELECT {columns} FROM ml.data_quality").fetchall()}
    models = [name for name in expected if "." in name and name.split(".")[0] in ("staging", "features", "marts")]
    assert "staging.product_usage" in models and "features.customer_features" in models
    for name in models:
        assert got[name][:3] == expected[name][:3] and got[name][4:] == expected[name][4:], name
        assert abs(got[name][3] - expected[name][3]) <= 1e-12, name


def test_spark_tables_are_kept_as_parquet_and_raw_exports_are_removed(spark_built):
    _, spark_project, _, _ = spark_built
    root = spark_project / "warehouse" / spark_engine.SPARK_DIR
    assert (root / "tables" / "features" / "customer_features").is_dir()
    assert not list(root.glob("run-*")), "a run folder (with raw identifiers) was left behind"


def test_a_model_failing_on_spark_changes_nothing(spark_built, tmp_path):
    duck_project, _, _, _ = spark_built
    project = tmp_path / "project"
    shutil.copytree(duck_project, project)
    target = project / "sql" / "staging" / "active_periods.sql"
    # DuckDB has jaro_winkler_similarity, Spark has not: it fails at run time, after the other
    # staging models ran on Spark
    anchor = "CAST(period_number AS INTEGER) AS period_number"
    assert anchor in target.read_text()
    target.write_text(target.read_text().replace(anchor, anchor + ", jaro_winkler_similarity('a', 'b') AS j"))
    before = model_state(project)
    config = load_config(project)
    with warehouse.connect(config.warehouse.private) as con:
        sources = {name for name in warehouse.relations(con) if name.startswith("raw.")}
        models = load_project(config.sql, known_sources=sources)
        with pytest.raises(ModelError, match=r"active_periods.sql: model staging.active_periods failed on Spark"):
            spark_engine.build_models(con, models, config.variables, config.warehouse.private,
                                      training=config.training)
    assert model_state(project) == before
    assert not list((project / "warehouse" / spark_engine.SPARK_DIR).glob("run-*"))


GRAIN_ON_GENDER = ('grain = ["customer_pseudonym"]', 'grain = ["gender"]')
AUDIT_ON_WOMEN = ("*/\nWITH", ('[[audits]]\nname = "no_women"\nsql = "SELECT customer_pseudonym, gender FROM this '
                               'WHERE gender = \'female\'"\n*/\nWITH'))


@pytest.mark.parametrize("edit, failure, bad_rows_sql", [
    (GRAIN_ON_GENDER, "grain (gender) unique",
     ("SELECT * FROM staging.customers WHERE gender IN (SELECT gender FROM staging.customers GROUP BY 1 "
      "HAVING count(*) > 1)")),
    (AUDIT_ON_WOMEN, "audit no_women", "SELECT * FROM staging.customers WHERE gender = 'female'"),
], ids=["grain", "audit"])
def test_a_check_or_audit_failing_on_spark_counts_the_bad_rows_and_changes_nothing(spark_built, tmp_path, edit,
                                                                                      failure, bad_rows_sql):
    """Checks and audits run as Spark queries over the Parquet table: the same count the DuckDB engine
    reports, pseudonyms as examples (at most five), nothing loaded."""
    duck_project, _, _, _ = spark_built
    project = tmp_path / "project"
    shutil.copytree(duck_project, project)
    target = project / "sql" / "staging" / "customers.sql"
    old, new = edit
    assert old in target.read_text()
    target.write_text(target.read_text().replace(old, new, 1))
    with private(duck_project) as duck:
        bad = duck.execute(f"SELECT count(*) FROM ({bad_rows_sql})").fetchone()[0]
        women = {row[0] for row in duck.execute(
            "SELECT customer_pseudonym FROM staging.customers WHERE gender = 'female'").fetchall()}
    assert bad > 1
    before = model_state(project)
    config = load_config(project)
    with warehouse.connect(config.warehouse.private) as con:
        sources = {name for name in warehouse.relations(con) if name.startswith("raw.")}
        models = load_project(config.sql, known_sources=sources)
        with pytest.raises(ModelError) as caught:
            spark_engine.build_models(con, models, config.variables, config.warehouse.private,
                                      training=config.training)
    message = str(caught.value)
    assert f"{failure} failed for model staging.customers: {bad} bad rows" in message
    if failure.startswith("audit"):
        examples = message.split("(e.g. ")[1].split(")")[0].split(", ")
        assert len(examples) == 5 and set(examples) <= women
    assert model_state(project) == before
    assert not list((project / "warehouse" / spark_engine.SPARK_DIR).glob("run-*"))


def test_erasing_spark_storage_deletes_every_model_table_and_run_folder(spark_built, tmp_path):
    _, spark_project, _, _ = spark_built
    project = tmp_path / "project"
    shutil.copytree(spark_project, project)
    storage = project / "warehouse" / spark_engine.SPARK_DIR
    config = load_config(project)

    def killed_build_leftovers():
        (storage / "run-killed" / "raw").mkdir(parents=True)  # what a killed build leaves behind
        (storage / "run-killed" / "raw" / "raw__customers.parquet").write_bytes(b"PAR1")

    killed_build_leftovers()
    assert "Spark run folder run-killed" in pipeline.recover(config)  # the next build's first step
    assert not (storage / "run-killed").exists()
    killed_build_leftovers()
    partitioned = storage / "tables" / "features" / "customer_features"
    assert [folder.name for folder in partition_folders(partitioned)] == ["purpose=score", "purpose=train"]
    assert all(list(folder.glob("*.parquet")) for folder in partition_folders(partitioned))
    with duckdb.connect() as con:
        assert parquet_texts(storage / "tables", con)
    assert spark_engine.erase_tables(config, None) == ["run-killed", "tables"]
    assert not list(storage.rglob("*.parquet")) and not partitioned.exists()
    with warehouse.connect(config.warehouse.private) as con:
        assert spark_engine.last_master(con, config.training.model) == "local[2]"  # forget rebuilds on Spark


def test_a_spark_build_counts_consent_exclusions_for_the_audit_like_a_duckdb_build(spark_built):
    """The build's audit entry (``proofs.consent_exclusions``): the spine stays in Spark storage, its dates
    (no customer) reach the private file, and the counts equal the DuckDB build's."""
    from churnwh.privacy import proofs

    duck_project, spark_project, _, _ = spark_built
    as_of = load_config(duck_project).variables["as_of"]
    with private(duck_project) as duck, private(spark_project) as spark:
        assert proofs.SPINE not in warehouse.relations(spark)
        assert spark.execute(f"SELECT * FROM {proofs.OBSERVATION_DATES} LIMIT 0").description[0][0] == "observation_date"
        expected, got = proofs.consent_exclusions(duck, as_of), proofs.consent_exclusions(spark, as_of)
    assert set(expected) == {"customers_excluded", "observation_rows_excluded", "observation_rows_before_consent"}
    assert sum(expected["observation_rows_excluded"].values()) > 0, "no exclusion: the comparison would prove little"
    assert got == expected


def test_features_are_partitioned_by_purpose_and_each_mart_reads_its_partition_only(spark_built):
    """``partition_by = ["purpose"]`` (features.customer_features): every scan of it in the scoring set's plan
    prunes to purpose = 'score'; the training set's scan that filters on purpose prunes to 'train' (its second
    scan, joined on pseudonym and date, has no purpose filter and reads both folders); the view keeps the
    model's column order (marts.scoring_set's ``* EXCLUDE`` depends on it, and its rows equal DuckDB's)."""
    _, spark_project, _, _ = spark_built
    spark = spark_session()
    storage = spark_project / "warehouse" / spark_engine.SPARK_DIR
    config = load_config(spark_project)
    with private(spark_project) as con:
        models = load_project(config.sql, known_sources={name for name in warehouse.relations(con)
                                                         if name.startswith("raw.")})
        compiled = spark_engine.compile_project(models, spark_engine.source_schema(con), config.variables)
    for name, purpose in (("marts.scoring_set", "score"), ("marts.training_set", "train")):
        frame = spark_engine.read_table(spark, (storage / "tables" / "features" / "customer_features").as_uri())
        frame.createOrReplaceTempView("features__customer_features")
        plan = spark.sql(compiled[name].sql)._jdf.queryExecution().sparkPlan().toString()
        # the scans of the partitioned table (the only one with a purpose# partition column); the Location
        # printed beside them is cut short, so they are found by their partition column
        scans = [line.split("PartitionFilters: [")[1].split("]")[0] for line in plan.splitlines()
                 if "PartitionFilters: [" in line and "purpose#" in line.split("PartitionFilters: [")[1].split("]")[0]]
        assert scans and all(f"= {purpose})" in filters for filters in scans), plan
    columns = list(compiled["features.customer_features"].columns)
    view = spark.table("features__customer_features")
    assert columns.index("purpose") < len(columns) - 1 and view.columns != columns  # the folder names come last
    written = spark_engine.read_table(spark, (storage / "tables" / "features" / "customer_features").as_uri(),
                                      spark.sql(compiled["features.customer_features"].sql).schema)
    assert written.columns == columns
    spark_engine.read_table(spark, (storage / "tables" / "features" / "customer_features").as_uri(),
                            written.schema).createOrReplaceTempView("features__customer_features")


def test_a_partitioned_table_reaches_duckdb_in_the_models_column_order_and_types(tmp_path):
    """What the load into the private file reads when a driver table is partitioned (a date and a text
    column as folder names, a NULL among them)."""
    import datetime as dt

    from churnwh.spark.storage import duckdb_select

    spark = spark_session()
    frame = spark.sql("SELECT id, DATE_ADD(DATE'2024-01-30', CAST(id % 3 AS INT)) AS day, id * 0.5 AS x, "
                      "CASE WHEN id % 4 = 0 THEN NULL ELSE CONCAT('k', id % 2) END AS kind FROM range(24)")
    target = tmp_path / "t"
    frame.write.partitionBy("day", "kind").parquet(target.as_uri())
    assert {folder.name for folder in partition_folders(target)} == {"day=2024-01-30", "day=2024-01-31", "day=2024-02-01"}
    layout = {"id": "BIGINT", "day": "DATE", "x": "DECIMAL(23,1)", "kind": "VARCHAR"}
    with duckdb.connect() as con:
        result = con.execute(f"{duckdb_select(target, layout, ('day', 'kind'))} ORDER BY id")
        assert [d[0] for d in result.description] == list(layout)
        rows = result.fetchall()
    assert rows[0] == (0, dt.date(2024, 1, 30), 0, None) and rows[5][:2] == (5, dt.date(2024, 2, 1))
    assert [row[3] for row in rows[:4]] == [None, "k1", "k0", "k1"] and len(rows) == 24
    back = spark_engine.read_table(spark, target.as_uri(), frame.schema)
    assert [(f.name, f.dataType) for f in back.schema.fields] == [(f.name, f.dataType) for f in frame.schema.fields]


def test_partition_by_naming_no_column_of_the_model_is_one_line_and_changes_nothing(spark_built, tmp_path):
    duck_project, _, _, _ = spark_built
    project = tmp_path / "project"
    shutil.copytree(duck_project, project)
    config = load_config(project)
    with warehouse.connect(config.warehouse.private) as con:
        first = load_project(config.sql, known_sources={name for name in warehouse.relations(con)
                                                        if name.startswith("raw.")}).order[0]
    path = project / "sql" / first.split(".")[0] / f"{first.split('.')[1]}.sql"
    path.write_text(path.read_text().replace("/*\n", '/*\npartition_by = ["purpose_x"]\n', 1))
    before = model_state(project)
    with warehouse.connect(config.warehouse.private) as con:
        models = load_project(config.sql, known_sources={name for name in warehouse.relations(con)
                                                         if name.startswith("raw.")})
        with pytest.raises(ModelError, match=f"partition_by names 'purpose_x', which is not a column of model "
                                             f"{first}") as caught:
            spark_engine.build_models(con, models, config.variables, config.warehouse.private,
                                      training=config.training)
    assert "\n" not in str(caught.value) and str(path) in str(caught.value)
    assert model_state(project) == before
    assert not list((project / "warehouse" / spark_engine.SPARK_DIR).glob("run-*"))


def test_erasing_a_uri_storage_reaches_every_file_through_hadoop(spark_built, tmp_path):
    """``[spark] storage`` as a ``file://`` URI (the Hadoop FileSystem path an ``hdfs://`` or ``s3a://``
    storage takes): ``erase_tables`` deletes every model table, partitioned ones included, and leftover run
    folders; without a Spark build on record (no master) it starts no session and deletes nothing."""
    _, spark_project, _, _ = spark_built
    project = tmp_path / "project"
    shutil.copytree(spark_project, project)
    storage = project / "warehouse" / spark_engine.SPARK_DIR
    (storage / "run-killed" / "raw").mkdir(parents=True)
    (storage / "run-killed" / "raw" / "raw__customers.parquet").write_bytes(b"PAR1")
    with open(project / "churnwh.toml", "a") as toml:
        toml.write(f'\n[spark]\nstorage = "{storage.as_uri()}"\n')
    config = load_config(project)
    assert config.spark.storage == storage.as_uri()
    assert spark_engine.erase_tables(config, None) == [] and list(storage.rglob("*.parquet"))
    spark_session()
    assert spark_engine.erase_tables(config, "local[2]") == ["run-killed", "tables"]
    assert not list(storage.rglob("*.parquet")) and not (storage / "tables").exists()


def test_the_training_sample_keeps_whole_customers_the_same_for_the_same_data(spark_built):
    _, spark_project, results, _ = spark_built
    spark = spark_session()
    storage = spark_project / "warehouse" / spark_engine.SPARK_DIR
    frame = spark.read.parquet((storage / "tables" / "marts" / "training_set").as_uri())
    rows = {result.name: result.rows for result in results}["marts.training_set"]
    assert spark_engine.training_sample(spark, frame, rows, rows, "customer_pseudonym") is None
    first = spark_engine.training_sample(spark, frame, rows, rows // 3, "customer_pseudonym")
    again = spark_engine.training_sample(spark, frame, rows, rows // 3, "customer_pseudonym")
    kept = sorted(tuple(row) for row in first.collect())
    assert kept == sorted(tuple(row) for row in again.collect())
    assert rows // 6 < len(kept) < rows // 2
    per_customer = {row["customer_pseudonym"]: row["count"] for row in frame.groupBy("customer_pseudonym").count().collect()}
    sampled = {row["customer_pseudonym"]: row["count"] for row in first.groupBy("customer_pseudonym").count().collect()}
    assert all(per_customer[customer] == count for customer, count in sampled.items())


@pytest.mark.slow
def test_forget_reaches_every_parquet_file_and_the_rebuild_bounds_the_training_set(spark_built, tmp_path):
    """`churnwh forget` after a Spark build: the model tables in Spark storage are deleted and rebuilt on
    Spark (the last build's engine) without the customer; with [spark] training_rows below the training
    set, the driver gets whole customers only."""
    _, spark_project, _, _ = spark_built
    project = tmp_path / "project"
    shutil.copytree(spark_project, project)
    with open(project / "churnwh.toml", "a") as toml:
        toml.write("\n[spark]\ntraining_rows = 1000\n")
    storage = project / "warehouse" / spark_engine.SPARK_DIR
    customer_id, pseudonym = a_scored_customer(project)
    with duckdb.connect() as con:
        assert pseudonym in parquet_texts(storage, con)
    result = pipeline.forget(load_config(project), [str(customer_id)])
    assert result.found == 1 and result.published
    with duckdb.connect() as con:
        texts = parquet_texts(storage, con)
    assert texts, "the rebuild wrote no Parquet: the check below would prove nothing"
    assert pseudonym not in texts and str(customer_id) not in texts
    with private(project) as con:
        kinds = dict(con.execute(f"SELECT model, kind FROM {warehouse.META_SCHEMA}.model_state").fetchall())
        assert kinds["staging.product_usage"] == spark_engine.KIND  # rebuilt on Spark, not on DuckDB
        assert "staging.product_usage" not in warehouse.relations(con)
        sampled = dict(con.execute("SELECT customer_pseudonym, count(*) FROM marts.training_set GROUP BY 1").fetchall())
    with duckdb.connect() as con:
        full = dict(con.execute(f"SELECT customer_pseudonym, count(*) FROM {parquet_table(storage, 'marts.training_set')} "
                                "GROUP BY 1").fetchall())
    full_rows = sum(full.values())
    assert full_rows > 2000 and 0 < sum(sampled.values()) < full_rows
    assert all(full[customer] == rows for customer, rows in sampled.items())  # whole customers


def a_scored_customer(project) -> tuple[str, str]:
    """(customer id, pseudonym) of the first customer of the scoring set."""
    with private(project) as con:
        return con.execute(
            "SELECT k.customer_id, k.customer_pseudonym FROM raw.customer_keys AS k JOIN marts.scoring_set AS s "
            "USING (customer_pseudonym) ORDER BY 2 LIMIT 1").fetchone()


@pytest.mark.slow
def test_a_uri_storage_end_to_end_build_forget_and_rotate_key(built_project, tmp_path):
    """Through the CLI with ``[spark] storage`` a ``file://`` URI: the build leaves every model table there
    (partitioned ones as folders) and no run folder; `forget` reaches every Parquet file there; `rotate-key`
    rewrites every table under the new pseudonyms (no old pseudonym in any file)."""
    duck_project, _ = built_project
    project = tmp_path / "project"
    shutil.copytree(duck_project, project)
    shutil.rmtree(project / "warehouse" / spark_engine.SPARK_DIR, ignore_errors=True)
    storage = tmp_path / "object-store" / "churn"
    with open(project / "churnwh.toml", "a") as toml:
        toml.write(f'\n[spark]\nstorage = "{storage.as_uri()}"\n')
    build = churnwh(project, "build", "--engine", "spark", "--full-refresh")
    assert build.returncode == 0, build.stderr[-3000:]
    assert not (project / "warehouse" / spark_engine.SPARK_DIR / "tables").exists()
    assert [f.name for f in partition_folders(storage / "tables" / "features" / "customer_features")] == [
        "purpose=score", "purpose=train"]
    assert not list(storage.glob("run-*"))
    customer_id, pseudonym = a_scored_customer(project)
    with duckdb.connect() as con:
        assert pseudonym in parquet_texts(storage, con)
    forget = churnwh(project, "forget", str(customer_id))
    assert forget.returncode == 0, forget.stderr[-3000:]
    with duckdb.connect() as con:
        texts = parquet_texts(storage, con)
        assert texts and pseudonym not in texts and str(customer_id) not in texts
        before = set(texts)
    assert partition_folders(storage / "tables" / "features" / "customer_features")
    with private(project) as con:
        old = {row[0] for row in con.execute("SELECT customer_pseudonym FROM raw.customer_keys").fetchall()}
    rotate = churnwh(project, "rotate-key")
    assert rotate.returncode == 0, rotate.stderr[-3000:]
    with private(project) as con:
        new = {row[0] for row in con.execute("SELECT customer_pseudonym FROM raw.customer_keys").fetchall()}
        kinds = dict(con.execute(f"SELECT model, kind FROM {warehouse.META_SCHEMA}.model_state").fetchall())
    assert new and not new & old
    assert kinds["staging.product_usage"] == spark_engine.KIND  # rebuilt on Spark, in the URI storage
    with duckdb.connect() as con:
        texts = set(parquet_texts(storage, con))
    assert old & before and not old & texts and new & texts
    assert not list(storage.glob("run-*"))


def test_lint_and_build_refuse_a_construct_with_file_and_line(spark_built, tmp_path):
    duck_project, _, _, _ = spark_built
    project = tmp_path / "project"
    shutil.copytree(duck_project, project)
    (project / "sql" / "marts" / "buckets.sql").write_text(BAD_MODEL)
    lint = churnwh(project, "lint", "--engine", "spark")
    assert lint.returncode == 1
    assert "buckets.sql:6: hash `HASH(customer_pseudonym)`" in lint.stdout
    assert len(lint.stderr.strip().splitlines()) == 1
    before = model_state(project)
    build = churnwh(project, "build", "--engine", "spark")
    assert build.returncode == 1, build.stderr
    last = build.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "buckets.sql:6: hash" in last and "nothing was built" in last
    assert model_state(project) == before


def test_lint_passes_on_the_demo_models(spark_built):
    duck_project, _, _, _ = spark_built
    result = churnwh(duck_project, "lint", "--engine", "spark")
    assert result.returncode == 0, result.stderr
    assert "models carry to Spark with identical results" in result.stdout


def test_unreachable_master_and_missing_java_are_one_line_errors(spark_built, tmp_path):
    duck_project, _, _, _ = spark_built
    before = model_state(duck_project)
    remote = churnwh(duck_project, "build", "--engine", "spark", "--master", "sc://127.0.0.1:9")
    assert remote.returncode == 1
    assert remote.stderr.strip().splitlines() == [
        remote.stderr.strip().splitlines()[-1]
    ] and "cannot be reached" in remote.stderr and "--master" in remote.stderr
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {key: value for key, value in os.environ.items() if key != "JAVA_HOME"}
    env["PATH"] = str(bin_dir)
    import subprocess

    no_java = subprocess.run(
        [sys.executable, "-m", "churnwh", "--project", str(duck_project), "build", "--engine", "spark"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert no_java.returncode == 1
    assert len(no_java.stderr.strip().splitlines()) == 1 and "no Java runtime found" in no_java.stderr
    assert model_state(duck_project) == before


@pytest.mark.slow
def test_build_engine_spark_end_to_end(built_project, tmp_path):
    """`churnwh build --engine spark` from the CLI: every stage, the published file included."""
    duck_project, _ = built_project
    project = tmp_path / "project"
    shutil.copytree(duck_project, project)
    result = churnwh(project, "build", "--engine", "spark", "--full-refresh")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "built on Spark" in result.stdout and "scored on Spark" in result.stdout
    assert (project / "warehouse" / "churn.duckdb").exists()
    # the build's audit entry records what a DuckDB build's does, with the same values for the same data
    duck_entry, spark_entry = last_build_entry(duck_project), last_build_entry(project)
    assert spark_entry.keys() == duck_entry.keys()
    assert json.loads(spark_entry["rows_excluded"]).keys() == {
        "customers_excluded", "observation_rows_excluded", "observation_rows_before_consent"}
    for field in ("rows_excluded", "rows_read", "config_fingerprint", "key_version", "model_version", "outcome"):
        assert spark_entry[field] == duck_entry[field], field
    duck_detail, spark_detail = json.loads(duck_entry["detail"]), json.loads(spark_entry["detail"])
    for detail in (duck_detail, spark_detail):
        detail["lineage"].pop("seconds")  # how long the proof took
    assert spark_detail == duck_detail


def last_build_entry(project: Path) -> dict:
    from churnwh.privacy import audit

    with private(project) as con:
        result = con.execute(f"SELECT * FROM {audit.TABLE} WHERE event = 'build' ORDER BY logged_at DESC LIMIT 1")
        return dict(zip([d[0] for d in result.description], result.fetchone()))
