"""Monitoring: score snapshots, backtests, drift (PSI) and data quality, as tables in schema ``ml``.

- ``ml.score_history``: every build's ``ml.churn_scores`` snapshot (one per as_of and model
  version; a rebuild of the same as_of and version replaces its snapshot).
- ``ml.backtest`` / ``ml.backtest_by_tier`` / ``ml.backtest_by_decile``: past snapshots whose
  outcome window is over, compared with what happened (the same label definition as the training
  set: the active period ends within ``label_window_days`` after ``lead_days``).
- ``ml.drift``: population stability index of every model feature and of the score between the
  training data and the current scoring set, with ``status = 'warning'`` above the threshold.
- ``ml.data_quality``: per SQL model rows, columns, the worst null share, duplicate grain rows,
  the freshest date, and the customers its filters leave out (from a model tagged ``dropped_customers``).

``psi`` is a pure function of two samples; everything else reads and writes the warehouse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from churnwh.config import Config
from churnwh.errors import ChurnwhError
from churnwh.privacy import classification
from churnwh.stages.explain import write_table
from churnwh.stages.registry import SCHEMA
from churnwh.store import warehouse

logger = logging.getLogger(__name__)

HISTORY = f"{SCHEMA}.score_history"
DRIFT = f"{SCHEMA}.drift"
QUALITY = f"{SCHEMA}.data_quality"
BACKTEST = f"{SCHEMA}.backtest"
PSI_BINS = 10
PSI_SMOOTHING = 0.5
"""Pseudo-count added to every bin of both samples, so an empty bin gives a finite PSI."""
POINT_MASS = 1.0 / (2 * PSI_BINS)
"""A value holding at least this share of the reference's present values is a bin of its own."""
DEFAULT_PSI_WARNING = 0.2
DRIFT_SAMPLE_ROWS = 50000
DRIFT_MARK = "drift_fingerprint"
PSI_METHOD = "point masses, quantile intervals, missing; +0.5 per bin; key-independent sample"
"""Part of the drift fingerprint: change it when the PSI of the same samples changes."""

HISTORY_COMMENTS = {
    "snapshot_at": "When the build that wrote this snapshot ran.",
    "as_of": "Scoring date of the snapshot.",
    "customer_pseudonym": "Keyed pseudonym of the customer.",
    "churn_probability": "Calibrated churn probability at that date.",
    "risk_tier": "Risk tier at that date.",
    "value_at_risk": "Value at risk at that date.",
    "model_version": "Model version that scored it.",
}
DRIFT_COMMENTS = {
    "feature": "Model feature, or __score__ for the churn probability.",
    "kind": "numeric, categorical or score.",
    "psi": "Population stability index between the training rows and the current scoring set "
           "(< 0.1 stable, 0.1-0.2 moderate shift, > threshold: warning).",
    "status": "ok or warning (psi above the configured threshold).",
    "threshold": "The warning threshold in force (monitoring.psi_warning).",
    "training_rows": "Training rows compared.",
    "scoring_rows": "Scoring rows compared.",
    "as_of": "Scoring date of the compared scoring set.",
    "model_version": "Model whose training data and scores were compared.",
}
QUALITY_COMMENTS = {
    "model": "SQL model (schema.table).",
    "rows": "Rows in the table.",
    "columns": "Columns in the table.",
    "max_null_share": "The largest share of NULLs in any one column (0 = none missing).",
    "worst_column": "The column with that share.",
    "duplicate_grain_rows": "Rows beyond the first per declared grain (should be 0).",
    "freshest_date": "Latest value of the first date column that is not a quasi-identifier (freshness), if any.",
    "dropped_customers": "Customers a filter of this model leaves out entirely (reported by a model tagged "
                         "dropped_customers), if any.",
    "dropped_because": "Why, per filter: 'N: reason; M: reason'.",
    "checked_at": "When this was measured.",
}

