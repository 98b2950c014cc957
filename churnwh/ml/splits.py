"""Train / validation / test splits of a training frame.

Churn rows are (customer, observation date) pairs, so the honest split is by time: the latest
observation dates are held out for test, the ones before them for validation (``time_split``).
When a frame has no time column, ``stratified_split`` and ``stratified_kfold`` keep the churn rate
equal across parts. All splits are deterministic for a given seed.
"""

from __future__ import annotations

import datetime

import numpy as np
import polars as pl

from churnwh.errors import DataError


def _minus_days(value, days: int):
    """``value - days`` for a date/datetime (days) or a number (same unit as the column)."""
    if days == 0:
        return value
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value - datetime.timedelta(days=days)
    return value - days


def time_split(
    frame: pl.DataFrame,
    time_column: str,
    *,
    valid_dates: int = 1,
    test_dates: int = 1,
    purge_days: int = 0,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Split by observation date: the last ``test_dates`` dates are test, the ``valid_dates`` before
    them validation, everything earlier training, with a purge gap between the parts.

    A training row's label looks ``lead + window + gap`` days past its observation date, so without
    a gap the same churn event is a label in training and in test. With ``purge_days`` the parts
    are kept apart: validation dates are the latest ``valid_dates`` dates with
    ``date <= first_test_date - purge_days`` and training rows have
    ``date <= first_valid_date - purge_days``; the dates in between are dropped.

    Parameters
    ----------
    frame : training rows
    time_column : observation date column (Date or Datetime: ``purge_days`` are days; a numeric
        column: ``purge_days`` is in the column's own unit)
    valid_dates, test_dates : how many distinct dates go to validation and test
    purge_days : gap kept between the parts (0: adjacent parts, the old behaviour)

    Returns
    -------
    (train, valid, test) : tuple of polars.DataFrame

    Raises
    ------
    DataError
        Missing or NULL time column, or too few distinct dates for the split and the purge gap.
    """
    if time_column not in frame.columns:
        raise DataError(f"time column '{time_column}' is not in the frame; pass an existing column")
    if frame[time_column].null_count() > 0:
        raise DataError(f"time column '{time_column}' has NULLs; fill or drop those rows first")
    if purge_days < 0:
        raise DataError(f"purge_days is {purge_days}; it must be 0 or more days")
    dates = frame[time_column].unique().sort().to_list()
    needed = valid_dates + test_dates + 1
    if len(dates) < needed:
        raise DataError(
            f"time column '{time_column}' has {len(dates)} distinct dates; a time split needs at "
            f"least {needed} (train, {valid_dates} valid, {test_dates} test); add observation dates"
        )
    first_test = dates[len(dates) - test_dates]
    valid_candidates = [d for d in dates if d < first_test and d <= _minus_days(first_test, purge_days)]
    if len(valid_candidates) < valid_dates + 1:
        raise DataError(
            f"time column '{time_column}' has {len(dates)} distinct dates, too few for a time split "
            f"with a purge gap of {purge_days} days: {len(valid_candidates)} date(s) lie {purge_days} "
            f"days or more before the first test date {first_test}, and at least {valid_dates + 1} "
            "are needed (validation and training); add observation dates or shorten the purge gap "
            "(the label window)"
        )
    valid_set = valid_candidates[-valid_dates:]
    first_valid = valid_set[0]
    train_cutoff = _minus_days(first_valid, purge_days)
    if not any(d < first_valid and d <= train_cutoff for d in dates):
        raise DataError(
            f"time column '{time_column}' has no date {purge_days} days or more before the first "
            f"validation date {first_valid}, so nothing is left to train on; add observation dates "
            "or shorten the purge gap (the label window)"
        )
    column = pl.col(time_column)
    train = frame.filter((column < first_valid) & (column <= train_cutoff))
    valid = frame.filter(column.is_in(valid_set))
    test = frame.filter(column >= first_test)
    return train, valid, test


TRAIN_PARTS = ("train", "training")
VALID_PARTS = ("valid", "validation", "val")
TEST_PARTS = ("test", "testing", "holdout")


def declared_split(
    frame: pl.DataFrame,
    split_column: str,
    label_column: str,
    *,
    valid_fraction: float = 0.15,
    test_from: datetime.date | None = None,
    seed: int = 0,
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The split the data came with: ``split_column`` says each row's part.

    Text values ``train``/``test`` (case and spaces ignored; ``valid`` rows, if any, are the validation
    part); a date column with ``test_from``: rows on or after it are test, the others train. Without
    ``valid`` rows the validation part is ``valid_fraction`` of the train part, stratified by the label
    (seeded). Test metrics are computed on the declared test part only.

    Raises
    ------
    DataError
        Missing column, NULL or unknown part values, a date column without ``test_from``, or an
        empty train or test part. Messages give counts, never values.
    """
    if split_column not in frame.columns:
        raise DataError(f"split column '{split_column}' is not in the training set: add it to the model or fix "
                        "training.split_column")
    column = frame[split_column]
    if column.null_count():
        raise DataError(f"split column '{split_column}' is empty in {column.null_count()} rows: every row needs "
                        "its part (train or test)")
    if column.dtype.is_temporal():
        if test_from is None:
            raise DataError(f"split column '{split_column}' holds dates: set [training] split_date = \"YYYY-MM-DD\" "
                            "(rows on or after it are the test part)")
        part = pl.when(pl.col(split_column) >= pl.lit(test_from)).then(pl.lit("test")).otherwise(pl.lit("train"))
    else:
        text = pl.col(split_column).cast(pl.String).str.strip_chars().str.to_lowercase()
        part = (pl.when(text.is_in(TRAIN_PARTS)).then(pl.lit("train"))
                .when(text.is_in(VALID_PARTS)).then(pl.lit("valid"))
                .when(text.is_in(TEST_PARTS)).then(pl.lit("test")))
    parts = frame.select(part.alias("part"))["part"]
    unknown = parts.null_count()
    if unknown:
        raise DataError(f"split column '{split_column}': {unknown} rows hold a value that is not train, valid or "
                        "test: give every row one of these parts")
    train = frame.filter(parts == "train")
    test = frame.filter(parts == "test")
    valid = frame.filter(parts == "valid")
    if train.height == 0 or test.height == 0:
        raise DataError(f"split column '{split_column}' gives {train.height} training and {test.height} test rows: "
                        "both parts need rows (is the other file part of the source?)")
    if valid.height == 0:
        labels = train[label_column].to_numpy()
        kept, held = stratified_split_indices(labels, (1.0 - valid_fraction, valid_fraction), seed)
        train, valid = train[kept], train[held]
    return train, valid, test


def _shuffled_indices_by_class(labels: np.ndarray, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.permutation(np.flatnonzero(labels == value)) for value in np.unique(labels)]


def stratified_split_indices(
    labels: np.ndarray, fractions: tuple[float, ...], seed: int = 0
) -> list[np.ndarray]:
    """Row indices of each part, every class divided in the given fractions (sorted indices)."""
    fractions_array = np.asarray(fractions, dtype=np.float64)
    if np.any(fractions_array <= 0) or not np.isclose(fractions_array.sum(), 1.0):
        raise ValueError(f"fractions must be positive and sum to 1, got {fractions}")
    parts: list[list[np.ndarray]] = [[] for _ in fractions]
    for class_indices in _shuffled_indices_by_class(np.asarray(labels), seed):
        cuts = np.round(np.cumsum(fractions_array)[:-1] * class_indices.size).astype(int)
        for part, chunk in zip(parts, np.split(class_indices, cuts)):
            part.append(chunk)
    return [np.sort(np.concatenate(part)) for part in parts]


def stratified_split(
    frame: pl.DataFrame,
    label_column: str,
    *,
    fractions: tuple[float, ...] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> tuple[pl.DataFrame, ...]:
    """Random split keeping the label rate equal across parts (default 70/15/15).

    Returns
    -------
    tuple of polars.DataFrame, one per fraction, rows in their original order
    """
    if label_column not in frame.columns:
        raise DataError(f"label column '{label_column}' is not in the frame; check the name")
    labels = frame[label_column].to_numpy()
    return tuple(frame[indices] for indices in stratified_split_indices(labels, fractions, seed))


def stratified_kfold(labels: np.ndarray, n_splits: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold: ``(train_indices, test_indices)`` per fold, deterministic per seed."""
    labels = np.asarray(labels)
    fold_of_row = np.empty(labels.size, dtype=np.int64)
    for class_indices in _shuffled_indices_by_class(labels, seed):
        fold_of_row[class_indices] = np.arange(class_indices.size) % n_splits
    return [
        (np.flatnonzero(fold_of_row != fold), np.flatnonzero(fold_of_row == fold))
        for fold in range(n_splits)
    ]
