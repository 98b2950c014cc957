"""Spark on a cluster: the [spark] settings, a real standalone master and worker, and the errors an
operator meets (a broken JAVA_HOME, a master that is not Spark, a failing executor).

The cluster (tests.spark_cluster) is Spark's own Master and Worker started from pyspark's
``bin/spark-class`` as separate processes on 127.0.0.1. Its jobs run in subprocesses: one process has
at most one SparkContext, and this one may hold the local[2] session of the other Spark tests.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import duckdb
import pytest

from churnwh.config import SparkConfig, parse_config
from churnwh.errors import ConfigError
from churnwh.spark import session as spark_session
from churnwh.store import warehouse
from tests.helpers import churnwh, private
from tests.spark_cluster import standalone_cluster
from tests.spark_support import parquet_table, requires_spark, rows_differ, sort_key
from tests.spark_support import spark_session as local_session

ROOT = Path("/project")


def spark_settings(table: dict) -> SparkConfig:
    return parse_config({"spark": table}, ROOT).spark


def model_state(project: Path) -> list[tuple]:
    with private(project) as con:
        return con.execute(f"SELECT model, fingerprint, rows FROM {warehouse.META_SCHEMA}.model_state ORDER BY 1").fetchall()


def with_spark_section(project: Path, section: str) -> None:
    config = project / "churnwh.toml"
    config.write_text(config.read_text() + "\n" + textwrap.dedent(section))


# --- settings (no Spark needed) -----------------------------------------------------------------------


def test_spark_table_passes_any_conf_through_and_defaults_only_local_masters():
    settings = spark_settings({"conf": {"spark.executor.memory": "4g", "spark": {"driver": {"host": "10.0.0.5"}},
                                        "spark.dynamicAllocation.enabled": True}})
    assert settings.conf == {"spark.executor.memory": "4g", "spark.driver.host": "10.0.0.5",
                             "spark.dynamicAllocation.enabled": "true"}
    local = spark_session.spark_conf("local[2]", SparkConfig())
    assert local["spark.driver.host"] == local["spark.driver.bindAddress"] == "127.0.0.1"
    assert local["spark.sql.shuffle.partitions"] == "4"
    cluster = spark_session.spark_conf("spark://10.0.0.1:7077", SparkConfig())
    for name in ("spark.driver.host", "spark.driver.bindAddress", "spark.sql.shuffle.partitions",
                 "spark.pyspark.python", "spark.ui.enabled"):
        assert name not in cluster, f"{name} is a local default, not one for a cluster"
    assert spark_session.spark_conf("spark://10.0.0.1:7077", settings)["spark.driver.host"] == "10.0.0.5"
    tuned = spark_settings({"shuffle_partitions": 64, "conf": {"spark.ui.enabled": "true"}})
    assert spark_session.spark_conf("yarn", tuned)["spark.sql.shuffle.partitions"] == "64"
    assert spark_session.spark_conf("local[2]", tuned)["spark.ui.enabled"] == "true"


def test_spark_table_refuses_bad_values_in_one_line():
    for table, words in (({"master": "mesos://x:5050"}, "spark.master"),
                         ({"connect_timeout_s": 0}, "spark.connect_timeout_s"),
                         ({"conf": {"executor.memory": "4g"}}, "spark.conf.executor.memory"),
                         ({"storag": "x"}, "did you mean 'storage'")):
        with pytest.raises(ConfigError, match=words) as caught:
            spark_settings(table)
        assert "\n" not in str(caught.value)


def test_storage_is_a_project_path_or_a_uri_as_written():
    assert spark_settings({"storage": "shared/spark"}).storage == str(ROOT.resolve() / "shared" / "spark")
    assert spark_settings({"storage": "hdfs://nn:8020/churn"}).storage == "hdfs://nn:8020/churn"
    assert SparkConfig().storage is None


def test_yarn_and_kubernetes_masters_pass_the_startup_check(monkeypatch):
    monkeypatch.setenv("HADOOP_CONF_DIR", "/etc/hadoop/conf")
    spark_session.check_master("yarn")
    spark_session.check_master("k8s://https://127.0.0.1:6443")
    monkeypatch.delenv("HADOOP_CONF_DIR")
    monkeypatch.delenv("YARN_CONF_DIR", raising=False)
    with pytest.raises(spark_session.SparkUnavailable, match="HADOOP_CONF_DIR or YARN_CONF_DIR"):
        spark_session.check_master("yarn")
    with pytest.raises(spark_session.SparkUnavailable, match="is not a Spark master"):
        spark_session.check_master("mesos://127.0.0.1:5050")


# --- errors through the CLI --------------------------------------------------------------------------


@pytest.fixture
def project_copy(built_project, tmp_path) -> Path:
    project = tmp_path / "project"
    shutil.copytree(built_project[0], project)
    return project


@requires_spark
def test_a_broken_java_home_with_java_on_path_is_one_line_with_the_fix(project_copy, tmp_path):
    before = model_state(project_copy)
    java_on_path = shutil.which("java")
    assert java_on_path, "needs a java on PATH"
    empty = tmp_path / "no-java"
    empty.mkdir()
    failing = tmp_path / "failing-java"
    (failing / "bin").mkdir(parents=True)
    (failing / "bin" / "java").write_text("#!/bin/sh\necho 'Error: broken runtime' >&2\nexit 1\n")
    (failing / "bin" / "java").chmod(0o755)
    for home, words in ((empty, "has no bin/java"), (failing, "-version` fails")):
        result = churnwh(project_copy, "build", "--engine", "spark", env={"JAVA_HOME": str(home)})
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert words in lines[0] and f"unset JAVA_HOME to use {java_on_path}" in lines[0], lines[0]
    assert model_state(project_copy) == before


@requires_spark
def test_a_spark_setting_the_jvm_refuses_is_one_line_naming_it(project_copy):
    before = model_state(project_copy)
    with_spark_section(project_copy, '[spark.conf]\n"spark.driver.memory" = "lots"\n')
    result = churnwh(project_copy, "build", "--engine", "spark")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert "Spark could not start on local[2]" in lines[0] and "-Xmxlots" in lines[0] and "driver.log" in lines[0]
    assert model_state(project_copy) == before


class NotSpark:
    """A TCP server that accepts connections and never answers (what a wrong port often is)."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.held.append(connection)

    def close(self):
        self.server.close()
        for connection in self.held:
            connection.close()


