"""PSI on shifted data; score history, drift and data-quality tables after a build; drift against the latest
training date, in words, and severe drift that stops a build; cohorts observed from their start."""

from __future__ import annotations

import datetime as dt
import json
import re

import duckdb
import numpy as np
import polars as pl
import pytest

from churnwh.ml.drift import psi
from tests.helpers import REPO, churnwh, copy_project, private


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


# --- issue 15: the reference window, drift in words, severe drift stops the build ----------------------------


def test_drift_compares_with_the_latest_training_date_and_says_what_moved(built_project):
    project, _ = built_project
    with private(project) as con:
        drift = pl.from_arrow(con.sql("SELECT * FROM ml.drift").to_arrow_table())
        latest = con.execute(
            "SELECT max(observation_date), count(*) FILTER (WHERE observation_date = "
            "(SELECT max(observation_date) FROM marts.training_set)) FROM marts.training_set").fetchone()
    assert drift["reference"].unique().to_list() == [f"the latest training date {latest[0]:%Y-%m-%d}"]
    assert drift["training_rows"].unique().to_list() == [latest[1]]
    score = drift.filter(pl.col("feature") == "__score__")["explanation"].item()
    assert score.startswith("mean churn probability ")
    assert score.endswith(f"since the latest training date {latest[0]:%Y-%m-%d}")
    assert drift["explanation"].null_count() == 0
    # list prices changed over the history: against the latest date they are no warning
    assert drift.filter(pl.col("feature") == "monthly_price")["status"].item() == "ok"
    assert not drift["severe"].any()


def test_describe_shift_names_direction_means_and_shares_only():
    from churnwh.ml.drift import describe_shift, severe_drift

    prices = describe_shift("monthly_price", pl.Series([12.9] * 50), pl.Series([14.1] * 50), categorical=False,
                            reference="the training dates 2025-10-01 to 2025-12-01")
    assert prices == "mean monthly_price rose from 12.9 to 14.1 (+9%) since the training dates 2025-10-01 to 2025-12-01"
    usage = describe_shift("usage", pl.Series([0.0] * 10 + [100.0] * 90), pl.Series([0.0] * 100), categorical=False,
                           reference="x")
    assert usage.startswith("mean usage fell from 90 to 0 (-100%); share of zeros rose from 10% to 100%")
    missing = describe_shift("score", pl.Series([1.0] * 100), pl.Series([None] * 60 + [1.0] * 40), categorical=False,
                             reference="x")
    assert missing == "share of missing score rose from 0% to 60% since x"
    plans = describe_shift("plan", pl.Series(["basic"] * 90 + ["plus"] * 10),
                           pl.Series(["basic"] * 50 + ["plus"] * 47 + ["Q-rare"] * 3), categorical=True,
                           reference="x", k=5)
    assert plans == "share of plan = 'basic' fell from 90% to 50% since x"
    rare = describe_shift("region", pl.Series(["north", "south"] * 50),
                          pl.Series(["north", "south"] * 48 + ["Q-rare"] * 4), categorical=True, reference="x", k=5)
    assert "Q-rare" not in rare and "a rare region value (fewer than 5 customers)" in rare

    drift = pl.DataFrame({"feature": ["__score__", "a", "b", "c"], "kind": ["score", "numeric", "numeric", "numeric"],
                          "psi": [0.5, 4.0, 2.0, 0.1], "severe": [False, True, True, False],
                          "reference": ["the latest training date 2025-08-01"] * 4})
    assert severe_drift(drift, severe_features=3) is None
    assert severe_drift(drift, severe_features=0) is None
    assert severe_drift(drift, severe_features=2) == (
        "2 features severe (worst: a 4.00, b 2.00) against the latest training date 2025-08-01")
    drift = drift.with_columns(severe=pl.Series([True, True, True, False]))
    assert severe_drift(drift, severe_features=0).startswith("the score's PSI is 0.50 and 2 features severe")


def _set_monitoring(project, text: str) -> None:
    config = project / "churnwh.toml"
    body = config.read_text()
    assert "\n[monitoring]\n" in body
    config.write_text(body.replace("\n[monitoring]\n", f"\n[monitoring]\n{text}\n", 1))


def _about(project) -> dict[str, str]:
    con = duckdb.connect(str(project / "warehouse" / "churn.duckdb"), read_only=True)
    try:
        return dict(con.execute("SELECT key, value FROM about").fetchall())
    finally:
        con.close()


def test_severe_drift_stops_before_publishing_unless_allowed_and_recorded(built_project, tmp_path):
    project = copy_project(built_project[0], tmp_path / "project")
    published = project / "warehouse" / "churn.duckdb"
    before = published.read_bytes()
    _set_monitoring(project, "psi_severe = 0.0")  # every PSI is at least 0: the score's drift is severe
    stopped = churnwh(project, "build")
    assert stopped.returncode == 1
    errors = [line for line in stopped.stderr.splitlines() if line.startswith("error:")]  # (warnings aside)
    assert len(errors) == 1
    message = errors[0]
    assert "severe drift" in message and "the score's PSI is" in message and "--allow-drift" in message
    assert "the published file was kept" in message
    assert published.read_bytes() == before

    allowed = churnwh(project, "build", "--allow-drift")
    assert allowed.returncode == 0, allowed.stderr
    assert "drift_override" in _about(project) and "the score's PSI is" in _about(project)["drift_override"]
    with private(project) as con:
        detail = con.execute("SELECT detail FROM audit.audit_log WHERE event = 'build' "
                             "ORDER BY logged_at DESC LIMIT 1").fetchone()[0]
    override = json.loads(detail)["drift_override"]
    assert override["allowed_by"] == "--allow-drift" and "the score's PSI is" in override["reason"]

    config = project / "churnwh.toml"
    config.write_text(config.read_text().replace("psi_severe = 0.0\n", ""))
    again = churnwh(project, "build")
    assert again.returncode == 0, again.stderr
    assert "drift_override" not in _about(project)


def test_cohort_retention_covers_only_cohorts_observed_from_their_start(built_project):
    project, _ = built_project
    with private(project) as con:
        start = con.execute("SELECT min(cohort_month) FROM marts.cohort_retention").fetchone()[0]
        before_history = con.execute(
            "SELECT count(*) FROM staging.active_periods WHERE period_number = 1 AND period_start < DATE '2023-01-01'"
        ).fetchone()[0]
    assert before_history > 0  # the demo has customers who signed up before its history began
    assert start is not None and start >= dt.date(2023, 1, 1)
    result = churnwh(project, "query", "--file", str(REPO / "examples" / "queries" / "cohort_retention_12m.sql"),
                     "--format", "json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert all(row["cohort_month"] >= "2023-01-01" for row in rows)


def test_the_report_explains_each_drift_warning_in_words(built_project, tmp_path):
    project = copy_project(built_project[0], tmp_path / "project")
    _set_monitoring(project, "psi_warning = 0.0")
    config = project / "churnwh.toml"
    config.write_text(config.read_text().replace("psi_warning = 0.2 ", "# psi_warning = 0.2 ", 1))
    assert churnwh(project, "score").returncode == 0
    output = tmp_path / "report.html"
    result = churnwh(project, "report", "--output", str(output))
    assert result.returncode == 0, result.stderr
    page = output.read_text()
    figure = re.search(r'<figure data-plot="drift".*?</figure>', page, flags=re.DOTALL).group(0)
    items = re.findall(r"<li>(.*?)</li>", figure, flags=re.DOTALL)
    assert len(items) >= 5
    assert all("since the latest training date" in item for item in items)
    assert "compared with the latest training date" in figure
