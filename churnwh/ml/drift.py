"""Drift of a model's inputs and score: PSI, what moved in words, and when drift is severe.

``psi`` compares two samples of one feature (point masses, quantile intervals of the reference and a
missing bin); ``drift_frame`` applies it to every model feature and to the churn probability;
``describe_shift`` says what moved as aggregates only; ``severe_drift`` says why drift stops a build.
Pure functions of frames and arrays: the monitor stage (``churnwh.stages.monitor``) reads and writes
the warehouse.
"""

from __future__ import annotations

import numpy as np
import polars as pl

PSI_BINS = 10
PSI_SMOOTHING = 0.5
"""Pseudo-count added to every bin of both samples, so an empty bin gives a finite PSI."""
POINT_MASS = 1.0 / (2 * PSI_BINS)
"""A value holding at least this share of the reference's present values is a bin of its own."""
POINT_TOLERANCE = 0.02
"""Values this share of the reference's central 80% range away from a point mass still count as it."""
DEFAULT_PSI_SEVERE = 1.0
PSI_METHOD = ("point masses (2% of the central range), quantile intervals, missing; +0.5 per bin; "
              "key-independent sample; reference window")
"""Part of the drift fingerprint: change it when the PSI of the same samples changes."""


# --- PSI -----------------------------------------------------------------------------------------


def psi(expected: np.ndarray | pl.Series, actual: np.ndarray | pl.Series, *, bins: int = PSI_BINS,
        categorical: bool = False) -> float:
    """Population stability index of ``actual`` against ``expected`` (the reference).

    ``sum((a - e) * ln(a / e))`` over bins fixed by the reference, with ``PSI_SMOOTHING`` added to
    every bin's count of both samples.

    Numeric bins: every value that holds at least ``POINT_MASS`` of the reference's present values
    (a point mass: zeros of a mostly-zero column, list prices, a flag) is a bin of its own; the other
    present values are cut at the distinct quantiles of the reference's other values into bins of
    about ``1 / bins`` of the reference each; missing values (NULL, NaN, +/-inf) are one more bin.
    Plain quantile edges would instead fall on the point masses (many identical edges, or one edge
    exactly at a mass that a shift by a rounding error moves across). A value within ``POINT_TOLERANCE``
    of the reference's central 80% range of a point mass counts as it. Categorical: one bin per value,
    missing included.
    """
    expected_s, actual_s = pl.Series(expected), pl.Series(actual)
    if categorical:
        e_values = expected_s.cast(pl.String).fill_null("<missing>")
        a_values = actual_s.cast(pl.String).fill_null("<missing>")
        categories = sorted(set(e_values.unique().to_list()) | set(a_values.unique().to_list()))
        e_counts = np.array([(e_values == c).sum() for c in categories], dtype=float)
        a_counts = np.array([(a_values == c).sum() for c in categories], dtype=float)
    else:
        e = expected_s.cast(pl.Float64).to_numpy()
        a = actual_s.cast(pl.Float64).to_numpy()
        binned = _numeric_bins(e[np.isfinite(e)], bins)
        e_counts, a_counts = binned(e), binned(a)
    if e_counts.sum() == 0 or a_counts.sum() == 0:
        return float("nan")
    e_share = (e_counts + PSI_SMOOTHING) / (e_counts.sum() + PSI_SMOOTHING * e_counts.size)
    a_share = (a_counts + PSI_SMOOTHING) / (a_counts.sum() + PSI_SMOOTHING * a_counts.size)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def _same(values: np.ndarray, point: float, tolerance: float = 0.0) -> np.ndarray:
    """Equal up to rounding noise of sums of money amounts and the like, or up to ``tolerance``."""
    return np.abs(values - point) <= max(1e-9 * max(1.0, abs(point)), tolerance)


