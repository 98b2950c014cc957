"""Metrics against hand-computed values, the logistic baseline, and calibration."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from churnwh.ml import calibrate, metrics

LABELS = np.array([0, 0, 1, 1])
SCORES = np.array([0.1, 0.4, 0.35, 0.8])


def test_roc_auc_hand_computed_perfect_and_tied():
    assert metrics.roc_auc(LABELS, SCORES) == pytest.approx(0.75)
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert metrics.roc_auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert metrics.roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    # one tied positive/negative pair counts one half: (3 + 0.5) / 4
    assert metrics.roc_auc([0, 0, 1, 1], [0.1, 0.3, 0.3, 0.9]) == pytest.approx(0.875)
    assert np.isnan(metrics.roc_auc([1, 1], [0.2, 0.3]))


def test_average_precision_hand_computed():
    # ranked: 0.8 (+), 0.4 (-), 0.35 (+), 0.1 (-): 0.5 * 1 + 0.5 * 2/3
    assert metrics.pr_auc(LABELS, SCORES) == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert metrics.pr_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert metrics.pr_auc([0, 1, 0, 1], [0.5] * 4) == pytest.approx(0.5)


def test_log_loss_brier_accuracy_hand_computed():
    expected = -np.mean([np.log(0.9), np.log(0.6), np.log(0.35), np.log(0.8)])
    assert metrics.log_loss(LABELS, SCORES) == pytest.approx(expected)
    assert metrics.brier(LABELS, SCORES) == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    assert metrics.accuracy(LABELS, SCORES) == pytest.approx(0.75)


def test_calibration_table_and_ece_equal_mass_bins():
    labels = np.array([0, 0, 1, 0, 1, 1])
    probabilities = np.array([0.1, 0.1, 0.1, 0.9, 0.9, 0.9])
    table = metrics.calibration_table(labels, probabilities, n_bins=2)
    assert table["rows"].to_list() == [3, 3]
    np.testing.assert_allclose(table["observed_rate"].to_numpy(), [1 / 3, 2 / 3])
    expected = 0.5 * abs(0.1 - 1 / 3) + 0.5 * abs(0.9 - 2 / 3)
    assert metrics.expected_calibration_error(labels, probabilities, n_bins=2) == pytest.approx(expected)
    assert metrics.expected_calibration_error(labels, probabilities, n_bins=2, strategy="uniform") == \
        pytest.approx(expected)


def test_lift_table_and_top_decile_lift():
    labels = np.array([1] * 2 + [0] * 18)
    scores = np.linspace(1.0, 0.0, 20)
    table = metrics.lift_table(labels, scores)
    assert isinstance(table, pl.DataFrame) and table.height == 10
    assert table["rows"].to_list() == [2] * 10
    assert metrics.top_decile_lift(labels, scores) == pytest.approx(10.0)
    assert table["cumulative_capture"][0] == 1.0


def test_logistic_regression_is_at_its_optimum():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(500, 3))
    labels = (rng.random(500) < 1 / (1 + np.exp(-(features @ [1.5, -1.0, 0.0] + 0.3)))).astype(float)
    weights = metrics.fit_logistic_regression(features, labels, l2=1.0)
    p = metrics.predict_logistic_regression(weights, features)
    gradient = np.r_[features.T @ (p - labels) + 1.0 * weights[:-1], np.sum(p - labels)]
    np.testing.assert_allclose(gradient, 0.0, atol=1e-8)
    assert weights[0] == pytest.approx(1.5, abs=0.3) and weights[1] == pytest.approx(-1.0, abs=0.3)


@pytest.mark.parametrize("method", ["temperature", "platt"])
def test_calibration_lowers_ece_of_an_overconfident_score(method):
    rng = np.random.default_rng(1)
    true_logit = rng.normal(-1.0, 1.5, 20_000)
    labels = (rng.random(true_logit.size) < 1 / (1 + np.exp(-true_logit))).astype(float)
    overconfident = 3.0 * true_logit + (1.0 if method == "platt" else 0.0)
    raw = 1 / (1 + np.exp(-overconfident))
    calibrator = calibrate.fit_calibrator(overconfident, labels, method)
    calibrated = calibrate.apply_calibrator(calibrator, overconfident)
    assert calibrator["slope"] == pytest.approx(1 / 3, abs=0.03)
    ece_before = metrics.expected_calibration_error(labels, raw)
    ece_after = metrics.expected_calibration_error(labels, calibrated)
    assert ece_after < 0.02 < ece_before
    assert metrics.log_loss(labels, calibrated) < metrics.log_loss(labels, raw)


def test_no_calibration_is_identity():
    calibrator = calibrate.fit_calibrator(np.array([0.3]), np.array([1.0]), "none")
    np.testing.assert_allclose(calibrate.apply_calibrator(calibrator, np.array([0.0, 2.0])),
                               [0.5, 1 / (1 + np.exp(-2.0))])
