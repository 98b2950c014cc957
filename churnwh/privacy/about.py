"""The published file's ``about`` table: what its numbers mean, as rows a BI user can query.

One row per fact (key, value, description): the scoring date and the model that produced the
scores, what churn_probability is a probability of (the label window after the lead time), how
value_at_risk is computed and in which currency, how risk tiers are cut, the segment columns, the
k of k-anonymity, and how fresh each source is: the latest date in its staging model, taken from
``ml.data_quality`` (which never reads a quasi-identifier column for it), the last event of each dated
source and the day the data end (churnwh.store.freshness), and, when the build was run with
``--allow-stale``, which sources were stale and by how many days.
"""

from __future__ import annotations

import datetime as dt
import json

import duckdb
import polars as pl

from churnwh.config import Config
from churnwh.privacy import uplift_publish
from churnwh.store import freshness, warehouse

TABLE = "about"
SCORES = "ml.churn_scores"
RUNS = "ml.model_runs"
QUALITY = "ml.data_quality"
DRIFT_OVERRIDE = "drift_override"
"""Meta entry written by churnwh.stages.monitor.drift_gate (privacy/ never imports stages/)."""

COMMENTS = {
    None: "What the published numbers mean: scoring date, model, probability definition, value-at-risk horizon and "
          "currency, tier cut-offs, segments, and the freshness of each source. One row per fact.",
    "key": "Name of the fact, e.g. as_of, churn_probability, currency, freshness.staging.transactions.",
    "value": "The fact's value as text (dates as YYYY-MM-DD; cast as needed).",
    "description": "What the fact means, in words.",
}


def about_rows(con: duckdb.DuckDBPyConnection, config: Config, *, published_at: dt.datetime) -> list[dict]:
    """The facts, in a fixed order; scores and freshness come from the private warehouse."""
    relations = warehouse.relations(con)
    variables = config.variables
    lead, window = int(variables.get("lead_days", 0)), int(variables.get("label_window_days", 0))
    # an event-log project labels "no purchase within holdout_days (inactivity_days) after the date"
    inactivity = next((name for name in ("holdout_days", "inactivity_days") if name in variables), None)
    if inactivity:
        lead, window = 0, int(variables[inactivity])
    found = con.execute(f"SELECT as_of, model_version, run_id FROM {SCORES} LIMIT 1").fetchall() \
        if SCORES in relations else []
    scored = found[0] if found else None
    as_of = scored[0] if scored else variables.get("as_of")
    rows: list[tuple[str, object, str]] = [
        ("as_of", as_of, "Scoring date: every feature uses only data from before this day."),
        ("data_end", freshness.data_end(con),
         "The last day with data in any dated source (from the data, not the configuration); see freshness.raw.*."),
    ]
    override = freshness.override(con)
    if override:
        rows.append(("stale_override", "; ".join(
            f"{name}: ends {item['last_event']}, {item['lag_days']} days before the features' window ends "
            f"(max_lag_days = {item['max_lag_days']})" for name, item in sorted(override["sources"].items())),
            "The build was run with --allow-stale: these sources end before the window the features read, so "
            "their recent-activity features read as if nothing happened; treat these scores with care."))
    if scored:
        runs = con.execute(f"SELECT trained_at FROM {RUNS} WHERE version = ?", [scored[1]]).fetchall() \
            if RUNS in relations else []
        trained = runs[0] if runs else None
        rows += [
            ("model_version", scored[1], "The model version that produced churn_scores (see model_runs)."),
            ("model_run_id", scored[2], "The training run of that model version."),
            ("model_trained_at", trained[0] if trained else None, "When that model was trained."),
        ]
    # a flat file's label is the file's own flag: no dates, so no churn window follows as_of
    flag = next((s for s in config.sources if s.label), None) if config.source == "flat" else None
    if flag:
        lead = window = None
    start = as_of + dt.timedelta(days=lead) if isinstance(as_of, dt.date) and lead is not None else None
    end = start + dt.timedelta(days=window) if start else None
    scores = config.scoring
    currency = scores.currency or "unspecified (set [scoring] currency)"
    tiers = config.tiers
    if tiers.mode == "probability":
        tier_rule = (f"high: churn_probability >= {tiers.high}; medium: >= {tiers.medium}; low: below "
                     f"{tiers.medium}.")
    else:
        tier_rule = (f"high: the top {tiers.high:.0%} of customers by churn_probability; medium: the next, up to the "
                     f"top {tiers.medium:.0%}; low: the rest.")
    rows += [
        ("churn_probability", f"P({flag.label} = {' or '.join(flag.positive)})",
         f"Calibrated probability that the customer's churn flag ({flag.name}.{flag.label}) is "
         f"{' or '.join(flag.positive)}, as your file records it: a flat file has no dates, so the probability "
         "has no churn window of its own and means what the flag meant when the file was exported."),
    ] if flag else [
        ("churn_probability",
         f"P(churn between {start} and {end})" if start else "P(churn within the label window)",
         f"Calibrated probability that the customer makes no purchase or other activity within {window} days "
         f"({inactivity}) after as_of." if inactivity else
         f"Calibrated probability that the customer's active period ends (no re-signup within "
         f"{variables.get('churn_gap_days', 0)} days) within {window} days (label_window_days) starting {lead} days "
         f"(lead_days) after as_of."),
    ]
    rows += [
        ("lead_days", lead, "Days between the scoring date and the start of the churn window: time to act "
         "(NULL in a flat project: its file has no dates)."),
        ("label_window_days", window, "Length of the churn window in days."),
        ("churn_window_start", start, "First day of the churn window (as_of + lead_days)."),
        ("churn_window_end", end, "Day after the last day of the churn window (start + label_window_days)."),
        ("value_at_risk", f"churn_probability x {scores.value_column} x {scores.horizon_months}",
         f"value_at_risk = churn_probability x monthly value ({scores.value_column}) x the horizon in months."),
        ("value_horizon_months", scores.horizon_months, "Months of revenue counted in value_at_risk."),
        ("currency", currency, "Currency of value_at_risk and of every money column."),
        ("tier_mode", tiers.mode, "probability: tiers cut at probability thresholds; top_fraction: at shares of "
                                  "customers ranked by probability."),
        ("tier_high", tiers.high, "The high tier's cut-off (a probability or a share, as tier_mode says)."),
        ("tier_medium", tiers.medium, "The medium tier's cut-off (a probability or a share, as tier_mode says)."),
        ("risk_tiers", tier_rule, "How risk_tier is assigned. risk_tier sorts by severity: ORDER BY risk_tier "
                                  "gives high, medium, low."),
        ("segments", ", ".join(scores.segments) or "none",
         "Columns of churn_scores to slice by ([scoring] segments); never an identifying column."),
        ("k_anonymity", config.publish.k_anonymity,
         "Smallest group of customers a published count may show."),
        ("published_at", published_at.replace(microsecond=0), "When this file was published."),
    ]
    rows += uplift_rows(con)
    override = warehouse.get_meta(con, DRIFT_OVERRIDE) if f"{warehouse.META_SCHEMA}.meta" in _meta(con) else None
    if override:
        rows.append(("drift_override", json.loads(override).get("reason"),
                     "Severe drift was found and these scores were published anyway (`churnwh build --allow-drift`, "
                     "or a key rotation of data already published so; recorded in audit_log): read them with care. "
                     "See the drift table."))
    if QUALITY in relations:
        for model, freshest in con.execute(
            f"SELECT model, freshest_date FROM {QUALITY} WHERE model LIKE 'staging.%' AND freshest_date IS NOT NULL "
            "ORDER BY model"
        ).fetchall():
            rows.append((f"freshness.{model}", freshest,
                         f"Latest date in the source model {model}: later data has not been loaded yet."))
        dated_sources = con.execute(
            f"SELECT model, freshest_date, event_time_column, lag_days FROM {QUALITY} WHERE model LIKE 'raw.%' "
            "AND freshest_date IS NOT NULL ORDER BY model"
        ).fetchall() if "event_time_column" in warehouse.columns(con, QUALITY) else []  # older builds lack it
        for model, freshest, column, lag in dated_sources:
            rows.append((f"freshness.{model}", freshest,
                         f"Last event of the source {model} ({column}), {lag} days before the last day the features "
                         "read (as_of - 1)."))
    return [{"key": key, "value": None if value is None else str(value), "description": text}
            for key, value, text in rows]


