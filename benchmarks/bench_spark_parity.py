"""Every model table of a Spark build against the same models built by DuckDB, compared in SQL: the
parity test (tests/test_spark_parity.py) at sizes no test can hold in Python lists.

    python benchmarks/bench_million.py --customers 1000000 --engine spark --standalone --keep /tmp/s1m
    python benchmarks/bench_spark_parity.py --project /tmp/s1m/project --work /tmp/s1m/duckdb

``--project``: a project built with ``churnwh build --engine spark`` (its model tables are Parquet files in
its Spark storage). Its private file (raw tables and pseudonym keys), key, churnwh.toml and sql/ are copied
to ``--work``, where the models stage runs on DuckDB (``pipeline.build(only=("models",))``, full refresh,
the same key, so the same pseudonyms). Then each model table: the row counts on both engines, and the rows
one side has that the other lacks (``EXCEPT ALL`` both ways, so duplicates count), and the column types,
which must be the same (the values are compared with Spark's cast to DuckDB's types all the same). Values
must be equal, DOUBLEs bit-equal (``-0.0 = 0.0`` and ``NaN = NaN``, as in DuckDB's
comparisons): the parity test's bound of 0 ULP. Exit 1 if any table differs.
"""

from __future__ import annotations

import argparse
import pathlib
import shutil
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def copy_project(source: pathlib.Path, work: pathlib.Path) -> None:
    """What a DuckDB build of the same data needs: the project folder (configuration, SQL, keys) and the
    private file (raw tables, pseudonym keys); not the Spark storage, the models or the published file."""
    from churnwh.config import load_config

    private = load_config(source).warehouse.private
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(source, work, ignore=lambda folder, names: ["warehouse"] if pathlib.Path(folder) == source else [])
    target = work / private.relative_to(source)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(private, target)


def type_differences(con, spark_table: str, duck_table: str) -> list[str]:
    """Columns whose name or type differs between the engines (a cast could hide a difference in values)."""
    duck = con.execute(f"DESCRIBE {duck_table}").fetchall()
    spark = con.execute(f"DESCRIBE SELECT * FROM {spark_table}").fetchall()
    if [row[0] for row in duck] != [row[0] for row in spark]:
        return [f"columns {[row[0] for row in duck]} vs {[row[0] for row in spark]}"]
    return [f"{d[0]}: {d[1]} vs {s[1]}" for d, s in zip(duck, spark) if d[1] != s[1]]


def compare(con, spark_table: str, duck_table: str) -> tuple[int, int, int, int]:
    """(DuckDB rows, Spark rows, rows only DuckDB has, rows only Spark has), Spark's columns cast to DuckDB's
    types (a widened DECIMAL or integer compares by value)."""
    columns = con.execute(f"DESCRIBE {duck_table}").fetchall()
    cast = ", ".join(f'CAST("{name}" AS {kind}) AS "{name}"' for name, kind, *_ in columns)
    con.execute(f"CREATE OR REPLACE TEMP VIEW spark_side AS SELECT {cast} FROM {spark_table}")
    counts = con.execute(f"SELECT (SELECT count(*) FROM {duck_table}), (SELECT count(*) FROM spark_side)").fetchone()
    only_duck = con.execute(f"SELECT count(*) FROM (SELECT * FROM {duck_table} EXCEPT ALL "
                            "SELECT * FROM spark_side)").fetchone()[0]
    only_spark = con.execute(f"SELECT count(*) FROM (SELECT * FROM spark_side EXCEPT ALL "
                             f"SELECT * FROM {duck_table})").fetchone()[0]
    return counts[0], counts[1], only_duck, only_spark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--project", required=True, help="a project built with churnwh build --engine spark")
    parser.add_argument("--work", required=True, help="folder for the DuckDB build (replaced)")
    parser.add_argument("--skip-build", action="store_true", help="compare the DuckDB build already in --work")
    args = parser.parse_args()

    import duckdb

    from churnwh import pipeline
    from churnwh.config import load_config
    from churnwh.spark import storage as spark_storage
    from churnwh.sqlmodels.project import load_project
    from churnwh.store import warehouse
    from tests.spark_support import parquet_table

    source, work = pathlib.Path(args.project).resolve(), pathlib.Path(args.work).resolve()
    if not args.skip_build:
        copy_project(source, work)
        started = time.perf_counter()
        pipeline.build(load_config(work), pipeline.BuildOptions(full_refresh=True), only=("models",))
        print(f"models built on DuckDB in {time.perf_counter() - started:.1f} s", flush=True)
    config = load_config(work)
    storage = load_config(source).warehouse.private.parent / spark_storage.SPARK_DIR
    models = load_project(config.sql).models
    differing = 0
    spill = work / "compare.tmp"  # EXCEPT ALL over 100M+ rows spills: beside the copy, not in the cwd
    with duckdb.connect(config={"memory_limit": "4GB", "threads": "2", "temp_directory": str(spill)}) as con:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(f"ATTACH '{config.warehouse.private}' AS duck (READ_ONLY)")
        for name, model in models.items():
            if model.materialized == "view":
                continue
            started = time.perf_counter()
            columns = [row[0] for row in con.execute(f"DESCRIBE duck.{name}").fetchall()]
            spark_table, duck_table = parquet_table(storage, name, columns), f"duck.{warehouse.quote_relation(name)}"
            retyped = type_differences(con, spark_table, duck_table)
            duck_rows, spark_rows, only_duck, only_spark = compare(con, spark_table, duck_table)
            same = duck_rows == spark_rows and only_duck == only_spark == 0 and not retyped
            differing += not same
            print(f"{name:<34}{duck_rows:>14,} rows  {'equal' if same else 'DIFFER'}"
                  + ("" if same else f" (Spark {spark_rows:,} rows; {only_duck:,} only on DuckDB, "
                                     f"{only_spark:,} only on Spark; types: {'; '.join(retyped) or 'equal'})")
                  + f"  {time.perf_counter() - started:.1f} s", flush=True)
    shutil.rmtree(spill, ignore_errors=True)
    print(f"{differing} of the model tables differ" if differing else "every model table is equal on both engines")
    sys.exit(1 if differing else 0)


if __name__ == "__main__":
    main()
