"""Preprocessing: fitted on training rows, serializable, strict about types."""

from __future__ import annotations

import json
import logging

import numpy as np
import polars as pl
import pytest

from churnwh.errors import DataError
from churnwh.ml import preprocess


@pytest.fixture(scope="module")
def training_frame() -> pl.DataFrame:
    rng = np.random.default_rng(0)
    rows = 200
    amount = rng.normal(100.0, 20.0, rows)
    amount[:10] = np.nan
    amount[10] = np.inf
    return pl.DataFrame({
        "customer_pseudonym": [f"p{i:04d}" for i in range(rows)],
        "amount": amount,
        "sessions": rng.integers(0, 30, rows),
        "is_family": rng.random(rows) < 0.3,
        "constant": np.full(rows, 7.0),
        "region": rng.choice(["north", "south", "east", "rare"], rows, p=[0.5, 0.3, 0.19, 0.01]),
        "churned": rng.integers(0, 2, rows),
    }).with_columns(pl.when(pl.int_range(pl.len()) < 5).then(None).otherwise(pl.col("region"))
                    .alias("region"))


@pytest.fixture(scope="module")
def fitted(training_frame) -> preprocess.Preprocessor:
    return preprocess.fit_preprocessor(
        training_frame, exclude=("customer_pseudonym", "churned"), n_bins=8, min_category_count=5)


def test_feature_kinds_are_read_from_dtypes(fitted):
    assert fitted.feature_kinds == {
        "amount": "numeric", "sessions": "numeric", "is_family": "numeric", "region": "categorical",
    }


def test_constant_column_is_dropped_with_a_warning(training_frame, caplog):
    with caplog.at_level(logging.WARNING, logger="churnwh.ml.preprocess"):
        fitted = preprocess.fit_preprocessor(training_frame, exclude=("customer_pseudonym", "churned"))
    assert "constant" not in fitted.feature_names
    assert fitted.dropped_constant == ("constant",)
    assert "constant" in caplog.text and "p0001" not in caplog.text


def test_missing_and_infinite_values_get_an_indicator_and_the_median(fitted, training_frame):
    assert fitted.numeric_input_names == ["amount", "sessions", "is_family", "amount__missing"]
    encoded = preprocess.transform(fitted, training_frame)
    indicator = encoded.numeric[:, 3]
    np.testing.assert_array_equal(indicator[:11], 1.0)  # 10 NaN and one +inf
    assert indicator[11:].sum() == 0
    np.testing.assert_array_equal(encoded.numeric[:11, 0], 0.0)
    assert np.isfinite(encoded.numeric).all()


def test_numeric_values_are_robustly_scaled_and_smoothly_clipped(fitted):
    amount = fitted.numeric[0]
    frame = pl.DataFrame({"amount": [amount.center, 1e12, -1e12], "sessions": [1, 2, 3],
                          "is_family": [True, False, True], "region": ["north"] * 3})
    encoded = preprocess.transform(fitted, frame).numeric[:, 0]
    assert encoded[0] == 0.0
    assert preprocess.SMOOTH_CLIP - 1e-6 < encoded[1] <= preprocess.SMOOTH_CLIP
    assert -preprocess.SMOOTH_CLIP <= encoded[2] < -preprocess.SMOOTH_CLIP + 1e-6


def test_categorical_vocabulary_min_count_and_unknown_slot(fitted):
    region = fitted.categorical[0]
    assert region.vocabulary == ("north", "south", "east")  # 'rare' is under min_category_count
    frame = pl.DataFrame({"amount": [1.0] * 5, "sessions": [1] * 5, "is_family": [True] * 5,
                          "region": ["north", "east", "never_seen", "rare", None]})
    codes = preprocess.transform(fitted, frame).categorical[:, 0]
    np.testing.assert_array_equal(codes, [1, 3, 0, 0, 0])


def test_vocabulary_is_capped_by_frequency():
    frame = pl.DataFrame({"plan": ["a"] * 10 + ["b"] * 8 + ["c"] * 6 + ["d"] * 6, "x": range(30)})
    fitted = preprocess.fit_preprocessor(frame, max_categories=3, min_category_count=1)
    assert fitted.categorical[0].vocabulary == ("a", "b", "c")


def test_serialized_preprocessor_round_trips(fitted, training_frame):
    meta, arrays = fitted.to_dict()
    restored = preprocess.Preprocessor.from_dict(json.loads(json.dumps(meta)), arrays)
    before = preprocess.transform(fitted, training_frame)
    after = preprocess.transform(restored, training_frame)
    np.testing.assert_array_equal(before.numeric, after.numeric)
    np.testing.assert_array_equal(before.categorical, after.categorical)


def test_bin_edges_are_training_quantiles(fitted, training_frame):
    assert fitted.bin_edges.shape == (4, 9) and fitted.bin_mask.shape == (4, 8)
    encoded = preprocess.transform(fitted, training_frame).numeric
    present = {0: encoded[:, 3] == 0.0, 1: np.ones(len(encoded), bool), 2: np.ones(len(encoded), bool)}
    for row, rows in present.items():  # amount (present values only), sessions, is_family
        values = encoded[rows, row].astype(np.float64)
        expected = np.unique(np.quantile(values, np.linspace(0.0, 1.0, 9)))
        bins = int(fitted.bin_mask[row].sum())
        assert bins == expected.size - 1, fitted.numeric_input_names[row]
        np.testing.assert_allclose(fitted.bin_edges[row, : bins + 1], expected, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(fitted.bin_edges[row, bins + 1 :], fitted.bin_edges[row, bins])  # padding
    # Quantile bins of a continuous input hold about equal shares of the training rows.
    amount = encoded[present[0], 0]
    shares = np.histogram(amount, bins=fitted.bin_edges[0].astype(np.float64))[0] / amount.size
    assert np.abs(shares - 1 / 8).max() < 0.02, shares
    assert fitted.bin_mask[2].sum() == 1  # boolean: one bin, from 0 to 1
    np.testing.assert_array_equal(fitted.bin_edges[3, :2], [0.0, 1.0])  # missing indicator


def test_changed_type_raises_data_error_naming_the_column(fitted, training_frame):
    changed = training_frame.with_columns(pl.col("sessions").cast(pl.String))
    with pytest.raises(DataError, match="sessions"):
        preprocess.transform(fitted, changed)
    changed = training_frame.with_columns(pl.col("region").cast(pl.Categorical).to_physical())
    with pytest.raises(DataError, match="region"):
        preprocess.transform(fitted, changed)


def test_missing_feature_column_raises(fitted, training_frame):
    with pytest.raises(DataError, match="amount"):
        preprocess.transform(fitted, training_frame.drop("amount"))


def test_unsupported_dtype_raises_with_a_fix():
    frame = pl.DataFrame({"signup": pl.date_range(pl.date(2024, 1, 1), pl.date(2024, 1, 3), eager=True),
                          "x": [1.0, 2.0, 3.0]})
    with pytest.raises(DataError, match="signup.*exclude"):
        preprocess.fit_preprocessor(frame)
