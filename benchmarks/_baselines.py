"""Peer models and shared options for the benchmarks (benchmark extras; churnwh never imports these)."""

from __future__ import annotations

import ast
import time
from dataclasses import dataclass

import numpy as np
import polars as pl


@dataclass(frozen=True)
class LightGBMModel:
    """A fitted LightGBM booster with the encoding of its input columns."""

    booster: object
    features: list[str]
    codes: dict[str, dict[str, int]]
    """String column -> category code, fitted on the training rows."""

    def matrix(self, frame: pl.DataFrame) -> np.ndarray:
        columns = []
        for c in self.features:
            if c in self.codes:
                columns.append(frame[c].replace_strict(self.codes[c], default=None, return_dtype=pl.Float64)
                               .fill_null(np.nan).to_numpy())
            else:
                columns.append(frame[c].cast(pl.Float64).fill_null(np.nan).to_numpy())
        return np.stack(columns, axis=1)

    def predict(self, frame: pl.DataFrame, **options) -> np.ndarray:
        return self.booster.predict(self.matrix(frame), **options)


def fit_lightgbm_default(
    train: pl.DataFrame, *, label_column: str, seed: int = 0, repeats: int = 1
) -> tuple[LightGBMModel, float]:
    """LightGBM with default hyperparameters, string columns as native categoricals.

    ``repeats`` > 1 trains that many times (the same model: the seed is fixed) and reports the
    fastest, because LightGBM's OpenMP threads slow down far more than XLA's when another job shares
    the cores; it favours LightGBM in the time ratios.

    Returns
    -------
    (model, training seconds including the training matrix conversion)
    """
    import lightgbm

    features = [c for c in train.columns if c != label_column]
    codes = {c: {v: i for i, v in enumerate(train[c].drop_nulls().unique().sort().to_list())}
             for c in features if train.schema[c] == pl.String}
    model = LightGBMModel(booster=None, features=features, codes=codes)
    # The native API with LGBMClassifier's defaults (100 rounds, 31 leaves, learning rate 0.1),
    # so scikit-learn is not needed.
    parameters = {"objective": "binary", "seed": seed, "verbose": -1, "num_threads": 2}
    seconds = np.inf
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        dataset = lightgbm.Dataset(model.matrix(train), label=train[label_column].to_numpy(),
                                   categorical_feature=[features.index(c) for c in codes])
        booster = lightgbm.train(parameters, dataset, num_boost_round=100)
        seconds = min(seconds, time.perf_counter() - started)
    return LightGBMModel(booster=booster, features=features, codes=codes), seconds


def lightgbm_default(
    train: pl.DataFrame, test: pl.DataFrame, *, label_column: str, seed: int = 0
) -> tuple[np.ndarray, float]:
    """Test probabilities and training seconds of ``fit_lightgbm_default``."""
    model, seconds = fit_lightgbm_default(train, label_column=label_column, seed=seed)
    return model.predict(test), seconds


def parse_overrides(items: list[str]) -> dict:
    """``--set KEY=VALUE`` options as TrainConfig overrides (values read as Python literals)."""
    overrides = {}
    for item in items:
        key, value = item.split("=", 1)
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    return overrides


HISTGB_MAX_CATEGORIES = 255
"""scikit-learn's HistGradientBoosting takes categorical codes below its ``max_bins`` (255)."""


@dataclass(frozen=True)
class HistGBModel:
    """A fitted scikit-learn HistGradientBoostingClassifier with the encoding of its input columns."""

    estimator: object
    features: list[str]
    codes: dict[str, dict[str, int]]
    """String column -> category code (the most frequent ``HISTGB_MAX_CATEGORIES`` values; others missing)."""

    def matrix(self, frame: pl.DataFrame) -> np.ndarray:
        return LightGBMModel(booster=None, features=self.features, codes=self.codes).matrix(frame)

    def predict(self, frame: pl.DataFrame) -> np.ndarray:
        return self.estimator.predict_proba(self.matrix(frame))[:, 1]


def fit_histgb_default(
    train: pl.DataFrame, *, label_column: str, seed: int = 0
) -> tuple[HistGBModel, float]:
    """HistGradientBoostingClassifier with default hyperparameters, string columns as native categoricals.

    Defaults include scikit-learn's own early stopping from 10,000 rows on (10% of the rows held
    out inside the fit). Returns (model, training seconds including the matrix conversion).
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    features = [c for c in train.columns if c != label_column]
    codes = {}
    for c in features:
        if train.schema[c] == pl.String:
            counts = train[c].drop_nulls().value_counts(sort=True)
            frequent = counts[c].head(HISTGB_MAX_CATEGORIES).sort().to_list()
            codes[c] = {v: i for i, v in enumerate(frequent)}
    model = HistGBModel(estimator=None, features=features, codes=codes)
    started = time.perf_counter()
    estimator = HistGradientBoostingClassifier(
        random_state=seed, categorical_features=[c in codes for c in features] or None)
    estimator.fit(model.matrix(train), train[label_column].to_numpy())
    seconds = time.perf_counter() - started
    return HistGBModel(estimator=estimator, features=features, codes=codes), seconds


def histgb_default(
    train: pl.DataFrame, test: pl.DataFrame, *, label_column: str, seed: int = 0
) -> tuple[np.ndarray, float]:
    """Test probabilities and training seconds of ``fit_histgb_default``."""
    model, seconds = fit_histgb_default(train, label_column=label_column, seed=seed)
    return model.predict(test), seconds