def _numeric_bins(reference: np.ndarray, bins: int):
    """A function counting a sample into the bins of ``reference`` (present values only): point
    masses, then quantile intervals of the rest, then missing.

    A value within ``POINT_TOLERANCE`` of the reference's central 80% range of a point mass counts as
    that point mass (the nearest one): a list price that rose by a few cents moves six months' spend
    from one exact value to the next, which is no new distribution of spend."""
    points: list[float] = []
    tolerance = 0.0
    rest = reference
    if reference.size:
        low, high = np.quantile(reference, [0.1, 0.9])
        tolerance = POINT_TOLERANCE * float(high - low)
        ordered = np.sort(reference)  # runs of values equal up to rounding noise
        starts = np.flatnonzero(np.r_[True, np.diff(ordered) > 1e-9 * np.maximum(1.0, np.abs(ordered[1:]))])
        sizes = np.diff(np.r_[starts, ordered.size])
        points = [float(value) for value in ordered[starts[sizes >= POINT_MASS * reference.size]]]

    def nearest_point(values: np.ndarray) -> np.ndarray:
        """Index of the point mass each value counts as, -1 for none."""
        if not points or not values.size:
            return np.full(values.size, -1)
        distance = np.abs(values[:, None] - np.asarray(points)[None, :])
        nearest = distance.argmin(axis=1)
        hit = np.zeros(values.size, dtype=bool)
        for index, point in enumerate(points):
            mine = nearest == index
            hit[mine] = _same(values[mine], point, tolerance)
        return np.where(hit, nearest, -1)

    rest = reference[nearest_point(reference) < 0]
    intervals = max(1, int(round(bins * rest.size / reference.size))) if reference.size else 1
    edges = np.unique(np.quantile(rest, np.linspace(0, 1, intervals + 1)[1:-1])) if rest.size else np.zeros(0)

    def count(sample: np.ndarray) -> np.ndarray:
        present = np.isfinite(sample)
        values = sample[present]
        point_of = nearest_point(values)
        counts = list(np.bincount(point_of[point_of >= 0], minlength=len(points)))
        interval = np.searchsorted(edges, values[point_of < 0], side="right")
        counts.extend(np.bincount(interval, minlength=edges.size + 1))
        counts.append((~present).sum())
        return np.asarray(counts, dtype=float)

    return count


def drift_frame(model, training: pl.DataFrame, scoring: pl.DataFrame, threshold: float, *,
                reference: str = "the training rows", severe: float = DEFAULT_PSI_SEVERE,
                k: int = 1) -> pl.DataFrame:
    """PSI of every model feature and of the churn probability, reference training rows vs scoring rows,
    each with what moved in words (``describe_shift``)."""
    from churnwh.ml.train import predict_proba

    rows = []
    for name, kind in model.features.items():
        categorical = kind == "categorical"
        value = psi(training[name], scoring[name], categorical=categorical)
        rows.append((name, kind, value, describe_shift(name, training[name], scoring[name], categorical=categorical,
                                                       reference=reference, k=k)))
    if training.height and scoring.height:
        before, after = predict_proba(model, training), predict_proba(model, scoring)
        rows.append(("__score__", "score", psi(before, after), describe_score_shift(before, after, reference)))
    frame = pl.DataFrame(rows, schema={"feature": pl.String, "kind": pl.String, "psi": pl.Float64,
                                       "explanation": pl.String}, orient="row")
    return frame.with_columns(
        status=pl.when(pl.col("psi") > threshold).then(pl.lit("warning")).otherwise(pl.lit("ok")),
        threshold=pl.lit(threshold),
        severe=(pl.col("psi") >= severe).fill_null(False),
        reference=pl.lit(reference),
        training_rows=pl.lit(training.height, dtype=pl.Int64),
        scoring_rows=pl.lit(scoring.height, dtype=pl.Int64),
    ).select("feature", "kind", "psi", "status", "threshold", "severe", "explanation", "reference",
             "training_rows", "scoring_rows").sort("psi", descending=True, nulls_last=True)


# --- drift in words ---------------------------------------------------------------------------------


def _number(value: float) -> str:
    """A figure as a reader writes it: 4 significant digits, thousands separated (never a long digit run)."""
    if not np.isfinite(value):
        return "n/a"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def _moved(before: float, after: float) -> str:
    return "rose" if after > before else "fell" if after < before else "stayed"


def _share(value: float) -> str:
    return f"{value:.0%}" if value >= 0.01 or value == 0 else f"{value:.1%}"


