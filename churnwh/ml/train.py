"""Training, prediction and evaluation entry points. Frames in, arrays and models out.

- ``train_model(train, valid, ...)``: fit preprocessing on ``train``, train the network with
  early stopping on ``valid`` log loss (best weights restored), calibrate on ``valid``.
- ``predict_proba`` / ``predict_logit``: calibrated probabilities / uncalibrated ensemble logits.
- ``train_and_evaluate(frame, ...)``: split (by time when a time column is given), train, and
  report test metrics next to the base-rate and logistic-regression baselines of the same run.
- ``cross_fit_proba(frame, ...)``: out-of-fold probabilities, each row scored by a model that did not
  see it (for customers who are both trained on and scored, as in a flat one-table project).

Training runs on the natural churn rate (no class weights or resampling). One compiled call runs a
whole epoch: ``jax.lax.scan`` over shuffled batches inside ``jax.jit``, with the data on the device
and the model split once into (graphdef, params) by ``nnx.split``. The same data, config and seed
give bit-identical probabilities on CPU.
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
import polars as pl
from flax import nnx

from churnwh.errors import DataError
from churnwh.ml import calibrate, metrics, network, preprocess, splits
from churnwh.ml.settings import AUTO_BATCH_MAX, AUTO_BATCH_MIN, SHARED_LAYER_MIN_ROWS, TrainConfig  # noqa: F401

logger = logging.getLogger(__name__)

MIN_TRAINING_ROWS = 50
MIN_VALIDATION_ROWS = 20
PREDICT_BATCH_ROWS = 8192
SMALLEST_PREDICT_BUCKET = 256
TRAIN_ROW_BUCKET = 1024
DECAYED_PARAMETERS = ("['kernel']", "['embedding']", "['head_kernel']", "['numeric_weight']")


@dataclass
class TrainedModel:
    """A trained, calibrated model: everything ``predict_proba`` needs and nothing row-level."""

    preprocessor: preprocess.Preprocessor
    shape: network.NetworkShape
    params: nnx.State
    calibrator: dict
    config: TrainConfig
    label_column: str
    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    metrics: dict = field(default_factory=dict)

    @property
    def features(self) -> dict[str, str]:
        """Source feature column -> kind (``"numeric"`` / ``"categorical"``)."""
        return self.preprocessor.feature_kinds

    @property
    def graphdef(self) -> nnx.GraphDef:
        return _graphdef_for(self.shape)


_GRAPHDEFS: dict[network.NetworkShape, nnx.GraphDef] = {}


def _graphdef_for(shape: network.NetworkShape) -> nnx.GraphDef:
    """One graphdef per network shape, so jitted functions keyed on it are compiled once."""
    if shape not in _GRAPHDEFS:
        _GRAPHDEFS[shape] = network.network_structure(shape)[0]
    return _GRAPHDEFS[shape]


@dataclass(frozen=True)
class EpochReport:
    """What one finished epoch tells a person watching: sent to ``train_model``'s ``on_epoch``."""

    epoch: int
    max_epochs: int
    """The cap (``TrainConfig.epochs``); early stopping usually ends training before it."""
    train_loss: float
    valid_loss: float
    best_loss: float
    best_epoch: int
    epochs_without_gain: int
    patience: int
    """Training stops after this many epochs without a validation gain."""
    epoch_rows: int
    epoch_seconds: float
    steady_epoch_seconds: float
    """Mean duration of the epochs after the first (which includes compiling); the first's before."""
    stopped: bool
    """The last report: early stopping or the cap ended training."""

    @property
    def rows_per_second(self) -> float:
        return self.epoch_rows / self.epoch_seconds if self.epoch_seconds > 0 else 0.0

    @property
    def seconds_to_cap(self) -> float:
        """An upper bound of the time left: the remaining epochs up to the cap at the steady pace."""
        return 0.0 if self.stopped else (self.max_epochs - self.epoch) * self.steady_epoch_seconds


# --- Labels --------------------------------------------------------------------------------------


