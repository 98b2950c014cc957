"""`churnwh lint --engine spark` before the first build: the raw types come from the declaration (or the
demo simulator) and are the types a load creates, so lint and `build --engine spark` compile the same SQL."""

from __future__ import annotations

from pathlib import Path

import duckdb
import sqlglot.expressions as exp

from churnwh.config import load_config
from churnwh.spark.engine import compile_project, source_schema
from churnwh.spark.lint import declared_raw_schema
from churnwh.sqlmodels.project import load_project
from churnwh.store import warehouse
from tests.helpers import churnwh, make_project
from tests.test_sources import customer_rows, write_csv


def same_types(schema: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {table: {column: exp.DataType.build(kind, dialect="duckdb").sql("duckdb") for column, kind in columns.items()}
            for table, columns in schema.items()}


def compiled_sql(config, raw: dict) -> dict[str, str]:
    project = load_project(config.sql, known_sources={f"{warehouse.RAW_SCHEMA}.{table}" for table in raw})
    return {name: result.sql for name, result in compile_project(project, {warehouse.RAW_SCHEMA: raw}, config.variables).items()}


def test_lint_runs_before_the_first_build_and_writes_nothing(tmp_path):
    project = make_project(tmp_path / "demo")
    result = churnwh(project, "lint", "--engine", "spark")
    assert result.returncode == 0, result.stderr
    assert "18 models carry to Spark with identical results" in result.stdout
    assert not (project / "warehouse").exists()


def test_declared_types_are_the_types_a_load_creates(tmp_path):
    project = tmp_path / "shop"
    assert churnwh(Path("."), "init", str(project), "--flat").returncode == 0
    write_csv(project / "data" / "customers.csv", customer_rows(40))
    config = load_config(project)
    declared = declared_raw_schema(config)
    before = churnwh(project, "lint", "--engine", "spark")
    assert before.returncode == 0, before.stderr
    loaded = churnwh(project, "load")
    assert loaded.returncode == 0, loaded.stderr
    with duckdb.connect(str(config.warehouse.private), read_only=True) as con:
        raw = source_schema(con)[warehouse.RAW_SCHEMA]
    assert raw and same_types(raw) == same_types({table: declared[table] for table in raw})
    assert compiled_sql(config, raw | {"customer_keys": declared["customer_keys"]}) == compiled_sql(config, declared)


def test_demo_types_are_the_types_a_build_creates(built_project):
    project, _ = built_project
    config = load_config(project)
    with duckdb.connect(str(config.warehouse.private), read_only=True) as con:
        raw = source_schema(con)[warehouse.RAW_SCHEMA]
    declared = declared_raw_schema(config)
    assert same_types(declared) == same_types({table: raw[table] for table in declared})
    assert compiled_sql(config, raw) == compiled_sql(config, declared)
