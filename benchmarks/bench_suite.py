"""The churn network against LightGBM, HistGradientBoosting and logistic regression on a suite of public churn sets.

Usage::

    python benchmarks/bench_suite.py                       # every dataset, 5 folds, TrainConfig defaults
    python benchmarks/bench_suite.py --dataset travel_kaggle --folds 5 --json suite.json
    python benchmarks/bench_suite.py --list                # the datasets, their shape and provenance

Needs the ``bench`` extra (``pip install -e '.[bench]'``: lightgbm, scikit-learn). Every fold goes
through ``bench_public.run_fold``: the training part is split stratified 85/15 into train / validation
for the network (``train.train_model``: churnwh build's preprocessing, defaults, early stopping and
calibration), and LightGBM (defaults) and HistGradientBoosting (defaults) fit on the same training
rows and features; the logistic regression is churnwh's own baseline on the network's features. No
suite dataset has a time column, so the folds are stratified k-fold (``splits.stratified_kfold``).

Datasets live in ``benchmarks/data/NAME/`` (file, PROVENANCE.md, licence); the runner checks each
file's sha256 before use. ``bank`` and ``telco`` (the sets the defaults were tuned on, from
``/work/shared/datasets``) are in the table when that folder is there, marked as tuned-on.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bench_public  # noqa: E402
from benchmarks._baselines import histgb_default, parse_overrides  # noqa: E402
from churnwh.ml import metrics, splits, train  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"
LABEL = bench_public.LABEL
MODELS = ("network", "lightgbm", "histgb", "logistic_regression")


class SuiteDataError(RuntimeError):
    """A suite dataset is missing, altered or has no churn label."""


@dataclass(frozen=True)
class SuiteDataset:
    """One public churn set: where its file is, what it holds, how its label reads."""

    name: str
    path: Path
    sha256: str
    label: str
    positive: object
    """The label value of a churned customer."""
    shape: str
    """What this set adds to the suite (size, width, imbalance, categoricals)."""
    drop: tuple[str, ...] = ()
    """Identifier and leakage columns removed before modelling."""
    tuned_on: bool = False
    """The network's defaults were chosen on this set, so it is not unseen data."""
    prepare: Callable[[pl.DataFrame], pl.DataFrame] | None = field(default=None, compare=False)
    read_options: dict = field(default_factory=dict, compare=False)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_dataset(dataset: SuiteDataset) -> pl.DataFrame:
    """The dataset as features plus an Int8 ``churn`` column, after checking the file's sha256."""
    if not dataset.path.is_file():
        raise SuiteDataError(f"dataset {dataset.name}: {dataset.path} is missing; see "
                             f"{dataset.path.parent / 'PROVENANCE.md'} for where it comes from")
    actual = sha256_of(dataset.path)
    if actual != dataset.sha256:
        raise SuiteDataError(f"dataset {dataset.name}: {dataset.path} has sha256 {actual}, expected "
                             f"{dataset.sha256}; restore the file from the source its PROVENANCE.md names")
    frame = pl.read_csv(dataset.path, infer_schema_length=None, **dataset.read_options)
    if dataset.label not in frame.columns:
        raise SuiteDataError(f"dataset {dataset.name}: label column '{dataset.label}' is not in {dataset.path}")
    if dataset.prepare is not None:
        frame = dataset.prepare(frame)
    label = (frame[dataset.label] == dataset.positive).cast(pl.Int8).alias(LABEL)
    frame = frame.drop(dataset.label, *dataset.drop).with_columns(label)
    churn_rate = frame[LABEL].mean()
    if not 0.0 < churn_rate < 1.0:
        raise SuiteDataError(f"dataset {dataset.name}: label '{dataset.label}' == {dataset.positive!r} "
                             f"gives a churn rate of {churn_rate}; check the positive value")
    return frame


def _telco_total_charges(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col("TotalCharges").str.strip_chars().cast(pl.Float64, strict=False))


