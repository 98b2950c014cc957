"""``TrainConfig``, the training hyperparameters, in a module without JAX: reading and validating
``[network]`` and deciding whether a model can be reused need the settings, not JAX (which takes
seconds to start). ``churnwh.ml.train`` trains with them and re-exports them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

AUTO_BATCH_MIN = 256
AUTO_BATCH_MAX = 4096
SHARED_LAYER_MIN_ROWS = 100_000


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters. Defaults were chosen by 5-fold CV means on the public bank and Telco churn
    sets (``benchmarks/bench_public.py``): against hidden=256, lr=1e-3, dropout=0.1 this setting
    stops later and steadier (Telco's best epoch had been 2-4) and is 2x faster.

    Cost settings (CPU): ``batch_size = 0`` picks the batch by data size (``batch_and_learning_rate``:
    256 rows on the public sets, as before, up to 4,096 on a million rows, learning rate scaled by
    the square root); ``max_epoch_rows`` caps the rows one epoch sees (a fresh random sample each
    epoch), so on large tables validation, early stopping and ``patience`` work on sub-epochs;
    early stopping waits ``patience`` epochs without a gain, but no more than ``patience_rows``
    training rows (4 sub-epochs on a large table instead of 16); ``shared_layers = 1`` computes the
    first (widest) backbone layer once per row instead of once per member (about k times cheaper
    there), and ``-1`` (auto) does so from ``SHARED_LAYER_MIN_ROWS`` training rows on: on the demo at
    20,000 customers (111,858 training rows) it was as accurate as the full ensemble and 2.6 times
    cheaper, on the 8,000-row bank folds 0.006 ROC-AUC worse; ``ple_direct`` feeds the
    piecewise-linear encodings straight into the first layer. ``purge_days`` is the gap of the time
    split (``splits.time_split``): the training stage sets it to lead + label window + churn gap so
    no churn event is a label on both sides of a split."""

    epochs: int = 200
    batch_size: int = 0
    learning_rate: float = 5e-4
    weight_decay: float = 1e-4
    grad_clip_norm: float = 1.0
    hidden: int = 128
    depth: int = 2
    k: int = 8
    n_bins: int = 24
    d_embed: int = 16
    dropout: float = 0.2
    shared_layers: int = -1
    ple_direct: bool = False
    max_epoch_rows: int = 262_144
    patience: int = 16
    patience_rows: int = 1_000_000
    seed: int = 0
    calibration: str = "temperature"
    min_category_count: int = 5
    max_categories: int = 100
    valid_fraction: float = 0.15
    test_fraction: float = 0.15
    valid_dates: int = 1
    test_dates: int = 1
    purge_days: int = 0
    logistic_l2: float = 1.0
    cross_fit_folds: int = 3
    """Without a time column every training row is scored by a model that never saw it
    (``cross_fit_proba``): the final model's validation and test rows by the final model, its training
    rows by ``cross_fit_folds`` models each trained on all other rows (3: 3 trainings on 77% of the
    rows, was 5 on 68%). Chosen with ``benchmarks/bench_out_of_fold.py`` (out-of-fold scores of every
    row; ROC-AUC / ECE, load average 9-25, so seconds are rough): Telco 3 folds 0.8474 / 0.0088
    (251 s), 2 folds 0.8462 / 0.0109 (429 s), the former 5-fold cross-fit 0.8484 / 0.0091 (1,040 s);
    bank 3 folds 0.8644 / 0.0081 (162 s, load 9), 2 folds 0.8663 / 0.0121 (862 s), former 5-fold
    0.8645 / 0.0099 (2,034 s).
    2 folds is cheaper but its pooled ECE was above 0.01 on both sets."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def batch_and_learning_rate(self, rows: int) -> tuple[int, float]:
        """The batch size and learning rate used for ``rows`` training rows.

        ``batch_size = 0`` (auto): about 32 batches per epoch, a power of two between
        ``AUTO_BATCH_MIN`` and ``AUTO_BATCH_MAX``, with ``learning_rate`` (meant for batches of
        ``AUTO_BATCH_MIN`` rows) scaled by the square root of the batch growth. Small sets (the public
        bank and Telco data) keep small batches and many steps; large ones get large, cheap steps.
        An explicit batch size uses ``learning_rate`` as it is.
        """
        if self.batch_size > 0:
            return self.batch_size, self.learning_rate
        batch = AUTO_BATCH_MIN
        while batch * 2 <= min(AUTO_BATCH_MAX, rows // 32):
            batch *= 2
        return batch, self.learning_rate * float(np.sqrt(batch / AUTO_BATCH_MIN))

    def shared_layers_for(self, rows: int) -> int:
        """Backbone layers shared by all members for ``rows`` training rows (``-1``: auto)."""
        if self.shared_layers >= 0:
            return self.shared_layers
        return 1 if rows >= SHARED_LAYER_MIN_ROWS else 0

    def patience_for(self, epoch_rows: int) -> int:
        """Epochs without a validation gain before stopping, when one epoch sees ``epoch_rows`` rows."""
        if self.patience_rows <= 0:
            return self.patience
        return max(1, min(self.patience, -(-self.patience_rows // epoch_rows)))

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in values.items() if key in known})
