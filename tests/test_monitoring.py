"""PSI on shifted data; score history, drift and data-quality tables after a build."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from churnwh.monitoring import psi
from tests.helpers import churnwh, private


def test_psi_is_zero_for_the_same_distribution_and_grows_with_shift():
    rng = np.random.default_rng(0)
    expected = rng.normal(size=20000)
    assert psi(expected, rng.normal(size=20000)) < 0.01
    shifts = [psi(expected, rng.normal(loc=shift, size=20000)) for shift in (0.1, 0.5, 1.0)]
    assert shifts == sorted(shifts)
    assert 0.2 < shifts[1] < 0.4  # a half-standard-deviation shift is a clear warning at 0.2
    assert shifts[2] > 0.8


def test_psi_of_categories_and_missing_values():
    before = pl.Series(["a"] * 500 + ["b"] * 500)
    assert psi(before, before, categorical=True) == pytest.approx(0.0)
    after = pl.Series(["a"] * 900 + ["b"] * 100)
    assert psi(before, after, categorical=True) > 0.5
    numeric = pl.Series([1.0, 2.0, 3.0, 4.0] * 100)
    with_missing = pl.Series([1.0, 2.0, None, None] * 100)
    assert psi(numeric, with_missing) > 1.0


def test_monitoring_tables_after_build(built_project):
    project, _ = built_project
    with private(project) as con:
        history = con.execute("SELECT count(*), count(DISTINCT as_of) FROM ml.score_history").fetchall()[0]
        scored = con.execute("SELECT count(*) FROM ml.churn_scores").fetchall()[0][0]
        drift = pl.from_arrow(con.sql("SELECT * FROM ml.drift").to_arrow_table())
        quality = pl.from_arrow(con.sql("SELECT * FROM ml.data_quality").to_arrow_table())
        features = con.execute("SELECT features FROM ml.model_runs WHERE status = 'current'").fetchall()[0][0]
    assert history == (scored, 1)
    assert "__score__" in drift["feature"].to_list()
    assert drift.height == features + 1
    assert set(drift["status"]) <= {"ok", "warning"}
    assert ((drift["psi"] > drift["threshold"]) == (drift["status"] == "warning")).all()
    assert {"marts.scoring_set", "marts.training_set", "staging.customers"} <= set(quality["model"])
    assert quality.filter(pl.col("model") == "marts.scoring_set")["duplicate_grain_rows"].item() == 0


def test_backtest_before_outcome_data_is_a_clear_error(built_project):
    project, _ = built_project
    result = churnwh(project, "backtest")
    assert result.returncode == 1
    assert "no snapshot is old enough" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
