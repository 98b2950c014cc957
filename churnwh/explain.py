"""Per-customer reasons: Integrated Gradients of the churn network, in JAX. Frames and arrays only.

Attributions explain the *uncalibrated ensemble logit* ``f`` (``network.score_batch``) of a customer
``x`` against a baseline ``b``, a typical retained customer (per numeric input the median of the
encoded values of retained training rows, per categorical column the most frequent value), so that
the attributions of one customer add up to ``f(x) - f(b)``.

Numeric inputs are continuous and get Integrated Gradients (Sundararajan et al. 2017) along the
straight line from ``b`` to ``x``, with the customer's own categorical values held fixed:
``IG_i = (x_i - b_i) * mean_s df/dx_i(b + a_s (x - b))`` over ``steps`` midpoints ``a_s``. Their sum
is ``f(x_num, x_cat) - f(b_num, x_cat)`` up to the quadrature error.

Categorical inputs are embedding indices with no straight line between them, so the remaining
difference ``f(b_num, x_cat) - f(b_num, b_cat)`` is split among the categorical columns by exact
Shapley values over the 2^C on/off combinations (C <= ``EXACT_SHAPLEY_MAX``; beyond that, one
column at a time in column order). Together the two parts add up to ``f(x) - f(b)`` exactly except
for the quadrature error of the numeric path, which ``completeness_gap`` measures. The member
logits are piecewise linear in the numeric inputs, with kinks where an input crosses one of its
bin edges (narrow bins make steep, short pieces that a uniform grid misses) and where a ReLU
switches. Rows whose gap exceeds ``tolerance`` after ``steps`` uniform midpoints are recomputed with
four times the steps, and those still above it on a per-row grid through every bin-edge crossing of their path (so the encoding is linear inside
each segment), each segment split 1, 2 and then 4 times until the gap is within tolerance.

Everything for a batch of customers runs in one jitted call (gradients of all path points with
``jax.lax.map``), on padded batches of a few fixed sizes so compiled code is reused. Attributions
of encoded inputs are summed back to the source feature columns (a ``<name>__missing`` indicator
belongs to ``<name>``).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import polars as pl

from churnwh import network, preprocess

DEFAULT_STEPS = 32
NODES_PER_CALL = 32
REFINE_SPLITS = (1, 2, 4)
DEFAULT_TOLERANCE = 1e-2
BATCH_ROWS = 1024
SMALLEST_BATCH = 64
EXACT_SHAPLEY_MAX = 8


@dataclass(frozen=True)
class Baseline:
    """The reference input: encoded numeric (n_numeric,) float32 and categorical (n_cat,) int32."""

    numeric: np.ndarray
    categorical: np.ndarray


@dataclass(frozen=True)
class Attributions:
    """Attributions per customer and source feature, with the logits they explain.

    ``values`` (rows, features) float64 in the column order of ``features``; ``logits`` (rows,)
    the customers' ensemble logits; ``baseline_logit`` the baseline's.
    """

    features: tuple[str, ...]
    values: np.ndarray
    logits: np.ndarray
    baseline_logit: float

    def completeness_gap(self) -> np.ndarray:
        """|sum of a customer's attributions - (logit - baseline logit)| per customer."""
        return np.abs(self.values.sum(axis=1) - (self.logits - self.baseline_logit))

    def to_frame(self) -> pl.DataFrame:
        return pl.DataFrame({name: self.values[:, j] for j, name in enumerate(self.features)})


def typical_retained_baseline(model, retained: pl.DataFrame) -> Baseline:
    """Baseline from rows of retained customers: the median encoded numeric input, the most
    frequent categorical index (ties to the smallest index)."""
    if retained.height == 0:
        raise ValueError("the baseline needs at least one retained customer row")
    encoded = preprocess.transform(model.preprocessor, retained)
    numeric = np.median(encoded.numeric, axis=0).astype(np.float32)
    categorical = np.array(
        [np.bincount(column, minlength=1).argmax() for column in encoded.categorical.T], dtype=np.int32
    ).reshape(encoded.categorical.shape[1])
    return Baseline(numeric, categorical)


