"""docs/configuration.md, generated from the schema in churnwh.config so that it cannot drift.

The keys come from ``churnwh.config`` (SECTION_KEYS, SOURCE_KEYS, DEFAULT_VARIABLES) and from the fields of
``churnwh.ml.train.TrainConfig``; the defaults come from parsing an empty ``churnwh.toml`` (and one with
declared sources, where the default depends on ``source.kind``). Only the one-line descriptions are written
here: a key without one, or a description of a key that no longer exists, stops the generator.

    python -m churnwh.config_reference > docs/configuration.md     # regenerate
    python -m churnwh.config_reference --check                     # exit 1 when the file is stale
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import sys
from pathlib import Path
from typing import Any

from churnwh import config as schema

OUTPUT = Path("docs/configuration.md")

SECTION_INTROS = {
    "warehouse": "Where the files live and how much DuckDB may use (every connection to the private file, the "
                 "published copy and an erasure's or rotation's rewrite included). See [operations](operations.md).",
    "sql": "The SQL model project.",
    "source": "Which kind of data the project reads.",
    "demo": "The simulated demo data (`source.kind = \"demo\"` only).",
    "training": "Which models are the training and scoring sets, and how a new model is promoted.",
    "tiers": "Risk tiers of `churn_scores` and the action text of each.",
    "scoring": "Value at risk and the streaming scorer.",
    "key": "The pseudonym key (keyed HMAC-SHA256). It never enters a warehouse file, a log or an error message.",
    "publish": "The sanitized file for BI tools. See [privacy](privacy.md).",
    "retention": "The budgeted retention plan (`churnwh plan`) and its controlled pilot. See the "
                 "[guide](guide.md#campaigns-and-pilots).",
    "monitoring": "Drift monitoring (`ml.drift`).",
    "freshness": "How fresh each source must be. The features read data up to the day before `as_of`; a build "
                 "whose source ends more than its tolerance before that day stops with one line (nothing is "
                 "scored, the published file is kept) unless run with `churnwh build --allow-stale`, which the "
                 "audit log and the published `about` table record. Per source in `data_quality`. See "
                 "[operations](operations.md).",
    "explain": "Per-customer reasons (`churn_drivers`, the contact list's reasons in words): they rank only "
               "the drivers a retention team can act on (usage, engagement, price and plan, support, e-mail, "
               "payments); the non-actionable ones are summed into `profile_contribution`. Not actionable by default: quasi-identifiers and sensitive columns "
               "(never listed), and features whose name says demographics (age, gender, region, household, ...), "
               "tenure or history (tenure, signup, period, cohort), acquisition, or data availability (missing, "
               "withheld, unknown).",
    "spark": "The Spark engine (`churnwh build --engine spark`). churnwh sets a few defaults on local masters only "
             "(driver on 127.0.0.1, executors on this Python, 4 shuffle partitions, UI off); on a cluster Spark's "
             "own defaults and yours apply. See [scaling](scaling.md).",
}

DESCRIPTIONS = {
    "warehouse.private": "The private DuckDB file: raw data with identifiers, models, scores. Never give it to BI tools.",
    "warehouse.published": "The sanitized file BI tools open read-only; written to a new file and renamed over this one.",
    "warehouse.models": "Folder of the model registry's versions (`vNNNN/`).",
    "warehouse.memory_limit": "DuckDB `memory_limit`, a size such as `\"4GB\"` or `\"512MB\"`; above it DuckDB spills "
                              "to `temp_directory`. Not set: DuckDB's default (80 % of RAM).",
    "warehouse.temp_directory": "Where DuckDB spills. Not set: `<private file>.tmp` beside the private file.",
    "warehouse.threads": "DuckDB threads, an integer of at least 1. Not set: DuckDB's default (all cores).",
    "sql.path": "Folder of the SQL models (`<schema>/<name>.sql`).",
    "source.kind": "`demo` (the simulator), `events` (declared tables with history) or `flat` (one declared row per "
                   "customer with a churn flag).",
    "demo.customers": "Simulated customers, 10 to 50,000,000.",
    "demo.seed": "Seed of the simulation (an integer of at least 0).",
    "demo.start": "First day of the simulated history (YYYY-MM-DD).",
    "demo.end": "Last day of the simulated history; must be after `start`.",
    "demo.truth": "Parquet file of the true churn hazards (for benchmarks), outside the warehouse files.",
    "training.model": "The training-set model, as `schema.table`.",
    "training.scoring_model": "The scoring-set model, as `schema.table`.",
    "training.id_column": "The pseudonym column of both sets.",
    "training.label_column": "The 0/1 churn label of the training set.",
    "training.date_column": "The observation date; validation and test are the latest dates (a purged time split). "
                            "`\"\"`, a column the training set lacks, or one that is all NULL: no time, a stratified "
                            "random split (flat tables); the column still dates the scores and is never a feature.",
    "training.exclude": "Training-set columns left out of the model's inputs, without editing the SQL models "
                        "(e.g. a column that leaks the label).",
    "training.allow_leakage": "Columns the leakage check lets through (named after the label, or separating it "
                              "almost perfectly on their own): you vouch that they are known before the churn "
                              "they predict; recorded with each model.",
    "training.seed": "Seed of training (it also sets `network.seed`).",
    "training.promote_tolerance": "A new model replaces the current one unless its test ROC-AUC is worse than the "
                                  "current model's on the same rows by more than this (0 to 1).",
    "training.withhold_quasi_identifiers": "Keep quasi-identifier, sensitive and direct-identifier columns out of "
                                           "the model's inputs, so that scores reveal nothing of them (a current "
                                           "model that reads them is replaced).",
    "training.keep_versions": "Model artifacts kept: the current one and the newest N (0 keeps all); registry rows "
                              "and metrics stay.",
    "training.max_train_rows": "With a time split, the rows of the training dates (before validation) are a uniform "
                               "sample of at most this many, drawn by a hash of each row's content (the same data "
                               "gives the same sample whatever the key); validation and test rows are all kept. "
                               "Bounds the training stage's memory on large tables (1,000,000 demo customers: "
                               "about 5.6 million rows). 0: every row. Default 1000000.",
    "training.retrain_after_days": "With observation dates, a build whose training data changed reuses the current "
                                   "model while its as-of date is fewer than this many days behind the build's "
                                   "(a daily schedule retrains weekly); a change of settings, training code, "
                                   "columns, an erasure or an objection retrains at once. 0: retrain whenever the "
                                   "training data change. Default 7.",
    "training.objection_retrain_days": "A profiling objection (GDPR Art. 21, CCPA opt-out, GPC) takes the objector "
                                       "out of every feature, score and published table at the first build that sees "
                                       "it; the model versions trained on the objector are withdrawn (and retrained) "
                                       "at the first build whose as-of date is at least this many days after the "
                                       "objection. 0: at that first build too. At a million customers about 170 a "
                                       "day object, so 0 retrains daily; with 7 the daily build retrains weekly. "
                                       "Erasures always withdraw at once. Default 0.",
    "training.split_column": "The data's own split: a training-set column whose values are `train` and `test` "
                             "(`valid` too; case ignored), or a date with `split_date`. Test metrics come from the "
                             "test part only; validation is `network.valid_fraction` of the train part unless rows "
                             "say `valid`. `\"\"`: no declared split (a time split, or a random one). "
                             "`init --flat --from train.csv --from test.csv` sets it.",
    "training.split_date": "With a date `split_column`: rows on or after this date (YYYY-MM-DD) are the test part.",
    "tiers.high": "With `mode = \"probability\"`: the probability from which a customer is `high`; with "
                  "`\"top_fraction\"`: the share of customers (ranked by probability) put in `high`. Between 0 and 1.",
    "tiers.medium": "The `medium` threshold (below `high`), or with `\"top_fraction\"` the share in `high` or "
                    "`medium` (above `high`).",
    "tiers.mode": "`probability` or `top_fraction`.",
    "tiers.actions": "Action text per tier: a table with keys `high`, `medium`, `low`.",
    "scoring.value_column": "Column of the scoring set holding a customer's monthly value (value at risk = "
                            "probability x value x `horizon_months`).",
    "scoring.horizon_months": "Months of value at risk, 1 to 120.",
    "scoring.batch_rows": "Rows per Arrow batch of the streaming scorer (and of Spark's `mapInArrow`), 256 to "
                          "10,000,000.",
    "scoring.segments": "Scoring-set columns copied into `churn_scores` for slicing (the demo: `current_plan`, "
                        "`acquisition_channel`, `tenure_band`); a column classified as an identifier, quasi-identifier "
                        "or sensitive is refused.",
    "scoring.currency": "Currency of `value_column` (and so of `value_at_risk`), stated in the published `about` "
                        "table and the report; at most 20 characters.",
    "key.env": "Environment variable holding the key as hex; used before `file` when set.",
    "key.file": "Key file, mode 0600; keep it out of git and out of the warehouse folder's backups.",
    "key.create": "Create the key file on first use (the demo and worked examples only).",
    "publish.k_anonymity": "Smallest customer group a published segment or quasi-identifier combination may show, "
                           "1 to 1,000,000.",
    "retention.budget": "Total budget of a plan (`churnwh plan --budget` overrides it). Not set: pass `--budget`.",
    "retention.cost": "Cost of one action per tier, a table with keys `high`, `medium`, `low`; a tier without a "
                      "cost is never contacted.",
    "retention.success_rate": "Assumed share of contacted customers of a tier who stay because of the action "
                              "(0 to 1), a table with keys `high`, `medium`, `low`.",
    "retention.control_fraction": "Share of the selected customers held out as the campaign's control group "
                                  "(between 0 and 1).",
    "retention.pilot_days": "Days after a campaign's date that its pilot runs (1 to 3660, default 90): while the "
                            "scores' as_of is within them its control group is left out of `churnwh contacts` "
                            "and of other campaigns' plans.",
    "retention.uplift_min_gain": "Pilot-size rule of the build's uplift step (0.001 to 1, default 0.04, calibrated "
                                 "on the demo's learning curve): the gain over targeting by risk, in churn prevented "
                                 "per contacted customer, that finished pilots must be large enough to detect before "
                                 "an uplift model is fitted; a larger gain asks for a smaller pilot.",
    "retention.uplift_target_share": "Pilot-size rule: the share of customers a campaign contacts (between 0 and 1, "
                                     "default 0.2); the pilot must tell this share's effect apart.",
    "monitoring.psi_warning": "Population stability index above which a feature's drift is a `warning`.",
    "freshness.max_lag_days": "Days a source's last event may be before the last day the features read "
                              "(`as_of` - 1) before the build refuses to score (0 to 36600).",
    "freshness.source_max_lag_days": "Tolerances of single sources that legitimately lag, a table such as "
                                     "`{ email_events = 31 }` (demo tables included; a declared source's own "
                                     "`max_lag_days` wins). The demo's sparse tables have built-in ones: "
                                     "subscriptions 62, support_tickets 31, email_events 31, consent_events 92.",
    "monitoring.reference_days": "Training observation dates the scoring set is compared with: those within this many "
                                 "days before the latest one (0: the latest date only, so that changes over the "
                                 "history, such as list prices, are not flagged). A training set without dates: "
                                 "its rows with label 0 (customers who stayed, like the scoring set).",
    "monitoring.psi_severe": "Population stability index at or above which drift is severe (`severe` in `ml.drift`).",
    "monitoring.severe_features": "The build stops before publishing (the published file is kept) when the score's "
                                  "drift is severe or at least this many features' drift is; 0: features alone "
                                  "never stop it. `churnwh build --allow-drift` publishes anyway and records it "
                                  "in the audit log and `about`.",
    "monitoring.score_history_days": "Daily retention of `ml.score_history`: every snapshot whose `as_of` is within "
                                     "this many days before the newest one is kept; older ones are deleted by the "
                                     "build, except the monthly ones below (0: keep every snapshot forever). The "
                                     "default, 180, covers the backtest's outcome window (`lead_days` + "
                                     "`label_window_days`) with room to spare.",
    "monitoring.score_history_months": "Of the snapshots older than `score_history_days`, the first of each calendar "
                                       "month is kept for this many months before the newest `as_of` (0: none), so "
                                       "that long backtests and trends keep one point a month.",
    "explain.actionable": "Features listed as reasons even though their name reads as profile, by name or glob "
                          "pattern such as `\"plan_*\"`. A quasi-identifier or sensitive column is refused.",
    "spark.master": "The master when `--master` is not given: `local[N]`, `spark://host:7077`, `yarn`, "
                    "`k8s://https://host:443` or `sc://host:15002` (Spark Connect).",
    "spark.storage": "Where Spark reads and writes the models' Parquet: a folder every node (driver and executors) "
                     "sees at the same path, or a URI of storage they all reach (`hdfs://`, `s3a://` with its "
                     "connector installed, `file://`). A relative path is the project's. Not set: `spark/` beside the "
                     "private file, which only a local master (or one whose nodes mount that folder at the same "
                     "path) can use.",
    "spark.connect_timeout_s": "Seconds the session may take to start and register with its master (1 to 3600); a "
                               "master that accepts the connection but does not answer as Spark stops the build "
                               "after this long, with one line.",
    "spark.shuffle_partitions": "`spark.sql.shuffle.partitions`. Not set: 4 on a local master, Spark's default "
                                "(200, adaptive) elsewhere.",
    "spark.training_rows": "The most rows of the training set (`training.model`) that reach the driver, where "
                           "the network trains on one machine (1000 or more; default 5000000). Above it the driver "
                           "gets a sample of whole customers of about this many rows (the same customers for the "
                           "same data); the Parquet table in `storage` keeps every row.",
    "spark.conf": "Any Spark setting, passed to the session as it is and winning over churnwh's defaults, e.g. "
                  "`{ \"spark.executor.memory\" = \"4g\", \"spark.driver.host\" = \"10.0.0.5\" }` (or a "
                  "`[spark.conf]` table).",
    "explain.not_actionable": "Features summed into the customer profile instead of listed as reasons, by name or "
                              "glob pattern. An entry that matches no feature stops the build, naming it.",
    "explain.sample_customers": "Who gets reasons besides the customers someone acts on (tiers high and medium, any "
                                "tier with a `[retention] cost`, the latest campaign's members: always explained): "
                                "a uniform sample of this many scored customers, drawn by a hash of their features "
                                "(the same whatever the key), over which `feature_importance` is averaged. Every "
                                "scored customer is explained when there are no more than this. Default 20000; "
                                "explaining costs about 5 ms per customer on 2 CPU cores.",
    "explain.reuse_days": "A daily schedule's saving: an explained customer keeps the reasons of an earlier "
                          "build at most this many days old when the model version is the same and their churn "
                          "probability moved by at most 0.01 since (the score snapshot of that day in "
                          "`score_history` tells); their `as_of` in `churn_drivers` stays the day they were "
                          "computed, and they add up to that day's score. A sample member kept so also keeps the "
                          "attribution vector stored that day (private, never published), which enters "
                          "`feature_importance` in their place: the importance then mixes days, and can differ "
                          "from a full explanation's by what a day of data shifted between features. "
                          "0 (default): every explained customer is explained again at every build.",
}

SOURCE_DESCRIPTIONS = {
    "path": "File or glob, relative to the project folder (`churnwh build --source NAME=PATH` overrides it). Required.",
    "format": "`csv`, `parquet` or `duckdb`. Not set: from the extension (`.parquet`, `.duckdb`/`.db`, else csv).",
    "table": "With `format = \"duckdb\"`: the table in that file, e.g. `main.customers`. Required there.",
    "delimiter": "CSV delimiter, one character (`\"\\t\"` for tab).",
    "header": "The CSV's first line names the columns.",
    "date_format": "strptime format of the dates, e.g. `%d/%m/%Y` (checked against DuckDB). Not set: ISO dates.",
    "id_column": "The customer id column, loaded as `customer_id` and replaced by its pseudonym. Not set: "
                 "`customer_id` if declared. `\"@row\"` (a file without an id): the row's number in the file (1 = "
                 "the first data row; with several files, file name and row number), stable while the file keeps its "
                 "rows in the same order (appending keeps the ids; sorting or deleting rows changes them).",
    "unique_id": "Refuse duplicate ids. Not set: true on the labelled table, else false.",
    "label": "The churn flag column (flat projects: exactly one source has a label).",
    "positive": "Label values meaning churned, a list such as `[\"Yes\"]` or `[1]`.",
    "negative": "Label values meaning stayed.",
    "columns": "Every column, `NAME = { type = \"...\", class = \"...\" }` (see below). Required.",
    "allow_empty": "A header-only file loads as zero rows instead of being an error (a consent file: nobody objected). "
                   "Not allowed on the labelled table.",
    "event_time": "The DATE or TIMESTAMP column dating each row, whose latest value is the source's freshness; "
                  "`\"\"` for a static table (customers, plans). Not set: a table with a label or `unique_id` is "
                  "static, consent_events is not checked, and another table with exactly one plain date column "
                  "named like an event time (`event_ts`, `opened_at`, `activity_date`, not `valid_from`, "
                  "`start_date`, `loaded_at`) is dated by it; otherwise not checked (`unknown` in `data_quality`).",
    "max_lag_days": "This source's tolerance in days ([freshness] max_lag_days). Not set: "
                    "`freshness.source_max_lag_days.NAME`, else `freshness.max_lag_days`.",
    "parts": "A source made of several files, each a part of the data's own split: "
             "`{ train = \"data/train.csv\", test = \"data/test.csv\" }` (globs allowed; replaces `path`). Each "
             "row's part is loaded into `part_column`.",
    "part_column": "With `parts`: the column of `raw.NAME` that holds each row's part (not a column of the files).",
}

SOURCE_COLUMN_DESCRIPTIONS = {
    "type": "One of " + ", ".join(f"`{t}`" for t in schema.SOURCE_TYPES) + " (default `VARCHAR`).",
    "class": "The privacy class, required: " + ", ".join(f"`{c}`" for c in schema.SOURCE_CLASSES) + ".",
}

NETWORK_DESCRIPTIONS = {
    "epochs": "Most epochs (early stopping usually ends sooner).",
    "batch_size": "Rows per batch; 0 picks it by data size (256 on small sets up to 4,096) and scales the "
                  "learning rate by the square root.",
    "learning_rate": "AdamW learning rate (meant for batches of 256 rows when `batch_size = 0`).",
    "weight_decay": "AdamW weight decay.",
    "grad_clip_norm": "Gradients are clipped to this global norm.",
    "hidden": "Width of the MLP backbone.",
    "depth": "Layers of the MLP backbone.",
    "k": "BatchEnsemble members sharing the backbone (TabM-style).",
    "n_bins": "Quantile bins of the piecewise-linear encoding of each numeric feature.",
    "d_embed": "Embedding size of each feature.",
    "dropout": "Dropout rate of the backbone.",
    "shared_layers": "1: the first backbone layer is computed once for all members; 0: per member; -1: by data size "
                     "(shared from 100,000 training rows).",
    "ple_direct": "Feed the piecewise-linear encodings straight into the first layer.",
    "max_epoch_rows": "Rows one epoch sees at most (a fresh random sample each epoch).",
    "patience": "Epochs without a validation log-loss gain before stopping (best weights restored).",
    "patience_rows": "...but no more than this many training rows (0: no row cap).",
    "seed": "Replaced by `training.seed`.",
    "calibration": "`temperature`, `platt` or `none`, fitted on the validation split.",
    "min_category_count": "A categorical value seen fewer times goes to the unknown slot.",
    "max_categories": "Vocabulary size of a categorical column (most frequent values).",
    "valid_fraction": "Share of rows for validation in a random split (no date column).",
    "test_fraction": "Share of rows for test in a random split (no date column).",
    "valid_dates": "Observation dates for validation in a time split (before the test dates).",
    "test_dates": "Latest observation dates for test in a time split.",
    "purge_days": "Gap between training rows and the validation date (and validation and test). Not set: the label "
                  "window from `[vars]`: `holdout_days` or `inactivity_days` when set, else `lead_days + "
                  "label_window_days + churn_gap_days`. Never below the label window (an error names it).",
    "logistic_l2": "L2 penalty of the logistic-regression baseline trained in the same run.",
    "cross_fit_folds": "A training set without dates (a flat table, whose scoring set is its own customers who "
                       "stayed): each trained-on customer's score comes from a model that never saw them, never "
                       "in-sample: the final model for the customers it held out (validation and test), and for "
                       "the customers it trained on one of this many models, each trained on all other customers "
                       "(cross-fitting; costs this many more trainings; with a declared split, this many folds of "
                       "all customers). 0 or 1: no cross-fitting; such scores "
                       "are flagged `scored_in_sample` in churn_scores.",
}

VARIABLE_DESCRIPTIONS = {
    "as_of": "The scoring date (`getvariable('as_of')`). Demo: the day after `demo.end`.",
    "history_start": "First day of history the models read. Demo: `demo.start`.",
    "observation_months": "Months between two observation dates of the training grid.",
    "min_history_days": "Days of history a customer needs at an observation date.",
    "lead_days": "Days between an observation date and the start of its label window (time to act).",
    "label_window_days": "Days of the label window: churn within it is `churned = 1`.",
    "churn_gap_days": "A re-signup within this many days continues an active period.",
}

EVENT_LOG_VARIABLES = {
    "holdout_days": "Event-log projects (`init --events --from`): `churned = 1` when the customer makes no purchase "
                    "in `[t, t + holdout_days)`; the label window, so also the time split's purge gap.",
    "calibration_days": "Event-log projects: features from `[t - calibration_days, t)`; a customer with no purchase "
                        "there is not observed at `t` (counted in `features.dropped_customers`).",
    "inactivity_days": "The sample event-log project (`init --events`): `churned = 1` when there is no activity in "
                       "`[t, t + inactivity_days)`; the purge gap.",
}
"""[vars] the event-log templates set (not defaults of every project): when ``holdout_days`` or
``inactivity_days`` is set, it alone is the label window and the purge gap (churnwh.stages.train.purge_gap)."""


class SchemaDrift(Exception):
    """The schema in churnwh.config and the descriptions here disagree."""


def _defaults() -> tuple[schema.Config, schema.Config]:
    """Every default, parsed from an empty config (the demo) and from one with a declared source."""
    root = Path("/project")
    demo = schema.parse_config({}, root)
    declared = schema.parse_config({
        "source": {"kind": "events"},
        "sources": {"events": {"path": "data/events.csv",
                               "columns": {"customer_id": {"type": "VARCHAR", "class": "direct_identifier"}}}},
    }, root)
    return demo, declared


def _value(config: schema.Config, section: str, key: str) -> Any:
    if section == "sql":
        return config.sql
    if section == "source":
        return config.source
    if section == "vars":
        return config.variables[key]
    return getattr(getattr(config, section), key)


def _toml(value: Any, root: Path = Path("/project")) -> str:
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        return f"`\"{value.relative_to(root).as_posix()}\"`"
    if isinstance(value, str):
        return f"`\"{value}\"`"
    if isinstance(value, dict):
        return "`{ " + ", ".join(f"{k} = " + _toml(v).strip("`") for k, v in value.items()) + " }`" if value else "`{}`"
    if isinstance(value, (list, tuple)):
        return "`[" + ", ".join(_toml(v).strip("`") for v in value) + "]`"
    if isinstance(value, float):
        return f"`{value!r}`"
    if isinstance(value, (int, dt.date)):
        return f"`{value}`"
    raise SchemaDrift(f"no TOML rendering for {value!r}")


def _default(demo: schema.Config, declared: schema.Config, section: str, key: str) -> str:
    first, other = _toml(_value(demo, section, key)), _toml(_value(declared, section, key))
    if (section, key) == ("source", "kind"):
        return first
    return first if first == other else f"{first} (demo), {other} (events, flat)"


def _row(key: str, default: str, description: str) -> str:
    return f"| `{key}` | {default} | {description.replace('|', chr(92) + '|')} |"


def _described(descriptions: dict[str, str], keys: list[str], where: str) -> None:
    missing = [key for key in keys if key not in descriptions]
    stale = [key for key in descriptions if key not in keys]
    if missing or stale:
        raise SchemaDrift(
            f"{where}: " + "; ".join(
                ([f"no description for {', '.join(missing)}"] if missing else [])
                + ([f"a description of unknown keys {', '.join(stale)}"] if stale else []))
            + ": edit churnwh/config_reference.py, then `python -m churnwh.config_reference > docs/configuration.md`")


def generate() -> str:
    """The text of docs/configuration.md."""
    from churnwh.ml.settings import TrainConfig

    demo, declared = _defaults()
    fixed = [f"{section}.{key}" for section, keys in schema.SECTION_KEYS.items() for key in keys]
    _described(DESCRIPTIONS, fixed, "churnwh.config.SECTION_KEYS")
    _described(SECTION_INTROS, list(schema.SECTION_KEYS), "churnwh.config.SECTION_KEYS (sections)")
    _described(SOURCE_DESCRIPTIONS, sorted(schema.SOURCE_KEYS), "churnwh.config.SOURCE_KEYS")
    _described(SOURCE_COLUMN_DESCRIPTIONS, sorted(schema.SOURCE_COLUMN_KEYS), "churnwh.config.SOURCE_COLUMN_KEYS")
    network = TrainConfig()
    network_fields = [f.name for f in dataclasses.fields(TrainConfig)]
    _described(NETWORK_DESCRIPTIONS, network_fields, "churnwh.ml.train.TrainConfig")
    _described(VARIABLE_DESCRIPTIONS, list(schema.DEFAULT_VARIABLES), "churnwh.config.DEFAULT_VARIABLES")

    lines = [
        "<!-- generated by `python -m churnwh.config_reference > docs/configuration.md` from churnwh/config.py;",
        "     do not edit by hand: tests/test_docs.py fails when this file differs from the generated text -->",
        "",
        "# Configuration reference",
        "",
        "`churnwh.toml` at the project root. Every key is optional (except where a `[sources.NAME]` key says",
        "*required*); a missing file means every default. An unknown key, a value of the wrong type or out of range",
        "stops every command with one line naming the key, the value and what is allowed (an unknown key also names",
        "the closest valid key, when one is close). Paths are relative to the project folder. `churnwh init` writes a commented",
        "`churnwh.toml`; the [guide](guide.md) shows these keys at work.",
        "",
    ]
    table_head = ["| key | default | what it does |", "|---|---|---|"]
    for section, keys in schema.SECTION_KEYS.items():
        lines += [f"## [{section}]", "", SECTION_INTROS[section], "", *table_head]
        lines += [_row(f"{section}.{key}", _default(demo, declared, section, key), DESCRIPTIONS[f"{section}.{key}"])
                  for key in keys]
        lines.append("")
    lines += [
        "## [sources.NAME]",
        "",
        "A declared source (`source.kind = \"events\"` or `\"flat\"`), loaded by `churnwh load` and `churnwh build`",
        "into `raw.NAME`. NAME is lower-case letters, digits and `_`; `customer_keys` is reserved. With",
        "`source.kind = \"demo\"` no source may be declared.",
        "",
        *table_head,
    ]
    lines += [_row(f"sources.NAME.{key}", _source_default(key), SOURCE_DESCRIPTIONS[key])
              for key in sorted(schema.SOURCE_KEYS)]
    lines += ["", "Each column under `[sources.NAME.columns]`:", "", "| key | what it does |", "|---|---|"]
    lines += [f"| `sources.NAME.columns.COLUMN.{key}` | {SOURCE_COLUMN_DESCRIPTIONS[key]} |"
              for key in sorted(schema.SOURCE_COLUMN_KEYS)]
    lines += [
        "",
        "## [network]",
        "",
        "Any field of `churnwh.ml.train.TrainConfig`, with a value of the default's type (see the",
        "[guide](guide.md#the-churn-model)).",
        "",
        *table_head,
    ]
    lines += [_row(f"network.{name}", _toml(getattr(network, name)), NETWORK_DESCRIPTIONS[name])
              for name in network_fields]
    lines += [
        "",
        "## [vars]",
        "",
        "DuckDB variables the SQL models read with `getvariable('NAME')`; add any of your own (a name that is a",
        "reserved SQL word is refused). Strings, numbers, booleans and dates; `as_of` and `history_start` may be",
        "`YYYY-MM-DD` strings.",
        "",
        *table_head,
    ]
    lines += [_row(f"vars.{name}", _default(demo, declared, "vars", name), VARIABLE_DESCRIPTIONS[name])
              for name in schema.DEFAULT_VARIABLES]
    lines += [_row(f"vars.{name}", "set by `init --events`", description)
              for name, description in EVENT_LOG_VARIABLES.items()]
    lines += [
        "",
        "The time split's purge gap is the label window: `holdout_days` or `inactivity_days` when set, else",
        "`lead_days + label_window_days + churn_gap_days`; `[network] purge_days` may widen it, never shorten it.",
        "`churnwh build` names these parameters when the observation dates cannot hold the split.",
    ]
    return "\n".join(lines) + "\n"


def _source_default(key: str) -> str:
    fields = {f.name: f for f in dataclasses.fields(schema.SourceConfig)}
    field = fields.get(key)
    if field is None or field.default is dataclasses.MISSING or key in ("id_column", "unique_id", "table",
                                                                         "event_time", "max_lag_days", "parts"):
        return "see right" if key in ("format", "id_column", "unique_id", "event_time", "max_lag_days") else "not set"
    if key in ("positive", "negative"):
        return "`[]`"
    return _toml(field.default)


def main(argv: list[str]) -> int:
    text = generate()
    if argv[1:] == ["--check"]:
        if not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT} is stale: run `python -m churnwh.config_reference > {OUTPUT}`", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
