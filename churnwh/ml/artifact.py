"""Save and load a TrainedModel as a directory: ``arrays.npz`` + ``model.json``, no pickles.

``model.json`` holds the feature list with kinds, the preprocessing, the network shape, the
training config, the calibrator, the training history and the evaluation metrics. ``arrays.npz``
holds the network parameters (keyed by their path in the module tree) and the preprocessor's bin
arrays. Neither contains a row of data or a row identifier: only column names, category values
seen at least ``min_category_count`` times, and aggregate statistics.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np

from churnwh.errors import ChurnwhError
from churnwh.ml import network, preprocess
from churnwh.ml.train import TrainConfig, TrainedModel

FORMAT_VERSION = 1
META_FILE = "model.json"
ARRAYS_FILE = "arrays.npz"
PARAM_PREFIX = "param:"
PREPROCESSOR_PREFIX = "preprocessor:"


def _flat_params(params) -> dict[str, np.ndarray]:
    leaves, _ = jax.tree_util.tree_flatten_with_path(params)
    return {PARAM_PREFIX + jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in leaves}


def save_model(model: TrainedModel, directory: str | Path) -> Path:
    """Write ``model`` to ``directory`` (created if needed; existing files are replaced).

    Returns
    -------
    pathlib.Path
        The directory.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    preprocessor_meta, preprocessor_arrays = model.preprocessor.to_dict()
    arrays = _flat_params(model.params)
    arrays.update({PREPROCESSOR_PREFIX + name: value for name, value in preprocessor_arrays.items()})
    meta = {
        "format_version": FORMAT_VERSION,
        "label_column": model.label_column,
        "features": model.features,
        "preprocessor": preprocessor_meta,
        "network_shape": model.shape.to_dict(),
        "config": model.config.to_dict(),
        "calibrator": model.calibrator,
        "best_epoch": model.best_epoch,
        "history": model.history,
        "metrics": model.metrics,
    }
    with open(directory / ARRAYS_FILE, "wb") as handle:
        np.savez(handle, **arrays)
    (directory / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
    return directory


def read_artifact(directory: Path, meta_file: str, format_version: int, *, what: str, writer: str,
                  redo: str) -> tuple[dict, dict[str, np.ndarray]]:
    """The metadata and arrays of a saved artifact, checked for its files and format version."""
    if not (directory / meta_file).is_file() or not (directory / ARRAYS_FILE).is_file():
        raise ChurnwhError(f"{directory} is not a saved {what} (needs {meta_file} and {ARRAYS_FILE}); "
                           f"point to the directory {writer} wrote")
    meta = json.loads((directory / meta_file).read_text())
    if meta.get("format_version") != format_version:
        raise ChurnwhError(f"{directory / meta_file} has format version {meta.get('format_version')}, "
                           f"this churnwh reads version {format_version}; {redo}")
    with np.load(directory / ARRAYS_FILE, allow_pickle=False) as stored:
        return meta, {name: stored[name] for name in stored.files}


def restore_params(template, arrays: dict[str, np.ndarray], arrays_path: Path, redo: str):
    """``template``'s parameter tree filled from ``arrays`` (each leaf's shape checked)."""
    template_leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    leaves = []
    for path, leaf in template_leaves:
        key = PARAM_PREFIX + jax.tree_util.keystr(path)
        if key not in arrays or arrays[key].shape != leaf.shape:
            raise ChurnwhError(f"{arrays_path} lacks parameter {key} of shape "
                               f"{leaf.shape}; the artifact is damaged, {redo} or restore it")
        leaves.append(jax.numpy.asarray(arrays[key], dtype=leaf.dtype))
    return jax.tree_util.tree_unflatten(treedef, leaves)


def restore_preprocessor(meta: dict, arrays: dict[str, np.ndarray]) -> preprocess.Preprocessor:
    return preprocess.Preprocessor.from_dict(
        meta["preprocessor"],
        {name[len(PREPROCESSOR_PREFIX):]: value for name, value in arrays.items()
         if name.startswith(PREPROCESSOR_PREFIX)},
    )


def load_model(directory: str | Path) -> TrainedModel:
    """Read a model written by ``save_model``; it predicts exactly what the saved one did."""
    directory = Path(directory)
    meta, arrays = read_artifact(directory, META_FILE, FORMAT_VERSION, what="model", writer="save_model",
                                 redo="retrain the model")
    shape = network.NetworkShape.from_dict(meta["network_shape"])
    params = restore_params(network.network_structure(shape)[1], arrays, directory / ARRAYS_FILE, "retrain")
    preprocessor = restore_preprocessor(meta, arrays)
    return TrainedModel(
        preprocessor=preprocessor,
        shape=shape,
        params=params,
        calibrator=meta["calibrator"],
        config=TrainConfig.from_dict(meta["config"]),
        label_column=meta["label_column"],
        history=meta["history"],
        best_epoch=meta["best_epoch"],
        metrics=meta["metrics"],
    )
