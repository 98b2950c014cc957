"""Label leakage found before training: columns that cannot honestly predict churn.

Three signs, each cheap (ranks in numpy, per-category rates in Polars):

- a column named after the label (``churn_score`` beside ``churned``): usually an earlier model's
  output or a field filled in when the customer left;
- a single column that separates the label almost perfectly on its own (a one-feature ROC-AUC of
  ``LEAKAGE_AUC`` or more, either direction): numbers by their ranks, whether a value is missing,
  categories by their churn rate measured on the other half of the rows (so a column of unique values,
  an identifier, is not taken for a perfect predictor);
- a date after the row's observation date: known only after the moment the label looks forward from.

Names only: a finding names the column and the reason, never a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import polars as pl

from churnwh.ml import metrics

LEAKAGE_AUC = 0.98
"""A single column whose ROC-AUC on its own reaches this is taken for a copy of the label."""
IMPLAUSIBLE_AUC = 0.995
"""A test ROC-AUC from which a churn model is implausibly perfect (promotion needs --force)."""
MIN_CLASS_ROWS = 5
"""Fewer churned (or retained) rows than this: no one-feature check (an AUC on so few means nothing)."""
GENERIC_WORDS = {"is", "has", "flag", "label", "target", "y", "status", "yn", "bool", "value"}
"""Words of a label's name that do not make a column "named after" it (``churn_flag`` -> ``churn``)."""


@dataclass(frozen=True)
class Suspect:
    column: str
    reason: str


def _words(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", spaced)
    return [w for w in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if w]


def label_stems(label: str) -> set[str]:
    """``Churned`` -> {"churned", "churn"}; ``Attrition_Flag`` -> {"attrition"}; ``Exited`` -> {"exited", "exit"}."""
    stems = set()
    for word in _words(label):
        if word in GENERIC_WORDS or len(word) < 4:
            continue
        stems.add(word)
        if word.endswith("ed") and len(word) > 5:
            stems.add(word[:-2])
    return stems


def named_after_label(columns: list[str], labels: list[str]) -> list[Suspect]:
    """Columns whose name contains a label's name (or its stem)."""
    stems = {stem: label for label in labels for stem in label_stems(label)}
    found = []
    for column in columns:
        joined = "".join(_words(column))
        hit = next((label for stem, label in stems.items() if stem in joined), None)
        if hit is not None:
            found.append(Suspect(column, f"named after the label {hit!r}"))
    return found


def _halves_rates(values: pl.Series, labels: np.ndarray) -> np.ndarray:
    """Each row's category scored by the churn rate of its category in the other half of the rows
    (even/odd rows: deterministic); a category the other half lacks gets that half's overall rate."""
    frame = pl.DataFrame({"v": values.cast(pl.String).fill_null("\x00null"), "y": labels,
                          "half": np.arange(labels.size) % 2})
    scores = np.empty(labels.size, dtype=np.float64)
    for half in (0, 1):
        other = frame.filter(pl.col("half") != half)
        rates = other.group_by("v").agg(pl.col("y").mean().alias("rate"))
        mine = frame.with_row_index("row").filter(pl.col("half") == half).join(rates, on="v", how="left")
        overall = float(other["y"].mean()) if other.height else 0.5
        scores[mine["row"].to_numpy()] = mine["rate"].fill_null(overall).to_numpy()
    return scores


def _strength(labels: np.ndarray, scores: np.ndarray) -> float:
    if labels.size == 0 or min(labels.sum(), labels.size - labels.sum()) < MIN_CLASS_ROWS:
        return float("nan")
    auc = metrics.roc_auc(labels, scores)
    return max(auc, 1.0 - auc)


def one_feature_auc(values: pl.Series, labels: np.ndarray) -> float:
    """How well ``values`` alone separate the 0/1 ``labels`` (ROC-AUC, either direction; NaN: no check)."""
    missing = values.is_null().to_numpy()
    best = float("nan")
    if 0 < missing.sum() < missing.size:
        best = _strength(labels, missing.astype(np.float64))
    dtype = values.dtype
    if dtype.is_numeric() or dtype == pl.Boolean or dtype.is_temporal():
        present = ~missing
        numbers = values.filter(pl.Series(present))
        numbers = numbers.to_physical() if dtype.is_temporal() else numbers
        scores = numbers.cast(pl.Float64).fill_nan(None).fill_null(0.0).to_numpy()
        strength = _strength(labels[present], scores)
    else:
        strength = _strength(labels, _halves_rates(values, labels))
    return float(np.nanmax([best, strength])) if not (np.isnan(best) and np.isnan(strength)) else float("nan")


def find_leaks(frame: pl.DataFrame, label_column: str, features: list[str], *, label_names: list[str] = (),
               date_column: str | None = None, threshold: float = LEAKAGE_AUC) -> list[Suspect]:
    """The feature columns of ``frame`` that likely leak ``label_column`` (0/1), in column order.

    ``label_names``: further names of the label (the source file's own name of it); ``date_column``:
    the observation date, after which no feature's date may lie.
    """
    labels = frame[label_column].cast(pl.Float64).fill_null(0.0).to_numpy()
    found = {s.column: s for s in named_after_label(features, [label_column, *label_names])}
    for column in features:
        if column in found:
            continue
        series = frame[column]
        if date_column and series.dtype.is_temporal() and date_column in frame.columns:
            later = frame.select((pl.col(column).cast(pl.Date) > pl.col(date_column).cast(pl.Date)).sum()).item()
            if later:
                found[column] = Suspect(column, f"dated after {date_column} in {later:,} rows")
                continue
        strength = one_feature_auc(series, labels)
        if not np.isnan(strength) and strength >= threshold:
            found[column] = Suspect(column, f"separates the label on its own (ROC-AUC {strength:.3f})")
    return [found[c] for c in features if c in found]


def described(suspects: list[Suspect]) -> str:
    return "; ".join(f"{s.column} ({s.reason})" for s in suspects)
