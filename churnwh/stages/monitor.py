"""Monitoring: score snapshots, backtests, drift (PSI) and data quality, as tables in schema ``ml``.

- ``ml.score_history``: every build's ``ml.churn_scores`` snapshot (one per as_of and model
  version; a rebuild of the same as_of and version replaces its snapshot).
- ``ml.backtest`` / ``ml.backtest_by_tier`` / ``ml.backtest_by_decile``: past snapshots whose
  outcome window is over, compared with what happened (the same label definition as the training
  set: the active period ends within ``label_window_days`` after ``lead_days``).
- ``ml.drift``: population stability index of every model feature and of the score between the
  reference (the training rows of the latest observation date(s), ``[monitoring] reference_days``; a
  training set without dates: its rows with label 0, like the scoring set) and the current scoring
  set, with ``status = 'warning'`` above the threshold, ``severe`` at or above ``psi_severe``, and
  what moved in words (``explanation``: aggregates only). Severe drift stops the build before it
  scores (``drift_gate``) unless ``--allow-drift`` overrides it.
- ``ml.data_quality``: per SQL model rows, columns, the worst null share, duplicate grain rows and
  the freshest date; per source (``raw.NAME``) its rows, event-time column, last event date and how
  many days it lags the features' window (as the build's freshness check measured it), and the
  customers its filters leave out (from a model tagged ``dropped_customers``).

The drift measures themselves (PSI, what moved in words, severity) are pure functions in
``churnwh.ml.drift``; this module reads and writes the warehouse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging

import duckdb
import numpy as np
import polars as pl

from churnwh.config import Config
from churnwh.errors import ChurnwhError
from churnwh.ml.drift import PSI_BINS, PSI_METHOD, drift_frame, severe_drift
from churnwh.privacy import about, classification
from churnwh.stages.explain import write_table
from churnwh.stages.registry import SCHEMA, SCORE_HISTORY
from churnwh.store import freshness, warehouse

logger = logging.getLogger(__name__)

DRIFT = f"{SCHEMA}.drift"
QUALITY = f"{SCHEMA}.data_quality"
BACKTEST = f"{SCHEMA}.backtest"
DRIFT_SAMPLE_ROWS = 50000
SCORING_SAMPLE_ROWS = 200_000
"""Scoring rows drift is measured on: all of them up to this many, else a uniform, key-independent sample
(by a hash of their content) of this many, so the stage's memory does not grow with the customers."""
DRIFT_MARK = "drift_fingerprint"
OVERRIDE_MARK = about.DRIFT_OVERRIDE
"""Meta entry: what severe drift the last build published with --allow-drift (JSON; "" when none)."""

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
    "psi": "Population stability index between the reference training rows and the current scoring set "
           "(< 0.1 stable, 0.1-0.2 moderate shift, > threshold: warning).",
    "status": "ok or warning (psi above the configured threshold).",
    "threshold": "The warning threshold in force (monitoring.psi_warning).",
    "severe": "psi at or above monitoring.psi_severe: severe drift of the score, or of monitoring.severe_features "
              "features, stops the build unless --allow-drift.",
    "explanation": "What moved, in words: the mean (or a category's share, or the missing share) in the reference "
                   "and in the scoring set. Aggregates only.",
    "reference": "The training rows compared (monitoring.reference_days): the latest observation date(s), or "
                 "without dates the rows with label 0.",
    "training_rows": "Reference training rows compared.",
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
    "duplicate_grain_rows": "Rows beyond the first per declared grain (should be 0): what the build's grain check found for a model built in this build (the check stops the build on any), measured otherwise.",
    "freshest_date": "Latest value of the first date column that is not a quasi-identifier (freshness), if any; "
                     "for a source, its last event date.",
    "dropped_customers": "Customers a filter of this model leaves out entirely (reported by a model tagged "
                         "dropped_customers), if any.",
    "dropped_because": "Why, per filter: 'N: reason; M: reason'.",
    "checked_at": "When this was measured.",
    "event_time_column": "Sources only: the column dating its rows (NULL for a static table such as customers).",
    "lag_days": "Sources only: days between its last event and the last day the features read (as_of - 1).",
    "max_lag_days": "Sources only: the lag allowed before the build refuses to score ([freshness] max_lag_days).",
    "freshness": "Sources only: fresh, stale (scored only with --allow-stale), static, empty, or unknown (no "
                 "event_time declared or inferred).",
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