def describe_shift(name: str, before: pl.Series, after: pl.Series, *, categorical: bool, reference: str,
                   k: int = 1) -> str:
    """What moved from ``before`` (the reference) to ``after`` (the scoring set), in one sentence of
    aggregates: the missing share when that moved most, else the mean (numeric) or the share of the
    category that moved most. A category held by fewer than ``k`` rows of either sample is not named."""
    since = f" since {reference}"
    if before.len() == 0 or after.len() == 0:
        return f"{name}: nothing to compare{since}"
    if categorical:
        b = before.cast(pl.String).fill_null("<missing>")
        a = after.cast(pl.String).fill_null("<missing>")
        b_counts = dict(b.value_counts().iter_rows())
        a_counts = dict(a.value_counts().iter_rows())
        changes = sorted(((a_counts.get(c, 0) / a.len() - b_counts.get(c, 0) / b.len(), c)
                          for c in set(b_counts) | set(a_counts)), key=lambda t: (-abs(t[0]), t[1]))
        _, value = changes[0]
        b_share, a_share = b_counts.get(value, 0) / b.len(), a_counts.get(value, 0) / a.len()
        if value == "<missing>":
            what = f"missing {name}"
        elif min(b_counts.get(value, 0), a_counts.get(value, 0)) >= k:
            what = f"{name} = '{value}'"
        else:  # a value a handful of customers hold is not named in a published table
            what = f"a rare {name} value (fewer than {k} customers)"
        return f"share of {what} {_moved(b_share, a_share)} from {_share(b_share)} to {_share(a_share)}{since}"
    b = before.cast(pl.Float64).to_numpy()
    a = after.cast(pl.Float64).to_numpy()
    b_missing, a_missing = float(np.mean(~np.isfinite(b))), float(np.mean(~np.isfinite(a)))
    b_present, a_present = b[np.isfinite(b)], a[np.isfinite(a)]
    if abs(a_missing - b_missing) >= 0.05 or not b_present.size or not a_present.size:
        return (f"share of missing {name} {_moved(b_missing, a_missing)} from {_share(b_missing)} to "
                f"{_share(a_missing)}{since}")
    b_mean, a_mean = float(b_present.mean()), float(a_present.mean())
    text = f"mean {name} {_moved(b_mean, a_mean)} from {_number(b_mean)} to {_number(a_mean)}"
    b_spread = float(b_present.std())
    if abs(b_mean) > 0.1 * b_spread and b_mean != 0:  # a percentage of a mean near zero says nothing
        text += f" ({(a_mean - b_mean) / abs(b_mean):+.0%})"
    b_zero, a_zero = float(np.mean(b_present == 0)), float(np.mean(a_present == 0))
    if abs(a_zero - b_zero) >= 0.1:  # a mostly-zero count: how many have none says more than the mean
        text += f"; share of zeros {_moved(b_zero, a_zero)} from {_share(b_zero)} to {_share(a_zero)}"
    elif abs(a_mean - b_mean) < 0.25 * b_spread:  # the mean moved little for its spread: the shape moved
        b_lo, b_hi = np.quantile(b_present, [0.1, 0.9])
        a_lo, a_hi = np.quantile(a_present, [0.1, 0.9])
        text += (f"; its middle 80% spans {_number(a_lo)} to {_number(a_hi)} (was {_number(b_lo)} to "
                 f"{_number(b_hi)})")
    return text + since


def describe_score_shift(before: np.ndarray, after: np.ndarray, reference: str) -> str:
    b_mean, a_mean = float(np.mean(before)), float(np.mean(after))
    return (f"mean churn probability {_moved(b_mean, a_mean)} from {b_mean:.1%} to {a_mean:.1%} since "
            f"{reference}")


# --- severe drift ---------------------------------------------------------------------------------


def severe_drift(drift: pl.DataFrame, severe_features: int) -> str | None:
    """Why drift stops the build, in words (None when it does not): the score's PSI is severe, or at
    least ``severe_features`` features' PSI is (0: features alone never stop it)."""
    if "severe" not in drift.columns or drift.height == 0:
        return None
    severe = drift.filter(pl.col("severe")).sort("psi", descending=True)
    score = severe.filter(pl.col("kind") == "score")
    features = severe.filter(pl.col("kind") != "score")
    if score.height == 0 and (severe_features == 0 or features.height < severe_features):
        return None
    parts = []
    if score.height:
        parts.append(f"the score's PSI is {score['psi'][0]:.2f}")
    if features.height:
        worst = ", ".join(f"{name} {value:.2f}" for name, value in
                          features.select("feature", "psi").head(3).iter_rows())
        parts.append(f"{features.height} feature{'s' if features.height != 1 else ''} severe (worst: {worst})")
    reference = drift["reference"][0]
    worst = features if features.height else score
    moved = ""
    if "explanation" in worst.columns and worst["explanation"][0]:
        moved = f" ({worst['explanation'][0].removesuffix(f' since {reference}')})"
    return f"{' and '.join(parts)} against {reference}{moved}"