def _labels(frame: pl.DataFrame, label_column: str, part: str) -> np.ndarray:
    """0/1 float32 labels, or DataError saying what is wrong with the label column."""
    if label_column not in frame.columns:
        raise DataError(f"label column '{label_column}' is not in the {part} frame; check the name")
    series = frame[label_column]
    if not (series.dtype.is_numeric() or series.dtype == pl.Boolean):
        raise DataError(
            f"label column '{label_column}' has dtype {series.dtype}; it must be 0/1 (cast "
            "yes/no or true/false values to 0/1 first)"
        )
    values = series.cast(pl.Float64).to_numpy()
    if series.null_count() or np.isnan(values).any():
        raise DataError(f"label column '{label_column}' has NULL/NaN values in the {part} rows; "
                        "drop those rows or fill the label")
    if not np.isin(values, (0.0, 1.0)).all():
        raise DataError(f"label column '{label_column}' has values other than 0 and 1; "
                        "map churned to 1 and retained to 0")
    return values.astype(np.float32)


def _check_trainable(labels: np.ndarray, label_column: str, part: str, minimum_rows: int) -> None:
    if labels.size < minimum_rows:
        raise DataError(f"the {part} split has {labels.size} rows; at least {minimum_rows} are "
                        f"needed to train a model on '{label_column}'; add observation dates or rows")
    if labels.min() == labels.max():
        raise DataError(f"label column '{label_column}' has only the value {int(labels[0])} in the "
                        f"{part} rows; both churned (1) and retained (0) rows are needed")


# --- Training ------------------------------------------------------------------------------------


def make_optimizer(learning_rate: float, weight_decay: float, grad_clip_norm: float):
    """AdamW after global-norm gradient clipping; weight decay on kernels and embeddings only."""

    def decay_mask(params):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: any(name in jax.tree_util.keystr(path) for name in DECAYED_PARAMETERS),
            params,
        )

    return optax.chain(
        optax.clip_by_global_norm(grad_clip_norm),
        optax.adamw(learning_rate, weight_decay=weight_decay, mask=decay_mask),
    )


@dataclass(frozen=True)
class _EpochSettings:
    batch_size: int
    learning_rate: float
    weight_decay: float
    grad_clip_norm: float
    epoch_rows: int = 0


