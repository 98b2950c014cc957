"""5-fold CV of the churn network on public churn data, next to LightGBM and logistic regression.

Usage::

    python benchmarks/bench_public.py --dataset bank
    python benchmarks/bench_public.py --dataset telco --set k=8 --set hidden=256

Needs ``pip install lightgbm`` (a benchmark extra). For every fold the training part is split
stratified 85/15 into train / validation (early stopping and calibration) for the network; the
held-out fold is the test set for all three models. LightGBM (defaults) and the logistic
regression are trained on the same fold; LightGBM sees train + validation rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._baselines import lightgbm_default, parse_overrides  # noqa: E402
from churnwh.ml import metrics, splits, train  # noqa: E402

DATASETS = Path("/work/shared/datasets")
LABEL = "churn"
MODELS = ("network", "lightgbm", "logistic_regression")
METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_decile_lift", "accuracy")


def load_bank() -> pl.DataFrame:
    frame = pl.read_csv(DATASETS / "bank_churn_modelling" / "Churn_Modelling.csv")
    return frame.drop("RowNumber", "CustomerId", "Surname").rename({"Exited": LABEL})


def load_telco() -> pl.DataFrame:
    frame = pl.read_csv(DATASETS / "telco_ibm" / "Telco-Customer-Churn.csv",
                        schema_overrides={"TotalCharges": pl.String})
    return frame.drop("customerID").with_columns(
        pl.col("TotalCharges").str.strip_chars().cast(pl.Float64, strict=False),
        (pl.col("Churn") == "Yes").cast(pl.Int8).alias(LABEL),
    ).drop("Churn")


def run_fold(frame: pl.DataFrame, train_indices, test_indices, config: train.TrainConfig) -> dict:
    training, test = frame[train_indices], frame[test_indices]
    fit_part, valid_part = splits.stratified_split(
        training, LABEL, fractions=(0.85, 0.15), seed=config.seed)
    # LightGBM first: XLA's worker threads can still be spinning right after a training run.
    lightgbm_probabilities, lightgbm_seconds = lightgbm_default(training, test, label_column=LABEL)
    started = time.perf_counter()
    model = train.train_model(fit_part, valid_part, id_column=None, label_column=LABEL, config=config)
    network_seconds = time.perf_counter() - started
    results = train.evaluate_with_baselines(model, fit_part, test)
    labels = test[LABEL].to_numpy()
    return {
        "oof": {"labels": labels.tolist(), "network": train.predict_proba(model, test).tolist(),
                "lightgbm": lightgbm_probabilities.tolist(),
                "logistic_regression": train.logistic_baseline_proba(model, fit_part, test).tolist()},
        "network": results["network"],
        "logistic_regression": results["logistic_regression"],
        "lightgbm": metrics.evaluate_probabilities(labels, lightgbm_probabilities),
        "network_seconds": network_seconds,
        "lightgbm_seconds": lightgbm_seconds,
        "best_epoch": model.best_epoch,
        "epochs_run": len(model.history),
        "calibrator": model.calibrator,
    }


def print_table(folds: list[dict]) -> None:
    header = f"{'fold':>4} {'model':<20}" + "".join(f"{m:>16}" for m in METRICS)
    print(header)
    for model_name in MODELS:
        for index, fold in enumerate(folds):
            values = "".join(f"{fold[model_name][m]:>16.4f}" for m in METRICS)
            print(f"{index + 1:>4} {model_name:<20}{values}")
        means = "".join(f"{np.mean([f[model_name][m] for f in folds]):>16.4f}" for m in METRICS)
        print(f"{'mean':>4} {model_name:<20}{means}")
    pooled_labels = np.concatenate([f["oof"]["labels"] for f in folds])
    print("pooled out-of-fold predictions (all rows, ECE on 10 equal-mass bins of the whole set):")
    for model_name in MODELS:
        pooled = np.concatenate([f["oof"][model_name] for f in folds])
        values = "".join(f"{v:>16.4f}" for v in metrics.evaluate_probabilities(pooled_labels, pooled).values())
        print(f"{'oof':>4} {model_name:<20}{values}")
    network_time = np.array([f["network_seconds"] for f in folds])
    lightgbm_time = np.array([f["lightgbm_seconds"] for f in folds])
    print(f"network seconds per fold: {np.round(network_time, 1).tolist()}, best epochs: "
          f"{[f['best_epoch'] for f in folds]}")
    print(f"lightgbm seconds per fold: {np.round(lightgbm_time, 2).tolist()}; time ratio "
          f"network/lightgbm: mean {network_time.mean() / lightgbm_time.mean():.1f}x, median "
          f"{np.median(network_time) / np.median(lightgbm_time):.1f}x (fold 1 includes compilation)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--dataset", choices=("bank", "telco"), required=True)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--cv-seed", type=int, default=0, help="seed of the fold assignment")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a TrainConfig field, e.g. --set hidden=128")
    parser.add_argument("--json", type=Path, help="also write per-fold results to this file")
    args = parser.parse_args()

    config = train.TrainConfig(**parse_overrides(args.set))
    frame = load_bank() if args.dataset == "bank" else load_telco()
    labels = frame[LABEL].to_numpy()
    folds = [run_fold(frame, train_indices, test_indices, config)
             for train_indices, test_indices in splits.stratified_kfold(labels, args.folds, args.cv_seed)]
    print(f"dataset {args.dataset}: {frame.height} rows, churn rate {labels.mean():.4f}; config {config}")
    print_table(folds)
    if args.json:
        args.json.write_text(json.dumps({"config": config.to_dict(), "folds": folds}, indent=1))


if __name__ == "__main__":
    main()
