"""The `score` stage: stream the scoring set through the current model into ``ml.churn_scores``.

Rows arrive as Arrow record batches, so memory stays bounded by the batch size whatever the
number of customers. Tiers, actions, value at risk and priority are computed in SQL over the
scored rows, and the new table replaces the old one in one transaction.

A build whose model run and scoring set are those the probabilities in ``churn_scores`` were given
by (``probabilities_fingerprint``, kept in ``_churnwh.meta`` with the table) takes them over instead of
running the model (``reuse_scores``): the same probabilities without starting JAX.
"""

from __future__ import annotations

import hashlib
import json

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from churnwh.config import IDENTIFYING_CLASSES, Config
from churnwh.errors import ChurnwhError, DataError
from churnwh.ml.preprocess import feature_kind
from churnwh.privacy import classification
from churnwh.progress import Count, Reporter, ignore
from churnwh.stages.registry import SCHEMA
from churnwh.store import faults, warehouse

SCORES = f"{SCHEMA}.churn_scores"
_STAGING = "_scored_rows"
PROBABILITIES_MARK = "scores_fingerprint"
PROBABILITIES_METHOD = "calibrated ensemble probability; out-of-fold for training customers"
"""Part of the fingerprint: change it when what churn_scores.churn_probability holds changes."""

COLUMN_COMMENTS = {
    "customer_pseudonym": "Keyed pseudonym of the customer (HMAC-SHA256); re-identification needs the key.",
    "as_of": "Scoring date: features use only data strictly before it.",
    "churn_probability": "Calibrated probability that the customer's active period ends within the label window.",
    "risk_tier": "high: retain now; medium: enhanced care; low: normal service.",
    "action": "The recommended action for the customer's risk tier.",
    "value_at_risk": "churn_probability x monthly revenue x the value horizon in months.",
    "priority_rank": "1 = the customer with the most value at risk.",
    "model_version": "The model version that produced the score (ml.model_runs).",
    "run_id": "The training run of that model version.",
    "contactable": "True when the customer's latest marketing consent is granted: they may be contacted for "
                   "retention (no consent record: false).",
    "scored_in_sample": "True when the model that gave this score was trained on this very customer (a training "
                        "set without dates, [network] cross_fit_folds below 2): over-confident, act with care. "
                        "With cross-fitting (the default) such customers are scored by a model that never saw them.",
    "campaign_group": "The customer's group in the latest campaign (`churnwh plan`): treated (contacted), control "
                      "(held out to measure the effect) or none (not selected).",
}
TIERS = ("high", "medium", "low")
TIER_TYPE = "ENUM(" + ", ".join(f"'{tier}'" for tier in TIERS) + ")"
"""risk_tier's type: ORDER BY risk_tier gives high, medium, low (severity, not the alphabet)."""
CONSENT_STATE = "staging.consent_state"
CAMPAIGNS, CAMPAIGN_MEMBERS = f"{SCHEMA}.campaigns", f"{SCHEMA}.campaign_members"


def check_segments(config: Config, present: list[str], relation: str, project=None) -> None:
    """Every segment is a column of the scoring set that neither the sources nor a model header classify as
    identifying."""
    classes = {column: privacy for columns in classification.SOURCE_COLUMNS.values()
               for column, privacy in columns.items() if privacy in IDENTIFYING_CLASSES}
    classes |= {name: classification.QUASI_IDENTIFIER for name in classification.quasi_identifier_names()}
    if project is not None:
        for model in project.models.values():
            classes |= {name: f"{column.privacy} in the SQL models" for name, column in model.columns.items()
                        if column.privacy in IDENTIFYING_CLASSES}
    for name in config.scoring.segments:
        if name in classes:
            raise DataError(f"scoring.segments names {name!r}, classified {classes[name]}: "
                            "segments are published per customer, so remove it from scoring.segments")
        if name not in present:
            raise DataError(f"{relation} has no column {name!r} (scoring.segments): add it to the model or remove "
                            "it from scoring.segments")


def project_or_none(config: Config):
    """The SQL model project (for its column classes), or None where it cannot be read."""
    from churnwh.sqlmodels.project import load_project

    try:
        return load_project(config.sql)
    except ChurnwhError:
        return None


def segment_comment(con: duckdb.DuckDBPyConnection, relation: str, column: str) -> str:
    schema, table = relation.split(".")
    rows = con.execute(
        "SELECT comment FROM duckdb_columns() WHERE database_name = current_database() AND schema_name = ? "
        "AND table_name = ? AND column_name = ?", [schema, table, column]).fetchall()
    row = rows[0] if rows else None
    described = row[0].strip().rstrip(".") if row and row[0] else f"Column {column} of {relation}"
    return f"{described}. A segment to slice scores by ([scoring] segments)."


