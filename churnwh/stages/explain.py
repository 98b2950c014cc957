"""The `explain` stage: per-customer churn drivers and global feature importance as warehouse tables.

Reads the scoring set and the current model, computes Integrated Gradients (``churnwh.ml.explain``)
against a typical retained customer of the training set, and writes

Who is explained (``explained_rows_sql``): every customer someone acts on (tiers high and medium, any tier
with a ``[retention] cost``, the latest campaign's members) and a uniform sample of ``[explain]
sample_customers`` scored customers (default 20,000; by a hash of their content, the same whatever the key):
at a few thousand customers that is everyone, at a million it keeps the stage's time to the acted-on
customers (Integrated Gradients cost about 5 ms a customer on 2 CPU cores). Rows are streamed from DuckDB
``EXPLAIN_BATCH_ROWS`` at a time and their reasons written back batch by batch.

- ``ml.churn_drivers``: each explained customer's ``top_k`` *actionable* features by absolute
  contribution, with the direction, the customer's value bucket and a plain-language label taken from
  the feature's column comment in the scoring-set model; on every row the customer's
  ``profile_contribution`` (the non-actionable features summed: tenure, acquisition channel,
  demographics a project did not classify as quasi-identifiers, data-availability flags) with its
  ``profile_reason`` in words, and ``other_contribution`` (everything else: actionable features
  beyond the top k and the withheld ones), so that a customer's contributions plus both sums add up
  to the whole attribution;
- ``ml.feature_importance``: mean absolute contribution per feature over the uniform sample, and
  whether the feature is ``actionable``; the sample's full attribution vectors are kept in the private
  ``_churnwh.sample_attributions`` (never published) for ``[explain] reuse_days`` (``reuse_reasons``).

Which features are actionable: ``churnwh.stages.actionable`` (a rule on the name, ``[explain]`` in the
config overrides it). A reason such as "age band (lowers risk)" is true but gives a retention team
nothing to do or say, and it took one of the five places of a reason they could act on.

Quasi-identifier, sensitive and direct-identifier features (age band, gender, region, ...) are left
out of the per-customer drivers altogether: ranks run over the other features only. Their value
buckets were withheld before, but their contributions took one narrow range per category, so a
published contribution disclosed the category (tests/test_inference.py runs that attack). They
still count in ``feature_importance``, an average over every scored customer.

The stage is skipped when what it explains is unchanged: a fingerprint of the model run, the
content of the scoring set and of the training set (the baseline's rows), the labels, privacy
classes, actionable classes and ``top_k`` is kept in ``_churnwh.meta`` (``explain_fingerprint``) after both tables are
written; a build whose fingerprint matches, with both tables present, keeps them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from churnwh.config import Config
from churnwh.errors import DataError
from churnwh.progress import Count, Reporter, ignore
from churnwh.stages import actionable
from churnwh.stages.registry import SCHEMA, SCORE_HISTORY
from churnwh.store import warehouse

logger = logging.getLogger(__name__)

DRIVERS = f"{SCHEMA}.churn_drivers"
SCORES = f"{SCHEMA}.churn_scores"
"""churnwh.stages.score.SCORES (not imported: score imports train, which imports this module)."""
IMPORTANCE = f"{SCHEMA}.feature_importance"
TOP_K = 5
EXPLAIN_MARK = "explain_fingerprint"
METHOD = ("integrated-gradients adaptive midpoint v3 (512-point calls); quasi-identifiers unlisted; "
          "key-independent baseline sample; actionable top reasons, profile summed; acted-on customers and a uniform sample, streamed in batches")
"""Part of the fingerprint: change it when the attributions a model and data give change."""
BASELINE_ROWS = 20000
QUINTILE_BUCKETS = ("very low", "low", "middle", "high", "very high")
WITHHELD_CLASSES = set(actionable.WITHHELD_CLASSES)

DRIVER_COMMENTS = {
    "customer_pseudonym": "Keyed pseudonym of the customer (HMAC-SHA256), as in churn_scores.",
    "as_of": "Scoring date of the explained score.",
    "rank": "1 = the actionable feature that moved this customer's score the most. Only actionable features are "
            "ranked (usage, engagement, price and plan, support, e-mail, payments); the customer profile "
            "(tenure, acquisition channel, demographics, data-availability flags) is summed in "
            "profile_contribution, and quasi-identifiers or sensitive features are never listed per customer.",
    "feature": "Feature column of the scoring set.",
    "label": "What the feature means, from its column description.",
    "value_bucket": "Where the customer's value lies among all scored customers (quintiles: very low .. very high; "
                    "missing; the category for plain categorical features).",
    "contribution": "Integrated-Gradients attribution in log-odds: how much this feature moves the customer's "
                    "churn logit away from a typical retained customer. A customer's listed contributions plus "
                    "profile_contribution plus other_contribution add up to logit(customer) - logit(typical "
                    "retained customer), up to the completeness gap of the integration: 0.01 is aimed at; the build's "
                    "explain line reports the largest (up to 0.02 at a million customers: a few paths whose "
                    "bisection stops at cells too narrow to split).",
    "direction": "raises risk (contribution > 0) or lowers risk (contribution < 0).",
    "reason": "Plain-language reason: label, value bucket and direction.",
    "profile_contribution": "The customer's non-actionable features (the customer profile: tenure, acquisition "
                            "channel, other demographics, data-availability flags) summed, in log-odds; the same on "
                            "each of the customer's rows. 0 when the model has no such feature.",
    "profile_reason": "The profile summary in words: its features and whether together they raise or lower risk.",
    "other_contribution": "Everything not listed and not in the profile, summed, in log-odds: actionable features "
                          "beyond the top ranks, and quasi-identifier or sensitive features (never shown one by one).",
    "model_version": "The model version explained (ml.model_runs).",
}
IMPORTANCE_COMMENTS = {
    "rank": "1 = the most important feature.",
    "feature": "Feature column of the scoring set.",
    "label": "What the feature means, from its column description.",
    "mean_abs_contribution": "Mean absolute Integrated-Gradients attribution over the scored customers (log-odds).",
    "mean_contribution": "Mean signed attribution (log-odds): > 0 means the feature raises risk on average.",
    "customers": "Number of scored customers averaged over.",
    "actionable": "Whether the feature can be a per-customer reason: something a retention team can change or "
                  "talk about (false: customer profile, quasi-identifier or sensitive; see [explain] in the config).",
    "model_version": "The model version explained (ml.model_runs).",
}


def column_labels(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    """Column -> its comment (first sentence, no trailing period) from duckdb_columns()."""
    schema, table = relation.split(".")
    rows = con.execute(
        "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?",
        [schema, table],
    ).fetchall()
    labels = {}
    for name, comment in rows:
        text = (comment or "").strip()
        labels[name] = text.split(". ")[0].rstrip(".") if text else name.replace("_", " ")
    return labels


def privacy_classes(config: Config, relation: str, project=None) -> dict[str, str]:
    """Column -> privacy class: the scoring-set model's own metadata, else the most restrictive class
    any model declares for a column of that name (empty when the project cannot be read).
    ``project``: the already loaded project (``churnwh.sqlmodels.project.Project``), else it is read from disk."""
    from churnwh.sqlmodels.project import load_project

    if project is None:
        try:
            project = load_project(config.sql)
        except Exception:  # noqa: BLE001 - a broken project is reported by the models stage
            return {}
    classes: dict[str, str] = {}
    for model in project.models.values():
        for name, column in model.columns.items():
            if column.privacy in WITHHELD_CLASSES or name not in classes:
                classes[name] = column.privacy if classes.get(name) not in WITHHELD_CLASSES else classes[name]
    own = project.models.get(relation)
    for name, column in (own.columns.items() if own else ()):
        if column.privacy != "plain" or classes.get(name) not in WITHHELD_CLASSES:
            classes[name] = column.privacy
    return classes


def value_buckets(frame: pl.DataFrame, kinds: dict[str, str], privacy: dict[str, str]) -> pl.DataFrame:
    """The bucket of every (row, feature) as a frame with one column per feature."""
    columns = {}
    for name, kind in kinds.items():
        if privacy.get(name, "plain") in WITHHELD_CLASSES:
            columns[name] = pl.repeat("withheld", frame.height, eager=True)
        elif kind == "categorical":
            columns[name] = frame[name].cast(pl.String).str.strip_chars().fill_null("missing")
        else:
            values = frame[name].cast(pl.Float64)
            values = values.fill_nan(None)
            present = values.drop_nulls()
            if present.len() == 0:
                columns[name] = pl.repeat("missing", frame.height, eager=True)
                continue
            rank = values.rank("average") / max(present.len(), 1)
            index = (rank * len(QUINTILE_BUCKETS)).ceil().clip(1, len(QUINTILE_BUCKETS)).cast(pl.Int64) - 1
            labels = np.asarray(QUINTILE_BUCKETS, dtype=object)[index.fill_null(0).to_numpy()]
            labels[index.is_null().to_numpy()] = "missing"
            columns[name] = pl.Series(name, labels.tolist(), dtype=pl.String)
    return pl.DataFrame(columns)


def listable(attributions, classes: dict[str, str]):
    """The attributions of the features that may be listed per customer: the actionable ones
    (``classes`` from ``actionable.classify``). Never a quasi-identifier, sensitive or direct-identifier
    feature (its contribution would disclose its value)."""
    keep = [j for j, name in enumerate(attributions.features) if classes.get(name) == "actionable"]
    return dataclasses.replace(attributions, features=tuple(attributions.features[j] for j in keep),
                               values=attributions.values[:, keep])


def summaries(attributions, classes: dict[str, str], listed: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per customer (profile, other): the profile features summed, and what is neither listed (``listed``:
    ``top_drivers`` rows, ``top_k`` per customer in row order) nor profile, summed."""
    values = attributions.values
    profile = np.array([classes.get(name) == "profile" for name in attributions.features])
    position = {name: j for j, name in enumerate(attributions.features)}
    shown = np.zeros(values.shape, bool)
    if listed.height:
        per_row = listed.height // values.shape[0]
        rows = np.repeat(np.arange(values.shape[0]), per_row)
        shown[rows, [position[f] for f in listed["feature"].to_list()]] = True
    return values[:, profile].sum(axis=1), np.where(shown | profile[None, :], 0.0, values).sum(axis=1)


