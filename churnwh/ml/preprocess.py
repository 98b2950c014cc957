"""Feature preprocessing fitted on training rows, serializable beside the model.

The feature list and each feature's kind are read from the frame's dtypes, so a column added to a
feature table enters the model with no Python change:

- numeric and boolean dtypes -> **numeric** features;
- String, Categorical and Enum dtypes -> **categorical** features;
- any other dtype (dates, lists, structs, ...) -> ``DataError``: exclude the column or convert it
  (e.g. to "days since") in SQL.

Numeric features
    ``x -> c * tanh(((x - median) / scale) / c)`` with ``c = SMOOTH_CLIP = 4``. ``scale`` is the
    IQR / 1.349 (equal to the standard deviation for normal data), falling back to the standard
    deviation when the IQR is 0 (e.g. a mostly-zero column). The tanh keeps the order of values
    and is linear near the centre but bounds outliers to (-4, 4) instead of cutting them off flat,
    so extreme values stay distinguishable and gradients stay finite. NULL, NaN and +/-inf are all
    treated as *missing* (an infinite amount is a data bug, not a big number): a missing value
    becomes 0 (the median) and, when the column had missing values in the training rows, a 0/1
    ``<name>__missing`` indicator is appended as an extra numeric input. A column missing nowhere
    in training gets no indicator; missing values at scoring time are then imputed silently.
    Quantile bin edges of the transformed training values (for piecewise-linear encoding in the
    network) are stored here too, so the network needs nothing but these arrays.

Categorical features
    Vocabulary of the ``max_categories`` most frequent values seen at least ``min_category_count``
    times in training (ties broken by value). Index 0 is the unknown slot: NULL, rare and unseen
    values map to it.

Constant columns (one value, or no values, in training) are dropped with a logged warning. At
transform time a feature column that is missing or whose dtype changed kind raises ``DataError``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from churnwh.errors import DataError

logger = logging.getLogger(__name__)

SMOOTH_CLIP = 4.0
IQR_TO_STD = 1.349
MISSING_SUFFIX = "__missing"
NUMERIC = "numeric"
CATEGORICAL = "categorical"


def feature_kind(dtype: pl.DataType) -> str | None:
    """``"numeric"``, ``"categorical"``, or None when the dtype cannot be a feature."""
    if dtype.is_numeric() or dtype == pl.Boolean:
        return NUMERIC
    if dtype in (pl.String, pl.Categorical) or isinstance(dtype, (pl.Categorical, pl.Enum)):
        return CATEGORICAL
    return None


@dataclass(frozen=True)
class NumericFeature:
    """Robust-scaling parameters of one numeric column."""

    name: str
    center: float
    scale: float
    missing_indicator: bool


@dataclass(frozen=True)
class CategoricalFeature:
    """Vocabulary of one categorical column; value ``vocabulary[i]`` has index ``i + 1``."""

    name: str
    vocabulary: tuple[str, ...]

    @property
    def cardinality(self) -> int:
        """Embedding rows needed, the unknown slot included."""
        return len(self.vocabulary) + 1


@dataclass(frozen=True)
class EncodedFeatures:
    """Model inputs: ``numeric`` (rows, numeric inputs) float32, ``categorical`` (rows, columns) int32."""

    numeric: np.ndarray
    categorical: np.ndarray

    @property
    def rows(self) -> int:
        return self.numeric.shape[0]


@dataclass(frozen=True)
class Preprocessor:
    """Fitted preprocessing: feature list, scaling, vocabularies and quantile bin edges.

    ``bin_edges`` has shape (numeric inputs, n_bins + 1): the ascending edges of each input's bins
    on the transformed scale, padded by repeating the last edge; ``bin_mask`` (numeric inputs,
    n_bins) is 1 for a real bin and 0 for padding. Missing indicators are numeric inputs with
    the single bin [0, 1].
    """

    numeric: tuple[NumericFeature, ...]
    categorical: tuple[CategoricalFeature, ...]
    bin_edges: np.ndarray
    bin_mask: np.ndarray
    dropped_constant: tuple[str, ...] = field(default=())

    @property
    def feature_names(self) -> list[str]:
        """The source columns the model reads, numeric first."""
        return [f.name for f in self.numeric] + [f.name for f in self.categorical]

    @property
    def feature_kinds(self) -> dict[str, str]:
        """Source column -> ``"numeric"`` or ``"categorical"``."""
        kinds = {f.name: NUMERIC for f in self.numeric}
        kinds.update({f.name: CATEGORICAL for f in self.categorical})
        return kinds

    @property
    def numeric_input_names(self) -> list[str]:
        """Names of the numeric network inputs, indicators included."""
        names = [f.name for f in self.numeric]
        names += [f.name + MISSING_SUFFIX for f in self.numeric if f.missing_indicator]
        return names

    @property
    def cardinalities(self) -> tuple[int, ...]:
        return tuple(f.cardinality for f in self.categorical)

    @property
    def n_bins(self) -> int:
        return int(self.bin_mask.shape[1])

    def to_dict(self) -> tuple[dict, dict[str, np.ndarray]]:
        """JSON-able metadata and the numpy arrays, for ``from_dict``."""
        meta = {
            "numeric": [
                {"name": f.name, "center": f.center, "scale": f.scale,
                 "missing_indicator": f.missing_indicator}
                for f in self.numeric
            ],
            "categorical": [
                {"name": f.name, "vocabulary": list(f.vocabulary)} for f in self.categorical
            ],
            "dropped_constant": list(self.dropped_constant),
            "smooth_clip": SMOOTH_CLIP,
        }
        return meta, {"bin_edges": self.bin_edges, "bin_mask": self.bin_mask}

    @classmethod
    def from_dict(cls, meta: dict, arrays: dict[str, np.ndarray]) -> Preprocessor:
        """Rebuild a preprocessor saved with ``to_dict``."""
        return cls(
            numeric=tuple(
                NumericFeature(f["name"], float(f["center"]), float(f["scale"]),
                               bool(f["missing_indicator"]))
                for f in meta["numeric"]
            ),
            categorical=tuple(
                CategoricalFeature(f["name"], tuple(f["vocabulary"])) for f in meta["categorical"]
            ),
            bin_edges=np.asarray(arrays["bin_edges"], dtype=np.float32),
            bin_mask=np.asarray(arrays["bin_mask"], dtype=np.float32),
            dropped_constant=tuple(meta.get("dropped_constant", ())),
        )


def _numeric_values(series: pl.Series) -> np.ndarray:
    """float64 values with NULL, NaN and inf all as NaN."""
    values = series.cast(pl.Float64).to_numpy().astype(np.float64, copy=True)
    values[~np.isfinite(values)] = np.nan
    return values


def _smooth_clip(scaled: np.ndarray) -> np.ndarray:
    return SMOOTH_CLIP * np.tanh(scaled / SMOOTH_CLIP)


def _fit_numeric(name: str, values: np.ndarray) -> NumericFeature | None:
    present = values[~np.isnan(values)]
    if present.size == 0 or present.min() == present.max():
        return None
    center = float(np.median(present))
    q25, q75 = np.quantile(present, [0.25, 0.75])
    scale = float((q75 - q25) / IQR_TO_STD)
    if scale <= 0:
        scale = float(present.std())
    return NumericFeature(name, center, scale, missing_indicator=bool(present.size < values.size))


def _fit_categorical(
    name: str, series: pl.Series, min_count: int, max_categories: int
) -> CategoricalFeature | None:
    counts = (
        series.cast(pl.String).drop_nulls().value_counts(name="count")
        .filter(pl.col("count") >= min_count)
        .sort(["count", name], descending=[True, False])
        .head(max_categories)
    )
    vocabulary = tuple(counts[name].to_list())
    rows_in_unknown_slot = series.len() - int(counts["count"].sum())
    if len(vocabulary) + (rows_in_unknown_slot > 0) <= 1:
        return None
    if series.n_unique() > 0.5 * series.len() and series.len() > 100:
        logger.warning(
            "categorical feature '%s' has a distinct value on most rows; if it is an identifier, "
            "exclude it", name,
        )
    return CategoricalFeature(name, vocabulary)


def _quantile_edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, n_bins + 1)))
    return edges if edges.size >= 2 else np.array([edges[0], edges[0] + 1.0])


def fit_preprocessor(
    frame: pl.DataFrame,
    *,
    exclude: tuple[str, ...] | list[str] = (),
    n_bins: int = 24,
    min_category_count: int = 5,
    max_categories: int = 100,
) -> Preprocessor:
    """Fit preprocessing on training rows; every column not in ``exclude`` is a feature.

    Parameters
    ----------
    frame : training rows only (never validation or test rows)
    exclude : columns that are not features (identifier, label, observation date, ...)
    n_bins : quantile bins per numeric input, for piecewise-linear encoding
    min_category_count : a categorical value seen fewer times goes to the unknown slot
    max_categories : vocabulary cap per categorical column (most frequent kept)

    Returns
    -------
    Preprocessor
    """
    excluded = set(exclude)
    numeric: list[NumericFeature] = []
    categorical: list[CategoricalFeature] = []
    dropped: list[str] = []
    transformed_columns: list[np.ndarray] = []
    for name, dtype in frame.schema.items():
        if name in excluded:
            continue
        kind = feature_kind(dtype)
        if kind is None:
            raise DataError(
                f"column '{name}' has dtype {dtype}, which is not a feature type (numeric, boolean "
                "or string); exclude it or convert it in SQL (e.g. a date to days since)"
            )
        if kind == NUMERIC:
            values = _numeric_values(frame[name])
            feature = _fit_numeric(name, values)
            if feature is not None:
                numeric.append(feature)
                transformed_columns.append(_transform_numeric(feature, values))
        else:
            feature = _fit_categorical(name, frame[name], min_category_count, max_categories)
            if feature is not None:
                categorical.append(feature)
        if feature is None:
            dropped.append(name)
    if dropped:
        logger.warning("dropped %d constant feature column(s): %s", len(dropped), ", ".join(dropped))
    if not numeric and not categorical:
        raise DataError(
            "no usable feature columns: every column is excluded or constant; add feature columns"
        )
    edges = [_quantile_edges(values[~np.isnan(values)], n_bins) for values in transformed_columns]
    edges += [np.array([0.0, 1.0]) for f in numeric if f.missing_indicator]
    bin_edges = np.zeros((len(edges), n_bins + 1), dtype=np.float32)
    bin_mask = np.zeros((len(edges), n_bins), dtype=np.float32)
    for row, feature_edges in enumerate(edges):
        bin_edges[row, : feature_edges.size] = feature_edges
        bin_edges[row, feature_edges.size :] = feature_edges[-1]
        bin_mask[row, : feature_edges.size - 1] = 1.0
    return Preprocessor(tuple(numeric), tuple(categorical), bin_edges, bin_mask, tuple(dropped))


def _transform_numeric(feature: NumericFeature, values: np.ndarray) -> np.ndarray:
    """Scaled, smooth-clipped values; NaN where missing."""
    return _smooth_clip((values - feature.center) / feature.scale)


def _check_column(frame: pl.DataFrame, name: str, expected_kind: str) -> None:
    if name not in frame.columns:
        raise DataError(
            f"feature column '{name}' is missing; the model was trained with it, so add it back "
            "or retrain"
        )
    dtype = frame.schema[name]
    if dtype == pl.Null:
        return
    kind = feature_kind(dtype)
    if kind != expected_kind:
        raise DataError(
            f"feature column '{name}' has dtype {dtype} but the model was trained on a "
            f"{expected_kind} column; cast it back or retrain the model"
        )


def transform(preprocessor: Preprocessor, frame: pl.DataFrame) -> EncodedFeatures:
    """Encode a frame with a fitted preprocessor (extra columns are ignored).

    Raises
    ------
    DataError
        A feature column is missing or its dtype changed kind (numeric <-> categorical).
    """
    for feature in preprocessor.numeric:
        _check_column(frame, feature.name, NUMERIC)
    for feature in preprocessor.categorical:
        _check_column(frame, feature.name, CATEGORICAL)
    rows = frame.height
    numeric_columns: list[np.ndarray] = []
    indicator_columns: list[np.ndarray] = []
    for feature in preprocessor.numeric:
        transformed = _transform_numeric(feature, _numeric_values(frame[feature.name]))
        missing = np.isnan(transformed)
        numeric_columns.append(np.where(missing, 0.0, transformed))
        if feature.missing_indicator:
            indicator_columns.append(missing.astype(np.float64))
    all_numeric = numeric_columns + indicator_columns
    numeric = (
        np.stack(all_numeric, axis=1).astype(np.float32)
        if all_numeric else np.zeros((rows, 0), dtype=np.float32)
    )
    categorical_columns = [
        frame[f.name].cast(pl.String).replace_strict(
            list(f.vocabulary), list(range(1, f.cardinality)), default=0, return_dtype=pl.Int32
        ).to_numpy()
        for f in preprocessor.categorical
    ]
    categorical = (
        np.stack(categorical_columns, axis=1).astype(np.int32)
        if categorical_columns else np.zeros((rows, 0), dtype=np.int32)
    )
    return EncodedFeatures(numeric=numeric, categorical=categorical)


def one_hot_design_matrix(preprocessor: Preprocessor, encoded: EncodedFeatures) -> np.ndarray:
    """Numeric inputs next to one-hot categoricals (unknown slot included): the baseline's features."""
    blocks = [encoded.numeric.astype(np.float64)]
    for column, cardinality in enumerate(preprocessor.cardinalities):
        blocks.append(np.eye(cardinality)[encoded.categorical[:, column]])
    return np.hstack(blocks)
