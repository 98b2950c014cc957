"""Save and load an UpliftModel as a directory: ``arrays.npz`` + ``uplift.json``, no pickles.

The same layout as the churn model's artifact (``artifact.py``): parameters keyed by their path in
the module tree and the preprocessor's bin arrays in ``arrays.npz``; the preprocessing, network shape,
training config, column names, training history and the pilot's aggregate counts in ``uplift.json``.
No row of data and no row identifier.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from churnwh.ml import network, uplift
from churnwh.ml.artifact import (
    ARRAYS_FILE,
    PREPROCESSOR_PREFIX,
    _flat_params,
    read_artifact,
    restore_params,
    restore_preprocessor,
)
from churnwh.ml.train import TrainConfig

FORMAT_VERSION = 3
"""2: the control head's risk offset (``risk_weight``, ``risk_column``); 3: ``estimator`` (the risk-offset
model's coefficients, thresholds and scaling in ``arrays.npz`` and ``uplift.json``)."""
OFFSET_PREFIX = "risk_offset/"
META_FILE = "uplift.json"


def save_uplift_model(model: uplift.UpliftModel | uplift.OffsetUpliftModel, directory: str | Path) -> Path:
    """Write ``model`` to ``directory`` (created if needed; existing files are replaced)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    preprocessor_meta, preprocessor_arrays = model.preprocessor.to_dict()
    meta = {
        "format_version": FORMAT_VERSION,
        "label_column": model.label_column,
        "treatment_column": model.treatment_column,
        "risk_column": model.risk_column,
        "features": model.preprocessor.feature_kinds,
        "preprocessor": preprocessor_meta,
        "config": model.config.to_dict(),
        "pilot": model.pilot.to_dict(),
    }
    if isinstance(model, uplift.OffsetUpliftModel):
        arrays = {OFFSET_PREFIX + name: np.asarray(getattr(model, name), np.float64)
                  for name in ("center", "scale", "weights")}
        meta.update(estimator="risk_offset", thresholds=[list(cuts) for cuts in model.thresholds], l2=model.l2)
    else:
        arrays = _flat_params(model.params)
        meta.update(estimator="network", network_shape=model.shape.to_dict(), best_epoch=model.best_epoch,
                    history=model.history)
    arrays.update({PREPROCESSOR_PREFIX + name: value for name, value in preprocessor_arrays.items()})
    with open(directory / ARRAYS_FILE, "wb") as handle:
        np.savez(handle, **arrays)
    (directory / META_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True))
    return directory


def _pilot_from_dict(values: dict) -> uplift.PilotSize:
    rule = uplift.PilotSizeRule(**values["rule"])
    fields = {name: values[name] for name in ("treated", "control", "treated_churners", "control_churners",
                                              "churn_rate", "treated_share", "required_members",
                                              "min_outcomes_per_arm")}
    return uplift.PilotSize(**fields, rule=rule)


def load_uplift_model(directory: str | Path) -> uplift.UpliftModel | uplift.OffsetUpliftModel:
    """Read a model written by ``save_uplift_model``; it estimates exactly what the saved one did."""
    directory = Path(directory)
    meta, arrays = read_artifact(directory, META_FILE, FORMAT_VERSION, what="uplift model",
                                 writer="save_uplift_model", redo="fit the uplift model again")
    if meta.get("estimator") == "risk_offset":
        return uplift.OffsetUpliftModel(
            preprocessor=restore_preprocessor(meta, arrays),
            thresholds=tuple(tuple(float(c) for c in cuts) for cuts in meta["thresholds"]),
            center=np.asarray(arrays[OFFSET_PREFIX + "center"]), scale=np.asarray(arrays[OFFSET_PREFIX + "scale"]),
            weights=np.asarray(arrays[OFFSET_PREFIX + "weights"]), config=TrainConfig.from_dict(meta["config"]),
            label_column=meta["label_column"], treatment_column=meta["treatment_column"],
            risk_column=meta["risk_column"], pilot=_pilot_from_dict(meta["pilot"]), l2=meta["l2"])
    shape = network.NetworkShape.from_dict(meta["network_shape"])
    params = restore_params(uplift.build_uplift_network(shape, seed=0)[1], arrays, directory / ARRAYS_FILE,
                            "fit the uplift model again")
    preprocessor = restore_preprocessor(meta, arrays)
    return uplift.UpliftModel(
        preprocessor=preprocessor, shape=shape, params=params,
        config=TrainConfig.from_dict(meta["config"]), label_column=meta["label_column"],
        treatment_column=meta["treatment_column"], pilot=_pilot_from_dict(meta["pilot"]),
        history=meta["history"], best_epoch=meta["best_epoch"], risk_column=meta["risk_column"],
    )
