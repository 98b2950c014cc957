"""What Spark executors run: the DuckDB path's pure scoring function over Arrow record batches.

This module imports neither pyspark nor DuckDB, so an executor needs only ``churnwh`` (and its
JAX/Flax dependencies) installed. The model travels inside the task as the bytes of its saved
artifact (``model.json`` + ``arrays.npz``: parameters and preprocessing, never a row of data); each
Python worker loads it once and keeps it for the next tasks.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator

SCORED_COLUMNS = ("customer_pseudonym", "as_of", "churn_probability", "monthly_value")

_MODELS: dict[str, object] = {}


def model_payload(directory: Path) -> dict[str, bytes]:
    """The files of a saved model, as bytes that travel with the Spark task."""
    return {path.name: path.read_bytes() for path in sorted(Path(directory).iterdir()) if path.is_file()}


def _model(version: str, payload: dict[str, bytes]):
    if version not in _MODELS:
        from churnwh.ml import artifact

        with tempfile.TemporaryDirectory(prefix="churnwh-model-") as folder:
            for name, data in payload.items():
                (Path(folder) / name).write_bytes(data)
            _MODELS[version] = artifact.load_model(folder)
    return _MODELS[version]


def score_batches(
    batches: Iterator,
    *,
    version: str,
    payload: dict[str, bytes],
    id_column: str,
    date_column: str,
    value_column: str,
    batch_rows: int,
) -> Iterator:
    """``mapInArrow`` function: record batches of the scoring set in, scored record batches out.

    Every batch goes through ``churnwh.ml.train.predict_proba``, the function the DuckDB path calls;
    rows are regrouped into batches of ``batch_rows`` so JAX sees the same few padded shapes.
    """
    import numpy as np
    import polars as pl
    import pyarrow as pa

    from churnwh.ml.train import predict_proba

    model = _model(version, payload)
    pending: list = []
    pending_rows = 0

    def flush(tables):
        table = pa.Table.from_batches(tables)
        frame = pl.from_arrow(table)
        probabilities = predict_proba(model, frame)
        scored = pa.table(
            {
                "customer_pseudonym": frame[id_column].cast(pl.String).to_arrow(),
                "as_of": frame[date_column].cast(pl.Date).to_arrow(),
                "churn_probability": pa.array(np.asarray(probabilities, dtype=np.float64)),
                "monthly_value": frame[value_column].cast(pl.Float64).to_arrow(),
            }
        )
        yield from scored.to_batches()

    for batch in batches:
        if batch.num_rows == 0:
            continue
        pending.append(batch)
        pending_rows += batch.num_rows
        if pending_rows >= batch_rows:
            yield from flush(pending)
            pending, pending_rows = [], 0
    if pending:
        yield from flush(pending)


def scored_schema_ddl() -> str:
    return "customer_pseudonym string, as_of date, churn_probability double, monthly_value double"

