"""Control groups (deterministic, balanced) and the pilot report on a simulated campaign with a planted effect."""

from __future__ import annotations

import math
import re
import shutil

import duckdb
import numpy as np
import polars as pl
import pytest

from churnwh.action.pilot import assign_groups, pilot_statistics
from churnwh.sources.demo import read_uplift_truth
from tests.helpers import churnwh, private

EFFECT = 0.6
"""The strength of the (heterogeneous) effect planted in the demo campaign of the end-to-end test."""


def _pseudonyms(n: int) -> pl.Series:
    rng = np.random.default_rng(1)
    return pl.Series("customer_pseudonym", [f"{x:032x}" for x in rng.integers(0, 2**62, n)])


def test_control_group_is_deterministic_and_balanced():
    pseudonyms = _pseudonyms(20000)
    first = assign_groups(pseudonyms, "spring", 0.2)
    assert first.to_list() == assign_groups(pseudonyms, "spring", 0.2).to_list()
    assert assign_groups(pseudonyms.reverse(), "spring", 0.2).reverse().to_list() == first.to_list()
    assert (first == "control").sum() == 4000  # exactly the control fraction
    assert (assign_groups(pseudonyms[:41], "spring", 0.2) == "control").sum() == 8
    other = assign_groups(pseudonyms, "autumn", 0.2)
    # Another campaign id gives an independent split.
    both = ((first == "control") & (other == "control")).mean()
    assert abs(both - 0.04) < 0.01
    # Balance: the assignment ignores customer attributes, e.g. a risk score.
    risk = np.random.default_rng(2).beta(2, 5, 20000)
    control = (first == "control").to_numpy()
    assert abs(risk[control].mean() - risk[~control].mean()) < 0.01


def test_the_interval_does_not_collapse_when_a_small_group_has_no_churner():
    # 0 of 60 controls and 25 of 542 treated churned (a pilot of the soak benchmark): the rates' normal
    # approximation gave -6.4% to -2.8%, as if a control rate of exactly 0 were known for sure.
    stats = pilot_statistics(np.arange(542) < 25, np.zeros(60, dtype=bool), treated_cost=542.0)
    assert stats["effect"] == pytest.approx(-25 / 542)
    assert stats["ci_low"] < stats["effect"] < stats["ci_high"]
    assert stats["ci_high"] > 0.01  # a small positive effect is not ruled out by 60 controls
    # Newcombe's interval of a textbook case (Newcombe 1998, Stat Med 17:873, table II, example (a)):
    # 56/70 against 48/80 gives 0.0524 to 0.3339.
    textbook = pilot_statistics(np.arange(80) < 48, np.arange(70) < 56, treated_cost=1.0)
    assert (round(textbook["ci_low"], 4), round(textbook["ci_high"], 4)) == (0.0524, 0.3339)


def test_interval_covers_the_planted_effect_on_a_simulated_campaign():
    rng = np.random.default_rng(3)
    n = 20000
    groups = assign_groups(_pseudonyms(n), "pilot", 0.3).to_numpy()
    p = rng.beta(2, 6, n)
    effect = 0.4
    treated = groups == "treatment"
    churned = rng.random(n) < np.where(treated, p * (1 - effect), p)
    stats = pilot_statistics(churned[treated], churned[~treated], treated_cost=10.0 * treated.sum())
    planted = effect * p.mean()
    assert stats["ci_low"] <= planted <= stats["ci_high"]
    assert stats["ci_low"] > 0  # the effect is detected
    assert stats["retained_per_1000_cost"] == pytest.approx(1000 * stats["effect"] * treated.sum() / stats["treated_cost"])