def _member_loss(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean over rows and members: each member is trained as if alone (TabM)."""
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels[:, None]))


def _row_bucket(rows: int) -> int:
    """Rows the training arrays are padded to: the next power of two, at least ``TRAIN_ROW_BUCKET``,
    so that the models of one build (the final one on 70% of the rows, the cross-fit models on 55-70%,
    a benchmark's folds) share one compiled epoch. Padding costs memory, not steps: the padded rows
    are never drawn and the scan's steps beyond the real rows are skipped."""
    bucket = TRAIN_ROW_BUCKET
    while bucket < rows:
        bucket *= 2
    return bucket


def _epoch_steps(settings: _EpochSettings, padded_rows: int) -> int:
    """Scan length of the compiled epoch: enough batches for the largest epoch these padded rows hold."""
    cap = min(settings.epoch_rows, padded_rows) if settings.epoch_rows > 0 else padded_rows
    return -(-cap // settings.batch_size)


@partial(jax.jit, static_argnames=("graphdef", "settings"))
def _train_epoch(graphdef, settings: _EpochSettings, params, opt_state, epoch_key, data):
    """One epoch (scan over shuffled batches) in one compiled call: (params, opt_state, mean loss).

    ``data`` holds the training rows padded to ``_row_bucket`` rows and the real row count (a traced
    scalar), so the compiled program depends on the padded size only: an epoch is ``ceil(rows /
    batch)`` batches of a random order of the real rows (wrapping around so every batch is full),
    and the scan's steps beyond that are skipped.
    """
    numeric, categorical, labels, bin_edges, bin_mask, rows = data
    padded_rows = labels.shape[0]
    batch_size = settings.batch_size
    epoch_rows = jnp.minimum(settings.epoch_rows, rows) if settings.epoch_rows > 0 else rows
    n_batches = (epoch_rows + batch_size - 1) // batch_size
    steps = _epoch_steps(settings, padded_rows)
    shuffle_key, dropout_key = jax.random.split(epoch_key)
    # A uniform random order of the real rows (padding sorts last); rows repeated differ by epoch.
    sort_keys = jnp.where(jnp.arange(padded_rows) < rows, jax.random.uniform(shuffle_key, (padded_rows,)), 2.0)
    permutation = jnp.argsort(sort_keys, stable=True)
    order = permutation[jnp.arange(steps * batch_size) % epoch_rows].reshape(steps, batch_size)
    optimizer = make_optimizer(settings.learning_rate, settings.weight_decay, settings.grad_clip_norm)

    def step(carry, batch):
        batch_index, rows_of_batch = batch

        def train_step(carry):
            params, opt_state = carry

            def loss_fn(p):
                logits = network.member_logits(
                    graphdef, p, numeric[rows_of_batch], categorical[rows_of_batch], bin_edges,
                    bin_mask, jax.random.fold_in(dropout_key, batch_index),
                )
                return _member_loss(logits, labels[rows_of_batch])

            loss, grads = jax.value_and_grad(loss_fn)(params)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        return jax.lax.cond(batch_index < n_batches, train_step,
                            lambda carry: (carry, jnp.zeros((), jnp.float32)), carry)

    (params, opt_state), losses = jax.lax.scan(
        step, (params, opt_state), (jnp.arange(steps), order)
    )
    return params, opt_state, jnp.sum(losses) / n_batches


def _pad_rows(array: np.ndarray, rows: int) -> np.ndarray:
    padding = [(0, rows - array.shape[0])] + [(0, 0)] * (array.ndim - 1)
    return np.pad(array, padding)


def _validation_log_loss(graphdef, params, preprocessor, encoded, labels: np.ndarray) -> float:
    """Mean log loss of the ensemble on the validation rows, through ``score_arrays`` (the prediction
    program, in its padded batch sizes): no compiled program depends on the validation row count."""
    logits = score_arrays(graphdef, params, preprocessor.bin_edges, preprocessor.bin_mask,
                          encoded.numeric, encoded.categorical).astype(np.float64)
    return float(np.mean(np.logaddexp(0.0, logits) - labels * logits))


def _training_data(encoded: preprocess.EncodedFeatures, labels: np.ndarray, bin_edges, bin_mask):
    """``_train_epoch``'s data: the rows padded to ``_row_bucket``, and the real row count."""
    padded_rows = _row_bucket(encoded.rows)
    return (jnp.asarray(_pad_rows(encoded.numeric, padded_rows)),
            jnp.asarray(_pad_rows(encoded.categorical, padded_rows)),
            jnp.asarray(_pad_rows(labels, padded_rows)), bin_edges, bin_mask,
            jnp.asarray(encoded.rows, jnp.int32))


def train_model(
    train: pl.DataFrame,
    valid: pl.DataFrame,
    *,
    id_column: str | None,
    label_column: str,
    exclude: tuple[str, ...] | list[str] = (),
    config: TrainConfig = TrainConfig(),
    on_epoch: Callable[[EpochReport], None] | None = None,
) -> TrainedModel:
    """Train the churn network on ``train``, early-stop and calibrate on ``valid``.

    Parameters
    ----------
    train, valid : frames with the same columns; every column except ``id_column``,
        ``label_column`` and ``exclude`` is a feature
    id_column : row identifier column (never a feature), or None
    label_column : 0/1 churn label
    exclude : further non-feature columns (observation date, ...)
    config : hyperparameters
    on_epoch : called with an ``EpochReport`` after every epoch (progress display)

    Returns
    -------
    TrainedModel
        With the best-epoch weights, a calibrator fitted on ``valid`` and the training history.

    Raises
    ------
    DataError
        Label not 0/1, NULL/NaN labels, a single class, too few rows, unusable feature columns.
    """
    train_labels = _labels(train, label_column, "training")
    valid_labels = _labels(valid, label_column, "validation")
    _check_trainable(train_labels, label_column, "training", MIN_TRAINING_ROWS)
    _check_trainable(valid_labels, label_column, "validation", MIN_VALIDATION_ROWS)
    not_features = tuple(c for c in (id_column, label_column, *exclude) if c is not None)
    preprocessor = preprocess.fit_preprocessor(
        train, exclude=not_features, n_bins=config.n_bins,
        min_category_count=config.min_category_count, max_categories=config.max_categories,
    )
    train_encoded = preprocess.transform(preprocessor, train)
    valid_encoded = preprocess.transform(preprocessor, valid)
    shape = network.NetworkShape(
        n_numeric=train_encoded.numeric.shape[1], n_bins=config.n_bins,
        cardinalities=preprocessor.cardinalities, d_embed=config.d_embed, hidden=config.hidden,
        depth=config.depth, k=config.k, dropout=config.dropout,
        shared_layers=config.shared_layers_for(train_encoded.rows), ple_direct=config.ple_direct,
    )
    graphdef = _graphdef_for(shape)
    params = network.build_network(shape, seed=config.seed)[1]
    batch_size, learning_rate = config.batch_and_learning_rate(train_encoded.rows)
    epoch_rows = min(config.max_epoch_rows, train_encoded.rows) if config.max_epoch_rows > 0 else train_encoded.rows
    settings = _EpochSettings(min(batch_size, epoch_rows), learning_rate, config.weight_decay,
                              config.grad_clip_norm, config.max_epoch_rows)
    opt_state = make_optimizer(learning_rate, config.weight_decay,
                               config.grad_clip_norm).init(params)
    bin_edges, bin_mask = jnp.asarray(preprocessor.bin_edges), jnp.asarray(preprocessor.bin_mask)
    data = _training_data(train_encoded, train_labels, bin_edges, bin_mask)
    base_key = jax.random.key(config.seed)
    patience = config.patience_for(epoch_rows)

    history: list[dict] = []
    best_loss, best_params, best_epoch, epochs_without_gain = np.inf, params, 0, 0
    started = time.perf_counter()
    durations: list[float] = []
    for epoch in range(1, config.epochs + 1):
        epoch_started = time.perf_counter()
        params, opt_state, train_loss = _train_epoch(
            graphdef, settings, params, opt_state, jax.random.fold_in(base_key, epoch), data)
        valid_loss = _validation_log_loss(graphdef, params, preprocessor, valid_encoded, valid_labels)
        durations.append(time.perf_counter() - epoch_started)
        history.append({"epoch": epoch, "train_loss": float(train_loss), "valid_log_loss": valid_loss})
        if valid_loss < best_loss:
            best_loss, best_params, best_epoch, epochs_without_gain = valid_loss, params, epoch, 0
        else:
            epochs_without_gain += 1
        stop = epochs_without_gain >= patience or epoch == config.epochs
        if on_epoch is not None:
            steady = durations[1:] or durations
            on_epoch(EpochReport(
                epoch=epoch, max_epochs=config.epochs, train_loss=float(train_loss), valid_loss=valid_loss,
                best_loss=float(best_loss), best_epoch=best_epoch, epochs_without_gain=epochs_without_gain,
                patience=patience, epoch_rows=epoch_rows, epoch_seconds=durations[-1],
                steady_epoch_seconds=sum(steady) / len(steady), stopped=stop,
            ))
        if stop:
            break
    logger.info("trained %d epochs in %.1f s; best epoch %d (validation log loss %.4f)",
                len(history), time.perf_counter() - started, best_epoch, best_loss)

    model = TrainedModel(preprocessor, shape, best_params,
                         calibrate.fit_calibrator(np.zeros(1), np.zeros(1), "none"), config,
                         label_column, history, best_epoch)
    valid_logits = _logits_of_encoded(model, valid_encoded)
    model.calibrator = calibrate.fit_calibrator(valid_logits, valid_labels, config.calibration)
    return model


# --- Prediction ----------------------------------------------------------------------------------


def _bucket_rows(rows: int) -> int:
    """Padded batch size: a power of two up to PREDICT_BATCH_ROWS, so few shapes get compiled."""
    bucket = SMALLEST_PREDICT_BUCKET
    while bucket < min(rows, PREDICT_BATCH_ROWS):
        bucket *= 2
    return bucket


def score_arrays(
    graphdef: nnx.GraphDef,
    params: nnx.State,
    bin_edges: np.ndarray,
    bin_mask: np.ndarray,
    numeric: np.ndarray,
    categorical: np.ndarray,
) -> np.ndarray:
    """Uncalibrated ensemble logits of encoded rows, in fixed-size padded batches.

    Pure given its arguments (parameters, preprocessor arrays, encoded rows); the compiled
    function is reused for every call because batches always have one of a few padded sizes.
    """
    rows = numeric.shape[0]
    if rows == 0:
        return np.zeros(0, dtype=np.float32)
    batch_rows = _bucket_rows(rows)
    edges, mask = jnp.asarray(bin_edges), jnp.asarray(bin_mask)
    outputs = []
    for start in range(0, rows, batch_rows):
        numeric_batch = _pad_rows(numeric[start : start + batch_rows], batch_rows)
        categorical_batch = _pad_rows(categorical[start : start + batch_rows], batch_rows)
        logits = network.score_batch_jit(graphdef, params, jnp.asarray(numeric_batch),
                                         jnp.asarray(categorical_batch), edges, mask)
        outputs.append(np.asarray(logits)[: min(batch_rows, rows - start)])
    return np.concatenate(outputs)


def _logits_of_encoded(model: TrainedModel, encoded: preprocess.EncodedFeatures) -> np.ndarray:
    return score_arrays(model.graphdef, model.params, model.preprocessor.bin_edges,
                        model.preprocessor.bin_mask, encoded.numeric, encoded.categorical)


def predict_logit(model: TrainedModel, frame: pl.DataFrame) -> np.ndarray:
    """Uncalibrated ensemble logit per row (for attributions); float32 array."""
    return _logits_of_encoded(model, preprocess.transform(model.preprocessor, frame))


def predict_proba(model: TrainedModel, frame: pl.DataFrame) -> np.ndarray:
    """Calibrated churn probability per row; float64 array in (0, 1)."""
    return calibrate.apply_calibrator(model.calibrator, predict_logit(model, frame))


# --- Evaluation ----------------------------------------------------------------------------------


def logistic_baseline_proba(model: TrainedModel, train: pl.DataFrame, test: pl.DataFrame) -> np.ndarray:
    """Test probabilities of an L2 logistic regression fitted on ``train`` with the model's own
    preprocessed features (numeric inputs plus one-hot categoricals), exact Newton fit."""
    train_design = preprocess.one_hot_design_matrix(
        model.preprocessor, preprocess.transform(model.preprocessor, train))
    test_design = preprocess.one_hot_design_matrix(
        model.preprocessor, preprocess.transform(model.preprocessor, test))
    train_labels = _labels(train, model.label_column, "training")
    weights = metrics.fit_logistic_regression(train_design, train_labels, l2=model.config.logistic_l2)
    return metrics.predict_logistic_regression(weights, test_design)


def evaluate_with_baselines(
    model: TrainedModel, train: pl.DataFrame, test: pl.DataFrame
) -> dict:
    """Test metrics of the model next to the base rate and logistic regression of the same run.

    The logistic regression is ``logistic_baseline_proba``; the base rate is the training churn
    rate predicted for every row.
    """
    label_column = model.label_column
    train_labels = _labels(train, label_column, "training")
    test_labels = _labels(test, label_column, "test")
    probabilities = predict_proba(model, test)
    logistic = logistic_baseline_proba(model, train, test)
    base_rate = np.full(test_labels.size, float(train_labels.mean()))
    return {
        "rows": {"train": train.height, "test": test.height},
        "test_churn_rate": float(test_labels.mean()),
        "network": metrics.evaluate_probabilities(test_labels, probabilities),
        "base_rate": metrics.evaluate_probabilities(test_labels, base_rate),
        "logistic_regression": metrics.evaluate_probabilities(test_labels, logistic),
        "calibration_table": metrics.calibration_table(test_labels, probabilities).to_dicts(),
        "lift_table": metrics.lift_table(test_labels, probabilities).to_dicts(),
    }


def train_and_evaluate(
    frame: pl.DataFrame,
    *,
    id_column: str | None,
    label_column: str,
    time_column: str | None = None,
    exclude: tuple[str, ...] | list[str] = (),
    config: TrainConfig = TrainConfig(),
    on_epoch: Callable[[EpochReport], None] | None = None,
    split_column: str | None = None,
    test_from: datetime.date | None = None,
) -> tuple[TrainedModel, dict]:
    """Split, train, and evaluate on the held-out test rows.

    With ``time_column`` the split is by time (``config.test_dates`` latest observation dates
    for test, the ``config.valid_dates`` before them for validation, never random, with
    ``config.purge_days`` between the parts); without it a
    stratified random split (``config.valid_fraction``, ``config.test_fraction``). With ``split_column``
    the data's own split (``splits.declared_split``: test metrics on the declared test part only).

    Returns
    -------
    (TrainedModel, dict)
        The model (its ``metrics`` filled in) and the metrics: ``network``, ``base_rate`` and
        ``logistic_regression`` dicts of test metrics, plus calibration and lift tables.
    """
    if split_column is not None:
        train, valid, test = splits.declared_split(frame, split_column, label_column,
                                                   valid_fraction=config.valid_fraction, test_from=test_from,
                                                   seed=config.seed)
        exclude = (*exclude, split_column, *((time_column,) if time_column else ()))
    elif time_column is not None:
        train, valid, test = splits.time_split(
            frame, time_column, valid_dates=config.valid_dates, test_dates=config.test_dates,
            purge_days=config.purge_days)
        exclude = (*exclude, time_column)
    else:
        parts = _stratified_parts(_labels(frame, label_column, "input"), config)
        train, valid, test = (frame[indices] for indices in parts)
    _check_trainable(_labels(test, label_column, "test"), label_column, "test", 1)
    model = train_model(train, valid, id_column=id_column, label_column=label_column,
                        exclude=exclude, config=config, on_epoch=on_epoch)
    results = evaluate_with_baselines(model, train, test)
    results["rows"]["valid"] = valid.height
    results["best_epoch"] = model.best_epoch
    results["split"] = ("declared" if split_column is not None else "time" if time_column is not None
                        else "stratified_random")
    model.metrics = results
    return model, results


def _stratified_parts(labels: np.ndarray, config: TrainConfig) -> list[np.ndarray]:
    """Row indices of (train, valid, test) of ``train_and_evaluate`` without a time or split column."""
    train_fraction = 1.0 - config.valid_fraction - config.test_fraction
    return splits.stratified_split_indices(
        labels, (train_fraction, config.valid_fraction, config.test_fraction), config.seed)


def cross_fit_proba(
    frame: pl.DataFrame,
    *,
    id_column: str | None,
    label_column: str,
    exclude: tuple[str, ...] | list[str] = (),
    config: TrainConfig = TrainConfig(),
    on_epoch: Callable[[EpochReport], None] | None = None,
    final_model: TrainedModel | None = None,
) -> np.ndarray:
    """Out-of-fold calibrated probabilities of every row of ``frame``: each row is scored by a model
    that never trained on it. Deterministic for a given seed.

    With ``final_model`` (``train_and_evaluate``'s model of this ``frame`` on its stratified random
    split), the rows it held out (validation and test) are scored by it, and only the rows it trained
    on are cut into ``config.cross_fit_folds`` stratified parts, each scored by a model trained on all
    other rows: 2 extra trainings on about 65% of the rows each, instead of 5 on 68%. Without it (or
    when the final model was split another way) the rows are cut into ``cross_fit_folds`` stratified
    folds, each scored by a model trained on the other folds. Every extra model is early-stopped and
    calibrated on a stratified ``valid_fraction`` of its training rows.
    """
    folds = config.cross_fit_folds
    if folds < 2:
        raise DataError(f"cross_fit_folds is {folds}; cross-fitting needs at least 2 folds")
    labels = _labels(frame, label_column, "input")
    probabilities = np.full(frame.height, np.nan)
    reuse = (final_model is not None and final_model.metrics.get("split") == "stratified_random"
             and sum(final_model.metrics.get("rows", {}).values()) == frame.height)
    if reuse:
        trained_on, valid_rows, test_rows = _stratified_parts(labels, config)
        held_out_by_final = np.concatenate([valid_rows, test_rows])
        probabilities[held_out_by_final] = predict_proba(final_model, frame[held_out_by_final])
        cut = [(np.setdiff1d(np.arange(frame.height), trained_on[part]), trained_on[part])
               for _, part in splits.stratified_kfold(labels[trained_on], folds, config.seed)]
    else:
        cut = splits.stratified_kfold(labels, folds, config.seed)
    for fold, (others, held_out) in enumerate(cut):
        rest = frame[others]
        train_rows, valid_rows = splits.stratified_split_indices(
            labels[others], (1.0 - config.valid_fraction, config.valid_fraction), config.seed + fold + 1)
        model = train_model(rest[train_rows], rest[valid_rows], id_column=id_column, label_column=label_column,
                            exclude=exclude, config=config, on_epoch=on_epoch)
        probabilities[held_out] = predict_proba(model, frame[held_out])
    return probabilities