# --- the monitor stage -----------------------------------------------------------------------------


def drift_gate(ctx) -> str:
    """Pipeline stage before `score`: measure drift of the scoring set and stop the build, before it
    scores or publishes (the published file and the previous scores are kept), when the drift is
    severe; ``--allow-drift`` goes on and the override is recorded (audit log, published ``about``)."""
    drift = current_drift(ctx)
    ctx.privacy["drift_measured"] = True
    if drift is None:
        return "no model or scoring set to compare yet"
    mon = ctx.config.monitoring
    warnings = int((drift["status"] == "warning").sum())
    reason = severe_drift(drift, mon.severe_features)
    if reason is None:
        warehouse.set_meta(ctx.con, OVERRIDE_MARK, "")
        return f"{warnings} drift warnings against {drift['reference'][0]}"
    allowed_by = getattr(ctx.options, "allow_drift", None)
    if not allowed_by:
        raise ChurnwhError(
            f"severe drift (monitoring.psi_severe {mon.psi_severe:g}): {reason}; nothing was scored or published "
            "(the published file was kept): fix the data (a source that stopped or changed?) and build again, "
            "or publish anyway with `churnwh build --allow-drift` (recorded in the audit log)")
    override = {"allowed_by": allowed_by, "reason": reason}
    ctx.privacy["drift_override"] = override
    warehouse.set_meta(ctx.con, OVERRIDE_MARK, json.dumps(override, sort_keys=True))
    logger.warning("drift: severe (%s); scored and published anyway: %s", reason, allowed_by)
    return f"{warnings} drift warnings; severe drift allowed by {allowed_by} ({reason})"


def current_drift(ctx) -> pl.DataFrame | None:
    """``ml.drift`` for the current model and scoring set: measured again only when its inputs changed
    (model run, training and scoring set content, settings: ``drift_fingerprint`` in ``_churnwh.meta``),
    otherwise the stored table with its warnings logged again. None without a model or scoring set."""
    from churnwh.stages import registry

    con, config = ctx.con, ctx.config
    record = registry.current(con) if registry.exists(con) else None
    if record is None:
        return None
    threshold = config.monitoring.psi_warning
    fingerprint = drift_fingerprint(con, config, record, threshold)
    if fingerprint is None:
        return None
    if warehouse.get_meta(con, DRIFT_MARK) == fingerprint and DRIFT in warehouse.relations(con):
        drift = pl.from_arrow(con.sql(f"SELECT * FROM {DRIFT} ORDER BY psi DESC NULLS LAST").to_arrow_table())
        _log_warnings(drift, threshold)
        return drift
    trained = getattr(ctx, "trained", None)
    model = trained.model if trained is not None and trained.version == record.version \
        else registry.load(config.warehouse.models, record.version)
    drift = measure_drift(con, config, model, record.version)
    warehouse.set_meta(con, DRIFT_MARK, fingerprint)
    return drift


def monitor_stage(ctx) -> str:
    """Pipeline stage after `explain`: snapshot the scores, measure drift (unless the drift gate did in
    this build: an erasure's rebuild is not gated) and data quality."""
    snapshot = snapshot_scores(ctx.con)
    mon = ctx.config.monitoring
    compact_score_history(ctx.con, mon.score_history_days, mon.score_history_months)
    if ctx.privacy.get("drift_measured"):
        found = ctx.con.execute(f"SELECT count(*) FILTER (WHERE status = 'warning') FROM {DRIFT}").fetchall() \
            if DRIFT in warehouse.relations(ctx.con) else [(0,)]
        warnings = int(found[0][0] or 0)
    else:
        drift = current_drift(ctx)
        warnings = 0 if drift is None else int((drift["status"] == "warning").sum())
    quality = measure_quality(ctx.con, ctx.config, grain_checked={result.name for result in ctx.models
                                                                  if result.status == "built"})
    return f"{snapshot} scores snapshotted, {warnings} drift warnings, {quality} models checked"