@requires_spark
def test_a_master_that_is_not_spark_fails_within_the_connect_timeout_in_one_line(project_copy):
    before = model_state(project_copy)
    with_spark_section(project_copy, "[spark]\nconnect_timeout_s = 5\n")
    listener = NotSpark()
    try:
        result = churnwh(project_copy, "build", "--engine", "spark", "--master", f"spark://127.0.0.1:{listener.port}")
    finally:
        listener.close()
    assert listener.held, "the build never connected to the listener"
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert "did not start a session within 5 s" in lines[0] and "connect_timeout_s" in lines[0]
    assert model_state(project_copy) == before
    assert (project_copy / "warehouse" / "spark" / "logs" / "driver.log").exists(), "Spark's output went nowhere"


@requires_spark
def test_an_executor_failure_is_one_line_with_its_root_cause_and_verbose_logs_the_trace(caplog):
    spark = local_session()

    def fails(batches):
        for batch in batches:
            raise ValueError("cannot score the row of 'alice@example.com'")
            yield batch

    with pytest.raises(Exception) as caught:
        spark.range(3).mapInArrow(fails, "id long").collect()
    line = spark_session.error_line(caught.value)
    assert "\n" not in line
    assert "root cause: ValueError: cannot score the row of '…'" in line, line
    assert "alice" not in line
    churnwh_logger = __import__("logging").getLogger("churnwh")
    level = churnwh_logger.level
    churnwh_logger.setLevel("INFO")  # what --verbose sets
    try:
        with caplog.at_level("INFO", logger="churnwh.spark"):
            spark_session.error_line(caught.value)
    finally:
        churnwh_logger.setLevel(level)
    trace = [record.getMessage() for record in caplog.records if record.name == "churnwh.spark"]
    assert any("Traceback" in message for message in trace) and any("in fails" in message for message in trace)
    assert not any("alice" in message for message in trace)


# --- a real standalone cluster ------------------------------------------------------------------------