BACKTEST_COMMENTS = {
    "as_of": "Scoring date of the past snapshot.",
    "model_version": "Model that produced the snapshot.",
    "customers": "Customers of the snapshot (group) whose outcome is known.",
    "predicted_rate": "Mean predicted churn probability.",
    "realized_rate": "Share that churned within the label window after the lead time.",
    "roc_auc": "ROC-AUC of the snapshot's probabilities against realized churn.",
    "calibration_error": "Expected calibration error (10 equal-mass bins).",
    "risk_tier": "Risk tier at the snapshot date.",
    "decile": "Score decile at the snapshot date (1 = highest scores).",
}


# --- PSI -----------------------------------------------------------------------------------------


def psi(expected: np.ndarray | pl.Series, actual: np.ndarray | pl.Series, *, bins: int = PSI_BINS,
        categorical: bool = False) -> float:
    """Population stability index of ``actual`` against ``expected`` (the reference).

    ``sum((a - e) * ln(a / e))`` over bins fixed by the reference, with ``PSI_SMOOTHING`` added to
    every bin's count of both samples.

    Numeric bins: every value that holds at least ``POINT_MASS`` of the reference's present values
    (a point mass: zeros of a mostly-zero column, list prices, a flag) is a bin of its own; the other
    present values are cut at the distinct quantiles of the reference's other values into bins of
    about ``1 / bins`` of the reference each; missing values (NULL, NaN, +/-inf) are one more bin.
    Plain quantile edges would instead fall on the point masses (many identical edges, or one edge
    exactly at a mass that a shift by a rounding error moves across). Categorical: one bin per value,
    missing included.
    """
    expected_s, actual_s = pl.Series(expected), pl.Series(actual)
    if categorical:
        e_values = expected_s.cast(pl.String).fill_null("<missing>")
        a_values = actual_s.cast(pl.String).fill_null("<missing>")
        categories = sorted(set(e_values.unique().to_list()) | set(a_values.unique().to_list()))
        e_counts = np.array([(e_values == c).sum() for c in categories], dtype=float)
        a_counts = np.array([(a_values == c).sum() for c in categories], dtype=float)
    else:
        e = expected_s.cast(pl.Float64).to_numpy()
        a = actual_s.cast(pl.Float64).to_numpy()
        binned = _numeric_bins(e[np.isfinite(e)], bins)
        e_counts, a_counts = binned(e), binned(a)
    if e_counts.sum() == 0 or a_counts.sum() == 0:
        return float("nan")
    e_share = (e_counts + PSI_SMOOTHING) / (e_counts.sum() + PSI_SMOOTHING * e_counts.size)
    a_share = (a_counts + PSI_SMOOTHING) / (a_counts.sum() + PSI_SMOOTHING * a_counts.size)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


def _same(values: np.ndarray, point: float) -> np.ndarray:
    """Equal up to rounding noise of sums of money amounts and the like."""
    return np.abs(values - point) <= 1e-9 * max(1.0, abs(point))


def _numeric_bins(reference: np.ndarray, bins: int):
    """A function counting a sample into the bins of ``reference`` (present values only): point
    masses, then quantile intervals of the rest, then missing."""
    points: list[float] = []
    rest = reference
    if reference.size:
        ordered = np.sort(reference)  # runs of values equal up to rounding noise
        starts = np.flatnonzero(np.r_[True, np.diff(ordered) > 1e-9 * np.maximum(1.0, np.abs(ordered[1:]))])
        sizes = np.diff(np.r_[starts, ordered.size])
        for value in ordered[starts[sizes >= POINT_MASS * reference.size]]:
            points.append(float(value))
            rest = rest[~_same(rest, value)]
    intervals = max(1, int(round(bins * rest.size / reference.size))) if reference.size else 1
    edges = np.unique(np.quantile(rest, np.linspace(0, 1, intervals + 1)[1:-1])) if rest.size else np.zeros(0)

    def count(sample: np.ndarray) -> np.ndarray:
        present = np.isfinite(sample)
        values = sample[present]
        at_point = np.zeros(values.size, dtype=bool)
        counts = []
        for point in points:
            hit = _same(values, point) & ~at_point
            counts.append(hit.sum())
            at_point |= hit
        interval = np.searchsorted(edges, values[~at_point], side="right")
        counts.extend(np.bincount(interval, minlength=edges.size + 1))
        counts.append((~present).sum())
        return np.asarray(counts, dtype=float)

    return count