def drift_fingerprint(con: duckdb.DuckDBPyConnection, config: Config, record, threshold: float) -> str | None:
    """What ``ml.drift`` depends on (None when the training or scoring set does not exist)."""
    tr = config.training
    existing = warehouse.relations(con)
    if tr.model not in existing or tr.scoring_model not in existing:
        return None
    mon = config.monitoring
    payload = json.dumps({
        "method": PSI_METHOD, "bins": PSI_BINS, "sample": DRIFT_SAMPLE_ROWS, "scoring_sample": SCORING_SAMPLE_ROWS, "threshold": threshold,
        "reference_days": mon.reference_days, "severe": mon.psi_severe, "k": config.publish.k_anonymity,
        "model": [record.version, record.run_id],
        "training": warehouse.content_fingerprint(con, tr.model),
        "scoring": warehouse.content_fingerprint(con, tr.scoring_model),
        "columns": [tr.id_column, tr.date_column, tr.label_column],
    }, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _log_warnings(drift: pl.DataFrame, threshold: float) -> None:
    for row in drift.filter(pl.col("status") == "warning").iter_rows(named=True):
        logger.warning("drift: %s has PSI %.3f above %.2f: %s", row["feature"], row["psi"], threshold,
                       row.get("explanation") or "")


def snapshot_scores(con: duckdb.DuckDBPyConnection) -> int:
    scores = f"{SCHEMA}.churn_scores"
    if scores not in warehouse.relations(con):
        return 0
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(
            f"""CREATE TABLE IF NOT EXISTS {SCORE_HISTORY} (snapshot_at TIMESTAMP, as_of DATE, customer_pseudonym VARCHAR,
                churn_probability DOUBLE, risk_tier VARCHAR, value_at_risk DOUBLE, model_version VARCHAR)"""
        )
        con.execute(
            f"""DELETE FROM {SCORE_HISTORY} WHERE (as_of, model_version) IN
                (SELECT DISTINCT as_of, model_version FROM {scores})"""
        )
        con.execute(
            f"""INSERT INTO {SCORE_HISTORY} SELECT current_localtimestamp(), as_of, customer_pseudonym, churn_probability,
                risk_tier, value_at_risk, model_version FROM {scores}"""
        )
        con.execute(f"COMMENT ON TABLE {SCORE_HISTORY} IS 'Score snapshot of every build (one per as_of and model).'")
        for column, text in HISTORY_COMMENTS.items():
            con.execute(f"COMMENT ON COLUMN {SCORE_HISTORY}.{column} IS {warehouse.sql_literal(text)}")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return con.execute(f"SELECT count(*) FROM {scores}").fetchall()[0][0]


def compact_score_history(con: duckdb.DuckDBPyConnection, days: int, months: int) -> int:
    """Retention of ``ml.score_history`` (``[monitoring] score_history_days`` / ``score_history_months``): keep
    the snapshots within ``days`` of the newest as_of, and of older ones the first of each calendar month
    within ``months``; ``days`` = 0 keeps everything. Returns the rows deleted (DuckDB reuses their space)."""
    if days == 0 or SCORE_HISTORY not in warehouse.relations(con):
        return 0
    newest = con.execute(f"SELECT max(as_of) FROM {SCORE_HISTORY}").fetchall()[0][0]
    if newest is None:
        return 0
    daily_from = newest - dt.timedelta(days=days)
    monthly_from = dt.date(newest.year, newest.month, 1) - dt.timedelta(days=1)
    for _ in range(max(months - 1, 0)):
        monthly_from = dt.date(monthly_from.year, monthly_from.month, 1) - dt.timedelta(days=1)
    monthly_from = dt.date(monthly_from.year, monthly_from.month, 1) if months else newest + dt.timedelta(days=1)
    deleted = con.execute(
        f"""DELETE FROM {SCORE_HISTORY} WHERE as_of < ? AND (as_of < ? OR as_of NOT IN (
                SELECT min(as_of) FROM {SCORE_HISTORY} GROUP BY date_trunc('month', as_of)))""",
        [daily_from, monthly_from],
    ).fetchall()[0][0]
    return int(deleted)


def reference_window(con: duckdb.DuckDBPyConnection, config: Config) -> tuple[str, str]:
    """(SQL condition on the training set, the reference in words) for drift.

    The latest training observation date, or the dates within ``monitoring.reference_days`` before it:
    compared with all training dates, what changed over the history on purpose (list prices) would be
    flagged on every build. A training set without dates (a flat table, whose scoring set is its rows
    that have not churned): its rows with label 0, so like is compared with like."""
    tr = config.training
    columns = warehouse.columns(con, tr.model)
    date = tr.date_column
    if date and date in columns:
        latest = con.execute(f'SELECT max("{date}") FROM {tr.model}').fetchall()[0][0]
        if latest is not None:
            days = config.monitoring.reference_days
            first = latest - dt.timedelta(days=days) if isinstance(latest, (dt.date, dt.datetime)) else latest - days
            earliest = con.execute(f'SELECT min("{date}") FROM {tr.model} WHERE "{date}" >= ?',
                                   [first]).fetchall()[0][0]
            if isinstance(earliest, dt.datetime):
                condition = f'"{date}" >= TIMESTAMP \'{earliest.isoformat(sep=" ")}\''
            else:
                condition = f'"{date}" >= {warehouse.sql_literal(earliest)}'
            if earliest == latest:
                return condition, f"the latest training date {_day(latest)}"
            return condition, f"the training dates {_day(earliest)} to {_day(latest)}"
    label = tr.label_column
    if label in columns:
        return f'"{label}" = 0', f"the training rows with {label} = 0 (no observation dates: customers who stayed)"
    return "TRUE", "all training rows"


def _day(value) -> str:
    return value.strftime("%Y-%m-%d") if isinstance(value, (dt.date, dt.datetime)) else str(value)


def measure_drift(con: duckdb.DuckDBPyConnection, config: Config, model, version: str) -> pl.DataFrame:
    tr = config.training
    condition, reference = reference_window(con, config)
    latest_first = warehouse.content_sample_order(con, tr.model, f'"{tr.date_column}" DESC', tr.id_column) \
        if tr.date_column in warehouse.columns(con, tr.model) else \
        warehouse.content_sample_order(con, tr.model, "1", tr.id_column)
    training = pl.from_arrow(con.sql(
        f"SELECT * FROM {tr.model} WHERE {condition} ORDER BY {latest_first} LIMIT {DRIFT_SAMPLE_ROWS}"
    ).to_arrow_table())
    scoring_order = warehouse.content_sample_order(con, tr.scoring_model, "1", tr.id_column)
    scoring = pl.from_arrow(con.sql(
        f"SELECT * FROM {tr.scoring_model} ORDER BY {scoring_order} LIMIT {SCORING_SAMPLE_ROWS}").to_arrow_table())
    mon = config.monitoring
    drift = drift_frame(model, training, scoring, mon.psi_warning, reference=reference, severe=mon.psi_severe,
                        k=config.publish.k_anonymity)
    as_of = scoring[tr.date_column].max() if scoring.height and tr.date_column in scoring.columns else None
    drift = drift.with_columns(as_of=pl.lit(as_of, dtype=pl.Date), model_version=pl.lit(version))
    write_table(con, DRIFT, drift.to_arrow(), DRIFT_COMMENTS,
                "Population stability index per feature and of the score: reference training rows vs the current "
                "scoring set, with what moved in words.")
    _log_warnings(drift, mon.psi_warning)
    return drift


SPARK_QUALITY = f"{warehouse.META_SCHEMA}.spark_model_quality"
"""The measures of the models a Spark build left in Spark storage only (churnwh.spark.engine), taken there
with ``quality_date_column``'s choice of date: ``measure_quality`` reports them like the others."""
SPARK_QUALITY_COLUMNS = ("model", "rows", "columns", "max_null_share", "worst_column", "duplicate_grain_rows",
                         "freshest_date")


def withheld_columns(project) -> set[str]:
    """Columns whose latest value may single a person out: never a freshness date."""
    return classification.quasi_identifier_names(project) | {column for _, column in classification.direct_identifiers()}


def quality_date_column(model, cols: dict[str, str], withheld: set[str]) -> str | None:
    """The date whose maximum is a model's freshness: a business date, never a quasi-identifier (the latest
    birth month is one person's)."""
    date_columns = [c for c, t in cols.items() if t.upper().startswith(("DATE", "TIMESTAMP"))
                    and c not in withheld and (c not in model.columns or model.columns[c].privacy in
                                              ("plain", "pseudonym"))]
    return date_columns[0] if date_columns else None


def _spark_measured(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    found = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
                        SPARK_QUALITY.split(".")).fetchone()[0]
    if not found:
        return {}
    rows = con.execute(f"SELECT {', '.join(SPARK_QUALITY_COLUMNS)} FROM {SPARK_QUALITY}").fetchall()
    return {row[0]: row for row in rows}


def measure_quality(con: duckdb.DuckDBPyConnection, config: Config, grain_checked: set[str] = frozenset()) -> int:
    """Write ``ml.data_quality``: one row per model and source. ``grain_checked``: models whose grain check
    passed in this build (churnwh.sqlmodels.run_models.verify), whose duplicates are not counted again: at
    a million customers counting them in staging.product_usage took 30 s of a 45 s stage."""
    from churnwh.sqlmodels.project import load_project

    try:
        project = load_project(config.sql)
    except ChurnwhError:
        return 0
    existing = warehouse.relations(con)
    drops: dict[str, list[tuple[str, int]]] = {}
    for dropped_from, reason, customers in dropped_customers(con, project):
        drops.setdefault(dropped_from, []).append((reason, customers))
    withheld = withheld_columns(project)
    measured_on_spark = _spark_measured(con)
    rows = []
    for name in project.order:
        if name not in existing:
            if name in measured_on_spark:
                measured = dict(zip(SPARK_QUALITY_COLUMNS, measured_on_spark[name]))
                rows.append({**measured, "dropped_customers": None, "dropped_because": None,
                             "checked_at": dt.datetime.now()})
            continue
        model = project.models[name]
        cols = warehouse.columns(con, name)
        nulls = ", ".join(f'avg(CASE WHEN "{c}" IS NULL THEN 1.0 ELSE 0.0 END)' for c in cols)
        result = con.execute(f"SELECT count(*), {nulls} FROM {name}").fetchall()[0]
        count, shares = result[0], [float(v or 0.0) for v in result[1:]]
        worst = int(np.argmax(shares)) if shares else 0
        grain = [g for g in model.grain if g in cols]
        duplicates = 0
        if grain and count and name not in grain_checked:
            keys = ", ".join(f'"{g}"' for g in grain)
            duplicates = con.execute(
                f"SELECT count(*) - count(DISTINCT ({keys})) FROM {name}").fetchall()[0][0]
        date_column = quality_date_column(model, cols, withheld)
        freshest = None
        if date_column and count:
            freshest = con.execute(f'SELECT CAST(max("{date_column}") AS DATE) FROM {name}').fetchall()[0][0]
        rows.append({"model": name, "rows": int(count), "columns": len(cols),
                     "max_null_share": max(shares) if shares else 0.0,
                     "worst_column": list(cols)[worst] if cols else None,
                     "duplicate_grain_rows": int(duplicates), "freshest_date": freshest,
                     "dropped_customers": sum(n for _, n in drops[name]) if name in drops else None,
                     "dropped_because": "; ".join(f"{n}: {why}" for why, n in drops[name]) if name in drops else None,
                     "checked_at": dt.datetime.now()})
    rows += source_quality_rows(con)
    # Polars, not pyarrow, builds the rows: pyarrow's constructors import pandas (seconds on a loaded
    # machine), which an unchanged rebuild otherwise never needs.
    table = pl.from_dicts(rows, schema={
        "model": pl.String, "rows": pl.Int64, "columns": pl.Int32, "max_null_share": pl.Float64,
        "worst_column": pl.String, "duplicate_grain_rows": pl.Int64, "freshest_date": pl.Date,
        "checked_at": pl.Datetime("us"), "event_time_column": pl.String, "lag_days": pl.Int32,
        "max_lag_days": pl.Int32, "freshness": pl.String, "dropped_customers": pl.Int64,
        "dropped_because": pl.String}).to_arrow()
    write_table(con, QUALITY, table, QUALITY_COMMENTS, "Data quality per SQL model, measured at build time.")
    return len(rows)


def source_quality_rows(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """One ``raw.NAME`` row per source as the build's freshness check measured it (churnwh.store.freshness)."""
    existing = warehouse.relations(con)
    rows = []
    for measured in freshness.recorded(con):
        relation = f"{warehouse.RAW_SCHEMA}.{measured['source']}"
        rows.append({"model": relation, "rows": measured["rows"],
                     "columns": len(warehouse.columns(con, relation)) if relation in existing else None,
                     "freshest_date": measured["last_event_date"], "checked_at": measured["checked_at"],
                     "event_time_column": measured["event_time_column"], "lag_days": measured["lag_days"],
                     "max_lag_days": measured["max_lag_days"], "freshness": measured["status"]})
    return rows


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

    if SCORE_HISTORY not in warehouse.relations(con):
        raise ChurnwhError("no score history yet: run `churnwh build` first; each build adds a snapshot")
    if "staging.active_periods" not in warehouse.relations(con):
        raise ChurnwhError("staging.active_periods does not exist: run `churnwh build` first")
    variables = config.variables
    lead, window = int(variables["lead_days"]), int(variables["label_window_days"])
    gap = int(variables["churn_gap_days"])
    as_of = variables["as_of"]
    # outcomes are known up to the day before as_of (staging.active_periods stops there); the build refuses
    # sources that end before that unless --allow-stale. Users are told the data's own end beside it.
    known_until = as_of
    data_end = freshness.data_end(con)
    ends = f"data end {data_end}" if data_end else "data end not measured yet (run `churnwh build`)"
    outcomes = pl.from_arrow(con.sql(
        f"""SELECT h.as_of, h.model_version, h.customer_pseudonym, h.churn_probability, h.risk_tier,
                   CASE WHEN p.period_end >= h.as_of + {lead} AND p.period_end < h.as_of + {lead + window}
                        THEN 1 ELSE 0 END AS churned
            FROM {SCORE_HISTORY} h
            JOIN staging.active_periods p
              ON p.customer_pseudonym = h.customer_pseudonym AND p.period_start < h.as_of
             AND (p.period_end IS NULL OR p.period_end >= h.as_of)
            WHERE h.as_of + {lead + window + gap} <= DATE '{known_until}'
              AND (p.period_end IS NULL OR p.period_end >= h.as_of + {lead})"""
    ).to_arrow_table())
    if outcomes.height == 0:
        raise ChurnwhError(
            f"no snapshot is old enough to backtest: a snapshot needs {lead + window + gap} days of outcome data "
            f"after its as_of ({ends}; as-of date {as_of}); build again once newer data is loaded")
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
