"""Evaluation metrics for churn scores, and the baselines they are reported next to.

Everything here is plain numpy (no scikit-learn at runtime). Inputs are a 0/1 label vector and a
probability (or score) vector of the same length.

Calibration error convention: ``expected_calibration_error`` uses 10 *equal-mass* bins by default
(each bin holds the same number of rows, sorted by predicted probability). Churn scores crowd near
the base rate, so equal-width bins leave most bins nearly empty and the estimate noisy; pass
``strategy="uniform"`` for the equal-width variant.
"""

from __future__ import annotations

import numpy as np
import polars as pl

PROBABILITY_EPSILON = 1e-7


def _as_label_and_score(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if labels.shape != scores.shape:
        raise ValueError(f"labels ({labels.size}) and scores ({scores.size}) differ in length")
    return labels, scores


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks, tied values sharing the mean of their ranks."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    is_new_value = np.r_[True, sorted_values[1:] != sorted_values[:-1]]
    group_of_sorted = np.cumsum(is_new_value) - 1
    group_starts = np.flatnonzero(is_new_value)
    group_ends = np.r_[group_starts[1:], values.size]
    mean_rank_of_group = (group_starts + group_ends + 1) / 2.0
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = mean_rank_of_group[group_of_sorted]
    return ranks


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U), ties counted as one half.

    Parameters
    ----------
    labels : array of 0/1
    scores : array of float, higher means more likely positive

    Returns
    -------
    float
        AUC in [0, 1]; NaN when only one class is present.
    """
    labels, scores = _as_label_and_score(labels, scores)
    n_positive = labels.sum()
    n_negative = labels.size - n_positive
    if n_positive == 0 or n_negative == 0:
        return float("nan")
    ranks = _average_ranks(scores)
    u_statistic = ranks[labels == 1].sum() - n_positive * (n_positive + 1) / 2.0
    return float(u_statistic / (n_positive * n_negative))


def pr_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision: sum over thresholds of (recall step) * precision.

    Tied scores form one threshold, as in scikit-learn's ``average_precision_score``.
    """
    labels, scores = _as_label_and_score(labels, scores)
    n_positive = labels.sum()
    if n_positive == 0:
        return float("nan")
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_labels = scores[order], labels[order]
    last_of_tie_group = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    true_positives = np.cumsum(sorted_labels)[last_of_tie_group]
    predicted_positives = (np.arange(labels.size) + 1.0)[last_of_tie_group]
    precision = true_positives / predicted_positives
    recall = true_positives / n_positive
    recall_steps = np.diff(np.r_[0.0, recall])
    return float(np.sum(recall_steps * precision))


