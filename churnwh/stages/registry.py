"""Model registry: versioned artifacts under ``warehouse/models/`` listed in ``ml.model_runs``.

A new model becomes the current one only if its test ROC-AUC is not worse than the current
model's on the same test rows by more than the configured tolerance (``force`` overrides). The
evaluation tables (``ml.model_metrics``, ``ml.calibration``, ``ml.lift``) keep every version's
figures next to the baselines of the same run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import duckdb
import polars as pl

from churnwh.errors import ChurnwhError
from churnwh.store.warehouse import fsync, sql_literal

SCHEMA = "ml"
SCORE_HISTORY = f"{SCHEMA}.score_history"
"""Every build's score snapshot (written by the monitor stage, read by explain's reuse of reasons)."""
RUNS = f"{SCHEMA}.model_runs"


@dataclass(frozen=True)
class RunRecord:
    version: str
    run_id: str
    data_fingerprint: str
    status: str
    test_roc_auc: float | None


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {RUNS} (
            version VARCHAR PRIMARY KEY, run_id VARCHAR NOT NULL, trained_at TIMESTAMP NOT NULL,
            data_fingerprint VARCHAR NOT NULL, features INTEGER NOT NULL, train_rows BIGINT, valid_rows BIGINT,
            test_rows BIGINT, best_epoch INTEGER, test_roc_auc DOUBLE, test_log_loss DOUBLE, test_ece DOUBLE,
            baseline_roc_auc DOUBLE, status VARCHAR NOT NULL, decision VARCHAR NOT NULL)"""
    )
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.model_metrics (
            version VARCHAR NOT NULL, model VARCHAR NOT NULL, metric VARCHAR NOT NULL, value DOUBLE)"""
    )
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.calibration (
            version VARCHAR NOT NULL, bin INTEGER, rows BIGINT, mean_predicted DOUBLE, observed_rate DOUBLE,
            gap DOUBLE)"""
    )
    con.execute(
        f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.lift (
            version VARCHAR NOT NULL, decile INTEGER, rows BIGINT, churners BIGINT, churn_rate DOUBLE,
            lift DOUBLE, cumulative_capture DOUBLE)"""
    )
    for table, text in COMMENTS.items():
        con.execute(f"COMMENT ON TABLE {SCHEMA}.{table} IS {sql_literal(text)}")
    for table, columns in COLUMN_COMMENTS.items():
        for column, text in columns.items():
            con.execute(f"COMMENT ON COLUMN {SCHEMA}.{table}.{column} IS {sql_literal(text)}")


COMMENTS = {
    "model_runs": "One row per training run: version, data fingerprint, test metrics, and whether it became current.",
    "model_metrics": "Test-split metrics of each model version next to the base-rate and logistic-regression baselines of the same run.",
    "calibration": "Predicted against observed churn rate on the test split, by probability bin.",
    "lift": "Churn rate and lift by score decile on the test split (decile 1 = highest scores).",
}

COLUMN_COMMENTS = {
    "model_runs": {
        "version": "Model version (v0001, v0002, ...); churn_scores.model_version refers to it.",
        "run_id": "Identifier of the training run that produced the version.",
        "trained_at": "When the model was trained.",
        "data_fingerprint": "Fingerprint of the training data and settings: the same fingerprint means the same data.",
        "features": "Number of feature columns the model uses.",
        "train_rows": "Rows (customer, observation date) in the training split.",
        "valid_rows": "Rows in the validation split (early stopping and calibration).",
        "test_rows": "Rows in the test split (the latest observation dates), on which the metrics are measured.",
        "best_epoch": "Training epoch with the lowest validation loss (the weights kept).",
        "test_roc_auc": "ROC-AUC on the test split: 0.5 is chance, 1 is perfect ranking.",
        "test_log_loss": "Log loss of the calibrated probabilities on the test split (lower is better).",
        "test_ece": "Expected calibration error on the test split: mean gap between predicted and observed churn rates.",
        "baseline_roc_auc": "ROC-AUC of the logistic-regression baseline on the same test split.",
        "status": "current (new scores use it), rejected (trained but not promoted) or retired (replaced).",
        "decision": "Why the version was or was not made current.",
    },
    "model_metrics": {
        "version": "Model version the metric belongs to (model_runs.version).",
        "model": "network (the churn model), logistic_regression or base_rate (baselines of the same run).",
        "metric": "Metric name: roc_auc, pr_auc, log_loss, brier, ece, top_decile_lift or accuracy.",
        "value": "The metric's value on the test split.",
    },
}


def exists(con: duckdb.DuckDBPyConnection) -> bool:
    return con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = 'model_runs'", [SCHEMA]
    ).fetchall()[0][0] > 0


def load(models_root: Path, version: str):
    """The saved model of ``version`` (a churnwh.ml.train.TrainedModel)."""
    from churnwh.ml import artifact

    return artifact.load_model(model_dir(models_root, version))


def features(models_root: Path, version: str) -> dict[str, str]:
    """The feature columns (name -> kind) of the saved model of ``version``, read from its ``model.json``
    without loading the network (no JAX)."""
    return json.loads((model_dir(models_root, version) / "model.json").read_text())["features"]


def current(con: duckdb.DuckDBPyConnection) -> RunRecord | None:
    row = con.execute(
        f"SELECT version, run_id, data_fingerprint, status, test_roc_auc FROM {RUNS} WHERE status = 'current'"
    ).fetchall()
    return RunRecord(*row[0]) if row else None


def trained_on(con: duckdb.DuckDBPyConnection, data_fingerprint: str) -> bool:
    """Whether a run (promoted or not) already trained on exactly this data and configuration."""
    return con.execute(f"SELECT count(*) FROM {RUNS} WHERE data_fingerprint = ?", [data_fingerprint]).fetchall()[0][0] > 0


def runs(con: duckdb.DuckDBPyConnection) -> pl.DataFrame:
    return pl.from_arrow(
        con.sql(
            f"SELECT version, trained_at, status, test_roc_auc, baseline_roc_auc, test_log_loss, test_ece, "
            f"train_rows, features, decision FROM {RUNS} ORDER BY version"
        ).to_arrow_table()
    )


def next_version(con: duckdb.DuckDBPyConnection) -> str:
    count = con.execute(f"SELECT count(*) FROM {RUNS}").fetchall()[0][0]
    return f"v{count + 1:04d}"


def model_dir(models_root: Path, version: str) -> Path:
    return models_root / version


def record_run(
    con: duckdb.DuckDBPyConnection,
    *,
    version: str,
    run_id: str,
    data_fingerprint: str,
    results: dict,
    feature_count: int,
    promote: bool,
    decision: str,
    also: tuple[tuple[str, list], ...] = (),
) -> None:
    """Insert the run and its evaluation tables; make it current if ``promote``. One transaction,
    which also runs the statements ``also`` (SQL, parameters)."""
    network, logistic = results["network"], results["logistic_regression"]
    con.execute("BEGIN TRANSACTION")
    try:
        for sql, parameters in also:
            con.execute(sql, parameters)
        if promote:
            con.execute(f"UPDATE {RUNS} SET status = 'retired' WHERE status = 'current'")
        con.execute(
            f"INSERT INTO {RUNS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                version,
                run_id,
                dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
                data_fingerprint,
                feature_count,
                results["rows"]["train"],
                results["rows"].get("valid"),
                results["rows"]["test"],
                results.get("best_epoch"),
                network["roc_auc"],
                network["log_loss"],
                network["ece"],
                logistic["roc_auc"],
                "current" if promote else "rejected",
                decision,
            ],
        )
        for model in ("network", "logistic_regression", "base_rate"):
            for metric, value in results[model].items():
                con.execute(
                    f"INSERT INTO {SCHEMA}.model_metrics VALUES (?, ?, ?, ?)", [version, model, metric, float(value)]
                )
        for table, key in (("calibration", "calibration_table"), ("lift", "lift_table")):
            frame = pl.DataFrame(results[key]).select(pl.lit(version).alias("version"), pl.all()).to_arrow()
            con.register("_evaluation_rows", frame)
            try:
                con.execute(f"INSERT INTO {SCHEMA}.{table} BY NAME SELECT * FROM _evaluation_rows")
            finally:
                con.unregister("_evaluation_rows")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def rollback(con: duckdb.DuckDBPyConnection, models_root: Path, version: str) -> None:
    """Make ``version`` the current model again (its artifact must still exist)."""
    found = con.execute(f"SELECT status FROM {RUNS} WHERE version = ?", [version]).fetchall()
    if not found:
        known = ", ".join(runs(con)["version"].to_list()) or "none yet"
        raise ChurnwhError(f"no model version {version!r}: known versions are {known} (`churnwh models`)")
    from churnwh.privacy import withdrawal

    reason = withdrawal.withdrawn_reason(con, version)
    if reason is not None:
        raise ChurnwhError(f"model {version} cannot be restored: it was {reason}; run `churnwh build` to train "
                           "a model without them")
    if not (model_dir(models_root, version) / "model.json").is_file():
        raise ChurnwhError(
            f"model {version} has no artifact under {models_root} (training.keep_versions prunes old ones): "
            "it cannot be restored; retrain with `churnwh train --force`"
        )
    con.execute("BEGIN TRANSACTION")
    con.execute(f"UPDATE {RUNS} SET status = 'retired' WHERE status = 'current'")
    con.execute(
        f"UPDATE {RUNS} SET status = 'current', decision = decision || '; restored by rollback' WHERE version = ?",
        [version],
    )
    con.execute("COMMIT")


def prune_artifacts(con: duckdb.DuckDBPyConnection, models_root: Path, keep: int) -> list[str]:
    """Remove the artifacts of versions older than the newest ``keep`` (never the current one).

    Their rows, metrics and calibration stay in the registry. Each folder is first renamed to a
    staging name, so a kill mid-removal leaves a leftover the next build clears, never a half model.
    """
    if keep <= 0:
        return []
    rows = con.execute(f"SELECT version, status FROM {RUNS} ORDER BY version DESC").fetchall()
    pruned = []
    for version, status in rows[keep:]:
        folder = model_dir(models_root, version)
        if status == "current" or not folder.is_dir():
            continue
        doomed = models_root / f".{version}{PARTIAL_SUFFIX}"
        os.rename(folder, doomed)
        shutil.rmtree(doomed)
        pruned.append(version)
    return pruned


PARTIAL_SUFFIX = ".partial"


def staging_dir(models_root: Path, version: str) -> Path:
    """An empty folder to write ``version``'s artifact into before ``install_artifact``."""
    staging = models_root / f".{version}{PARTIAL_SUFFIX}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    return staging


def install_artifact(models_root: Path, version: str, staging: Path) -> Path:
    """Rename a complete artifact folder into place, so ``version`` is either absent or whole.

    A folder already there holds no registered run (versions are numbered after the last row):
    it is what a killed build left, and is replaced.
    """
    for name in os.listdir(staging):
        fsync(staging / name)
    target = model_dir(models_root, version)
    shutil.rmtree(target, ignore_errors=True)
    os.rename(staging, target)
    fsync(models_root)
    return target


def stale_staging_dirs(models_root: Path) -> list[Path]:
    """Artifact folders a killed build left half written."""
    if not models_root.is_dir():
        return []
    return [path for path in models_root.glob(f".v*{PARTIAL_SUFFIX}") if path.is_dir()]


def fingerprint_payload(**parts: object) -> str:
    return json.dumps(parts, sort_keys=True, default=str)
