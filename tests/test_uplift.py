"""The uplift estimator on synthetic pilots with a known heterogeneous effect of contact on churn."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from churnwh.errors import ChurnwhError, DataError
from churnwh.ml import train, uplift, uplift_artifact, uplift_metrics
from tests.uplift_data import multiplicative_pilot, synthetic_pilot

TINY = train.TrainConfig(
    epochs=60, batch_size=128, learning_rate=3e-3, hidden=32, depth=2, k=4, n_bins=8, d_embed=4,
    dropout=0.0, patience=8, seed=3, valid_fraction=0.2, test_fraction=0.3,
)
RULE = uplift.PilotSizeRule(min_gain=0.1, target_share=0.5)
TREATED_SHARE = 0.6


def validate(members: pl.DataFrame, config: train.TrainConfig = TINY):
    return uplift.validate_uplift(
        members, treatment_column="treated", label_column="churned", risk_column="risk_score",
        id_column="member", exclude=("true_churn_change",), treated_share=TREATED_SHARE, config=config,
        rule=RULE)


@pytest.fixture(scope="module")
def pilot() -> pl.DataFrame:
    return synthetic_pilot(6000, seed=0, treated_share=TREATED_SHARE)


@pytest.fixture(scope="module")
def validated(pilot):
    return validate(pilot)


@pytest.fixture(scope="module")
def fresh_members() -> pl.DataFrame:
    """Members the model never saw, many of them, so the comparison of rules is not held-out noise."""
    return synthetic_pilot(30_000, seed=99, treated_share=TREATED_SHARE)


def test_network_targets_better_than_risk_and_as_well_as_two_models(validated, pilot, fresh_members):
    model, _ = validated
    learn, _ = uplift.split_members(pilot, treatment_column="treated", label_column="churned",
                                    test_fraction=TINY.test_fraction, seed=TINY.seed + 1)
    comparison = uplift.compare_targeting(model, learn, fresh_members, risk_column="risk_score")
    qini = {name: curve.qini_coefficient for name, curve in comparison.rules.items()}
    auuc = {name: curve.auuc for name, curve in comparison.rules.items()}
    assert qini["network"] > qini["risk"] + 0.001
    assert auuc["network"] > auuc["risk"]
    # at 6,000 members the tiny network is on par with the two logistic regressions (its Qini is
    # Qini over 6 data and model seeds: 0.71-1.06); it pulls ahead on larger pilots (benchmarks/bench_uplift.py)
    assert qini["network"] > 0.7 * qini["two_model"]
    assert auuc["network"] > comparison.rules["network"].auuc_random  # better than contacting at random


def test_estimated_effect_follows_the_true_effect(validated, fresh_members):
    model, _ = validated
    estimates = uplift.predict_uplift(model, fresh_members)
    truth = fresh_members["true_churn_change"].to_numpy()
    assert np.corrcoef(estimates.churn_change, truth)[0, 1] > 0.35
    np.testing.assert_allclose(estimates.prevented, -estimates.churn_change)
    assert np.all((estimates.churn_if_contacted > 0) & (estimates.churn_if_contacted < 1))
    saveable = truth < -0.05
    unsaveable = fresh_members["usage_drop"].to_numpy() > 0.6
    assert estimates.prevented[saveable].mean() > estimates.prevented[unsaveable].mean() + 0.03


def test_validation_reports_every_rule_on_held_out_members(validated, pilot):
    model, validation = validated
    assert set(validation.rules) == {"network", "two_model", "risk"}
    assert validation.test_members == validation.test_treated + validation.test_control
    assert validation.test_members == pytest.approx(0.3 * pilot.height, abs=4)
    assert 1 <= model.best_epoch <= len(model.history) < TINY.epochs
    assert "risk_score" not in model.preprocessor.feature_names
    assert "true_churn_change" not in model.preprocessor.feature_names
    curve = validation.rules["network"]
    assert curve.share[0] == 0.0 and curve.share[-1] == 1.0 and curve.qini[0] == 0.0
    assert set(validation.network_gain) == {"two_model", "risk"}
    for difference, low, high in validation.network_gain.values():
        assert low <= difference <= high
    report = validation.to_dict()
    assert set(report["rules"]["risk"]) == {"qini_coefficient", "auuc", "auuc_random", "share", "qini", "uplift"}
    assert report["pilot"]["large_enough"] is True


def test_same_seed_gives_the_same_estimates(validated, pilot, fresh_members):
    model, _ = validated
    again, _ = validate(pilot)
    sample = fresh_members.head(500)
    np.testing.assert_array_equal(uplift.predict_uplift(model, sample).churn_change,
                                  uplift.predict_uplift(again, sample).churn_change)


def test_risk_offset_network_corrects_the_churn_models_logit(pilot, fresh_members, tmp_path):
    clipped = pl.col("risk_score").clip(0.001, 0.999)
    members, fresh = pilot.with_columns(clipped), fresh_members.with_columns(clipped)
    model, validation = uplift.validate_uplift(
        members, treatment_column="treated", label_column="churned", risk_column="risk_score", id_column="member",
        exclude=("true_churn_change",), treated_share=TREATED_SHARE, config=TINY, rule=RULE, risk_offset=True)
    assert model.risk_column == "risk_score" and "risk_score" not in model.preprocessor.feature_names
    assert set(validation.rules) == {"network", "two_model", "risk"}
    learn, _ = uplift.split_members(members, treatment_column="treated", label_column="churned",
                                    test_fraction=TINY.test_fraction, seed=TINY.seed + 1)
    comparison = uplift.compare_targeting(model, learn, fresh, risk_column="risk_score")
    assert comparison.rules["network"].qini_coefficient > comparison.rules["risk"].qini_coefficient + 0.001
    estimates = uplift.predict_uplift(model, fresh)
    # it learns less of the effect than the plain network (0.27 here against above 0.35; the learning curve
    # found the same on the demo), which is why the build does not use the offset
    assert np.corrcoef(estimates.churn_change, fresh["true_churn_change"].to_numpy())[0, 1] > 0.2
    loaded = uplift_artifact.load_uplift_model(uplift_artifact.save_uplift_model(model, tmp_path / "offset"))
    assert loaded.risk_column == "risk_score"
    np.testing.assert_array_equal(uplift.predict_uplift(loaded, fresh.head(300)).churn_change,
                                  uplift.predict_uplift(model, fresh.head(300)).churn_change)
    with pytest.raises(DataError, match="risk column 'risk_score' is not in the members frame"):
        uplift.predict_uplift(model, fresh.drop("risk_score"))
    with pytest.raises(DataError, match="outside 0..1"):
        uplift.predict_uplift(model, fresh.with_columns(risk_score=pl.lit(1.5)))


# --- Too small to learn from ------------------------------------------------------------------------


def test_required_size_tells_the_targeted_fifth_from_the_risk_targeted_one():
    rule = uplift.PilotSizeRule()
    # (2 / 0.2) * (1.95996 + 0.84162)^2 * 0.067 * 0.933 / (0.04^2 * 0.25) = 12,266.0
    assert uplift.required_members(0.067, 0.5, rule) == 12267
    # the learning curve's pilots (6.4% churn): the learners beat the churn model from 10,000 members
    assert 10_000 <= uplift.required_members(0.064, 0.5, rule) <= 12_000
    assert uplift.required_members(0.067, 0.9, rule) > uplift.required_members(0.067, 0.5, rule)
    # a smaller gain to detect or a smaller share contacted: more members
    assert uplift.required_members(0.067, 0.5, uplift.PilotSizeRule(min_gain=0.02)) == 49065
    assert uplift.required_members(0.067, 0.5, uplift.PilotSizeRule(target_share=0.1)) == 24533
    # rare churn: the outcome count decides (30 churners in the smaller arm)
    assert uplift.required_members(0.01, 0.5, uplift.PilotSizeRule(min_gain=0.5)) == 6000


def test_refusal_fires_below_the_threshold_and_not_above():
    members = synthetic_pilot(3000, seed=1, treated_share=0.5)
    size = uplift.pilot_size(members["treated"], members["churned"], RULE)
    assert size.large_enough and size.members > size.required_members
    uplift.require_learnable_pilot(members["treated"], members["churned"], RULE)
    small = members.head(size.required_members - 100)
    small_size = uplift.pilot_size(small["treated"], small["churned"], RULE)
    assert small_size.members < small_size.required_members < size.members
    with pytest.raises(uplift.PilotTooSmall) as refused:
        uplift.fit_uplift(small, treatment_column="treated", label_column="churned", id_column="member",
                          exclude=("risk_score", "true_churn_change"), config=TINY, rule=RULE)
    message = str(refused.value)
    assert "\n" not in message
    treated = int(small["treated"].sum())
    churned_treated = int(small.filter(pl.col("treated") == 1)["churned"].sum())
    assert f"{treated} treated members ({churned_treated} churned)" in message
    assert f"at least {small_size.required_members} members" in message
    assert isinstance(refused.value, DataError)


def test_refusal_counts_churners_per_arm():
    treated = np.r_[np.ones(5000), np.zeros(5000)]
    churned = np.zeros(10_000)
    churned[:200] = 1  # 200 treated churners, no control churner
    rule = uplift.PilotSizeRule(min_gain=0.2)
    size = uplift.pilot_size(treated, churned, rule)
    assert size.members > size.required_members and not size.large_enough
    with pytest.raises(uplift.PilotTooSmall, match="5000 control members \\(0 churned\\)"):
        uplift.require_learnable_pilot(treated, churned, rule)


def test_assignment_far_from_the_planned_share_is_refused(pilot):
    with pytest.raises(DataError, match="does not look random"):
        uplift.fit_uplift(pilot, treatment_column="treated", label_column="churned", id_column="member",
                          exclude=("risk_score", "true_churn_change"), treated_share=0.3, config=TINY, rule=RULE)


def test_treatment_column_values():
    frame = pl.DataFrame({"group": ["treatment", "control", "treatment"], "bad": ["a", "control", "b"],
                          "flag": [True, False, True], "number": [1, 2, 0]})
    np.testing.assert_array_equal(uplift.treatment_flags(frame, "group"), [1, 0, 1])
    np.testing.assert_array_equal(uplift.treatment_flags(frame, "flag"), [1, 0, 1])
    with pytest.raises(DataError, match="'bad' has values other than 'treatment' and 'control'"):
        uplift.treatment_flags(frame, "bad")
    with pytest.raises(DataError, match="'number' has values other than 0 and 1"):
        uplift.treatment_flags(frame, "number")
    with pytest.raises(DataError, match="'missing' is not in the members frame"):
        uplift.treatment_flags(frame, "missing")


# --- Curves -----------------------------------------------------------------------------------------


def test_qini_and_uplift_curves_by_hand():
    # ranked: (T, churned) = (1,0) (0,1) (1,1) (0,0)
    scores = np.array([4.0, 3.0, 2.0, 1.0])
    treated = np.array([1, 0, 1, 0])
    churned = np.array([0, 1, 1, 0])
    curve = uplift_metrics.uplift_curve(scores, treated, churned, n_points=5)
    # k=1: no control member yet -> 0; k=2: n_t=n_c=1, y_t=0, y_c=1 -> Q=1, U=(1/1-0/1)*2=2;
    # k=3: n_t=2, n_c=1, y_t=1, y_c=1 -> Q=1*2/1-1=1, U=(1/1-1/2)*3=1.5; k=4: y_t=y_c=1, n_t=n_c=2 -> 0
    np.testing.assert_allclose(curve.qini, [0, 0, 0.25, 0.25, 0.0])
    np.testing.assert_allclose(curve.uplift, [0, 0, 0.5, 0.375, 0.0])
    # trapezoids over the shares 0, 1/4, ..., 1 (the random line is 0: Q(N) = 0)
    assert curve.qini_coefficient == pytest.approx(0.125)
    assert curve.auuc == pytest.approx(0.21875)
    assert curve.auuc_random == 0.0


def test_perfect_ranking_beats_random_and_reversed():
    rng = np.random.default_rng(0)
    n = 4000
    helps = rng.random(n) < 0.5
    treated = (rng.random(n) < 0.5).astype(int)
    churned = (rng.random(n) < np.where(helps & (treated == 1), 0.1, 0.4)).astype(int)
    good = uplift_metrics.uplift_curve(helps.astype(float), treated, churned)
    reversed_ = uplift_metrics.uplift_curve(-helps.astype(float), treated, churned)
    random = uplift_metrics.uplift_curve(rng.random(n), treated, churned)
    assert good.qini_coefficient > abs(random.qini_coefficient) + 0.01
    assert reversed_.qini_coefficient < -0.01
    assert good.auuc > good.auuc_random > reversed_.auuc
    # tied scores form one step: a constant score is the random line
    constant = uplift_metrics.uplift_curve(np.zeros(n), treated, churned)
    assert constant.qini_coefficient == pytest.approx(0.0, abs=1e-12)
    assert constant.auuc == pytest.approx(constant.auuc_random)


def test_paired_bootstrap_interval_of_a_qini_difference():
    rng = np.random.default_rng(1)
    n = 3000
    helps = rng.random(n) < 0.5
    treated = (rng.random(n) < 0.5).astype(int)
    churned = (rng.random(n) < np.where(helps & (treated == 1), 0.1, 0.4)).astype(int)
    noise = rng.random(n)
    better = uplift_metrics.qini_difference_interval(helps + 0.1 * noise, noise, treated, churned, seed=0)
    difference, low, high = better
    assert 0 < low < difference < high
    assert better == uplift_metrics.qini_difference_interval(helps + 0.1 * noise, noise, treated, churned, seed=0)
    same_low, same_high = uplift_metrics.qini_difference_interval(noise, noise, treated, churned)[1:]
    assert same_low == same_high == 0.0


def test_saved_model_estimates_what_it_did_and_holds_no_rows(validated, fresh_members, tmp_path):
    model, _ = validated
    directory = uplift_artifact.save_uplift_model(model, tmp_path / "uplift")
    loaded = uplift_artifact.load_uplift_model(directory)
    sample = fresh_members.head(300)
    np.testing.assert_array_equal(uplift.predict_uplift(loaded, sample).churn_change,
                                  uplift.predict_uplift(model, sample).churn_change)
    assert loaded.pilot == model.pilot and loaded.treatment_column == "treated"
    stored = (directory / uplift_artifact.META_FILE).read_text()
    assert "member" not in json.loads(stored)["features"]
    assert "risk_score" not in stored and "true_churn_change" not in stored
    (directory / uplift_artifact.META_FILE).unlink()
    with pytest.raises(ChurnwhError, match="is not a saved uplift model"):
        uplift_artifact.load_uplift_model(directory)


# --- the risk-offset estimator (the build's default) ---------------------------------------------


@pytest.fixture(scope="module")
def multiplicative():
    """A pilot and fresh customers with a multiplicative effect, and the risk-offset model of the pilot."""
    members = multiplicative_pilot(4000, seed=1)
    fresh = multiplicative_pilot(20_000, seed=98)
    model = uplift.fit_offset_uplift(members, treatment_column="treated", label_column="churned",
                                     risk_column="risk_score", id_column="member", exclude=("true_churn_change",),
                                     treated_share=0.5, rule=RULE)
    return members, fresh, model


def test_risk_offset_model_ranks_the_true_effect_better_than_risk(multiplicative):
    _, fresh, model = multiplicative
    estimates = uplift.predict_uplift(model, fresh)
    prevented = -fresh["true_churn_change"].to_numpy()
    top = fresh.height // 5

    def saved(score: np.ndarray) -> float:
        return float(prevented[np.argsort(-score, kind="stable")[:top]].mean())

    by_model, by_risk = saved(estimates.prevented), saved(fresh["risk_score"].to_numpy())
    assert by_model > 1.2 * by_risk, (by_model, by_risk)
    # the high-risk customers a contact cannot save get less of the estimated effect than the price-sensitive
    unsaveable = (fresh["usage_drop"] > 0.8).to_numpy()
    responsive = ~unsaveable & (fresh["discount_interest"] > 0).to_numpy()
    relative = estimates.prevented / estimates.churn_if_not_contacted
    assert relative[responsive].mean() > relative[unsaveable].mean() + 0.3


def test_risk_offset_model_is_deterministic_and_saved_without_rows(multiplicative, tmp_path):
    members, fresh, model = multiplicative
    again = uplift.fit_offset_uplift(members, treatment_column="treated", label_column="churned",
                                     risk_column="risk_score", id_column="member", exclude=("true_churn_change",),
                                     rule=RULE)
    sample = fresh.head(300)
    np.testing.assert_array_equal(uplift.predict_uplift(again, sample).churn_change,
                                  uplift.predict_uplift(model, sample).churn_change)
    directory = uplift_artifact.save_uplift_model(model, tmp_path / "offset")
    loaded = uplift_artifact.load_uplift_model(directory)
    np.testing.assert_array_equal(uplift.predict_uplift(loaded, sample).churn_change,
                                  uplift.predict_uplift(model, sample).churn_change)
    stored = (directory / uplift_artifact.META_FILE).read_text()
    assert json.loads(stored)["estimator"] == "risk_offset"
    assert "member" not in json.loads(stored)["features"] and "true_churn_change" not in stored
    with pytest.raises(DataError, match="risk_score"):
        uplift.predict_uplift(model, sample.drop("risk_score"))


def test_validation_of_the_risk_offset_model_needs_a_risk_column(multiplicative):
    members, _, _ = multiplicative
    with pytest.raises(DataError, match="churn model's probability"):
        uplift.validate_uplift(members, treatment_column="treated", label_column="churned", id_column="member",
                               exclude=("true_churn_change", "risk_score"), rule=RULE, estimator="risk_offset")
    model, validation = uplift.validate_uplift(
        members, treatment_column="treated", label_column="churned", risk_column="risk_score", id_column="member",
        exclude=("true_churn_change",), treated_share=0.5, rule=RULE, estimator="risk_offset")
    assert isinstance(model, uplift.OffsetUpliftModel) and set(validation.rules) == {"network", "two_model", "risk"}