def uplift_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[str, object, str]]:
    """Which uplift model gave churn_scores.expected_uplift, or why there is none."""
    if uplift_publish.usable(con):
        columns = warehouse.columns(con, uplift_publish.CUSTOMER_UPLIFT)
        version = "max(uplift_model_version)" if "uplift_model_version" in columns else "NULL"
        found = con.execute(f"SELECT {version}, max(as_of) FROM {uplift_publish.CUSTOMER_UPLIFT}").fetchone()
        return [
            ("uplift_model_version", found[0],
             "The uplift model behind churn_scores.expected_uplift, learned from randomized pilots (treated vs "
             "control campaign members); see uplift_validation."),
            ("uplift_as_of", found[1], "Scoring date of the expected uplift (customers scored on another date get "
                                       "NULL)."),
            ("expected_uplift", "P(churn | not contacted) - P(churn | contacted)",
             "Churn a contact is expected to prevent; positive: contacting helps, negative: it backfires. An "
             "estimate, rounded to 0.01 and shared by at least k customers."),
        ]
    reason = uplift_publish.status(con)
    return [("uplift_model", f"none: {reason}" if reason else "none",
             "No uplift model yet, so churn_scores.expected_uplift, expected_saved_value and recommended_action are "
             "NULL: run a pilot campaign (churnwh plan, later churnwh pilot-report) large enough to learn from.")]


def _meta(con: duckdb.DuckDBPyConnection) -> set[str]:
    rows = con.execute("SELECT table_schema || '.' || table_name FROM information_schema.tables "
                       "WHERE table_catalog = current_database() AND table_schema = ?",
                       [warehouse.META_SCHEMA]).fetchall()
    return {row[0] for row in rows}


def write_about(con: duckdb.DuckDBPyConnection, config: Config, target: str) -> None:
    """Create ``target`` (catalog.schema.about) with the facts and its comments."""
    rows = about_rows(con, config, published_at=dt.datetime.now())
    # Polars, not pyarrow, builds the rows: pyarrow's constructors import pandas (seconds on a loaded machine)
    table = pl.from_dicts(rows, schema={"key": pl.String, "value": pl.String, "description": pl.String}).to_arrow()
    con.register("_churnwh_about", table)
    try:
        con.execute(f"CREATE TABLE {target} AS SELECT * FROM _churnwh_about")
    finally:
        con.unregister("_churnwh_about")
    for column, text in COMMENTS.items():
        what = f"COLUMN {target}.{column}" if column else f"TABLE {target}"
        con.execute(f"COMMENT ON {what} IS {warehouse.sql_literal(text)}")