def _shapley_plan(n_categorical: int) -> tuple[np.ndarray, np.ndarray]:
    """On/off masks (subsets, C) and a (subsets, C) matrix W so that phi = W.T @ v(subsets).

    Exact Shapley weights for C <= EXACT_SHAPLEY_MAX; otherwise the sequential split
    phi_j = v({0..j}) - v({0..j-1}), which also adds up to v(all) - v(none).
    """
    c = n_categorical
    if c == 0:
        return np.zeros((1, 0), bool), np.zeros((1, 0))
    if c > EXACT_SHAPLEY_MAX:
        masks = np.tril(np.ones((c + 1, c), bool), k=-1)  # row r: the first r columns switched on
        weights = np.zeros((c + 1, c))
        for j in range(c):
            weights[j + 1, j] += 1.0
            weights[j, j] -= 1.0
        return masks, weights
    masks = np.array(list(itertools.product((False, True), repeat=c)), dtype=bool)
    index = {tuple(mask): row for row, mask in enumerate(masks)}
    weights = np.zeros((len(masks), c))
    for row, mask in enumerate(masks):
        size = int(mask.sum())
        for j in range(c):
            if mask[j]:
                continue
            w = math.factorial(size) * math.factorial(c - size - 1) / math.factorial(c)
            with_j = mask.copy()
            with_j[j] = True
            weights[index[tuple(with_j)], j] += w
            weights[row, j] -= w
    return masks, weights


@partial(jax.jit, static_argnames=("graphdef",))
def _gradient_sum(graphdef, params, numeric, categorical, base_numeric, bin_edges, bin_mask, mids, weights):
    """sum_s weights[:, s] * grad f(b + mids[:, s] (x - b)) per row: (rows, n_numeric).

    ``mids`` and ``weights`` are (rows, NODES_PER_CALL): each row has its own integration nodes."""

    def f(num):
        return jnp.sum(network.score_batch(graphdef, params, num, categorical, bin_edges, bin_mask))

    delta = numeric - base_numeric[None, :]

    def step(total, node):
        alpha, weight = node
        gradient = jax.grad(f)(base_numeric[None, :] + alpha[:, None] * delta)
        return total + weight[:, None] * gradient, None

    total, _ = jax.lax.scan(step, jnp.zeros_like(numeric), (mids.T, weights.T))
    return total


@partial(jax.jit, static_argnames=("graphdef",))
def _categorical_and_logits(graphdef, params, numeric, categorical, base_numeric, base_categorical,
                            bin_edges, bin_mask, masks, shapley_weights):
    """(categorical Shapley values (rows, C), logits (rows,), baseline logit)."""

    def f(num, cat):
        return network.score_batch(graphdef, params, num, cat, bin_edges, bin_mask)

    base_numeric_rows = jnp.broadcast_to(base_numeric[None, :], numeric.shape)

    def value_of(mask):
        return f(base_numeric_rows, jnp.where(mask[None, :], categorical, base_categorical[None, :]))

    values = jax.lax.map(value_of, masks)  # (subsets, rows)
    baseline_logit = f(base_numeric[None, :], base_categorical[None, :])[0]
    return values.T @ shapley_weights, f(numeric, categorical), baseline_logit


def _bucket(rows: int) -> int:
    size = SMALLEST_BATCH
    while size < min(rows, BATCH_ROWS):
        size *= 2
    return size


def _pad(array: np.ndarray, rows: int) -> np.ndarray:
    return np.pad(array, [(0, rows - array.shape[0])] + [(0, 0)] * (array.ndim - 1))


def source_groups(preprocessor: preprocess.Preprocessor) -> tuple[tuple[str, ...], np.ndarray]:
    """Source feature names and a (encoded inputs, features) 0/1 matrix summing inputs to features.

    Encoded inputs are the numeric inputs (indicators included) followed by the categorical columns.
    """
    features = tuple(preprocessor.feature_names)
    position = {name: j for j, name in enumerate(features)}
    inputs = preprocessor.numeric_input_names + [f.name for f in preprocessor.categorical]
    matrix = np.zeros((len(inputs), len(features)))
    for i, name in enumerate(inputs):
        source = name[: -len(preprocess.MISSING_SUFFIX)] if name.endswith(preprocess.MISSING_SUFFIX) \
            and name[: -len(preprocess.MISSING_SUFFIX)] in position else name
        matrix[i, position[source]] = 1.0
    return features, matrix


