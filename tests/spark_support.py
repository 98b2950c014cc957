"""Shared by the Spark tests: skip reasons, one local Spark session per test process, comparisons."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import shutil
from pathlib import Path

import pyspark  # noqa: F401  (the `test` extra installs it: a missing one fails, it does not skip)
import pytest


def spark_skip_reason() -> str | None:
    import os

    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        return "no Java runtime: install openjdk-17-jre-headless (Spark 4 needs Java 17 or 21)"
    return None


requires_spark = pytest.mark.skipif(spark_skip_reason() is not None, reason=spark_skip_reason() or "")


def spark_session():
    """The process-wide local[2] session (churnwh.spark.engine caches one per master)."""
    from churnwh.spark import engine as spark_engine

    return spark_engine.session("local[2]")


DOUBLE_RELATIVE = 1e-12


def normalize(value):
    """Types may widen between engines (INT -> BIGINT, DECIMAL(18,2) -> DECIMAL(28,2)); values may not."""
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        return value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, (list, tuple)):
        return [normalize(item) for item in value]
    if isinstance(value, dict):
        return {key: normalize(item) for key, item in value.items()}
    return value


def ulps_apart(a: float, b: float) -> float:
    """How many units in the last place of the larger magnitude separate two finite DOUBLEs."""
    if a == b:
        return 0.0
    return abs(a - b) / math.ulp(max(abs(a), abs(b)))


def rows_differ(left: list[tuple], right: list[tuple], columns: list[str], ulps: int | None = None) -> list[str]:
    """Row-by-row differences of two results (both already sorted the same way), at most five.

    ``ulps``: DOUBLEs may differ by at most this many units in the last place and DECIMALs must be equal
    as decimals (the parity of whole tables); without it, within DOUBLE_RELATIVE (the probes)."""
    problems = []
    if len(left) != len(right):
        return [f"{len(left)} rows vs {len(right)} rows"]
    for number, (a, b) in enumerate(zip(left, right)):
        for column, u, v in zip(columns, a, b):
            if isinstance(u, float) and isinstance(v, float) and not math.isnan(u) and not math.isnan(v):
                # a sum of DOUBLEs depends on the order of additions, which differs between engines
                # (and between two multi-threaded DuckDB runs): the last bits may differ, nothing more
                if ulps is not None and not math.isinf(u) and ulps_apart(u, v) <= ulps:
                    continue
                if ulps is None and abs(u - v) <= DOUBLE_RELATIVE * max(abs(u), abs(v)):
                    continue
            if ulps is not None and isinstance(u, decimal.Decimal) and isinstance(v, decimal.Decimal) and u == v:
                continue
            retyped = (ulps is not None and None not in (u, v)
                       and isinstance(u, decimal.Decimal) != isinstance(v, decimal.Decimal))
            if retyped or normalize(u) != normalize(v):
                problems.append(f"row {number} column {column}: DuckDB {u!r} vs Spark {v!r}"
                                + (" (types differ)" if retyped else ""))
                if len(problems) >= 5:
                    return problems
    return problems


def sort_key(row) -> tuple:
    return tuple((value is None, repr(normalize(value))) for value in row)


def write_parquet_view(spark, con, sql: str, name: str, folder: Path) -> None:
    path = folder / f"{name}.parquet"
    con.execute(f"COPY ({sql}) TO '{path}' (FORMAT parquet)")
    spark.read.parquet(str(path)).createOrReplaceTempView(name)


def partition_folders(folder: Path) -> list[Path]:
    """The ``column=value`` folders of a table Spark wrote partitioned (none: it is not)."""
    return [child for child in sorted(folder.iterdir()) if child.is_dir() and "=" in child.name]


def parquet_table(storage: Path, relation: str, columns: list[str] | None = None) -> str:
    """DuckDB SQL reading a model table that a Spark build left as Parquet under ``storage`` (its root); a
    partitioned table's columns in the order of ``columns`` (its partition columns are in no file)."""
    schema, table = relation.split(".")
    folder = storage / "tables" / schema / table
    if not partition_folders(folder):
        return f"read_parquet('{folder}/*.parquet')"
    selected = ", ".join(f'"{column}"' for column in columns) if columns else "*"
    return f"(SELECT {selected} FROM read_parquet('{folder}/**/*.parquet', hive_partitioning = true))"


def parquet_texts(storage: Path, con) -> list[str]:
    """Every text value of every Parquet file under ``storage``: what an erasure must have reached."""
    texts = []
    for path in sorted(storage.rglob("*.parquet")):
        result = con.execute(f"SELECT * FROM read_parquet('{path}')")
        kinds = [d[1] for d in result.description]
        for row in result.fetchall():
            texts.extend(value for value, kind in zip(row, kinds) if isinstance(value, str))
    return texts
