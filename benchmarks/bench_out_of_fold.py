"""Out-of-fold scores of a flat project's training customers: quality and cost of the two ways.

Usage::

    python benchmarks/bench_out_of_fold.py --dataset bank --scheme kfold:5 --scheme final:2

A flat (one-table) project's scoring set is its own training customers, so ``churnwh build`` scores
them out of fold (``train.cross_fit_proba``). For each dataset this trains the final model as the build
does (``train_and_evaluate``, stratified 70/15/15), then scores every row out of fold

- ``k-fold F``: F folds, each scored by a model trained on the other folds (F extra trainings);
- ``final+F``: the final model's validation and test rows by the final model, its training rows in F
  parts, each by a model trained on every other row (F extra trainings),

and prints ROC-AUC, log loss and ECE over all rows next to the extra training seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bench_public  # noqa: E402
from benchmarks._baselines import parse_overrides  # noqa: E402
from churnwh.ml import metrics, train  # noqa: E402

LOADERS = {"bank": bench_public.load_bank, "telco": bench_public.load_telco}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--dataset", action="append", choices=sorted(LOADERS), default=[])
    parser.add_argument("--scheme", action="append", default=[], metavar="kfold:F|final:F",
                        help="a way to score out of fold (default: kfold:5 and final:2)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a TrainConfig field")
    args = parser.parse_args()
    config = train.TrainConfig(**parse_overrides(args.set)) if args.set else train.TrainConfig()
    print(f"{'dataset':<8} {'method':<12} {'roc_auc':>8} {'log_loss':>9} {'ece':>7} {'extra s':>8}")
    for name in args.dataset or sorted(LOADERS):
        frame = LOADERS[name]()
        final, _ = train.train_and_evaluate(frame, id_column=None, label_column=bench_public.LABEL, config=config)
        labels = frame[bench_public.LABEL].to_numpy()
        for scheme in args.scheme or ["kfold:5", "final:2"]:
            kind, folds = scheme.split(":")
            folds = int(folds)
            method, reuse = (f"final+{folds}", final) if kind == "final" else (f"k-fold {folds}", None)
            started = time.perf_counter()
            probabilities = train.cross_fit_proba(
                frame, id_column=None, label_column=bench_public.LABEL,
                config=dataclasses.replace(config, cross_fit_folds=folds), final_model=reuse)
            seconds = time.perf_counter() - started
            scores = metrics.evaluate_probabilities(labels, probabilities)
            print(f"{name:<8} {method:<12} {scores['roc_auc']:>8.4f} {scores['log_loss']:>9.4f} "
                  f"{scores['ece']:>7.4f} {seconds:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
