"""Run a worked example end to end and print its test metrics next to the baselines of the same run.

Usage (from the repository root)::

    python examples/run.py telco                       # reads ../shared/datasets/telco_ibm/...
    python examples/run.py bank --data /path/Churn_Modelling.csv
    python examples/run.py events

It runs ``churnwh --project examples/NAME build`` (load, pseudonymize, models, train, score, publish),
then reads the training set from the private warehouse, splits it exactly as training did, and
evaluates on the same test rows: the churn network, the logistic regression and base rate churnwh
computes in every run, and LightGBM with default settings (``pip install lightgbm``; trained on the
network's train + validation rows, as in benchmarks/bench_public.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_decile_lift", "accuracy")


def compare(project: Path) -> dict:
    """Test metrics of the current model, logistic regression, base rate and LightGBM on the same rows."""
    import polars as pl

    from churnwh.config import load_config
    from churnwh.ml.train import evaluate_with_baselines
    from churnwh.stages import registry
    from churnwh.stages.train import read_relation, split_for_evaluation
    from churnwh.store import warehouse

    config = load_config(project)
    with warehouse.connect(config.warehouse.private, read_only=True) as con:
        record = registry.current(con)
        frame = read_relation(con, config.training.model, config)
    model = registry.load(config.warehouse.models, record.version)
    train, valid, test = split_for_evaluation(frame, config)
    results = evaluate_with_baselines(model, train, test)
    label = config.training.label_column
    try:
        from benchmarks._baselines import lightgbm_default
        from churnwh.ml import metrics

        dropped = [c for c in (config.training.id_column, config.training.date_column) if c in frame.columns]
        fit = pl.concat([train, valid]).drop(dropped)
        probabilities, _ = lightgbm_default(fit, test.drop(dropped), label_column=label)
        results["lightgbm"] = metrics.evaluate_probabilities(test[label].to_numpy(), probabilities)
    except ImportError:
        results["lightgbm"] = None
    results["version"] = record.version
    return results


def print_table(results: dict, name: str) -> None:
    rows = results["rows"]
    print(f"\n{name}: model {results['version']}, test rows {rows['test']:,} (train {rows['train']:,}), "
          f"test churn rate {results['test_churn_rate']:.4f}")
    print("| model | " + " | ".join(METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    for model in ("network", "lightgbm", "logistic_regression", "base_rate"):
        if results.get(model) is None:
            print(f"| {model} | (pip install lightgbm) |")
            continue
        print(f"| {model} | " + " | ".join(f"{results[model][m]:.4f}" for m in METRICS) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("example", help="telco, bank or events (a folder under examples/)")
    parser.add_argument("--data", help="path of the example's data file (default: ../shared/datasets/...)")
    parser.add_argument("--json", type=Path, help="also write the metrics to this file")
    args = parser.parse_args()
    project = REPO / "examples" / args.example
    if not (project / "churnwh.toml").exists():
        parser.error(f"no example {args.example!r}: pick one of telco, bank, events")
    command = [sys.executable, "-m", "churnwh", "--project", str(project), "build"]
    if args.data:
        command += ["--source", f"customers={args.data}"]
    done = subprocess.run(command)
    if done.returncode != 0:
        sys.exit(done.returncode)
    results = compare(project)
    print_table(results, args.example)
    if args.json:
        args.json.write_text(json.dumps({m: results.get(m) for m in ("network", "lightgbm", "logistic_regression",
                                                                       "base_rate", "rows", "version")}, indent=1))


if __name__ == "__main__":
    main()
