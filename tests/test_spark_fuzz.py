"""Differential fuzz: random expressions over the functions our SQL and the scaffolds use, on edge values,
evaluated by DuckDB and by Spark through churnwh.spark.dialect; every value must be the same (DOUBLEs
bit-equal, an aggregate DOUBLE within tests.spark_fuzz.AGGREGATE_ULPS), or the dialect must refuse the
expression (what lint reports). The generator, the edge values and the comparison are in tests/spark_fuzz.py.
"""

from __future__ import annotations

import pytest

from tests import spark_fuzz
from tests.spark_support import requires_spark, spark_session

SEED = 20261207

NOT_FUZZED = {
    "RowNumber": "a window function: the probes 'window running totals' and 'star exclude and qualify'",
    "Lag": "a window function: the probe 'window running totals'",
    "Lead": "a window function: the ASOF join probes (rewritten on LEAD)",
    "GenerateSeries": "a table function: the probe 'generate_series with months'",
    "to_months": "an interval of a table function: the probe 'generate_series with months'",
    "getvariable": "bound to a literal before Spark sees it: the probe 'getvariable'",
    "Explode": "only in a restatement's key filter (unnest(getvariable('incremental_keys'))), whose branch the "
               "Spark rewrite drops: tests/test_spark_dialect.py",
}


def test_the_fuzzer_writes_every_function_our_sql_uses():
    used, generated = spark_fuzz.used_functions(), spark_fuzz.generated_functions(SEED)
    missing = {name: where for name, where in used.items() if name not in generated and name not in NOT_FUZZED}
    assert missing == {}, "add these to tests/spark_fuzz.Generator (name: first file using it)"
    assert set(NOT_FUZZED) <= set(used), "NOT_FUZZED names a function nothing uses any more"


def _check(seed: int, batches: int, grouped_batches: int, minimum_cases: int) -> None:
    outcome = spark_fuzz.run(spark_session(), seed=seed, batches=batches, per_batch=40, grouped_batches=grouped_batches)
    print(f"seed {seed}: {outcome.cases} expressions compared, {len(outcome.refused)} kinds refused "
          f"{sorted(outcome.refused)}, {outcome.both_failed} failed on both, "
          f"{len(outcome.spark_only)} failed on DuckDB only")
    assert outcome.differences == []
    assert outcome.cases >= minimum_cases


@requires_spark
def test_duckdb_and_spark_agree_on_generated_expressions():
    _check(SEED, batches=3, grouped_batches=1, minimum_cases=100)


@requires_spark
@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_duckdb_and_spark_agree_on_more_generated_expressions(seed):
    _check(seed, batches=10, grouped_batches=3, minimum_cases=350)
