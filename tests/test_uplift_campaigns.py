"""Uplift from pilots in the product: the build's uplift step, `plan --by uplift`, the two-arm comparison.

The small demo's pilots are far too small to learn from, which is one of the things tested (the build goes
on, `plan --by uplift` refuses with the size needed). For a learnable case, pilots are planted into a copy
of a built project: members taken from the training set's past observation dates (the same feature SQL at
those dates, so their features are point in time), grouped so that a contact prevents churn in one
segment and does nothing elsewhere, the way ``churnwh plan`` would have stored them.
"""

from __future__ import annotations

import polars as pl
import pytest

from churnwh.action import uplift
from churnwh.action.retention import optimize_net
from tests.helpers import churnwh, copy_project, private

CONTROL_FRACTION = 0.3


def test_net_gain_selection_never_takes_a_contact_worth_less_than_it_costs():
    candidates = pl.DataFrame({
        "customer_pseudonym": [f"p{i}" for i in range(8)],
        "risk_tier": ["high", "high", "medium", "medium", "low", "low", "medium", "high"],
        "expected_saved_value": [50.0, 39.0, 9.0, 8.0, 100.0, -5.0, -20.0, 41.0],
    })
    chosen = optimize_net(candidates, budget=1000.0, cost={"high": 40.0, "medium": 8.0})
    assert sorted(chosen["customer_pseudonym"]) == ["p0", "p2", "p7"]  # low has no cost: never contacted
    assert (chosen["expected_saved_value"] - chosen["cost"]).min() > 0
    tight = optimize_net(candidates, budget=40.0, cost={"high": 40.0, "medium": 8.0})
    assert tight["customer_pseudonym"].to_list() == ["p0"]  # net 10 beats p7's 1 and p2's 1 within 40


def test_too_small_pilot_build_goes_on_and_plan_by_uplift_refuses(built_project, tmp_path):
    project = copy_project(built_project[0], tmp_path / "small")
    result = churnwh(project, "plan", "--campaign", "tiny", "--budget", "400", "--cost", "low=4",
                     "--success-rate", "low=0.2", "--control-fraction", str(CONTROL_FRACTION))
    assert result.returncode == 0, result.stderr
    result = churnwh(project, "demo-campaign", "tiny", "--days", "90")
    assert result.returncode == 0, result.stderr
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "uplift model not fitted" in line]
    assert len(warnings) == 1
    with private(project) as con:
        status, members, needed = con.execute("SELECT status, members, needed FROM ml.uplift_status").fetchone()
        tables = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'ml'")
                  .fetchall()}
        planned = con.execute("SELECT count(*) FROM ml.campaign_members WHERE campaign_id = 'tiny'").fetchone()[0]
    assert status == "too small" and members == planned and needed > members
    assert f"{members} pilot members, {needed} needed" in warnings[0]
    assert "customer_uplift" not in tables and "uplift_validation" not in tables
    refused = churnwh(project, "plan", "--campaign", "next", "--budget", "400", "--by", "uplift")
    assert refused.returncode != 0
    error = refused.stderr.strip().splitlines()
    assert len(error) == 1 and f"at least {needed}" in error[0] and f"have {members} members" in error[0]
    # an erased member's point-in-time features go with the rest of the customer
    with private(project) as con:
        erased = con.execute("""SELECT k.customer_id, k.customer_pseudonym FROM raw.customer_keys k
                                JOIN ml.campaign_member_features f USING (customer_pseudonym) LIMIT 1""").fetchone()
    result = churnwh(project, "forget", erased[0])
    assert result.returncode == 0, result.stderr
    with private(project) as con:
        left = con.execute("SELECT count(*) FROM ml.campaign_member_features WHERE customer_pseudonym = ?",
                           [erased[1]]).fetchone()[0]
        remaining = con.execute("SELECT count(*) FROM ml.campaign_member_features").fetchone()[0]
    assert left == 0 and remaining == members - 1


# --- a learnable pilot, planted ---------------------------------------------------------------------

