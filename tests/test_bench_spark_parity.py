"""The comparison of benchmarks/bench_spark_parity.py (a model table against Parquet files, in SQL) on tiny
tables: equal rows, a changed last bit, a duplicated row, a wider type on the Parquet side."""

from __future__ import annotations

import duckdb

from benchmarks.bench_spark_parity import compare, type_differences


def parquet_of(con, rows_sql: str, path) -> str:
    con.execute(f"COPY ({rows_sql}) TO '{path}' (FORMAT parquet)")
    return f"read_parquet('{path}')"


def test_compare_counts_what_each_side_lacks(tmp_path):
    with duckdb.connect() as con:
        con.execute("CREATE TABLE model (id VARCHAR, day DATE, amount DECIMAL(18, 2), share DOUBLE)")
        con.execute("INSERT INTO model VALUES ('a', DATE '2025-01-01', 1.50, 0.1), ('b', NULL, 2.00, -0.0), "
                    "('c', DATE '2025-01-03', NULL, 'NaN')")
        same = parquet_of(con, "SELECT id, day, CAST(amount AS DECIMAL(38, 2)) AS amount, share FROM model",
                          tmp_path / "same.parquet")
        assert compare(con, same, "model") == (3, 3, 0, 0)
        assert type_differences(con, same, "model") == ["amount: DECIMAL(18,2) vs DECIMAL(38,2)"]

        next_bit = parquet_of(con, "SELECT id, day, amount, CASE WHEN id = 'a' THEN nextafter(share, 1) "
                                   "ELSE share END AS share FROM model", tmp_path / "bit.parquet")
        assert compare(con, next_bit, "model") == (3, 3, 1, 1)

        doubled = parquet_of(con, "SELECT * FROM model UNION ALL SELECT * FROM model WHERE id = 'b'",
                             tmp_path / "doubled.parquet")
        assert compare(con, doubled, "model") == (3, 4, 0, 1)
        assert type_differences(con, doubled, "model") == []