SHARED = bench_public.DATASETS
SUITE: tuple[SuiteDataset, ...] = (
    SuiteDataset(
        name="pysurvival_saas", path=DATA / "pysurvival_saas" / "churn.csv",
        sha256="e24e4fbd37ab8e7505f346ee8a7dd696da425f697666c42d3fb56edd65c1e50e",
        label="churned", positive=1.0,
        shape="2,000 SaaS customers, 13 features (5 categorical), balanced (46.6% churn), simulated"),
    SuiteDataset(
        name="travel_kaggle", path=DATA / "travel_kaggle" / "Customertravel.csv",
        sha256="c7222cd6c011a0610160b4fb85489a5e32edf8fb1bb870d77797a733c6e74f4c",
        label="Target", positive=1,
        shape="954 travel customers, 6 features (4 categorical), 23.5% churn, small, many duplicate rows"),
    SuiteDataset(
        name="iranian_churn_uci", path=DATA / "iranian_churn_uci" / "customer_churn.csv",
        sha256="72a4a660cba4166bab4f0c24e930d5453d1917e208c9ce2ed16b841347350dd3",
        label="Churn", positive=1,
        shape="3,150 telecom subscribers, 13 numeric features, 15.7% churn, 300 duplicate rows"),
    SuiteDataset(
        name="ibm_churndata", path=DATA / "ibm_churndata" / "ChurnData.csv",
        sha256="3dfb4dd7196be34a4211f19d460b6c71e79ac6fc63c210278560ddb4db892576",
        label="churn", positive=1.0,
        shape="200 telecom customers, 27 numeric features (flags and codes), 29.0% churn, tiny and wide"),
    SuiteDataset(
        name="costcla_tv_churn", path=DATA / "costcla_tv_churn" / "churn_tv_subscriptions.csv.gz",
        sha256="8cfcb536108a277fd59aaae47f74298f62e1e2cfc1253d104aa46b25730701ed",
        label="target", positive=1.0, drop=("id", "C_FP", "C_FN", "C_TP", "C_TN"),
        shape="9,379 TV cable subscribers, 46 anonymized features (21 flags), 4.8% churn: imbalanced and wide"),
    SuiteDataset(
        name="gym_model_fitness", path=DATA / "gym_model_fitness" / "gym_churn_us.csv",
        sha256="cd95ca34c245e8aa2bfa67529460014626d63984ab4b5f2b4f1e566b67a77cf2",
        label="Churn", positive=1,
        shape="4,000 gym members, 13 numeric features (6 flags), 26.5% churn, flat"),
    SuiteDataset(
        name="ecommerce_churn_kaggle", path=DATA / "ecommerce_churn_kaggle" / "E Commerce Dataset.csv",
        sha256="3498ebeb00ac4f82472eda1c2099e639853906103ba4564b3a7229df8e40d4b9",
        label="Churn", positive=1, drop=("CustomerID",), read_options={"separator": ";"},
        shape="5,630 e-commerce customers, 18 features (5 categorical, 7 with missing values), 16.8% churn"),
    SuiteDataset(
        name="bank", path=SHARED / "bank_churn_modelling" / "Churn_Modelling.csv",
        sha256="ee2a5c9d8daf3aed0d91c4d883a84ebb77d271447bebc0f0c80aafb0f288ceab",
        label="Exited", positive=1, drop=("RowNumber", "CustomerId", "Surname"), tuned_on=True,
        shape="10,000 bank customers, 10 features, 20.4% churn (defaults tuned here)"),
    SuiteDataset(
        name="telco", path=SHARED / "telco_ibm" / "Telco-Customer-Churn.csv",
        sha256="16320c9c1ec72448db59aa0a26a0b95401046bef5d02fd3aeb906448e3055e91",
        label="Churn", positive="Yes", drop=("customerID",), tuned_on=True,
        prepare=_telco_total_charges, read_options={"schema_overrides": {"TotalCharges": pl.String}},
        shape="7,043 telco customers, 19 features (15 categorical), 26.5% churn (defaults tuned here)"),
)