def plant_pilots(project, replicates: int = 4, dates: int = 6) -> None:
    """Campaigns on the training set's last ``dates`` observation dates (each ``replicates`` times), members
    grouped so that a contact prevents churn where ``active_days_30d`` is below the median."""
    import duckdb

    con = duckdb.connect(str(project / "warehouse" / "private.duckdb"))
    try:
        observed = [row[0] for row in con.execute(
            "SELECT DISTINCT observation_date FROM marts.training_set ORDER BY 1 DESC LIMIT ?", [dates]).fetchall()]
        median = con.execute("SELECT median(active_days_30d) FROM marts.training_set").fetchone()[0]
        con.execute("""CREATE TABLE ml.campaigns (campaign_id VARCHAR PRIMARY KEY, created_at TIMESTAMP, as_of DATE,
            budget DOUBLE, control_fraction DOUBLE, selected BIGINT, treated BIGINT, control BIGINT, treated_cost DOUBLE,
            expected_saved_value DOUBLE, model_version VARCHAR, targeting VARCHAR)""")
        con.execute("""CREATE TABLE ml.campaign_members (campaign_id VARCHAR, customer_pseudonym VARCHAR, as_of DATE,
            risk_tier VARCHAR, churn_probability DOUBLE, cost DOUBLE, pilot_group VARCHAR, arm VARCHAR)""")
        con.execute("""CREATE TABLE ml.campaign_member_features AS SELECT CAST(NULL AS VARCHAR) AS campaign_id, *
                       FROM marts.scoring_set WHERE false""")
        for date in observed:
            for replicate in range(replicates):
                campaign = f"planted-{date}-{replicate}"
                con.execute("""INSERT INTO ml.campaigns VALUES (?, now(), ?, 1000, 0.3, 0, 0, 0, 0, 0, 'v0001', 'risk')""",
                            [campaign, date])
                con.execute(f"""INSERT INTO ml.campaign_member_features BY NAME
                                SELECT '{campaign}' AS campaign_id, * EXCLUDE (churned) FROM marts.training_set
                                WHERE observation_date = ?""", [date])
                con.execute(f"""
                    INSERT INTO ml.campaign_members BY NAME
                    WITH members AS (
                        SELECT t.customer_pseudonym, t.observation_date AS as_of, t.active_days_30d < {median} AS helped,
                               CASE WHEN p.period_end IS NOT NULL AND p.period_end < t.observation_date + 90 THEN 1
                                    ELSE 0 END AS churned,
                               (hash('{campaign}' || t.customer_pseudonym) % 1000) / 1000.0 AS u
                        FROM marts.training_set t
                        LEFT JOIN staging.active_periods p ON p.customer_pseudonym = t.customer_pseudonym
                         AND p.period_start < t.observation_date
                         AND (p.period_end IS NULL OR p.period_end >= t.observation_date)
                        WHERE t.observation_date = ?)
                    SELECT '{campaign}' AS campaign_id, customer_pseudonym, as_of, 'low' AS risk_tier,
                           0.02 + 0.5 * u * (1 - 0.5 * churned) AS churn_probability, 4.0 AS cost,
                           CASE WHEN u < (CASE WHEN helped AND churned = 1 THEN 0.3 WHEN helped THEN 0.8 ELSE 0.7 END)
                                THEN 'treatment' ELSE 'control' END AS pilot_group, NULL AS arm
                    FROM members""", [date])
    finally:
        con.close()


@pytest.fixture(scope="module")
def planted(built_project, tmp_path_factory):
    """A copy of the built demo with learnable pilots, scored again (the uplift step fits the network)."""
    project = copy_project(built_project[0], tmp_path_factory.mktemp("planted") / "project")
    config = project / "churnwh.toml"  # pilots of a few thousand members: a rule for a gain of 30 points
    config.write_text(config.read_text().replace(
        "[retention]\n", "[retention]\nuplift_min_gain = 0.3\nuplift_target_share = 0.5\n", 1))
    plant_pilots(project)
    result = churnwh(project, "score")
    assert result.returncode == 0, result.stderr
    return project, result