def check_features(model, scoring_schema: dict[str, pl.DataType], relation: str, version: str) -> None:
    """The scoring table must offer every feature the model was trained on, with the same kind."""
    for name, kind in model.features.items():
        if name not in scoring_schema:
            raise DataError(
                f"{relation} has no column {name!r}, which model {version} was trained on: "
                "restore the column or retrain with `churnwh train --force`"
            )
        found = feature_kind(scoring_schema[name])
        if found != kind:
            raise DataError(
                f"column {name!r} of {relation} is {found or scoring_schema[name]} but model {version} was "
                f"trained on it as {kind}: fix the column type or retrain with `churnwh train --force`"
            )


def scoring_columns(con: duckdb.DuckDBPyConnection, config: Config) -> dict[str, str]:
    """The scoring set's columns (name -> type), once it is known to hold the id, date and value columns."""
    relation = config.training.scoring_model
    if relation not in warehouse.relations(con):
        raise DataError(f"scoring table {relation} does not exist: run `churnwh build` first")
    present = warehouse.columns(con, relation)
    for column, key in (
        (config.training.id_column, "training.id_column"),
        (config.training.date_column, "training.date_column"),
        (config.scoring.value_column, "scoring.value_column"),
    ):
        if column not in present:
            raise DataError(f"{relation} has no column {column!r} ({key}): add it to the model or fix {key}")
    return present