QUICK_JOB = """
import json, sys
from pathlib import Path
import duckdb
from churnwh.config import SparkConfig
from churnwh.spark import session
from churnwh.spark.dialect import to_spark

master, folder = sys.argv[1], Path(sys.argv[2])
model = "SELECT k, round(avg(x), 3) AS m, count(*) AS n, CAST(sum(x) AS INTEGER) AS s FROM raw.t GROUP BY k"
con = duckdb.connect()
con.execute("CREATE SCHEMA raw")
con.execute("CREATE TABLE raw.t AS SELECT i % 3 AS k, i * 0.25 AS x FROM range(40) r(i)")
con.execute(f"COPY raw.t TO '{folder / 't.parquet'}' (FORMAT parquet)")
spark = session.session(master, SparkConfig(connect_timeout_s=600, conf={"spark.pyspark.python": sys.executable}),
                        folder / "logs")
spark.read.parquet((folder / "t.parquet").as_uri()).createOrReplaceTempView("raw__t")
compiled = to_spark(model, schema={"raw": {"t": {"k": "BIGINT", "x": "DECIMAL(18,2)"}}}, variables={})

def on_executor(batches):
    import churnwh.spark.score  # the executors' Python has churnwh: scoring can run there
    for batch in batches:
        yield batch

def launched_by(batches):
    # the JVM above this Python worker: the worker's executor (CoarseGrainedExecutorBackend), not the driver
    import os
    import pyarrow as pa
    pid, main = os.getpid(), ""
    for _ in range(6):
        pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        words = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
        if words and words[0].endswith(b"java"):
            main = next((w.decode() for w in words if w.startswith(b"org.apache.spark.")), "")
            break
    for batch in batches:
        yield pa.RecordBatch.from_pydict({"main": [main] * batch.num_rows})

rows = spark.sql(compiled.sql).mapInArrow(on_executor, spark.sql(compiled.sql).schema).collect()
mains = sorted({row["main"] for row in spark.range(4).mapInArrow(launched_by, "main string").collect()})
print(json.dumps({"master": spark.sparkContext.master, "executors": spark.sparkContext._jsc.sc()
      .getExecutorMemoryStatus().size() - 1, "spark": sorted([[r["k"], float(r["m"]), r["n"], r["s"]] for r in rows]),
      "duckdb": sorted([[k, float(m), n, s] for k, m, n, s in con.execute(model).fetchall()]),
      "python_under": mains}))
"""


@requires_spark
def test_a_model_runs_on_a_standalone_cluster_like_on_duckdb(tmp_path):
    """The quick variant (the default suite, so CI): a master and a worker start as separate processes, a
    session registers, a model runs on the executor the worker launched (its Python workers run under that
    executor's JVM, not the driver's) and gives DuckDB's rows."""
    (tmp_path / "job.py").write_text(QUICK_JOB)
    with standalone_cluster(tmp_path / "cluster") as master:
        result = subprocess.run([sys.executable, str(tmp_path / "job.py"), master, str(tmp_path)],
                                capture_output=True, text=True, timeout=900, env=os.environ.copy())
    assert result.returncode == 0, result.stderr[-3000:]
    answer = json.loads(result.stdout.strip().splitlines()[-1])
    assert answer["master"] == master and answer["executors"] == 1
    assert answer["spark"] == answer["duckdb"] and len(answer["spark"]) == 3
    assert answer["python_under"] == ["org.apache.spark.executor.CoarseGrainedExecutorBackend"], answer


@pytest.mark.slow
@requires_spark
def test_demo_build_on_a_standalone_cluster_matches_the_duckdb_engine(built_project, tmp_path):
    """`churnwh build --engine spark --master spark://127.0.0.1:PORT`, storage given as a file:// URI
    (the Hadoop FileSystem path a hdfs:// or s3a:// storage takes), every table compared with DuckDB's."""
    duck_project, _ = built_project
    project = tmp_path / "project"
    shutil.copytree(duck_project, project)
    storage = (tmp_path / "shared" / "churn").as_uri()
    with_spark_section(project, f"""
        [spark]
        storage = "{storage}"
        connect_timeout_s = 600

        [spark.conf]
        "spark.pyspark.python" = "{sys.executable}"
        "spark.executor.memory" = "768m"
        """)
    with standalone_cluster(tmp_path / "cluster") as master:
        result = churnwh(project, "build", "--engine", "spark", "--master", master, "--full-refresh")
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"built on Spark ({master})" in result.stdout
    assert (tmp_path / "shared" / "churn" / "tables" / "features" / "customer_features").is_dir()
    assert not list((tmp_path / "shared" / "churn").glob("run-*")), "a run folder (raw identifiers) was left"
    shared = tmp_path / "shared" / "churn"
    with private(duck_project) as duck, private(project) as spark, duckdb.connect() as parquet:
        names = [row[0] for row in duck.execute(f"SELECT model FROM {warehouse.META_SCHEMA}.model_state ORDER BY 1").fetchall()]
        assert names
        for name in names:  # the model tables as Spark left them in storage (most never reach the driver)
            want = duck.execute(f"SELECT * FROM {name}")
            columns = [d[0] for d in want.description]
            expected = sorted(want.fetchall(), key=sort_key)
            got = sorted(parquet.execute(f"SELECT * FROM {parquet_table(shared, name, columns)}").fetchall(), key=sort_key)
            assert rows_differ(expected, got, columns) == [], name
        assert "staging.product_usage" not in warehouse.relations(spark)
        query = "SELECT customer_pseudonym, churn_probability, risk_tier FROM ml.churn_scores ORDER BY 1"
        expected, got = duck.execute(query).fetchall(), spark.execute(query).fetchall()
    assert [row[0] for row in got] == [row[0] for row in expected] and expected
    assert max(abs(a[1] - b[1]) for a, b in zip(expected, got)) <= 1e-6
    assert [row[2] for row in got] == [row[2] for row in expected]