def available(datasets: tuple[SuiteDataset, ...] = SUITE) -> tuple[SuiteDataset, ...]:
    """The datasets whose file is present: the tuned-on reference sets need the shared folder."""
    return tuple(d for d in datasets if d.path.is_file() or not d.tuned_on)


def run_dataset(dataset: SuiteDataset, *, folds: int, cv_seed: int, config: train.TrainConfig,
                on_fold: Callable[[str, int, dict], None] | None = None) -> dict:
    """All folds of one dataset: per-fold metrics and seconds of every model, and pooled out-of-fold metrics."""
    frame = load_dataset(dataset)
    labels = frame[LABEL].to_numpy()
    results = []
    for index, (train_indices, test_indices) in enumerate(splits.stratified_kfold(labels, folds, cv_seed)):
        fold = bench_public.run_fold(frame, train_indices, test_indices, config)
        histgb_probabilities, histgb_seconds = histgb_default(
            frame[train_indices], frame[test_indices], label_column=LABEL, seed=config.seed)
        fold["oof"]["histgb"] = histgb_probabilities.tolist()
        fold["histgb"] = metrics.evaluate_probabilities(labels[test_indices], histgb_probabilities)
        fold["histgb_seconds"] = histgb_seconds
        results.append(fold)
        if on_fold is not None:
            on_fold(dataset.name, index, fold)
    pooled_labels = np.concatenate([f["oof"]["labels"] for f in results])
    pooled = {m: metrics.evaluate_probabilities(pooled_labels, np.concatenate([f["oof"][m] for f in results]))
              for m in MODELS}
    return {
        "name": dataset.name, "tuned_on": dataset.tuned_on, "shape": dataset.shape,
        "rows": frame.height, "features": frame.width - 1, "churn_rate": float(labels.mean()),
        "folds": [{key: value for key, value in fold.items() if key != "oof"} for fold in results],
        "pooled": pooled,
    }


def run_suite(datasets, *, folds: int = 5, cv_seed: int = 0, config: train.TrainConfig | None = None,
              on_fold: Callable[[str, int, dict], None] | None = None) -> list[dict]:
    """``run_dataset`` for every dataset, in order."""
    config = config or train.TrainConfig()
    return [run_dataset(d, folds=folds, cv_seed=cv_seed, config=config, on_fold=on_fold) for d in datasets]


def _mean(result: dict, model: str, metric: str = "roc_auc") -> float:
    return float(np.mean([fold[model][metric] for fold in result["folds"]]))


def summary_rows(results: list[dict]) -> list[dict]:
    """One row per dataset: fold-mean ROC-AUC per model, the network's ECE per fold and pooled, seconds per fold."""
    rows = []
    for result in results:
        auc = {model: _mean(result, model) for model in MODELS}
        rows.append({
            "dataset": result["name"] + (" *" if result["tuned_on"] else ""),
            "rows": result["rows"], "features": result["features"], "churn_rate": result["churn_rate"],
            **{f"auc_{model}": auc[model] for model in MODELS},
            "network_minus_best_boosting": auc["network"] - max(auc["lightgbm"], auc["histgb"]),
            "network_ece_folds": [fold["network"]["ece"] for fold in result["folds"]],
            "network_ece_pooled": result["pooled"]["network"]["ece"],
            "seconds_network": float(np.mean([f["network_seconds"] for f in result["folds"]])),
            "seconds_lightgbm": float(np.mean([f["lightgbm_seconds"] for f in result["folds"]])),
            "seconds_histgb": float(np.mean([f["histgb_seconds"] for f in result["folds"]])),
        })
    return rows


