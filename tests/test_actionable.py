"""Issue 16 item 9: per-customer reasons a retention team can act on. The ranked reasons of
churn_drivers (and the contact list's reasons in words) are actionable features only; the customer
profile (tenure, acquisition channel, demographics, data-availability flags) is summed in
profile_contribution, the rest in other_contribution, and the three still add up to the attribution."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest

from churnwh.config import parse_config
from churnwh.errors import ConfigError, DataError
from churnwh.ml import explain
from churnwh.stages import actionable, registry
from tests.helpers import churnwh, copy_project, private

DEMO_PROFILE = {"tenure_days", "current_period_days", "previous_active_periods", "acquisition_channel"}
DEMO_WITHHELD = {"age_band", "gender", "region"}


def test_the_default_rule_reads_profile_and_availability_words_in_any_naming_style():
    privacy = {"age_band": "quasi_identifier", "cancel_note": "sensitive"}
    names = ["age_band", "cancel_note", "tenure_days", "acquisition_channel", "SeniorCitizen", "Dependents",
             "customer_age", "area_code", "income_missing", "usage_minutes_30d", "MonthlyCharges", "Contract",
             "tickets_unresolved", "email_open_rate_90d", "days_since_last_purchase", "page_views", "average_spend"]
    classes = actionable.classify(names, privacy)
    assert {n for n, c in classes.items() if c == "withheld"} == {"age_band", "cancel_note"}
    assert {n for n, c in classes.items() if c == "profile"} == {
        "tenure_days", "acquisition_channel", "SeniorCitizen", "Dependents", "customer_age", "area_code",
        "income_missing"}
    # 'usage', 'page' and 'average' contain 'age' but are other words
    assert classes["usage_minutes_30d"] == classes["page_views"] == classes["average_spend"] == "actionable"


def test_config_overrides_move_features_between_classes_and_bad_entries_are_refused():
    features = ["tenure_days", "plan_changes_365d", "plan_tier", "usage_minutes_30d", "age_band"]
    privacy = {"age_band": "quasi_identifier"}
    assert actionable.classify(features, privacy)["tenure_days"] == "profile"
    moved = actionable.classify(features, privacy, actionable=("tenure_days",), not_actionable=("plan_*",))
    assert moved["tenure_days"] == "actionable"
    assert moved["plan_changes_365d"] == moved["plan_tier"] == "profile"
    # an exact name beats a pattern of the other list
    assert actionable.classify(features, privacy, actionable=("plan_tier",),
                               not_actionable=("plan_*",))["plan_tier"] == "actionable"
    with pytest.raises(DataError, match=r"age_band.*quasi_identifier.*remove it"):
        actionable.classify(features, privacy, actionable=("age_*",))
    with pytest.raises(DataError, match=r"not_actionable lists 'tenure_dayz', which matches no feature"):
        actionable.classify(features, privacy, not_actionable=("tenure_dayz",))


def test_explain_section_is_parsed_and_checked():
    config = parse_config({"explain": {"actionable": ["tenure_days"], "not_actionable": ["plan_*"]}}, Path("/p"))
    assert config.explain.actionable == ("tenure_days",) and config.explain.not_actionable == ("plan_*",)
    assert parse_config({}, Path("/p")).explain.actionable == ()
    with pytest.raises(ConfigError, match="both list 'x'"):
        parse_config({"explain": {"actionable": ["x"], "not_actionable": ["x"]}}, Path("/p"))
    with pytest.raises(ConfigError, match="explain.actionable = 'x' is not allowed: a list"):
        parse_config({"explain": {"actionable": "x"}}, Path("/p"))
    with pytest.raises(ConfigError, match="unknown key 'explain.actionabel'"):
        parse_config({"explain": {"actionabel": []}}, Path("/p"))


def _published_drivers(project: Path) -> pl.DataFrame:
    with duckdb.connect(str(project / "warehouse" / "churn.duckdb"), read_only=True) as con:
        return pl.from_arrow(con.sql("SELECT * FROM churn_drivers").to_arrow_table())


def test_published_top_reasons_are_actionable_and_the_summaries_add_up(built_project):
    project, _ = built_project
    drivers = _published_drivers(project)
    assert drivers.height > 0
    assert not set(drivers["feature"]) & (DEMO_PROFILE | DEMO_WITHHELD)
    assert drivers.group_by("customer_pseudonym").agg(pl.col("rank").sort())["rank"].to_list()[0] == [1, 2, 3, 4, 5]
    # one profile sum per customer, in words with its direction
    per = drivers.group_by("customer_pseudonym").agg(
        listed=pl.col("contribution").sum(), profile=pl.col("profile_contribution").unique(),
        other=pl.col("other_contribution").unique(), profile_reason=pl.col("profile_reason").unique())
    assert (per["profile"].list.len() == 1).all() and (per["other"].list.len() == 1).all()
    per = per.with_columns(pl.col("profile", "other", "profile_reason").list.first())
    assert per["profile"].abs().max() > 0
    for text, value in zip(per["profile_reason"], per["profile"]):
        assert text.startswith("customer profile (tenure days, ") and "acquisition channel" in text
        assert text.endswith("raises risk" if value >= 0 else "lowers risk")
    # listed + profile + other = logit(customer) - logit(typical retained customer), within the tolerance
    with private(project) as con:
        record = registry.current(con)
        model = registry.load(project / "warehouse" / "models", record.version)
        retained = pl.from_arrow(con.sql("SELECT * FROM marts.training_set WHERE churned = 0").to_arrow_table())
        scoring = pl.from_arrow(con.sql("SELECT * FROM marts.scoring_set").to_arrow_table())
        comment = con.execute("SELECT comment FROM duckdb_tables() WHERE table_name = 'churn_drivers'").fetchone()[0]
    from churnwh.ml.train import predict_logit

    baseline = explain.typical_retained_baseline(model, retained)
    baseline_logit = explain.integrated_gradients(model, scoring.head(1), baseline).baseline_logit
    logits = pl.DataFrame({"customer_pseudonym": scoring["customer_pseudonym"],
                           "difference": predict_logit(model, scoring) - baseline_logit})
    joined = per.join(logits, on="customer_pseudonym")
    assert joined.height == per.height == scoring.height
    published = (joined["listed"] + joined["profile"] + joined["other"]).to_numpy()
    assert np.abs(published - joined["difference"].to_numpy()).max() <= explain.DEFAULT_TOLERANCE
    assert "actionable" in comment and "profile_contribution" in comment and "add up" in comment
    # the global importance still covers every feature, with its class
    with private(project) as con:
        flags = dict(con.execute("SELECT feature, actionable FROM ml.feature_importance").fetchall())
    assert not any(flags[f] for f in DEMO_PROFILE | DEMO_WITHHELD) and flags["usage_minutes_30d"]


def test_a_config_override_changes_the_published_reasons(built_project, tmp_path):
    project = copy_project(built_project[0], tmp_path / "p")
    config = project / "churnwh.toml"
    config.write_text(config.read_text() + '\n[explain]\nactionable = ["tenure_days"]\n'
                                           'not_actionable = ["monthly_price", "current_plan*"]\n')
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    assert "v0002" not in result.stdout  # which reasons are listed is no reason to retrain
    drivers = _published_drivers(project)
    features = set(drivers["feature"])
    assert "tenure_days" in features
    assert not features & {"monthly_price", "current_plan", "current_plan_tier"}
    assert "monthly price" in drivers["profile_reason"][0] and "tenure days" not in drivers["profile_reason"][0]

    config.write_text(config.read_text().replace('actionable = ["tenure_days"]', 'actionable = ["tenure_dayz"]'))
    before = (project / "warehouse" / "churn.duckdb").read_bytes()
    bad = churnwh(project, "build")
    assert bad.returncode == 1 and "[explain] actionable lists 'tenure_dayz'" in bad.stderr, bad.stderr
    assert (project / "warehouse" / "churn.duckdb").read_bytes() == before


def flat_rows(n: int = 300, seed: int = 11) -> list[list[str]]:
    """Churn driven mostly by two profile columns (Dependents, tenure_months), a little by support calls."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        dependents, tenure, calls = rng.choice(["Yes", "No"]), rng.randint(1, 72), rng.randint(0, 5)
        risk = 0.05 + 0.4 * (dependents == "No") + 0.3 * (tenure < 12) + 0.04 * calls
        rows.append([f"A{i:04d}", dependents, str(tenure), str(calls), f"{rng.uniform(20, 80):.2f}",
                     "Yes" if rng.random() < risk else "No"])
    return rows


def test_a_flat_projects_demographic_column_is_never_a_reason(tmp_path):
    data = tmp_path / "customers.csv"
    with data.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["account", "Dependents", "tenure_months", "support_calls", "monthly_fee", "Churn"])
        writer.writerows(flat_rows())
    project = tmp_path / "proj"
    init = churnwh(Path("."), "init", str(project), "--flat", "--from", str(data), "--id-column", "account",
                   "--label", "Churn")
    assert init.returncode == 0, init.stderr
    from tests.test_init import tiny

    tiny(project)
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    drivers = _published_drivers(project)
    assert drivers.height > 0
    # two actionable features: the reasons are those two, never a profile column
    assert set(drivers["feature"]) == {"support_calls", "monthly_fee"}
    reason = drivers["profile_reason"][0]
    assert "dependents" in reason.lower() and "tenure months" in reason
    assert drivers["profile_contribution"].abs().max() > 0