def drift_frame(model, training: pl.DataFrame, scoring: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """PSI of every model feature and of the churn probability, training rows vs scoring rows."""
    from churnwh.ml.train import predict_proba

    rows = []
    for name, kind in model.features.items():
        value = psi(training[name], scoring[name], categorical=kind == "categorical")
        rows.append((name, kind, value))
    if training.height and scoring.height:
        rows.append(("__score__", "score", psi(predict_proba(model, training), predict_proba(model, scoring))))
    frame = pl.DataFrame(rows, schema={"feature": pl.String, "kind": pl.String, "psi": pl.Float64}, orient="row")
    return frame.with_columns(
        status=pl.when(pl.col("psi") > threshold).then(pl.lit("warning")).otherwise(pl.lit("ok")),
        threshold=pl.lit(threshold),
        training_rows=pl.lit(training.height, dtype=pl.Int64),
        scoring_rows=pl.lit(scoring.height, dtype=pl.Int64),
    ).sort("psi", descending=True, nulls_last=True)


# --- the monitor stage -----------------------------------------------------------------------------


def monitor_stage(ctx) -> str:
    """Pipeline stage after `explain`: snapshot the scores, measure drift and data quality.

    Drift is measured again only when its inputs changed (model run, training and scoring set
    content, threshold: ``drift_fingerprint`` in ``_churnwh.meta``); otherwise ``ml.drift`` is kept
    and its warnings are logged again."""
    from churnwh.stages import registry

    con, config = ctx.con, ctx.config
    record = registry.current(con) if registry.exists(con) else None
    snapshot = snapshot_scores(con)
    warnings = 0
    if record is not None:
        threshold = getattr(getattr(config, "monitoring", None), "psi_warning", DEFAULT_PSI_WARNING)
        fingerprint = drift_fingerprint(con, config, record, threshold)
        if fingerprint is not None and warehouse.get_meta(con, DRIFT_MARK) == fingerprint \
                and DRIFT in warehouse.relations(con):
            drift = pl.from_arrow(con.sql(f"SELECT * FROM {DRIFT} ORDER BY psi DESC NULLS LAST").to_arrow_table())
            _log_warnings(drift, threshold)
        else:
            model = ctx.trained.model if getattr(ctx, "trained", None) else registry.load(config.warehouse.models,
                                                                                           record.version)
            drift = measure_drift(con, config, model, record.version)
            if fingerprint is not None:
                warehouse.set_meta(con, DRIFT_MARK, fingerprint)
        warnings = int((drift["status"] == "warning").sum())
    quality = measure_quality(con, config)
    return f"{snapshot} scores snapshotted, {warnings} drift warnings, {quality} models checked"


def drift_fingerprint(con: duckdb.DuckDBPyConnection, config: Config, record, threshold: float) -> str | None:
    """What ``ml.drift`` depends on (None when the training or scoring set does not exist)."""
    tr = config.training
    existing = warehouse.relations(con)
    if tr.model not in existing or tr.scoring_model not in existing:
        return None
    payload = json.dumps({
        "method": PSI_METHOD, "bins": PSI_BINS, "sample": DRIFT_SAMPLE_ROWS, "threshold": threshold,
        "model": [record.version, record.run_id],
        "training": warehouse.content_fingerprint(con, tr.model),
        "scoring": warehouse.content_fingerprint(con, tr.scoring_model),
        "columns": [tr.id_column, tr.date_column],
    }, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _log_warnings(drift: pl.DataFrame, threshold: float) -> None:
    for row in drift.filter(pl.col("status") == "warning").iter_rows(named=True):
        logger.warning("drift: %s has PSI %.3f above %.2f", row["feature"], row["psi"], threshold)


def snapshot_scores(con: duckdb.DuckDBPyConnection) -> int:
    scores = f"{SCHEMA}.churn_scores"
    if scores not in warehouse.relations(con):
        return 0
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS {HISTORY} (snapshot_at TIMESTAMP, as_of DATE, customer_pseudonym VARCHAR,
                churn_probability DOUBLE, risk_tier VARCHAR, value_at_risk DOUBLE, model_version VARCHAR)"""
        )
        con.execute(
            f"""DELETE FROM {HISTORY} WHERE (as_of, model_version) IN
                (SELECT DISTINCT as_of, model_version FROM {scores})"""
        )
        con.execute(
            f"""INSERT INTO {HISTORY} SELECT current_localtimestamp(), as_of, customer_pseudonym, churn_probability,
                risk_tier, value_at_risk, model_version FROM {scores}"""
        )
        con.execute(f"COMMENT ON TABLE {HISTORY} IS 'Score snapshot of every build (one per as_of and model).'")
        for column, text in HISTORY_COMMENTS.items():
            con.execute(f"COMMENT ON COLUMN {HISTORY}.{column} IS {warehouse.sql_literal(text)}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return con.execute(f"SELECT count(*) FROM {scores}").fetchall()[0][0]


def measure_drift(con: duckdb.DuckDBPyConnection, config: Config, model, version: str) -> pl.DataFrame:
    tr = config.training
    latest_first = warehouse.content_sample_order(con, tr.model, f'"{tr.date_column}" DESC', tr.id_column)
    training = pl.from_arrow(con.sql(
        f"SELECT * FROM {tr.model} ORDER BY {latest_first} LIMIT {DRIFT_SAMPLE_ROWS}").to_arrow_table())
    scoring = pl.from_arrow(con.sql(f"SELECT * FROM {tr.scoring_model}").to_arrow_table())
    threshold = getattr(getattr(config, "monitoring", None), "psi_warning", DEFAULT_PSI_WARNING)
    drift = drift_frame(model, training, scoring, threshold)
    as_of = scoring[tr.date_column].max() if scoring.height else None
    drift = drift.with_columns(as_of=pl.lit(as_of, dtype=pl.Date), model_version=pl.lit(version))
    write_table(con, DRIFT, drift.to_arrow(), DRIFT_COMMENTS,
                "Population stability index per feature and of the score: training data vs current scoring set.")
    _log_warnings(drift, threshold)
    return drift


def measure_quality(con: duckdb.DuckDBPyConnection, config: Config) -> int:
    from churnwh.sqlmodels.project import load_project

    try:
        project = load_project(config.sql)
    except ChurnwhError:
        return 0
    existing = warehouse.relations(con)
    drops: dict[str, list[tuple[str, int]]] = {}
    for dropped_from, reason, customers in dropped_customers(con, project):
        drops.setdefault(dropped_from, []).append((reason, customers))
    withheld = classification.quasi_identifier_names(project) | {
        column for _, column in classification.direct_identifiers()}
    rows = []
    for name in project.order:
        if name not in existing:
            continue
        model = project.models[name]
        cols = warehouse.columns(con, name)
        nulls = ", ".join(f'avg(CASE WHEN "{c}" IS NULL THEN 1.0 ELSE 0.0 END)' for c in cols)
        result = con.execute(f"SELECT count(*), {nulls} FROM {name}").fetchall()[0]
        count, shares = result[0], [float(v or 0.0) for v in result[1:]]
        worst = int(np.argmax(shares)) if shares else 0
        grain = [g for g in model.grain if g in cols]
        duplicates = 0
        if grain and count:
            keys = ", ".join(f'"{g}"' for g in grain)
            duplicates = con.execute(
                f"SELECT count(*) - count(DISTINCT ({keys})) FROM {name}").fetchall()[0][0]
        # never a quasi-identifier (the latest birth month is one person's): freshness is a business date
        date_columns = [c for c, t in cols.items() if t.upper().startswith(("DATE", "TIMESTAMP"))
                        and c not in withheld and (c not in model.columns or model.columns[c].privacy in
                                                  ("plain", "pseudonym"))]
        freshest = None
        if date_columns and count:
            freshest = con.execute(f'SELECT CAST(max("{date_columns[0]}") AS DATE) FROM {name}').fetchall()[0][0]
        rows.append({"model": name, "rows": int(count), "columns": len(cols),
                     "max_null_share": max(shares) if shares else 0.0,
                     "worst_column": list(cols)[worst] if cols else None,
                     "duplicate_grain_rows": int(duplicates), "freshest_date": freshest,
                     "dropped_customers": sum(n for _, n in drops[name]) if name in drops else None,
                     "dropped_because": "; ".join(f"{n}: {why}" for why, n in drops[name]) if name in drops else None,
                     "checked_at": dt.datetime.now()})
    table = pa.Table.from_pylist(rows, schema=pa.schema([
        ("model", pa.string()), ("rows", pa.int64()), ("columns", pa.int32()), ("max_null_share", pa.float64()),
        ("worst_column", pa.string()), ("duplicate_grain_rows", pa.int64()), ("freshest_date", pa.date32()),
        ("dropped_customers", pa.int64()), ("dropped_because", pa.string()), ("checked_at", pa.timestamp("us"))]))
    write_table(con, QUALITY, table, QUALITY_COMMENTS, "Data quality per SQL model, measured at build time.")
    return len(rows)


DROPS_TAG = "dropped_customers"
"""A model with this tag reports customers another model's filters leave out: columns ``model``,
``reason`` and ``customers`` (a count), one row per filter; the build prints it and ml.data_quality
records it on that model's row."""


def dropped_customers(con: duckdb.DuckDBPyConnection, project) -> list[tuple[str, str, int]]:
    """(model, reason, customers) from every built model tagged ``dropped_customers``, largest first."""
    existing = warehouse.relations(con)
    found: list[tuple[str, str, int]] = []
    for name in project.order:
        if DROPS_TAG not in project.models[name].tags or name not in existing:
            continue
        if not {"model", "reason", "customers"} <= set(warehouse.columns(con, name)):
            raise ChurnwhError(f"{name} is tagged {DROPS_TAG!r} but lacks the columns model, reason and "
                               "customers: add them or remove the tag")
        found += [(str(model), str(reason), int(customers)) for model, reason, customers in con.execute(
            f"SELECT model, reason, customers FROM {name} WHERE customers > 0").fetchall()]
    return sorted(found, key=lambda row: (-row[2], row[0], row[1]))


def dropped_summary(drops: list[tuple[str, str, int]]) -> str:
    """One clause per filtering model for the build output ("" when nothing was dropped); each is also
    logged as a warning line of its own."""
    by_model: dict[str, list[tuple[str, int]]] = {}
    for model, reason, customers in drops:
        by_model.setdefault(model, []).append((reason, customers))
    clauses = [f"{model} left out {sum(n for _, n in reasons):,} customers ("
               + ", ".join(f"{n:,}: {reason}" for reason, n in reasons) + ")" for model, reasons in by_model.items()]
    for clause in clauses:
        logger.warning("rows dropped: %s", clause)
    return "; ".join(clauses)


# --- backtest ------------------------------------------------------------------------------------


def backtest(con: duckdb.DuckDBPyConnection, config: Config) -> pl.DataFrame:
    """Compare every past snapshot whose outcome window is over with realized churn.

    Writes ``ml.backtest`` (per snapshot: customers, predicted and realized churn rate, ROC-AUC,
    expected calibration error), ``ml.backtest_by_tier`` and ``ml.backtest_by_decile``; returns
    the per-snapshot frame.
    """
    from churnwh.ml import metrics

    if HISTORY not in warehouse.relations(con):
        raise ChurnwhError("no score history yet: run `churnwh build` first; each build adds a snapshot")
    if "staging.active_periods" not in warehouse.relations(con):
        raise ChurnwhError("staging.active_periods does not exist: run `churnwh build` first")
    variables = config.variables
    lead, window = int(variables["lead_days"]), int(variables["label_window_days"])
    gap = int(variables["churn_gap_days"])
    data_end = variables["as_of"]
    outcomes = pl.from_arrow(con.sql(
        f"""SELECT h.as_of, h.model_version, h.customer_pseudonym, h.churn_probability, h.risk_tier,
                   CASE WHEN p.period_end >= h.as_of + {lead} AND p.period_end < h.as_of + {lead + window}
                        THEN 1 ELSE 0 END AS churned
            FROM {HISTORY} h
            JOIN staging.active_periods p
              ON p.customer_pseudonym = h.customer_pseudonym AND p.period_start < h.as_of
             AND (p.period_end IS NULL OR p.period_end >= h.as_of)
            WHERE h.as_of + {lead + window + gap} <= DATE '{data_end}'
              AND (p.period_end IS NULL OR p.period_end >= h.as_of + {lead})"""
    ).to_arrow_table())
    if outcomes.height == 0:
        raise ChurnwhError(
            f"no snapshot is old enough to backtest: a snapshot needs {lead + window + gap} days of outcome data "
            f"after its as_of (data ends {data_end}); build again once newer data is loaded")
    summary_rows, deciles = [], []
    for (as_of, version), part in outcomes.group_by(["as_of", "model_version"], maintain_order=True):
        y, p = part["churned"].to_numpy().astype(float), part["churn_probability"].to_numpy()
        both = 0 < y.sum() < y.size
        summary_rows.append({
            "as_of": as_of, "model_version": version, "customers": part.height,
            "predicted_rate": float(p.mean()), "realized_rate": float(y.mean()),
            "roc_auc": metrics.roc_auc(y, p) if both else None,
            "calibration_error": float(metrics.expected_calibration_error(y, p)),
        })
        decile = (pl.Series(p).rank("ordinal", descending=True) - 1) * 10 // max(part.height, 1) + 1
        deciles.append(part.with_columns(decile=decile.cast(pl.Int32)))
    summary = pl.DataFrame(summary_rows)
    by_decile = pl.concat(deciles).group_by(["as_of", "model_version", "decile"]).agg(
        customers=pl.len(), predicted_rate=pl.col("churn_probability").mean(),
        realized_rate=pl.col("churned").mean()).sort(["as_of", "decile"])
    by_tier = outcomes.group_by(["as_of", "model_version", "risk_tier"]).agg(
        customers=pl.len(), predicted_rate=pl.col("churn_probability").mean(),
        realized_rate=pl.col("churned").mean()).sort(["as_of", "risk_tier"])
    k = config.publish.k_anonymity  # groups smaller than k are not shown (they may be published)
    summary = summary.filter(pl.col("customers") >= k)
    by_tier, by_decile = by_tier.filter(pl.col("customers") >= k), by_decile.filter(pl.col("customers") >= k)
    write_table(con, BACKTEST, summary.to_arrow(), BACKTEST_COMMENTS, "Past score snapshots against realized churn.")
    write_table(con, f"{SCHEMA}.backtest_by_tier", by_tier.to_arrow(), BACKTEST_COMMENTS, "Backtest by risk tier.")
    write_table(con, f"{SCHEMA}.backtest_by_decile", by_decile.to_arrow(), BACKTEST_COMMENTS, "Backtest by score decile.")
    return summary
