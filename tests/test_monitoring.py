"""PSI on shifted data; score history, drift and data-quality tables after a build."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from churnwh.stages.monitor import psi
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


def _zero_heavy(rng, n, zero_share=0.6, scale=10.0):
    values = rng.exponential(scale, n)
    values[rng.random(n) < zero_share] = 0.0
    return values


def test_psi_of_a_feature_with_a_point_mass_at_zero():
    """A 60% point mass at zero: the same distribution stays stable, real shifts still warn."""
    rng = np.random.default_rng(5)
    reference = _zero_heavy(rng, 20000)
    same = [psi(reference, _zero_heavy(rng, 2000)) for _ in range(5)]
    assert max(same) < 0.1, same
    assert psi(reference, _zero_heavy(rng, 2000, zero_share=0.3)) > 0.25  # fewer zeros
    assert psi(reference, _zero_heavy(rng, 2000, scale=40.0)) > 0.25  # the non-zero part grew
    # The point mass sits where plain quantile edges would fall: rounding noise in a computed
    # amount (a difference of running sums) must not move it into another bin.
    assert psi(reference, reference - 1e-12) < 0.01
    assert psi(reference, reference + 1e-12) < 0.01
    # Missing values and infinities are one bin of their own.
    with_missing = np.where(rng.random(20000) < 0.3, np.nan, reference)
    assert psi(with_missing, np.where(rng.random(20000) < 0.3, np.inf, reference)) < 0.01


def test_psi_of_list_prices_and_of_a_constant():
    rng = np.random.default_rng(6)
    prices = np.array([11.99, 19.99, 27.99])
    reference = rng.choice(prices, 5000, p=[0.3, 0.3, 0.4])
    assert psi(reference, rng.choice(prices, 1000, p=[0.3, 0.3, 0.4])) < 0.02
    assert psi(reference, rng.choice(prices, 1000, p=[0.3, 0.3, 0.4]) + 2.0) > 1.0  # every price rose
    constant = np.zeros(1000)
    assert psi(constant, constant) == pytest.approx(0.0)
    assert psi(constant, np.ones(1000)) > 1.0


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