def profile_words(classes: dict[str, str]) -> str:
    """'customer profile (tenure days, acquisition channel)'; '' without profile features."""
    names = [name.replace("_", " ") for name, kind in classes.items() if kind == "profile"]
    return f"customer profile ({', '.join(names)})" if names else ""


def explain_classes(config: Config, features, privacy: dict[str, str]) -> dict[str, str]:
    """Feature -> withheld / profile / actionable, with the config's [explain] overrides."""
    return actionable.classify(tuple(features), privacy, config.explain.actionable, config.explain.not_actionable)


def explain_stage(ctx) -> str:
    """Pipeline stage after `score`: write ml.churn_drivers and ml.feature_importance, unless the
    model run and the data they explain are unchanged since they were written."""
    from churnwh.stages import registry

    config: Config = ctx.config
    con = ctx.con
    record = registry.current(con) if registry.exists(con) else None
    if record is None:
        return "no model to explain"
    relation = config.training.scoring_model
    labels = column_labels(con, relation)
    privacy = privacy_classes(config, relation, getattr(ctx, "project", None))
    fingerprint = explain_fingerprint(con, config, record, labels, privacy, classes=config.explain)
    existing = warehouse.relations(con)
    if (fingerprint is not None and warehouse.get_meta(con, EXPLAIN_MARK) == fingerprint
            and DRIVERS in existing and IMPORTANCE in existing):
        rows = con.execute(f"SELECT count(*) FROM {DRIVERS}").fetchall()[0][0]
        return f"scores unchanged: {rows} driver rows kept"
    model = ctx.trained.model if getattr(ctx, "trained", None) else registry.load(config.warehouse.models,
                                                                                   record.version)
    drivers, importance, gap = explain_scoring_set(con, config, model, record.version, labels=labels,
                                                   privacy=privacy, on_progress=getattr(ctx, "on_progress", ignore))
    if fingerprint is not None:
        warehouse.set_meta(con, EXPLAIN_MARK, fingerprint)
    kinds = list(explain_classes(config, list(model.features), privacy).values())
    ranked = (f"reasons from {kinds.count('actionable')} actionable features, {kinds.count('profile')} summed as "
              "the customer profile" if kinds.count("actionable") else
              "no actionable feature, so no reasons (name some in [explain] actionable)")
    kept = ""
    if config.explain.reuse_days:
        count = con.execute(f"SELECT count(DISTINCT customer_pseudonym) FROM {DRIVERS} "
                            f"WHERE as_of < (SELECT max(as_of) FROM {SCORES})").fetchone()[0]
        sample, members = con.execute(f"SELECT count(*) FILTER (WHERE as_of < (SELECT max(as_of) FROM {SCORES})), "
                                      f"count(*) FROM {SAMPLE_ATTRIBUTIONS}").fetchone()
        kept = (f"; {count} customers' reasons kept from an earlier day, {sample} of the {members} sample members' "
                "attributions with them ([explain] reuse_days)")
    return f"{drivers} driver rows ({ranked}); largest completeness gap {gap:.1e}{kept}"