def test_pilot_end_to_end_on_demo_data(built_project, tmp_path):
    source, _ = built_project
    project = tmp_path / "p"
    shutil.copytree(source, project)
    # churnwh.toml costs only the high and medium tiers, and the tiny model scores everyone low.
    nobody = churnwh(project, "plan", "--campaign", "c1", "--budget", "100")
    assert nobody.returncode == 1 and "no customer can be selected" in nobody.stderr
    zero_budget = churnwh(project, "plan", "--campaign", "c1", "--budget", "0", "--cost", "high=1")
    assert zero_budget.returncode == 1 and "above 0" in zero_budget.stderr
    planned = churnwh(project, "plan", "--campaign", "c1", "--budget", "100000", "--cost", "high=40",
                      "--cost", "medium=8", "--cost", "low=1", "--success-rate", "low=0.05",
                      "--control-fraction", "0.4")
    assert planned.returncode == 0, planned.stderr
    unknown = churnwh(project, "pilot-report", "nope")
    assert unknown.returncode == 1 and "does not exist" in unknown.stderr
    too_early = churnwh(project, "pilot-report", "c1")
    assert too_early.returncode == 1 and "no outcome data yet" in too_early.stderr
    simulated = churnwh(project, "demo-campaign", "c1", "--days", "151", "--effect", str(EFFECT))
    assert simulated.returncode == 0, simulated.stderr
    planted = float(re.search(r"expected ([0-9.]+) percentage points below control", simulated.stdout).group(1)) / 100
    assert "per-customer effect of strength 60% (--effect 0.6, --effect-model heterogeneous" in simulated.stdout
    # The true effect per member is beside the churn truth, outside the warehouse; the planted effect printed is
    # its mean over the members (printed to 0.1 percentage point).
    truth = read_uplift_truth(project / "warehouse" / "uplift_truth.parquet", "c1")
    with private(project) as con:
        members = con.execute("SELECT count(*) FROM ml.campaign_members WHERE campaign_id = 'c1'").fetchall()[0][0]
    uplift = truth["uplift"].to_numpy()
    assert truth.num_rows == members and abs(uplift.mean() - planted) <= 0.0005 + 1e-12
    assert (uplift < 0).any() or (uplift == 0).any()  # not one relative cut for everyone
    for database in ("private.duckdb", "churn.duckdb"):
        with duckdb.connect(str(project / "warehouse" / database), read_only=True) as con:
            columns = {c for (c,) in con.execute("SELECT column_name FROM duckdb_columns()").fetchall()}
        assert not columns & {"uplift", "churn_if_contacted", "churn_if_not_contacted"}, database
    # The outcome data is in the warehouse only after the next build: before it, no report of 0% rates.
    not_built = churnwh(project, "pilot-report", "c1")
    assert not_built.returncode == 1 and "run `churnwh build` first" in not_built.stderr, not_built.stderr
    as_of = re.search(r"as_of = (\d{4}-\d\d-\d\d)", simulated.stdout).group(1)
    config = project / "churnwh.toml"
    config.write_text(config.read_text().replace("[vars]\n", f"[vars]\nas_of = {as_of}\n"))
    rebuilt = churnwh(project, "build")
    assert rebuilt.returncode == 0, rebuilt.stderr
    report = churnwh(project, "pilot-report", "c1")
    assert report.returncode == 0, report.stderr
    with private(project) as con:
        row = pl.from_arrow(con.sql("SELECT * FROM ml.pilot_results WHERE campaign_id = 'c1'").to_arrow_table())
    assert row.height == 1
    assert row["treated"].item() + row["control"].item() == members
    # The estimate is the planted effect up to sampling noise. Each group's churn rate is a mean of
    # outcomes with mean rate p_control (the members' mean churn if not contacted) or p_treated (if
    # contacted), both from the uplift truth (planted = p_control - p_treated): its standard error follows
    # from the group's size. With about 160 members three of them are wide: this catches a gross
    # error (a count, a percentage, the rates of other rows); the estimator's accuracy is tested on
    # 20,000 simulated members above.
    n_t, n_c = row["treated"].item(), row["control"].item()
    p_control = truth["churn_if_not_contacted"].to_numpy().mean()
    p_treated = truth["churn_if_contacted"].to_numpy().mean()
    standard_error = math.sqrt(p_control * (1 - p_control) / n_c + p_treated * (1 - p_treated) / n_t)
    assert abs(row["effect"].item() - planted) <= 3 * standard_error, (row.to_dicts(), planted, standard_error)
    # The report's interval is Newcombe's from the observed rates and group sizes.
    expected = pilot_statistics(np.arange(n_t) < round(row["treated_churn_rate"].item() * n_t),
                                np.arange(n_c) < round(row["control_churn_rate"].item() * n_c), 1.0)
    assert row["ci_low"].item() == pytest.approx(expected["ci_low"], rel=1e-9)
    assert row["ci_high"].item() == pytest.approx(expected["ci_high"], rel=1e-9)
    realized = (row["treated_churn_rate"].item() * row["treated"].item()
                + row["control_churn_rate"].item() * row["control"].item())
    assert realized == pytest.approx(round(realized)) and 1 <= round(realized) <= members
    # The 2026-01-01 snapshot now has its outcome window: the backtest runs.
    backtest = churnwh(project, "backtest")
    assert backtest.returncode == 0, backtest.stderr
    with private(project) as con:
        backtested = con.execute("SELECT as_of, model_version, customers, realized_rate FROM ml.backtest").fetchall()
        old_members = {r[0] for r in con.execute("SELECT customer_pseudonym FROM ml.campaign_members").fetchall()}
        old_features = {r[0] for r in con.execute("SELECT customer_pseudonym FROM ml.campaign_member_features")
                        .fetchall()}
    assert old_features == old_members  # the plan kept every member's features on the campaign date
    # One snapshot (the campaign's as_of, scored by v0001) with its realized churners: a whole number,
    # at least the campaign members' (the advanced demo goes on for every customer, members or not).
    [(snapshot, version, customers, rate)] = backtested
    assert (snapshot, version) == (row["campaign_as_of"].item(), "v0001") and customers >= members
    assert rate * customers == pytest.approx(round(rate * customers))
    assert round(rate * customers) >= 1
    # A key rotation recomputes every pseudonym; the campaign and the score history are carried
    # over to the new ones, so the pilot report and the backtest give the same figures.
    rotated = churnwh(project, "rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    again = churnwh(project, "pilot-report", "c1")
    assert again.returncode == 0, again.stderr
    assert again.stdout == report.stdout
    assert churnwh(project, "backtest").returncode == 0
    with private(project) as con:
        members = {r[0] for r in con.execute("SELECT customer_pseudonym FROM ml.campaign_members").fetchall()}
        current = {r[0] for r in con.execute("SELECT customer_pseudonym FROM raw.customer_keys").fetchall()}
        features = {r[0] for r in con.execute("SELECT customer_pseudonym FROM ml.campaign_member_features")
                    .fetchall()}
        after = con.execute("SELECT as_of, model_version, customers, realized_rate FROM ml.backtest").fetchall()
        rekeyed = con.execute("SELECT detail FROM audit.audit_log WHERE event = 'key_rotation'").fetchall()
    assert len(members) == len(old_members) and members <= current
    assert not members & old_members
    assert features == members  # the members' point-in-time features follow them to the new pseudonyms
    assert set(backtested) <= set(after)
    assert '"rows_rekeyed"' in rekeyed[0][0]