def test_build_fits_validates_and_estimates_every_scored_customer(planted):
    project, result = planted
    assert "uplift model not fitted" not in result.stderr
    with private(project) as con:
        status = con.execute("SELECT status, members, needed, uplift_model_version FROM ml.uplift_status").fetchone()
        scored = con.execute("SELECT count(*), max(as_of) FROM ml.churn_scores").fetchone()
        estimated = con.execute(
            """SELECT count(*), count(DISTINCT customer_pseudonym), max(as_of), min(uplift_model_version),
                      bool_and(abs(expected_uplift - (churn_if_not_contacted - churn_if_contacted)) < 1e-9),
                      bool_and(recommended_action IN ('contact', 'do not contact'))
               FROM ml.customer_uplift""").fetchone()
        missing = con.execute("""SELECT count(*) FROM ml.customer_uplift u ANTI JOIN ml.churn_scores s
                                 USING (customer_pseudonym)""").fetchone()[0]
        rules = con.execute("""SELECT rule, qini_gain_low IS NULL, members, test_members FROM ml.uplift_validation
                               ORDER BY rule""").fetchall()
        curve = con.execute("SELECT rule, count(*), min(share_targeted), max(share_targeted) FROM ml.uplift_curve "
                            "GROUP BY rule ORDER BY rule").fetchall()
    assert status[0] == "fitted" and status[1] >= status[2] and status[3].startswith("uplift-")
    assert estimated == (scored[0], scored[0], scored[1], status[3], True, True) and missing == 0
    assert [(rule, own) for rule, own, _, _ in rules] == [
        ("churn risk", False), ("two-model baseline", False), ("uplift model", True)]
    assert {members for _, _, members, _ in rules} == {status[1]} and 0 < rules[0][3] < status[1]
    assert [row[0] for row in curve] == ["churn risk", "two-model baseline", "uplift model"]
    assert all(low == 0.0 and high == 1.0 for _, _, low, high in curve)
    model_files = sorted(p.name for p in (project / "warehouse" / "models" / "uplift").iterdir())
    assert model_files == ["arrays.npz", "fit.json", "uplift.json"]
    pseudonyms = [row[0] for row in private(project).execute("SELECT customer_pseudonym FROM ml.churn_scores")
                  .fetchall()]
    saved = "".join(path.read_text(errors="replace") for path in (project / "warehouse" / "models" / "uplift")
                    .iterdir() if path.suffix == ".json")
    assert not any(pseudonym in saved for pseudonym in pseudonyms)


def test_unchanged_members_reuse_the_model_and_plans_by_uplift_and_compared(planted, tmp_path):
    project = copy_project(planted[0], tmp_path / "project")
    result = churnwh(project, "score")
    assert result.returncode == 0, result.stderr
    with private(project) as con:
        status, version = con.execute("SELECT status, uplift_model_version FROM ml.uplift_status").fetchone()
    assert status == "reused"

    # the tiny test network trains 4 epochs: its estimates are small, so are the costs here
    result = churnwh(project, "plan", "--campaign", "by-uplift", "--budget", "20", "--cost", "low=0.5",
                     "--cost", "medium=0.5", "--cost", "high=0.5", "--by", "uplift")
    assert result.returncode == 0, result.stderr
    with private(project) as con:
        chosen = con.execute(
            """SELECT count(*), min(u.expected_saved_value - p.cost), bool_and(p.expected_saved_value = u.expected_saved_value)
               FROM ml.retention_plan p JOIN ml.customer_uplift u USING (customer_pseudonym)""").fetchone()
        targeting = con.execute("SELECT targeting FROM ml.campaigns WHERE campaign_id = 'by-uplift'").fetchone()[0]
        snapshot = con.execute("SELECT count(*) FROM ml.campaign_member_features WHERE campaign_id = 'by-uplift'"
                               ).fetchone()[0]
    with private(project) as con:
        verdict = uplift.versus_risk(con)
    if verdict.worse:  # the guard: a plan by uplift alone targets by risk when the model is no better
        assert targeting == "risk" and verdict.message() in result.stderr and snapshot > 0
    else:
        assert chosen[0] > 0 and chosen[1] > 0 and chosen[2] and targeting == "uplift" and snapshot == chosen[0]
        assert (verdict.message() in result.stderr) == (not verdict.better)

    result = churnwh(project, "plan", "--campaign", "both", "--budget", "40", "--cost", "low=0.5", "--cost",
                     "medium=0.5", "--cost", "high=0.5", "--success-rate", "low=0.2", "--by", "uplift", "--compare", "risk",
                     "--control-fraction", str(CONTROL_FRACTION))
    assert result.returncode == 0, result.stderr
    with private(project) as con:
        arms = con.execute("""SELECT arm, count(*), sum(CASE WHEN pilot_group = 'control' THEN 1 ELSE 0 END),
                                     sum(CASE WHEN pilot_group = 'treatment' THEN cost ELSE 0 END)
                              FROM ml.campaign_members WHERE campaign_id = 'both' GROUP BY arm ORDER BY arm""").fetchall()
        overlap = con.execute("""SELECT count(*) FROM ml.campaign_members a JOIN ml.campaign_members b
                                 USING (customer_pseudonym) WHERE a.campaign_id = 'both' AND b.campaign_id = 'both'
                                 AND a.arm <> b.arm""").fetchone()[0]
        targeting = con.execute("SELECT targeting FROM ml.campaigns WHERE campaign_id = 'both'").fetchone()[0]
    assert [arm for arm, *_ in arms] == ["risk", "uplift"] and targeting == "uplift vs risk" and overlap == 0
    for _, selected, controls, spent in arms:
        assert controls == round(CONTROL_FRACTION * selected) and 0 < controls < selected
        assert spent <= 20 + 1e-9  # half the budget each


