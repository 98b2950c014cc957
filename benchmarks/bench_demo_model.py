"""The churn network on the demo warehouse, next to LightGBM, logistic regression and the oracle.

Usage::

    python benchmarks/bench_demo_model.py --customers 5000
    python benchmarks/bench_demo_model.py --customers 100000 --replicates 16 --cache /tmp/bench
    python benchmarks/bench_demo_model.py --customers 100000 --tile 10 --skip-oracle --cache /tmp/bench  # ~1M

Needs ``pip install lightgbm`` (a benchmark extra). Steps, all in a temporary project folder:

1. simulate ``--customers`` demo customers and build the SQL models exactly as ``churnwh build``
   does (the pipeline's load, pseudonymize and models stages on a copy of ``sql/``; only the
   training set and the models upstream of it);
2. read ``marts.training_set`` as a Polars frame and split it by time with the purge gap the
   training stage uses (lead + label window + churn gap days);
3. train, in the same process: the network (``churnwh.ml.train.train_model``), LightGBM with default
   settings (on train + validation rows, it has no early stopping), and the logistic regression;
4. score the test date with each, and compute the oracle from the simulator
   (``churnwh.sources.demo.churn_oracle``: the true probability of the label given each customer's full
   hidden state at the observation date), mapped to pseudonyms through ``raw.customer_keys``;
5. report test ROC-AUC (and PR-AUC, log loss, ECE), training seconds of both models and their
   ratio, and scoring throughput (rows/s from a Polars frame to probabilities, preprocessing
   included for both) on every row of the frame.

``--tile K`` repeats the built frame K times (pseudonyms suffixed, so rows stay distinct) to
measure cost at K times the customers without building a K times larger warehouse; accuracy
figures of a tiled run are not new evidence (the oracle is skipped).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._baselines import fit_lightgbm_default, parse_overrides  # noqa: E402
from churnwh.config import load_config  # noqa: E402
from churnwh.ml import metrics, splits, train  # noqa: E402
from churnwh.pipeline import BuildContext, BuildOptions, build_models, load_sources, pseudonymize  # noqa: E402
from churnwh.sources import demo  # noqa: E402
from churnwh.store import lock, warehouse  # noqa: E402

ID, LABEL, DATE = "customer_pseudonym", "churned", "observation_date"
REPORTED = ("roc_auc", "pr_auc", "log_loss", "ece")


def build_warehouse(project: Path, customers: int, seed: int) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """Training frame, pseudonym map and SQL variables of a fresh demo warehouse in ``project``."""
    shutil.copytree(ROOT / "sql", project / "sql")
    (project / "churnwh.toml").write_text(f"[demo]\ncustomers = {customers}\nseed = {seed}\n")
    config = load_config(project)
    # as churnwh.pipeline.build: the project's write lock around the build's connection, and the
    # connections build_models reopens (it closes the build's own to run the SQL sandboxed) closed after
    with lock.write_lock(config.warehouse.private), warehouse.open_private(config) as con, \
            contextlib.ExitStack() as reopened:
        # only the training set and what it reads: marts the benchmark does not use cannot stop it
        ctx = BuildContext(config=config, options=BuildOptions(select=f"+{config.training.model}"), con=con)
        reopened.callback(lambda: [stack.close() for stack in reversed(ctx._reopened)])
        for stage in (load_sources, pseudonymize, build_models):
            started = time.perf_counter()
            detail = stage(ctx)
            print(f"  {stage.__name__}: {detail} ({time.perf_counter() - started:.0f} s)", flush=True)
        # in a fixed order: the network's batches, and so its scores, follow the row order
        frame = pl.from_arrow(ctx.con.sql(f"SELECT * FROM {config.training.model} ORDER BY {DATE}, {ID}")
                              .to_arrow_table())
        keys = pl.from_arrow(ctx.con.sql("SELECT customer_id, customer_pseudonym FROM raw.customer_keys")
                             .to_arrow_table())
    return frame, keys, dict(config.variables)


def built_frame(customers: int, seed: int, cache: Path | None) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """``build_warehouse`` in a temporary folder, or its saved result from ``cache``."""
    folder = cache / f"demo-{customers}-{seed}" if cache else None
    if folder is not None and (folder / "variables.json").exists():
        print(f"reusing the training frame in {folder}", flush=True)
        return (pl.read_parquet(folder / "frame.parquet").sort(DATE, ID), pl.read_parquet(folder / "keys.parquet"),
                json.loads((folder / "variables.json").read_text()))
    with tempfile.TemporaryDirectory(prefix="churnwh-bench-") as tmp:
        print(f"building the demo warehouse ({customers:,d} customers)", flush=True)
        os.environ.pop("CHURNWH_KEY", None)
        frame, keys, variables = build_warehouse(Path(tmp), customers, seed)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(folder / "frame.parquet")
        keys.write_parquet(folder / "keys.parquet")
        (folder / "variables.json").write_text(json.dumps(variables, default=str))
    return frame, keys, variables


def tile_frame(frame: pl.DataFrame, times: int) -> pl.DataFrame:
    if times <= 1:
        return frame
    return pl.concat([frame.with_columns(pl.col(ID) + f"-{copy}") for copy in range(times)])


def throughput(score, frame: pl.DataFrame, repeats: int = 2) -> float:
    """Rows per second of the fastest of ``repeats`` passes over ``frame`` (after a warm-up)."""
    score(frame.head(1000))  # warm-up (compilation, first call)
    fastest = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        score(frame)
        fastest = min(fastest, time.perf_counter() - started)
    return frame.height / fastest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7, help="demo seed (churnwh.toml's default)")
    parser.add_argument("--replicates", type=int, default=48, help="oracle Monte Carlo paths per customer")
    parser.add_argument("--tile", type=int, default=1, help="repeat the frame K times (cost runs)")
    parser.add_argument("--skip-oracle", action="store_true")
    parser.add_argument("--lightgbm-repeats", type=int, default=3,
                        help="train LightGBM this many times and keep the fastest time")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a TrainConfig field, e.g. --set k=8")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--cache", type=Path, metavar="DIR",
                        help="keep the built training frame here and reuse it on the next run with the "
                             "same --customers and --seed (it holds pseudonyms and the customer-id map: "
                             "a private folder)")
    args = parser.parse_args()
    overrides = parse_overrides(args.set)

    frame, keys, variables = built_frame(args.customers, args.seed, args.cache)
    frame = tile_frame(frame, args.tile)
    purge_days = sum(int(variables[name]) for name in ("lead_days", "label_window_days", "churn_gap_days"))
    config = train.TrainConfig(**{"purge_days": purge_days, **overrides})
    train_part, valid, test = splits.time_split(frame, DATE, valid_dates=config.valid_dates,
                                                test_dates=config.test_dates, purge_days=purge_days)
    test_date = test[DATE].min()
    print(f"frame {frame.height:,d} rows, churn rate {frame[LABEL].mean():.4f}; purge {purge_days} days; "
          f"train {train_part.height:,d} (to {train_part[DATE].max()}), valid {valid.height:,d} "
          f"({valid[DATE].min()}), test {test.height:,d} ({test_date})", flush=True)
    labels = test[LABEL].to_numpy().astype(np.float64)
    features = [c for c in frame.columns if c not in (ID, LABEL, DATE)]

    # LightGBM first: XLA's worker threads can still be spinning right after a training run.
    lgbm_train = pl.concat([train_part, valid])
    lightgbm_model, lightgbm_seconds = fit_lightgbm_default(lgbm_train.select(features + [LABEL]), label_column=LABEL,
                                                            repeats=args.lightgbm_repeats)
    lightgbm_probabilities = lightgbm_model.predict(test)

    started = time.perf_counter()
    model = train.train_model(train_part, valid, id_column=ID, label_column=LABEL, exclude=(DATE,),
                              config=config)
    network_seconds = time.perf_counter() - started
    network_probabilities = train.predict_proba(model, test)
    logistic_probabilities = train.logistic_baseline_proba(model, train_part, test)

    network_rows_per_s = throughput(lambda part: train.predict_proba(model, part), frame)
    lightgbm_rows_per_s = throughput(lambda part: lightgbm_model.predict(part, num_threads=2), frame)

    results = {
        "network": metrics.evaluate_probabilities(labels, network_probabilities),
        "lightgbm": metrics.evaluate_probabilities(labels, lightgbm_probabilities),
        "logistic_regression": metrics.evaluate_probabilities(labels, logistic_probabilities),
    }
    oracle_note = "skipped"
    if not args.skip_oracle and args.tile <= 1:
        started = time.perf_counter()
        oracle = pl.from_arrow(demo.churn_oracle(
            args.customers, args.seed, test_date, lead_days=int(variables["lead_days"]),
            label_window_days=int(variables["label_window_days"]), replicates=args.replicates))
        joined = (test.select(ID, DATE, LABEL).join(keys, on=ID, how="left")
                  .join(oracle, on=["customer_id", DATE], how="left"))
        covered = joined.filter(pl.col("oracle_probability").is_not_null())
        results["oracle"] = metrics.evaluate_probabilities(
            covered[LABEL].to_numpy().astype(np.float64), covered["oracle_probability"].to_numpy())
        oracle_note = (f"{covered.height:,d} of {test.height:,d} test rows, {args.replicates} paths each, "
                       f"{time.perf_counter() - started:.0f} s")

    print(f"\ntest date {test_date}: {test.height:,d} rows, churn rate {labels.mean():.4f}")
    print(f"{'model':<20}" + "".join(f"{m:>12}" for m in REPORTED))
    for name, values in results.items():
        print(f"{name:<20}" + "".join(f"{values[m]:>12.4f}" for m in REPORTED))
    print(f"oracle: {oracle_note}")
    print(f"network: {len(model.history)} epochs, best {model.best_epoch}, "
          f"batch/lr {config.batch_and_learning_rate(train_part.height)}")
    print(f"training seconds: network {network_seconds:.1f}, lightgbm {lightgbm_seconds:.1f}, "
          f"ratio {network_seconds / lightgbm_seconds:.2f}x (target <= 3)")
    print(f"scoring rows/s on {frame.height:,d} rows: network {network_rows_per_s:,.0f}, lightgbm "
          f"{lightgbm_rows_per_s:,.0f}, ratio {network_rows_per_s / lightgbm_rows_per_s:.2f}x (target >= 2)")
    if "oracle" in results:
        gap = results["oracle"]["roc_auc"] - results["network"]["roc_auc"]
        print(f"oracle - network ROC-AUC: {gap:.4f} (target <= 0.01); network - lightgbm: "
              f"{results['network']['roc_auc'] - results['lightgbm']['roc_auc']:+.4f} (target >= 0)")
    if args.json:
        args.json.write_text(json.dumps({
            "customers": args.customers, "tile": args.tile, "rows": frame.height,
            "config": config.to_dict(), "results": results,
            "seconds": {"network": network_seconds, "lightgbm": lightgbm_seconds},
            "rows_per_s": {"network": network_rows_per_s, "lightgbm": lightgbm_rows_per_s},
        }, indent=1, default=str))


if __name__ == "__main__":
    main()