def probabilities_fingerprint(con: duckdb.DuckDBPyConnection, config: Config, version: str, run_id: str) -> str:
    """What the model's probabilities in ``churn_scores`` depend on: the model run, the scoring set's
    columns and content, the id and date columns, the batch size (padded compiled calls) and the
    prediction code. Tiers, actions, value at risk, segments, consent and campaign groups are not in
    it: they are computed again in SQL on every build."""
    from churnwh.stages.train import model_code_fingerprint

    tr, relation = config.training, config.training.scoring_model
    payload = json.dumps({
        "method": PROBABILITIES_METHOD,
        "model": [version, run_id],
        "scoring": warehouse.content_fingerprint(con, relation),
        "schema": warehouse.columns(con, relation),
        "columns": [tr.id_column, tr.date_column],
        "batch_rows": config.scoring.batch_rows,
        "code": model_code_fingerprint(),
    }, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def reuse_scores(con: duckdb.DuckDBPyConnection, config: Config, version: str, run_id: str) -> int | None:
    """Score again without the model when the probabilities in ``churn_scores`` were given by this model
    run to this very scoring set (``probabilities_fingerprint`` recorded with them): every customer's
    probability is taken over and the rest of the table is made again as ``score_stage`` makes it.
    Returns the rows scored, or None when the model must score (then nothing was changed)."""
    present = scoring_columns(con, config)
    relation = config.training.scoring_model
    if SCORES not in warehouse.relations(con) or warehouse.get_meta(con, PROBABILITIES_MARK) != \
            probabilities_fingerprint(con, config, version, run_id):
        return None
    check_segments(config, present, relation, project_or_none(config))
    tr = config.training
    pseudonym = f"CAST(s.{_q(tr.id_column)} AS VARCHAR)"
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE {_STAGING} AS
            SELECT {pseudonym} AS customer_pseudonym, CAST(s.{_q(tr.date_column)} AS DATE) AS as_of,
                   c.churn_probability, CAST(s.{_q(config.scoring.value_column)} AS DOUBLE) AS monthly_value
            FROM {relation} AS s JOIN {SCORES} AS c ON c.customer_pseudonym = {pseudonym}
            WHERE c.model_version = ?""", [version])
    staged = con.execute(f"SELECT count(*) FROM {_STAGING}").fetchall()[0][0]
    counts = con.execute(f"SELECT (SELECT count(*) FROM {relation}), (SELECT count(*) FROM {SCORES})").fetchall()[0]
    if staged != counts[0] or staged != counts[1]:  # rows removed or added behind the mark's back
        con.execute(f"DROP TABLE {_STAGING}")
        return None
    return publish_scores(con, config, version, run_id, probabilities=warehouse.get_meta(con, PROBABILITIES_MARK))


def score_stage(con: duckdb.DuckDBPyConnection, config: Config, model, version: str, run_id: str,
                on_progress: Reporter = ignore) -> int:
    """Score every row of the scoring set; ``on_progress`` gets a ``Count`` of customers per batch."""
    from churnwh.ml.train import predict_proba

    relation = config.training.scoring_model
    id_column, date_column = config.training.id_column, config.training.date_column
    value_column = config.scoring.value_column
    present = scoring_columns(con, config)
    reader_con = con.cursor()
    try:
        # A fixed order makes every batch, and so every padded compiled call, the same on each run.
        ordered = f'SELECT * FROM {relation} ORDER BY "{id_column}"'
        reader = reader_con.sql(ordered).to_arrow_reader(config.scoring.batch_rows)
        check_features(model, pl.from_arrow(reader.schema.empty_table()).schema, relation, version)
        check_segments(config, present, relation, project_or_none(config))
        total = con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0][0]
        done = 0
        on_progress(Count("score", done, total, "customers"))
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {_STAGING} (customer_pseudonym VARCHAR, as_of DATE, "
            "churn_probability DOUBLE, monthly_value DOUBLE)"
        )
        for batch in reader:
            frame = pl.from_arrow(batch)
            if frame.height == 0:
                continue
            probabilities = predict_proba(model, frame)
            scored = pa.table(
                {
                    "customer_pseudonym": frame[id_column].to_arrow(),
                    "as_of": frame[date_column].cast(pl.Date).to_arrow(),
                    "churn_probability": pa.array(np.asarray(probabilities, dtype=np.float64)),
                    "monthly_value": frame[value_column].cast(pl.Float64).to_arrow(),
                }
            )
            con.register("_scored_batch", scored)
            try:
                con.execute(f"INSERT INTO {_STAGING} SELECT * FROM _scored_batch")
            finally:
                con.unregister("_scored_batch")
            faults.point("score.mid_stream")
            done += frame.height
            on_progress(Count("score", done, total, "customers"))
    finally:
        reader_con.close()
    return publish_scores(con, config, version, run_id,
                          probabilities=probabilities_fingerprint(con, config, version, run_id))


def tier_sql(config: Config) -> str:
    tiers = config.tiers
    if tiers.mode == "probability":
        return (
            f"CAST(CASE WHEN churn_probability >= {tiers.high!r} THEN 'high' "
            f"WHEN churn_probability >= {tiers.medium!r} THEN 'medium' ELSE 'low' END AS {TIER_TYPE})"
        )
    rank = "row_number() OVER (ORDER BY churn_probability DESC, customer_pseudonym)"
    total = "count(*) OVER ()"
    return (
        f"CAST(CASE WHEN {rank} <= ceil({tiers.high!r} * {total}) THEN 'high' "
        f"WHEN {rank} <= ceil({tiers.medium!r} * {total}) THEN 'medium' ELSE 'low' END AS {TIER_TYPE})"
    )


def contactable_condition(pseudonym: str) -> str:
    """SQL true when the customer in column ``pseudonym`` may be contacted: latest marketing consent granted
    and no objection to profiling (a contact list is a profiling result). Plan, contacts and
    ``churn_scores.contactable`` all use this one definition."""
    return (f"""({pseudonym} IN (SELECT customer_pseudonym FROM {CONSENT_STATE}
                    WHERE purpose = 'marketing' AND is_latest AND state = 'granted')
                AND {pseudonym} NOT IN (SELECT customer_pseudonym FROM {CONSENT_STATE}
                    WHERE purpose = 'profiling' AND is_latest AND state = 'withdrawn'))""")


def contactable_sql(relations: dict[str, str]) -> str:
    """``contactable_condition`` of ``customer_pseudonym``; no consent data: nobody."""
    if CONSENT_STATE not in relations:
        return "false"
    return f"coalesce({contactable_condition('customer_pseudonym')}, false)"


def campaign_group_sql(relations: dict[str, str]) -> str:
    """The customer's group in the latest campaign: treated, control or none."""
    if CAMPAIGNS not in relations or CAMPAIGN_MEMBERS not in relations:
        return "'none'"
    latest = f"(SELECT campaign_id FROM {CAMPAIGNS} ORDER BY created_at DESC, campaign_id DESC LIMIT 1)"
    return (f"coalesce((SELECT CASE m.pilot_group WHEN 'treatment' THEN 'treated' ELSE 'control' END "
            f"FROM {CAMPAIGN_MEMBERS} AS m WHERE m.campaign_id = {latest} "
            f"AND m.customer_pseudonym = scored.customer_pseudonym LIMIT 1), 'none')")


def refresh_campaign_group(con: duckdb.DuckDBPyConnection) -> None:
    """After a new campaign: churn_scores.campaign_group follows the latest campaign."""
    relations = warehouse.relations(con)
    if SCORES in relations:
        con.execute(f"UPDATE {SCORES} AS scored SET campaign_group = {campaign_group_sql(relations)}")


def apply_out_of_fold(con: duckdb.DuckDBPyConnection, config: Config, version: str) -> int:
    """In the scored rows, replace the probability of each customer the model trained on by its out-of-fold one
    (churnwh.stages.train.write_out_of_fold) and flag ``scored_in_sample`` those left in-sample.

    Only a training set without observation dates scores its own rows (a flat table): with dates the scoring
    date comes after every training date, so no scored row is a training row. Returns the rows replaced."""
    from churnwh.stages.train import OUT_OF_FOLD

    con.execute(f"ALTER TABLE {_STAGING} ADD COLUMN IF NOT EXISTS scored_in_sample BOOLEAN DEFAULT false")
    tr = config.training
    relations = warehouse.relations(con)
    if tr.model not in relations or tr.id_column not in warehouse.columns(con, tr.model):
        return 0
    columns = warehouse.columns(con, tr.model)
    if tr.date_column in columns and con.execute(
            f'SELECT count("{tr.date_column}") FROM {tr.model}').fetchall()[0][0] > 0:
        return 0
    replaced = 0
    if OUT_OF_FOLD in relations:
        replaced = con.execute(
            f"""UPDATE {_STAGING} AS s SET churn_probability = o.churn_probability
                FROM {OUT_OF_FOLD} AS o
                WHERE o.customer_pseudonym = s.customer_pseudonym AND o.model_version = ?""", [version]
        ).fetchall()[0][0]
        con.execute(
            f"""UPDATE {_STAGING} AS s SET scored_in_sample = true
                WHERE s.customer_pseudonym IN (SELECT CAST({_q(tr.id_column)} AS VARCHAR) FROM {tr.model})
                  AND s.customer_pseudonym NOT IN (SELECT customer_pseudonym FROM {OUT_OF_FOLD}
                                                   WHERE model_version = ?)""", [version])
    else:
        con.execute(f"""UPDATE {_STAGING} SET scored_in_sample = true
                        WHERE customer_pseudonym IN (SELECT CAST({_q(tr.id_column)} AS VARCHAR) FROM {tr.model})""")
    return replaced


def publish_scores(con: duckdb.DuckDBPyConnection, config: Config, version: str, run_id: str,
                   probabilities: str | None = None) -> int:
    """``churn_scores`` from the staged probabilities, in one transaction with ``PROBABILITIES_MARK``:
    ``probabilities`` (the ``probabilities_fingerprint`` they were given under), or none (then the next
    build scores with the model)."""
    apply_out_of_fold(con, config, version)
    actions = config.tiers.actions
    action = "CASE risk_tier " + " ".join(
        f"WHEN '{tier}' THEN {warehouse.sql_literal(actions[tier])}" for tier in ("high", "medium", "low")
    ) + " END"
    horizon = config.scoring.horizon_months
    relations = warehouse.relations(con)
    relation, id_column = config.training.scoring_model, config.training.id_column
    segments = config.scoring.segments
    segment_select = "".join(f", segment.{_q(name)}" for name in segments)
    segment_join = (f"LEFT JOIN (SELECT {_q(id_column)} AS customer_pseudonym"
                    + "".join(f", {_q(name)}" for name in segments)
                    + f" FROM {relation}) AS segment USING (customer_pseudonym)") if segments else ""
    comments = dict(COLUMN_COMMENTS) | {name: segment_comment(con, relation, name) for name in segments}
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        con.execute(
            f"""CREATE OR REPLACE TABLE {SCORES} AS
            WITH tiered AS (
                SELECT *, {tier_sql(config)} AS risk_tier,
                       churn_probability * coalesce(monthly_value, 0) * {horizon} AS value_at_risk
                FROM {_STAGING}
            )
            SELECT scored.customer_pseudonym, as_of, churn_probability, risk_tier, {action} AS action, value_at_risk,
                   CAST(row_number() OVER (ORDER BY value_at_risk DESC, churn_probability DESC,
                                           scored.customer_pseudonym) AS INTEGER) AS priority_rank,
                   {warehouse.sql_literal(version)} AS model_version, {warehouse.sql_literal(run_id)} AS run_id,
                   scored.scored_in_sample
                   {segment_select},
                   {contactable_sql(relations)} AS contactable,
                   {campaign_group_sql(relations)} AS campaign_group
            FROM tiered AS scored {segment_join}
            ORDER BY priority_rank"""
        )
        con.execute(f"COMMENT ON TABLE {SCORES} IS 'Churn probability, risk tier, action and value at risk per customer.'")
        for column, text in comments.items():
            con.execute(f"COMMENT ON COLUMN {SCORES}.{_q(column)} IS {warehouse.sql_literal(text)}")
        con.execute(f"DROP TABLE {_STAGING}")
        if probabilities is None:
            con.execute(f"DELETE FROM {warehouse.META_SCHEMA}.meta WHERE name = ?", [PROBABILITIES_MARK])
        else:
            warehouse.set_meta(con, PROBABILITIES_MARK, probabilities)
        faults.point("score.before_commit")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return con.execute(f"SELECT count(*) FROM {SCORES}").fetchall()[0][0]


def _q(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
