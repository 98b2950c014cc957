"""Post-hoc calibration of the network's logit, fitted on the validation split.

The network trains on the natural churn rate (no class weights, no resampling), so its
probabilities are already roughly right; an ensemble of members averaged in probability space is
typically a little under-confident, which a one-parameter fix repairs. Both methods are
``p = sigmoid(slope * logit + intercept)``:

- ``"temperature"``: intercept fixed at 0, slope = 1 / temperature (one parameter, cannot move the
  base rate, the safest choice on small validation sets);
- ``"platt"``: slope and intercept both fitted (also corrects a shifted base rate, e.g. when the
  validation dates have a different churn rate than the training dates);
- ``"none"``: slope 1, intercept 0.

Fitting minimizes the validation log loss exactly with Newton's method (the problem is convex).
A calibrator is a plain dict, JSON-able as it is.
"""

from __future__ import annotations

import numpy as np

METHODS = ("temperature", "platt", "none")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def fit_calibrator(
    logits: np.ndarray, labels: np.ndarray, method: str = "temperature", max_iterations: int = 100
) -> dict:
    """Fit ``sigmoid(slope * logit + intercept)`` to minimize log loss on (logits, labels).

    Parameters
    ----------
    logits : uncalibrated logits of the validation rows
    labels : their 0/1 labels
    method : ``"temperature"``, ``"platt"`` or ``"none"``

    Returns
    -------
    dict
        ``{"method": ..., "slope": float, "intercept": float}``
    """
    if method not in METHODS:
        raise ValueError(f"calibration method must be one of {METHODS}, not {method!r}")
    if method == "none":
        return {"method": "none", "slope": 1.0, "intercept": 0.0}
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    fit_intercept = method == "platt"
    design = np.stack([z, np.ones_like(z)], axis=1) if fit_intercept else z[:, None]
    coefficients = np.zeros(design.shape[1])
    coefficients[0] = 1.0
    ridge = 1e-6 * np.eye(design.shape[1])
    for _ in range(max_iterations):
        p = _sigmoid(design @ coefficients)
        gradient = design.T @ (p - y)
        hessian = (design * (p * (1 - p))[:, None]).T @ design + ridge
        step = np.linalg.solve(hessian, gradient)
        # Damped so a badly separated validation set cannot throw the slope to infinity.
        step *= min(1.0, 1.0 / max(np.max(np.abs(step)), 1e-12))
        coefficients -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return {
        "method": method,
        "slope": float(coefficients[0]),
        "intercept": float(coefficients[1]) if fit_intercept else 0.0,
    }


def calibrated_logit(calibrator: dict, logits: np.ndarray) -> np.ndarray:
    """Apply a calibrator to logits (still in logit space)."""
    return calibrator["slope"] * np.asarray(logits, dtype=np.float64) + calibrator["intercept"]


def apply_calibrator(calibrator: dict, logits: np.ndarray) -> np.ndarray:
    """Calibrated probabilities from uncalibrated logits."""
    return _sigmoid(calibrated_logit(calibrator, logits))
