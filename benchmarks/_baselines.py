"""Peer models for the public benchmarks (benchmark extras; churnwh itself never imports these)."""

from __future__ import annotations

import time

import numpy as np
import polars as pl


def lightgbm_default(
    train: pl.DataFrame, test: pl.DataFrame, *, label_column: str, seed: int = 0
) -> tuple[np.ndarray, float]:
    """LightGBM with default hyperparameters, string columns as native categoricals.

    Returns
    -------
    (test probabilities, training seconds)
    """
    import lightgbm

    features = [c for c in train.columns if c != label_column]
    categorical = [c for c in features if train.schema[c] == pl.String]
    codes = {c: {v: i for i, v in enumerate(train[c].drop_nulls().unique().sort().to_list())}
             for c in categorical}

    def matrix(frame: pl.DataFrame) -> np.ndarray:
        columns = []
        for c in features:
            if c in codes:
                columns.append(frame[c].replace_strict(codes[c], default=None, return_dtype=pl.Float64)
                               .fill_null(np.nan).to_numpy())
            else:
                columns.append(frame[c].cast(pl.Float64).fill_null(np.nan).to_numpy())
        return np.stack(columns, axis=1)

    categorical_indices = [features.index(c) for c in categorical]
    # The native API with LGBMClassifier's defaults (100 rounds, 31 leaves, learning rate 0.1),
    # so scikit-learn is not needed.
    parameters = {"objective": "binary", "seed": seed, "verbose": -1, "num_threads": 2}
    started = time.perf_counter()
    dataset = lightgbm.Dataset(matrix(train), label=train[label_column].to_numpy(),
                               categorical_feature=categorical_indices)
    booster = lightgbm.train(parameters, dataset, num_boost_round=100)
    seconds = time.perf_counter() - started
    return booster.predict(matrix(test)), seconds