def explain_fingerprint(con: duckdb.DuckDBPyConnection, config: Config, record, labels: dict[str, str],
                        privacy: dict[str, str], top_k: int = TOP_K, classes=None) -> str | None:
    """What the drivers depend on (None when the scoring or training set does not exist yet)."""
    tr = config.training
    existing = warehouse.relations(con)
    if tr.scoring_model not in existing or tr.model not in existing:
        return None
    payload = json.dumps({
        "method": METHOD,
        "model": [record.version, record.run_id],
        "scoring": warehouse.content_fingerprint(con, tr.scoring_model),
        "training": warehouse.content_fingerprint(con, tr.model),
        "columns": [tr.id_column, tr.label_column, tr.date_column],
        "labels": labels,
        "privacy": privacy,
        "top_k": top_k,
        "actionable": dataclasses.asdict(classes) if classes is not None else None,
        "explained": explained_fingerprint(con, config),
    }, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


EXPLAIN_BATCH_ROWS = 8192
"""Customers explained per batch: rows are streamed from DuckDB and their reasons written back batch by
batch, so the explain stage holds one batch of rows and attributions whatever the number of customers."""
EXPLAIN_STAGING = f"{warehouse.META_SCHEMA}.churn_drivers_new"
EXPLAINED_ROWS = f"{warehouse.META_SCHEMA}.explained_rows"
"""Scratch tables of the explain stage (real tables: the reading cursor sees them; replaced on the next run)."""
REUSED_ROWS = f"{warehouse.META_SCHEMA}.reused_reasons"
SAMPLE_ATTRIBUTIONS = f"{warehouse.META_SCHEMA}.sample_attributions"
"""Private, never published: each sample member's full attribution vector (``attributions``, in the model's
feature order) with its pseudonym, ``as_of`` and model version, replaced by every explain run (today's sample
exactly), so that ``[explain] reuse_days`` can average a reused member's vector into the importance.
``churn_drivers`` keeps only the top reasons. Erasure deletes from it (``erasure.delete_customers``)."""
SAMPLE_STAGING = f"{warehouse.META_SCHEMA}.sample_attributions_new"
REUSE_TOLERANCE = 0.01
"""How far a customer's churn probability may have moved since their reasons were computed for
``[explain] reuse_days`` to keep them (about the integration's own completeness gap, in probability)."""
ACTED_ON_TIERS = ("high", "medium")
"""Tiers someone acts on: they always get reasons, with every tier ``[retention] cost`` prices and every
member of the latest campaign (``churn_scores.campaign_group`` treated or control)."""


def acted_on_tiers(config: Config) -> tuple[str, ...]:
    """``ACTED_ON_TIERS`` and every tier with a cost per action in ``[retention] cost``."""
    costed = tuple(tier for tier in getattr(config.retention, "cost", {}) or {} if tier not in ACTED_ON_TIERS)
    return ACTED_ON_TIERS + costed


def explained_rows_sql(con: duckdb.DuckDBPyConnection, config: Config) -> str:
    """A SELECT of (id, in_sample) for the customers to explain: everyone acted on (``acted_on_tiers``, the
    latest campaign's members), and a uniform, key-independent sample of ``[explain] sample_customers``
    scored customers (the first rows by a hash of their content), over which the global importance is
    averaged. With no more scored customers than the sample, that is every scored customer."""
    tr, relation = config.training, config.training.scoring_model
    sample_order = warehouse.content_sample_order(con, relation, "1", tr.id_column)
    identifier = f's."{tr.id_column}"'
    sample = (f'SELECT "{tr.id_column}" AS _id FROM {relation} ORDER BY {sample_order} '
              f"LIMIT {int(config.explain.sample_customers)}")
    if SCORES not in warehouse.relations(con):
        return f"SELECT _id, true AS in_sample FROM ({sample})"
    tiers = ", ".join(warehouse.sql_literal(tier) for tier in acted_on_tiers(config))
    campaign = "OR c.campaign_group <> 'none'" if "campaign_group" in warehouse.columns(con, SCORES) else ""
    return (f"""SELECT {identifier} AS _id, (p._id IS NOT NULL) AS in_sample FROM {relation} AS s
                LEFT JOIN ({sample}) AS p ON p._id = {identifier}
                LEFT JOIN {SCORES} AS c ON c.customer_pseudonym = CAST({identifier} AS VARCHAR)
                WHERE p._id IS NOT NULL OR CAST(c.risk_tier AS VARCHAR) IN ({tiers}) {campaign}""")


def bucket_edges(con: duckdb.DuckDBPyConnection, relation: str, kinds: dict[str, str],
                 privacy: dict[str, str]) -> dict[str, np.ndarray]:
    """Per numeric feature the largest value of each quintile bucket among all scored customers, computed in
    DuckDB (``value_buckets``' average-rank rule: bucket = ceil(5 x average rank / present values)). The
    bucket of a value is then the first edge at or above it (``bucket_of``), in any batch."""
    edges = {}
    for name, kind in kinds.items():
        if kind == "categorical" or privacy.get(name, "plain") in WITHHELD_CLASSES:
            continue
        column = '"' + name.replace('"', '""') + '"'
        rows = con.execute(f"""
            WITH d AS (SELECT CAST({column} AS DOUBLE) AS v, count(*) AS c FROM {relation}
                       WHERE {column} IS NOT NULL AND NOT isnan(CAST({column} AS DOUBLE)) GROUP BY ALL),
                 r AS (SELECT v, c, sum(c) OVER (ORDER BY v ROWS UNBOUNDED PRECEDING) - c AS below FROM d),
                 n AS (SELECT sum(c) AS n FROM d)
            SELECT least(greatest(ceil(((2 * below + c + 1) / 2.0) / n * {len(QUINTILE_BUCKETS)}), 1),
                         {len(QUINTILE_BUCKETS)})::INTEGER AS bucket, max(v) AS edge
            FROM r, n GROUP BY bucket ORDER BY bucket""").fetchall()
        table = np.full(len(QUINTILE_BUCKETS), np.nan)
        for bucket, edge in rows:
            table[bucket - 1] = edge
        edges[name] = table
    return edges


def bucket_of(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bucket labels of ``values`` (NaN: missing) from ``bucket_edges``' table (an empty bucket is NaN)."""
    present = ~np.isnan(edges)
    index = np.flatnonzero(present)[np.minimum(np.searchsorted(edges[present], values, side="left"),
                                               present.sum() - 1)] if present.any() else np.zeros(len(values), int)
    labels = np.asarray(QUINTILE_BUCKETS, dtype=object)[index]
    labels[np.isnan(values)] = "missing"
    return labels


def batch_buckets(frame: pl.DataFrame, features: tuple[str, ...], kinds: dict[str, str], privacy: dict[str, str],
                  edges: dict[str, np.ndarray]) -> pl.DataFrame:
    """``value_buckets`` of one batch, numeric buckets placed among all scored customers (``bucket_edges``)."""
    columns = {}
    for name in features:
        if privacy.get(name, "plain") in WITHHELD_CLASSES:
            columns[name] = pl.repeat("withheld", frame.height, eager=True, dtype=pl.String)
        elif kinds[name] == "categorical":
            columns[name] = frame[name].cast(pl.String).str.strip_chars().fill_null("missing")
        else:
            values = frame[name].cast(pl.Float64).fill_nan(None).fill_null(float("nan")).to_numpy()
            if name not in edges or np.isnan(edges[name]).all():
                columns[name] = pl.repeat("missing", frame.height, eager=True, dtype=pl.String)
            else:
                columns[name] = pl.Series(name, bucket_of(values, edges[name]).tolist(), dtype=pl.String)
    return pl.DataFrame(columns) if columns else pl.DataFrame()


def explained_fingerprint(con: duckdb.DuckDBPyConnection, config: Config) -> str:
    """Who ``explained_rows_sql`` picks (tiers, campaigns and the sample change it), as a count and a hash."""
    count, total = con.execute(f"SELECT count(*), coalesce(sum(hash(_id, in_sample)::HUGEINT), 0) "
                               f"FROM ({explained_rows_sql(con, config)})").fetchone()
    return f"{count}:{total}"


def explain_scoring_set(con: duckdb.DuckDBPyConnection, config: Config, model, version: str,
                        top_k: int = TOP_K, *, labels: dict[str, str] | None = None,
                        privacy: dict[str, str] | None = None, batch_rows: int = EXPLAIN_BATCH_ROWS,
                        on_progress: Reporter = ignore, on_batch=None,
                        rows_sql: str | None = None) -> tuple[int, int, float]:
    """Explain the customers ``explained_rows_sql`` picks, ``batch_rows`` at a time (``on_batch`` gets each
    batch's row count), into ``DRIVERS`` and ``IMPORTANCE``. Returns (driver rows, features, largest gap).

    ``rows_sql``: a SELECT of (_id, in_sample) of other customers to explain instead, whose rows are added to
    ``DRIVERS`` (``IMPORTANCE`` is left as it is): ``explain_customers``."""
    from churnwh.ml import explain

    tr, relation = config.training, config.training.scoring_model
    for needed in (relation, tr.model):
        if needed not in warehouse.relations(con):
            raise DataError(f"table {needed} does not exist: run `churnwh build` first")
    latest_first = warehouse.content_sample_order(con, tr.model, f'"{tr.date_column}" DESC', tr.id_column)
    retained = pl.from_arrow(con.sql(
        f'SELECT * FROM {tr.model} WHERE "{tr.label_column}" = 0 '
        f"ORDER BY {latest_first} LIMIT {BASELINE_ROWS}").to_arrow_table())
    if retained.height == 0:
        raise DataError(f"{tr.model} has no retained rows ({tr.label_column} = 0) to build the explanation "
                        "baseline from: check the label column")
    baseline = explain.typical_retained_baseline(model, retained)
    del retained
    labels = column_labels(con, relation) if labels is None else labels
    privacy = privacy_classes(config, relation) if privacy is None else privacy
    kinds = model.features
    edges = bucket_edges(con, relation, kinds, privacy)
    classes = explain_classes(config, list(kinds), privacy)
    profile_text = profile_words(classes)
    con.execute(f"CREATE OR REPLACE TABLE {EXPLAINED_ROWS} AS {rows_sql or explained_rows_sql(con, config)}")
    reused = reuse_reasons(con, config, version) if rows_sql is None else 0
    total = con.execute(f"SELECT count(*) FROM {EXPLAINED_ROWS}").fetchall()[0][0]
    on_progress(Count("explain", 0, total, "customers"))
    # content order, not pseudonym order: the global importance is a float mean over these rows
    content = ", ".join(f"s.{term.strip()}" for term in
                        warehouse.content_order(con, relation, (), tr.id_column).split(", "))
    ordered = (f"SELECT s.*, e.in_sample AS _in_sample FROM {relation} AS s JOIN {EXPLAINED_ROWS} AS e "
               f"ON e._id = s.\"{tr.id_column}\" ORDER BY {content}")
    if rows_sql is None:
        con.execute(f"CREATE OR REPLACE TABLE {SAMPLE_STAGING} (customer_pseudonym VARCHAR, as_of DATE, "
                    "model_version VARCHAR, attributions DOUBLE[])")
    reader_con = con.cursor()
    features: tuple[str, ...] = tuple(kinds)
    done, written, gap = 0, 0, 0.0
    try:
        reader = reader_con.sql(ordered).to_arrow_reader(batch_rows)
        first = True
        for batch in reader:
            frame = pl.from_arrow(pa.Table.from_batches([batch]))
            if frame.height == 0:
                continue
            if on_batch is not None:
                on_batch(frame.height)
            attributions = explain.integrated_gradients(
                model, frame, baseline,
                on_rows=lambda rows, _all, start=done: on_progress(Count("explain", start + rows, total, "customers")))
            features = attributions.features
            gap = max(gap, float(attributions.completeness_gap().max()))
            if rows_sql is None:
                keep_sample_attributions(con, frame, attributions, version, tr)
            long = driver_rows(frame, attributions, classes, labels, privacy, kinds, edges, profile_text, version,
                               tr, top_k)
            con.register("_driver_batch", long.to_arrow())
            try:
                con.execute(f"CREATE OR REPLACE TABLE {EXPLAIN_STAGING} AS SELECT * FROM _driver_batch" if first
                            else f"INSERT INTO {EXPLAIN_STAGING} SELECT * FROM _driver_batch")
            finally:
                con.unregister("_driver_batch")
            first = False
            done += frame.height
            written += long.height
        if first and reused:  # every one reused: their rows come from DRIVERS, typed as there
            con.execute(f"CREATE OR REPLACE TABLE {EXPLAIN_STAGING} AS SELECT * FROM {DRIVERS} LIMIT 0")
        elif first:  # nothing to explain: empty tables of the same shape
            empty = driver_rows(pl.DataFrame(schema=pl.from_arrow(reader.schema.empty_table()).schema),
                                explain.Attributions(features, np.zeros((0, len(features))), np.zeros(0), float("nan")),
                                classes, labels, privacy, kinds, edges, profile_text, version, tr, top_k)
            con.register("_driver_batch", empty.to_arrow())
            try:
                con.execute(f"CREATE OR REPLACE TABLE {EXPLAIN_STAGING} AS SELECT * FROM _driver_batch")
            finally:
                con.unregister("_driver_batch")
    finally:
        reader_con.close()
    if reused:
        written += con.execute(f"INSERT INTO {EXPLAIN_STAGING} BY NAME SELECT * FROM {DRIVERS} WHERE "
                               f"customer_pseudonym IN (SELECT customer_pseudonym FROM {REUSED_ROWS})").fetchone()[0]
        if con.execute(f"SELECT bool_or(in_sample) FROM {REUSED_ROWS}").fetchone()[0]:
            con.execute(f"INSERT INTO {SAMPLE_STAGING} BY NAME SELECT * FROM {SAMPLE_ATTRIBUTIONS} WHERE "
                        f"customer_pseudonym IN (SELECT customer_pseudonym FROM {REUSED_ROWS} WHERE in_sample)")
    con.execute(f"DROP TABLE IF EXISTS {REUSED_ROWS}")
    if rows_sql is not None:
        try:
            con.execute("BEGIN TRANSACTION")
            con.execute(f"INSERT INTO {DRIVERS} SELECT * FROM {EXPLAIN_STAGING}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        finally:
            con.execute(f"DROP TABLE IF EXISTS {EXPLAIN_STAGING}")
            con.execute(f"DROP TABLE IF EXISTS {EXPLAINED_ROWS}")
        return written, 0, gap
    values = sample_attribution_matrix(con, relation, tr.id_column, content, len(features))
    ranked = explain.global_importance(explain.Attributions(features, values, np.zeros(len(values)), 0.0))
    importance = ranked.with_columns(
        label=pl.Series([labels.get(f, f) for f in ranked["feature"]], dtype=pl.String),
        customers=pl.lit(len(values), dtype=pl.Int64),
        actionable=pl.Series([classes.get(f) == "actionable" for f in ranked["feature"]], dtype=pl.Boolean),
        model_version=pl.lit(version),
    ).select("rank", "feature", "label", "mean_abs_contribution", "mean_contribution", "customers",
             "actionable", "model_version")
    try:
        write_table(con, DRIVERS, EXPLAIN_STAGING, DRIVER_COMMENTS,
                    "Top actionable churn drivers per explained customer (Integrated Gradients against a typical "
                    "retained customer): everyone in a tier someone acts on, the latest campaign's members and a "
                    "uniform sample of the rest ([explain] sample_customers). The ranked reasons are features a "
                    "retention team can act on; the customer profile (tenure, acquisition channel, demographics, "
                    "data-availability flags) is summarised in profile_contribution / profile_reason, the rest in "
                    "other_contribution, so the contributions still add up.")
        write_table(con, SAMPLE_ATTRIBUTIONS, SAMPLE_STAGING, {}, SAMPLE_ATTRIBUTIONS_COMMENT)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {EXPLAIN_STAGING}")
        con.execute(f"DROP TABLE IF EXISTS {EXPLAINED_ROWS}")
        con.execute(f"DROP TABLE IF EXISTS {SAMPLE_STAGING}")
    write_table(con, IMPORTANCE, importance.to_arrow(), IMPORTANCE_COMMENTS,
                "Global feature importance: mean absolute attribution over a uniform sample of the scored customers "
                "([explain] sample_customers; every one of them when there are no more).")
    logger.info("explained %d customers, largest completeness gap %.2e", done, gap)
    return written, importance.height, gap


def reuse_reasons(con: duckdb.DuckDBPyConnection, config: Config, version: str) -> int:
    """``[explain] reuse_days``: move from ``EXPLAINED_ROWS`` to ``REUSED_ROWS`` (pseudonym, in_sample) the
    customers whose reasons in ``DRIVERS`` are of ``version``, at most that many days older than their score,
    and of a score (the snapshot of that day in ``ml.score_history``) within ``REUSE_TOLERANCE`` of today's.
    A sample member also needs their attribution vector of that same day and version in
    ``SAMPLE_ATTRIBUTIONS`` (it enters the importance in their place). Returns how many."""
    days = config.explain.reuse_days
    con.execute(f"DROP TABLE IF EXISTS {REUSED_ROWS}")
    if not days or any(name not in warehouse.relations(con) for name in (DRIVERS, SCORES, SCORE_HISTORY)):
        return 0
    stored = con.execute("SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                         "AND schema_name = ? AND table_name = ?", SAMPLE_ATTRIBUTIONS.split(".")).fetchone()[0]
    vectors = (f"SELECT customer_pseudonym, as_of, model_version FROM {SAMPLE_ATTRIBUTIONS}" if stored else
               "SELECT NULL::VARCHAR AS customer_pseudonym, NULL::DATE AS as_of, NULL::VARCHAR AS model_version "
               "WHERE false")
    con.execute(
        f"""CREATE TABLE {REUSED_ROWS} AS
            SELECT DISTINCT d.customer_pseudonym, e.in_sample FROM {DRIVERS} AS d
            JOIN {EXPLAINED_ROWS} AS e ON CAST(e._id AS VARCHAR) = d.customer_pseudonym
            JOIN {SCORES} AS s ON s.customer_pseudonym = d.customer_pseudonym
            JOIN {SCORE_HISTORY} AS h ON h.customer_pseudonym = d.customer_pseudonym AND h.as_of = d.as_of
                 AND h.model_version = d.model_version
            LEFT JOIN ({vectors}) AS v ON v.customer_pseudonym = d.customer_pseudonym AND v.as_of = d.as_of
                 AND v.model_version = d.model_version
            WHERE d.model_version = ? AND s.model_version = ? AND d.as_of >= s.as_of - CAST(? AS INTEGER)
              AND abs(s.churn_probability - h.churn_probability) <= ?
              AND (NOT e.in_sample OR v.customer_pseudonym IS NOT NULL)""",
        [version, version, days, REUSE_TOLERANCE],
    )
    con.execute(f"DELETE FROM {EXPLAINED_ROWS} WHERE CAST(_id AS VARCHAR) IN "
                f"(SELECT customer_pseudonym FROM {REUSED_ROWS})")
    return con.execute(f"SELECT count(*) FROM {REUSED_ROWS}").fetchone()[0]


SAMPLE_ATTRIBUTIONS_COMMENT = (
    "Private (never published): the full Integrated-Gradients attribution vector of each member of today's uniform "
    "sample ([explain] sample_customers), in the model version's feature order, from which feature_importance is "
    "averaged; [explain] reuse_days reuses a member's vector while their score barely moved. Replaced by every "
    "explain run; erasure deletes the customer's row.")


def keep_sample_attributions(con: duckdb.DuckDBPyConnection, frame: pl.DataFrame, attributions, version: str,
                             tr) -> None:
    """Append the sample members' rows of one explained batch to ``SAMPLE_STAGING``."""
    in_sample = frame["_in_sample"]
    values = np.ascontiguousarray(attributions.values[in_sample.to_numpy()], dtype=np.float64)
    if not len(values):
        return
    width = values.shape[1]
    rows = pa.table({
        "customer_pseudonym": frame[tr.id_column].filter(in_sample).cast(pl.String).to_arrow(),
        "as_of": frame[tr.date_column].filter(in_sample).cast(pl.Date).to_arrow(),
        "model_version": pa.array([version] * len(values), pa.string()),
        "attributions": pa.ListArray.from_arrays(pa.array(np.arange(0, len(values) * width + 1, width, dtype=np.int32)),
                                                 pa.array(values.ravel())),
    })
    con.register("_sample_batch", rows)
    try:
        con.execute(f"INSERT INTO {SAMPLE_STAGING} BY NAME SELECT * FROM _sample_batch")
    finally:
        con.unregister("_sample_batch")


def sample_attribution_matrix(con: duckdb.DuckDBPyConnection, relation: str, id_column: str, content: str,
                              width: int) -> np.ndarray:
    """The vectors of ``SAMPLE_STAGING`` (fresh and reused alike) as one (members, features) matrix, in the
    scoring set's content order (``content``, terms on alias ``s``): the importance's float mean is the same
    whichever members were reused."""
    column = con.sql(
        f"SELECT v.attributions FROM {SAMPLE_STAGING} AS v JOIN {relation} AS s "
        f"ON CAST(s.\"{id_column}\" AS VARCHAR) = v.customer_pseudonym ORDER BY {content}"
    ).to_arrow_table().column("attributions").combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False) if len(column) else np.zeros(0)
    if len(flat) != len(column) * width:
        raise DataError(f"{SAMPLE_ATTRIBUTIONS} holds vectors of another length than the model's {width} features: "
                        "run `churnwh build --force-train` or delete the table")
    return flat.astype(np.float64).reshape(len(column), width)


def explain_customers(con: duckdb.DuckDBPyConnection, config: Config, pseudonyms: list[str]) -> int:
    """Reasons for the customers of ``pseudonyms`` that ``DRIVERS`` lacks (outside the acted-on tiers and the
    sample: a contact list of the low tier), explained now with the current model and added to it.
    Returns the customers explained (0 when every one has reasons, or nothing was explained yet)."""
    from churnwh.stages import registry

    if DRIVERS not in warehouse.relations(con) or not pseudonyms:
        return 0
    record = registry.current(con) if registry.exists(con) else None
    if record is None:
        return 0
    tr = config.training
    missing = con.execute(
        f"""SELECT count(*) FROM (SELECT unnest(?::VARCHAR[]) AS p) WHERE p NOT IN
            (SELECT customer_pseudonym FROM {DRIVERS})""", [pseudonyms]).fetchall()[0][0]
    if not missing:
        return 0
    con.execute("CREATE OR REPLACE TEMP TABLE _asked AS SELECT unnest(?::VARCHAR[]) AS p", [pseudonyms])
    con.execute(f"CREATE OR REPLACE TABLE {warehouse.META_SCHEMA}.explain_asked AS SELECT p FROM _asked "
                f"WHERE p NOT IN (SELECT customer_pseudonym FROM {DRIVERS})")
    con.execute("DROP TABLE _asked")
    try:
        rows_sql = (f'SELECT s."{tr.id_column}" AS _id, false AS in_sample FROM {tr.scoring_model} AS s '
                    f'WHERE CAST(s."{tr.id_column}" AS VARCHAR) IN (SELECT p FROM {warehouse.META_SCHEMA}.explain_asked)')
        model = registry.load(config.warehouse.models, record.version)
        explain_scoring_set(con, config, model, record.version, rows_sql=rows_sql)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {warehouse.META_SCHEMA}.explain_asked")
    return missing


def driver_rows(frame: pl.DataFrame, attributions, classes: dict[str, str], labels: dict[str, str],
                privacy: dict[str, str], kinds: dict[str, str], edges: dict[str, np.ndarray], profile_text: str,
                version: str, tr, top_k: int) -> pl.DataFrame:
    """The ``DRIVERS`` rows of one batch of explained customers."""
    from churnwh.ml import explain

    listed = listable(attributions, classes)
    long = explain.top_drivers(listed, frame[tr.id_column].alias("customer_pseudonym"), top_k)
    profile, other = summaries(attributions, classes, long)
    row_of = np.repeat(np.arange(frame.height), min(top_k, len(listed.features)))
    buckets = batch_buckets(frame, listed.features, kinds, privacy, edges) if frame.height else None
    bucket_matrix = buckets.select(list(listed.features)).to_numpy() if buckets is not None and listed.features \
        else None
    position = {name: j for j, name in enumerate(listed.features)}
    feature_index = np.array([position[f] for f in long["feature"].to_list()], dtype=np.int64)
    bucket_values = bucket_matrix[row_of, feature_index].tolist() if bucket_matrix is not None else []
    as_of = frame[tr.date_column].cast(pl.Date)
    return long.with_columns(
        as_of=as_of.gather(row_of) if frame.height else pl.Series([], dtype=pl.Date),
        label=pl.Series([labels.get(f, f) for f in long["feature"].to_list()], dtype=pl.String),
        value_bucket=pl.Series(bucket_values, dtype=pl.String),
        direction=pl.when(pl.col("contribution") >= 0).then(pl.lit("raises risk")).otherwise(pl.lit("lowers risk")),
    ).with_columns(
        reason=pl.format("{}: {} ({})", "label", "value_bucket", "direction"),
        profile_contribution=pl.Series(profile[row_of], dtype=pl.Float64),
        other_contribution=pl.Series(other[row_of], dtype=pl.Float64),
        model_version=pl.lit(version),
    ).with_columns(
        profile_reason=pl.when(pl.lit(bool(profile_text))).then(pl.format(
            "{}: {}", pl.lit(profile_text), pl.when(pl.col("profile_contribution") >= 0)
            .then(pl.lit("raises risk")).otherwise(pl.lit("lowers risk")))).otherwise(pl.lit(None, pl.String)),
    ).select("customer_pseudonym", "as_of", "rank", "feature", "label", "value_bucket", "contribution",
             "direction", "reason", "profile_contribution", "profile_reason", "other_contribution", "model_version")


def write_table(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table | str, comments: dict[str, str],
                table_comment: str) -> None:
    """Replace ``name`` by ``table`` (Arrow rows, or the name of a table already in DuckDB) with comments, in
    one transaction."""
    source = table if isinstance(table, str) else "_churnwh_new_rows"
    column_names = [row[0] for row in con.execute(f"DESCRIBE {source}").fetchall()] if isinstance(table, str) \
        else table.column_names
    if not isinstance(table, str):
        con.register(source, table)
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {name.split('.')[0]}")
            con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM {source}")
            con.execute(f"COMMENT ON TABLE {name} IS {warehouse.sql_literal(table_comment)}")
            for column, text in comments.items():
                if column in column_names:
                    con.execute(f"COMMENT ON COLUMN {name}.{column} IS {warehouse.sql_literal(text)}")
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        if not isinstance(table, str):
            con.unregister(source)