def _uniform_nodes(rows: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    mids = (np.arange(steps, dtype=np.float32) + 0.5) / steps
    return np.broadcast_to(mids, (rows, steps)).copy(), np.full((rows, steps), 1.0 / steps, np.float32)


def _breakpoint_nodes(numeric: np.ndarray, base: np.ndarray, bin_edges: np.ndarray, steps: int,
                      split: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-row midpoints and weights of a grid that contains every point where an input crosses one
    of its bin edges (between them the piecewise-linear encoding is linear), plus ``steps``
    uniform points; every segment split into ``split`` parts. Padded with zero weights."""
    delta = numeric - base[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        crossings = (bin_edges[None, :, :] - base[None, :, None]) / delta[:, :, None]
    crossings = np.where(np.isfinite(crossings) & (crossings > 0) & (crossings < 1), crossings, 1.0)
    uniform = np.broadcast_to(np.linspace(0.0, 1.0, steps + 1), (numeric.shape[0], steps + 1))
    nodes = np.sort(np.concatenate([crossings.reshape(numeric.shape[0], -1), uniform], axis=1), axis=1)
    lo, hi = nodes[:, :-1], nodes[:, 1:]
    # Keep only segments of positive width (most inputs cross none of their edges), packed to the front.
    order = np.argsort(hi - lo <= 0, axis=1, kind="stable")
    lo, hi = np.take_along_axis(lo, order, axis=1), np.take_along_axis(hi, order, axis=1)
    keep = max(int((hi - lo > 0).sum(axis=1).max()), 1)
    lo, hi = lo[:, :keep], hi[:, :keep]
    parts = (np.arange(split) + 0.5) / split
    mids = (lo[:, :, None] + (hi - lo)[:, :, None] * parts).reshape(numeric.shape[0], -1)
    weights = np.repeat((hi - lo) / split, split, axis=1)
    width = -(-mids.shape[1] // NODES_PER_CALL) * NODES_PER_CALL
    pad = width - mids.shape[1]
    return (np.pad(mids, ((0, 0), (0, pad)), constant_values=0.5).astype(np.float32),
            np.pad(weights, ((0, 0), (0, pad))).astype(np.float32))


def _numeric_ig(model, numeric_rows, categorical_rows, baseline: Baseline, mids, weights, batch: int) -> np.ndarray:
    """Numeric Integrated Gradients of rows with per-row nodes, NODES_PER_CALL nodes per compiled call."""
    preprocessor = model.preprocessor
    edges, bin_mask = jnp.asarray(preprocessor.bin_edges), jnp.asarray(preprocessor.bin_mask)
    base_numeric = jnp.asarray(baseline.numeric)
    rows = numeric_rows.shape[0]
    out = np.zeros(numeric_rows.shape, np.float64)
    delta = numeric_rows.astype(np.float64) - baseline.numeric[None, :]
    for start in range(0, rows, batch):
        stop = min(start + batch, rows)
        numeric = jnp.asarray(_pad(numeric_rows[start:stop], batch))
        categorical = jnp.asarray(_pad(categorical_rows[start:stop], batch))
        total = 0.0
        for chunk in range(0, mids.shape[1], NODES_PER_CALL):
            m = jnp.asarray(_pad(mids[start:stop, chunk:chunk + NODES_PER_CALL], batch))
            w = jnp.asarray(_pad(weights[start:stop, chunk:chunk + NODES_PER_CALL], batch))
            total = total + np.asarray(
                _gradient_sum(model.graphdef, model.params, numeric, categorical, base_numeric, edges, bin_mask,
                              m, w), dtype=np.float64)
        out[start:stop] = delta[start:stop] * total[: stop - start]
    return out


def _categorical_part(model, numeric_rows, categorical_rows, baseline: Baseline, batch: int):
    preprocessor = model.preprocessor
    masks, weights = _shapley_plan(categorical_rows.shape[1])
    masks_j, weights_j = jnp.asarray(masks), jnp.asarray(weights, jnp.float32)
    edges, bin_mask = jnp.asarray(preprocessor.bin_edges), jnp.asarray(preprocessor.bin_mask)
    rows = numeric_rows.shape[0]
    shap, logits, baseline_logit = [], [], 0.0
    for start in range(0, rows, batch):
        stop = min(start + batch, rows)
        values, batch_logits, baseline_logit = _categorical_and_logits(
            model.graphdef, model.params, jnp.asarray(_pad(numeric_rows[start:stop], batch)),
            jnp.asarray(_pad(categorical_rows[start:stop], batch)), jnp.asarray(baseline.numeric),
            jnp.asarray(baseline.categorical), edges, bin_mask, masks_j, weights_j)
        shap.append(np.asarray(values, dtype=np.float64)[: stop - start])
        logits.append(np.asarray(batch_logits, dtype=np.float64)[: stop - start])
    return np.concatenate(shap), np.concatenate(logits), float(baseline_logit)


def integrated_gradients(
    model,
    frame: pl.DataFrame,
    baseline: Baseline,
    *,
    steps: int = DEFAULT_STEPS,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Attributions:
    """Attributions of every row of ``frame`` to the model's source features.

    Parameters
    ----------
    model : churnwh.train.TrainedModel
    frame : rows to explain (the model's feature columns; others are ignored)
    baseline : from ``typical_retained_baseline``
    steps : uniform Riemann midpoints of the numeric path
    tolerance : rows whose attributions miss ``logit - baseline logit`` by more are recomputed on a
        grid through every bin-edge crossing of their path, each segment split 1, 2, 4 times
    """
    preprocessor = model.preprocessor
    encoded = preprocess.transform(preprocessor, frame)
    features, groups = source_groups(preprocessor)
    rows = encoded.rows
    if rows == 0:
        return Attributions(features, np.zeros((0, len(features))), np.zeros(0), float("nan"))
    batch = _bucket(rows)
    shap, logits, baseline_logit = _categorical_part(model, encoded.numeric, encoded.categorical, baseline, batch)
    mids, weights = _uniform_nodes(rows, steps)
    numeric = _numeric_ig(model, encoded.numeric, encoded.categorical, baseline, mids, weights, batch)
    target = logits - baseline_logit - shap.sum(axis=1)
    todo = np.flatnonzero(np.abs(numeric.sum(axis=1) - target) > tolerance)
    if todo.size:  # cheap first: four times the uniform steps
        mids, weights = _uniform_nodes(todo.size, 4 * steps)
        numeric[todo] = _numeric_ig(model, encoded.numeric[todo], encoded.categorical[todo], baseline, mids,
                                    weights, SMALLEST_BATCH)
        todo = todo[np.abs(numeric[todo].sum(axis=1) - target[todo]) > tolerance]
    for split in REFINE_SPLITS:
        if todo.size == 0:
            break
        mids, weights = _breakpoint_nodes(encoded.numeric[todo], baseline.numeric, preprocessor.bin_edges,
                                          steps, split)
        numeric[todo] = _numeric_ig(model, encoded.numeric[todo], encoded.categorical[todo], baseline, mids,
                                    weights, SMALLEST_BATCH)
        todo = todo[np.abs(numeric[todo].sum(axis=1) - target[todo]) > tolerance]
    values = np.concatenate([numeric, shap], axis=1)
    return Attributions(features, values @ groups, logits, baseline_logit)


def global_importance(attributions: Attributions) -> pl.DataFrame:
    """Mean absolute and mean signed attribution per feature, most important first (rank 1)."""
    values = attributions.values
    return (
        pl.DataFrame({
            "feature": list(attributions.features),
            "mean_abs_contribution": np.abs(values).mean(axis=0) if len(values) else 0.0,
            "mean_contribution": values.mean(axis=0) if len(values) else 0.0,
        })
        .sort(["mean_abs_contribution", "feature"], descending=[True, False])
        .with_row_index("rank", offset=1)
        .with_columns(pl.col("rank").cast(pl.Int32))
    )


def top_drivers(attributions: Attributions, ids: pl.Series, top_k: int) -> pl.DataFrame:
    """Long frame (id, rank, feature, contribution): each row's ``top_k`` features by |attribution|."""
    values = attributions.values
    k = min(top_k, values.shape[1])
    order = np.argsort(-np.abs(values), axis=1, kind="stable")[:, :k]
    rows = np.repeat(np.arange(values.shape[0]), k)
    columns = order.reshape(-1)
    return pl.DataFrame({
        ids.name: ids.gather(rows),
        "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), values.shape[0]),
        "feature": np.asarray(attributions.features, dtype=object)[columns].tolist() if k else [],
        "contribution": values[rows, columns],
    })