def test_old_campaign_tables_without_the_new_columns_still_plan(built_project, tmp_path):
    import duckdb

    project = copy_project(built_project[0], tmp_path / "old")
    con = duckdb.connect(str(project / "warehouse" / "private.duckdb"))
    try:  # the tables as a churnwh before targeting rules wrote them
        con.execute("""CREATE TABLE ml.campaigns (campaign_id VARCHAR PRIMARY KEY, created_at TIMESTAMP, as_of DATE,
            budget DOUBLE, control_fraction DOUBLE, selected BIGINT, treated BIGINT, control BIGINT, treated_cost DOUBLE,
            expected_saved_value DOUBLE, model_version VARCHAR)""")
        con.execute("""CREATE TABLE ml.campaign_members (campaign_id VARCHAR, customer_pseudonym VARCHAR, as_of DATE,
            risk_tier VARCHAR, churn_probability DOUBLE, cost DOUBLE, pilot_group VARCHAR)""")
    finally:
        con.close()
    result = churnwh(project, "plan", "--campaign", "after-upgrade", "--budget", "400", "--cost", "low=4",
                     "--success-rate", "low=0.2")
    assert result.returncode == 0, result.stderr
    with private(project) as con:
        assert con.execute("SELECT targeting FROM ml.campaigns").fetchall() == [("risk",)]


def test_pilot_report_per_arm_effects_saved_per_cost_and_their_difference():
    from churnwh.action.pilot import CampaignError, arm_statistics

    def arm(name, treated, treated_churned, control, control_churned, cost):
        return pl.DataFrame({
            "arm": [name] * (treated + control),
            "pilot_group": ["treatment"] * treated + ["control"] * control,
            "cost": [cost] * treated + [cost] * control,
            "churned": ([1] * treated_churned + [0] * (treated - treated_churned)
                        + [1] * control_churned + [0] * (control - control_churned)),
        })

    outcomes = pl.concat([arm("risk", 700, 140, 300, 66, 10.0), arm("uplift", 700, 70, 300, 60, 10.0)])
    report = arm_statistics(outcomes, "both", k=5, targeting="uplift vs risk")
    by_arm = {row["arm"]: row for row in report["arms"]}
    assert [row["arm"] for row in report["arms"]] == ["uplift", "risk"]  # the --by arm first
    assert by_arm["risk"]["effect"] == pytest.approx(0.22 - 0.20)
    assert by_arm["uplift"]["effect"] == pytest.approx(0.20 - 0.10)
    # saved per 1,000 spent: effect x treated / cost x 1000 = effect x 100 here, its interval scaled alike
    assert by_arm["uplift"]["retained_per_1000_cost"] == pytest.approx(10.0)
    assert by_arm["uplift"]["retained_per_1000_low"] == pytest.approx(100 * by_arm["uplift"]["ci_low"])
    comparison = report["comparison"]
    assert comparison["per_1000_difference"] == pytest.approx(10.0 - 2.0)
    assert comparison["per_1000_difference_low"] < 8.0 < comparison["per_1000_difference_high"]
    assert comparison["effect_difference_low"] > 0  # the uplift arm's larger effect is clear at these sizes
    assert arm_statistics(outcomes.filter(pl.col("arm") == "risk"), "one", k=5, targeting="risk") == {}
    small = pl.concat([arm("risk", 700, 140, 300, 66, 10.0), arm("uplift", 10, 1, 4, 1, 10.0)])
    with pytest.raises(CampaignError, match="uplift arm has 10 treated and 4 control"):
        arm_statistics(small, "both", k=5, targeting="uplift vs risk")