def format_table(results: list[dict]) -> str:
    """The suite as one markdown table plus the means over the datasets that were not tuned on."""
    header = ("| dataset | rows | feat. | churn | network | LightGBM | HistGB | logistic | net - best GB "
              "| network ECE per fold | ECE pooled | train s/fold net / LGBM / HistGB |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    rows = summary_rows(results)
    for row in rows:
        eces = " ".join(f"{value:.3f}" for value in row["network_ece_folds"])
        lines.append(
            f"| {row['dataset']} | {row['rows']:,} | {row['features']} | {row['churn_rate']:.3f} "
            f"| {row['auc_network']:.4f} | {row['auc_lightgbm']:.4f} | {row['auc_histgb']:.4f} "
            f"| {row['auc_logistic_regression']:.4f} | {row['network_minus_best_boosting']:+.4f} "
            f"| {eces} | {row['network_ece_pooled']:.4f} "
            f"| {row['seconds_network']:.1f} / {row['seconds_lightgbm']:.2f} / {row['seconds_histgb']:.2f} |")
    unseen = [row for row in rows if not row["dataset"].endswith("*")]
    if unseen:
        means = {model: np.mean([row[f"auc_{model}"] for row in unseen]) for model in MODELS}
        worst = min(row["network_minus_best_boosting"] for row in unseen)
        lines.append(
            f"| mean of {len(unseen)} unseen | | | | {means['network']:.4f} | {means['lightgbm']:.4f} "
            f"| {means['histgb']:.4f} | {means['logistic_regression']:.4f} | worst {worst:+.4f} "
            f"| max {max(max(r['network_ece_folds']) for r in unseen):.3f} "
            f"| max {max(r['network_ece_pooled'] for r in unseen):.4f} | |")
    lines.append("ROC-AUC: mean over the test folds. ECE: 10 equal-mass bins (per test fold; pooled: all "
                 "out-of-fold predictions of the set). * the defaults were tuned on this set.")
    return "\n".join(lines)


def describe(datasets) -> str:
    width = max((len(d.name) for d in datasets), default=0)
    return "\n".join(f"{d.name:<{width}} {d.shape}\n{'':<{width}} {d.path}" for d in datasets)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--dataset", action="append", default=[], help="run only these (repeatable)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--cv-seed", type=int, default=0, help="seed of the fold assignment")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a TrainConfig field, e.g. --set hidden=64 (not for reported figures)")
    parser.add_argument("--json", type=Path, help="also write per-fold results to this file")
    parser.add_argument("--list", action="store_true", help="list the datasets and stop")
    parser.add_argument("--from-json", type=Path, nargs="+", metavar="FILE",
                        help="print one table from earlier --json outputs (runs split over several processes)")
    args = parser.parse_args(argv)
    if args.from_json:
        saved = [json.loads(path.read_text()) for path in args.from_json]
        for entry in saved:
            print(f"config {entry['config']}")
        print(format_table([result for entry in saved for result in entry["results"]]))
        return

    datasets = available()
    if args.dataset:
        by_name = {d.name: d for d in SUITE}
        unknown = sorted(set(args.dataset) - set(by_name))
        if unknown:
            parser.error(f"unknown dataset(s) {unknown}; known: {sorted(by_name)}")
        datasets = tuple(by_name[name] for name in args.dataset)
    if args.list:
        print(describe(datasets))
        return
    config = train.TrainConfig(**parse_overrides(args.set))
    started = time.perf_counter()

    def progress(name: str, index: int, fold: dict) -> None:
        print(f"{name} fold {index + 1}: network {fold['network']['roc_auc']:.4f} "
              f"lightgbm {fold['lightgbm']['roc_auc']:.4f} histgb {fold['histgb']['roc_auc']:.4f} "
              f"({fold['network_seconds']:.1f} s; {time.perf_counter() - started:.0f} s so far)", flush=True)

    results = run_suite(datasets, folds=args.folds, cv_seed=args.cv_seed, config=config, on_fold=progress)
    print(f"config {config}")
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps({"config": config.to_dict(), "results": results}, indent=1, default=float))


if __name__ == "__main__":
    main()