def log_loss(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean negative log-likelihood, probabilities clipped to [1e-7, 1 - 1e-7]."""
    labels, probabilities = _as_label_and_score(labels, probabilities)
    p = np.clip(probabilities, PROBABILITY_EPSILON, 1 - PROBABILITY_EPSILON)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log1p(-p)))


def brier(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean squared difference between probability and outcome."""
    labels, probabilities = _as_label_and_score(labels, probabilities)
    return float(np.mean((probabilities - labels) ** 2))


def accuracy(labels: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> float:
    """Share of rows where ``probability >= threshold`` equals the label."""
    labels, probabilities = _as_label_and_score(labels, probabilities)
    return float(np.mean((probabilities >= threshold) == (labels == 1)))


def _calibration_bins(probabilities: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    """Bin index (0..n_bins-1) of every row."""
    if strategy == "quantile":
        order = np.argsort(probabilities, kind="mergesort")
        bins = np.empty(probabilities.size, dtype=np.int64)
        bins[order] = (np.arange(probabilities.size) * n_bins) // max(probabilities.size, 1)
        return bins
    if strategy == "uniform":
        return np.clip((probabilities * n_bins).astype(np.int64), 0, n_bins - 1)
    raise ValueError(f"strategy must be 'quantile' or 'uniform', not {strategy!r}")


def calibration_table(
    labels: np.ndarray, probabilities: np.ndarray, n_bins: int = 10, strategy: str = "quantile"
) -> pl.DataFrame:
    """Mean predicted probability next to the observed churn rate, per bin.

    Parameters
    ----------
    labels, probabilities : arrays of equal length
    n_bins : number of bins
    strategy : ``"quantile"`` (equal-mass bins, default) or ``"uniform"`` (equal-width)

    Returns
    -------
    polars.DataFrame
        Columns ``bin, rows, mean_predicted, observed_rate, gap``; empty bins are omitted.
    """
    labels, probabilities = _as_label_and_score(labels, probabilities)
    bins = _calibration_bins(probabilities, n_bins, strategy)
    rows = np.bincount(bins, minlength=n_bins)
    predicted_sum = np.bincount(bins, weights=probabilities, minlength=n_bins)
    observed_sum = np.bincount(bins, weights=labels, minlength=n_bins)
    occupied = rows > 0
    mean_predicted = predicted_sum[occupied] / rows[occupied]
    observed_rate = observed_sum[occupied] / rows[occupied]
    return pl.DataFrame(
        {
            "bin": np.flatnonzero(occupied) + 1,
            "rows": rows[occupied],
            "mean_predicted": mean_predicted,
            "observed_rate": observed_rate,
            "gap": np.abs(mean_predicted - observed_rate),
        }
    )


def expected_calibration_error(
    labels: np.ndarray, probabilities: np.ndarray, n_bins: int = 10, strategy: str = "quantile"
) -> float:
    """Row-weighted mean |mean predicted - observed rate| over bins (10 equal-mass bins by default)."""
    table = calibration_table(labels, probabilities, n_bins=n_bins, strategy=strategy)
    weights = table["rows"].to_numpy() / table["rows"].sum()
    return float(np.sum(weights * table["gap"].to_numpy()))


def lift_table(labels: np.ndarray, scores: np.ndarray, n_groups: int = 10) -> pl.DataFrame:
    """Churn rate and lift per score decile, highest scores first.

    Rows are sorted by score (descending, stable) and cut into ``n_groups`` groups of equal size.

    Returns
    -------
    polars.DataFrame
        Columns ``decile, rows, churners, churn_rate, lift, cumulative_capture``.
    """
    labels, scores = _as_label_and_score(labels, scores)
    order = np.argsort(-scores, kind="mergesort")
    group = (np.arange(labels.size) * n_groups) // max(labels.size, 1)
    rows = np.bincount(group, minlength=n_groups)
    churners = np.bincount(group, weights=labels[order], minlength=n_groups)
    base_rate = labels.mean() if labels.size else float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        churn_rate = churners / rows
        lift = churn_rate / base_rate
        capture = np.cumsum(churners) / labels.sum()
    return pl.DataFrame(
        {
            "decile": np.arange(1, n_groups + 1),
            "rows": rows,
            "churners": churners.astype(np.int64),
            "churn_rate": churn_rate,
            "lift": lift,
            "cumulative_capture": capture,
        }
    )


def top_decile_lift(labels: np.ndarray, scores: np.ndarray) -> float:
    """Churn rate among the top 10% of scores divided by the overall churn rate."""
    return float(lift_table(labels, scores)["lift"][0])


def evaluate_probabilities(labels: np.ndarray, probabilities: np.ndarray) -> dict[str, float]:
    """All headline metrics in one dict (the keys reports and benchmarks use)."""
    return {
        "roc_auc": roc_auc(labels, probabilities),
        "pr_auc": pr_auc(labels, probabilities),
        "log_loss": log_loss(labels, probabilities),
        "brier": brier(labels, probabilities),
        "ece": expected_calibration_error(labels, probabilities),
        "top_decile_lift": top_decile_lift(labels, probabilities),
        "accuracy": accuracy(labels, probabilities),
    }


# --- Baselines -----------------------------------------------------------------------------------


def fit_logistic_regression(
    features: np.ndarray,
    labels: np.ndarray,
    l2: float = 1.0,
    max_iterations: int = 50,
    tolerance: float = 1e-8,
    penalty: np.ndarray | None = None,
) -> np.ndarray:
    """L2-regularized logistic regression fitted exactly by damped Newton (IRLS with a backtracking line search).

    Parameters
    ----------
    features : (rows, columns) float array, already scaled
    labels : (rows,) 0/1 array
    l2 : penalty ``l2/2 * ||w||^2`` on the weights (not on the intercept)
    penalty : (columns,) per-column L2 penalties replacing ``l2`` (0: an unpenalized column)

    Returns
    -------
    numpy.ndarray
        ``columns + 1`` coefficients; the last one is the intercept.
    """
    x = np.hstack([np.asarray(features, dtype=np.float64), np.ones((features.shape[0], 1))])
    y = np.asarray(labels, dtype=np.float64)
    penalty = np.append(np.full(x.shape[1] - 1, l2) if penalty is None else np.asarray(penalty, np.float64), 0.0)
    weights = np.zeros(x.shape[1])
    base_rate = np.clip(y.mean(), 1e-6, 1 - 1e-6)
    weights[-1] = np.log(base_rate / (1 - base_rate))

    def objective(w: np.ndarray) -> float:
        z = x @ w
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * w * w))

    current = objective(weights)
    for _ in range(max_iterations):
        p = _sigmoid(x @ weights)
        gradient = x.T @ (p - y) + penalty * weights
        hessian = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty) + 1e-9 * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        # Damped Newton: a full step can overshoot on nearly separable or collinear columns (it did on
        # 970,000 demo rows: weights of 6,000 and 50 iterations); halve it until the objective falls.
        size, decrease = 1.0, float(gradient @ step)
        while size > 1e-10:
            candidate = weights - size * step
            value = objective(candidate)
            if value <= current - 1e-4 * size * decrease:
                break
            size /= 2
        else:
            break
        weights, current = candidate, value
        if np.max(np.abs(size * step)) < tolerance:
            break
    return weights


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0.0, -z))


def predict_logistic_regression(weights: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Probabilities from ``fit_logistic_regression`` coefficients."""
    return _sigmoid(np.asarray(features, dtype=np.float64) @ weights[:-1] + weights[-1])
