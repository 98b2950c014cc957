"""What every `churnwh init` project gets whatever its shape: the canonical SQL models, the commented
churnwh.toml sections, the source-declaration help, .gitignore and README."""

from __future__ import annotations

from pathlib import Path

from churnwh.errors import ChurnwhError

PACKAGE_SQL = Path(__file__).resolve().parents[2] / "sql_templates"
"""The canonical models inside an installed wheel (built from the repository's sql/)."""
REPO_SQL = Path(__file__).resolve().parents[3] / "sql"
"""The canonical models in a source checkout or an editable install."""


def template_sql() -> Path:
    """The folder holding the canonical SQL models: the package data, else the repository's sql/."""
    for candidate in (PACKAGE_SQL, REPO_SQL):
        if candidate.is_dir() and any(candidate.rglob("*.sql")):
            return candidate
    raise ChurnwhError(f"the canonical SQL models are missing (looked in {PACKAGE_SQL} and {REPO_SQL}): "
                       "reinstall churnwh (pip install churnwh) or use --flat")

CONSENT_MODELS = ("staging/consent_events.sql", "staging/consent_state.sql")
"""Copied from the canonical models into the inactivity and flat templates: one consent logic everywhere."""

GITIGNORE = """# churnwh: keep data, warehouse files and keys out of git
warehouse/
*.duckdb
*.duckdb.wal
*.key
.churnwh.key
exports/
data/
"""

COMMON = """
[warehouse]
# private = "warehouse/private.duckdb"   # raw data and identifiers live only here
# published = "warehouse/churn.duckdb"   # the sanitized file BI tools open (only pseudonyms)
# models = "warehouse/models"            # trained model artifacts
# memory_limit = "4GB"                   # DuckDB memory limit
# temp_directory = "warehouse/spill"     # where DuckDB spills above memory_limit (default: warehouse/private.duckdb.tmp)
# threads = 2                            # DuckDB threads; each needs memory, so fewer under a small limit

[sql]
# path = "sql"                           # one SELECT per file: sql/<schema>/<name>.sql

[training]
# model = "marts.training_set"           # the table the network trains on
# scoring_model = "marts.scoring_set"    # the table scored at as_of
# id_column = "customer_pseudonym"
# label_column = "churned"               # 1 = churned, 0 = stayed
# date_column = "observation_date"       # absent or all NULL in the training set: stratified random split
# split_column = "part"                 # the data's own split: a column of train/test values (or a date with
                                         # split_date = "YYYY-MM-DD"); test metrics on its test part only
# seed = 0
# promote_tolerance = 0.005              # keep the current model if it beats a new one by more
# keep_versions = 10                    # model artifacts kept: the current one and the newest 10 (0 = all)

[network]
# epochs = 60                            # any churnwh.ml.train.TrainConfig field, e.g. hidden, k, batch_size
# How the rows are split (docs/configuration.md). With observation dates: the latest date is test, the one
# before it validation, with a purge gap between the parts = the label window in [vars] (lead_days +
# label_window_days + churn_gap_days; holdout_days or inactivity_days in an event-log project):
# test_dates = 1                         # latest observation dates held out for test
# valid_dates = 1                        # observation dates for validation (a purge gap before the test dates)
# purge_days = 134                       # widen the gap (never below the label window; build says why it fails)
# Without dates (date_column = "" or all NULL): a stratified random split.
# valid_fraction = 0.15                  # share of rows for validation
# test_fraction = 0.15                   # share of rows for test

[scoring]
# value_column = "monthly_price"         # a scoring-set column: value at risk = value x horizon_months
# horizon_months = 12
# batch_rows = 65536
# currency = "EUR"                       # of value_column (stated in the published `about` table)
# segments = ["plan"]                    # scoring-set columns copied into churn_scores to slice by (never an
                                         # identifying column: one classified quasi/direct/sensitive is refused)

[tiers]
# mode = "probability"                   # or "top_fraction": high/medium are shares of customers
# high = 0.5                             # churn probability at or above: high risk
# medium = 0.2                           # at or above: medium risk; below: low
# [tiers.actions]
# high = "retain now: personal retention offer"

[publish]
# k_anonymity = 5                        # smallest customer group a published segment may show

[key]
# env = "CHURNWH_KEY"                    # a hex key in this environment variable wins
# file = ".churnwh.key"                  # else this file (mode 0600, made by `churnwh init`/`keygen`)
# create = false                         # never create a key silently in a real project
"""

SOURCE_HELP = """# A source is loaded into raw.NAME by `churnwh load` (and `churnwh build`). Keys:
#   path        a CSV, Parquet or DuckDB file, or a glob ("data/2025-*.csv"); relative to this folder
#   format      csv | parquet | duckdb (default: from the file extension)
#   table       for format = "duckdb": the table in that file, e.g. "main.customers"
#   delimiter   CSV only, default ","  ("\\t" for tab)      header = true (CSV only)
#   date_format for DATE/TIMESTAMP columns stored as text, e.g. "%d/%m/%Y" (default: ISO 8601)
#   id_column   the customer id: loaded as customer_id and pseudonymized (default: a column customer_id)
#   unique_id   true: one row per customer id (default true when label is set)
#   label, positive, negative   the churn flag of a flat table and its values, e.g. ["Yes"], ["No"]
#   allow_empty true: a header-only file loads as zero rows (consent: nobody has objected); else an error
#   [sources.NAME.columns]      EVERY column: type (VARCHAR BIGINT INTEGER DOUBLE BOOLEAN DATE TIMESTAMP)
#                               and class (direct_identifier quasi_identifier sensitive pseudonym plain)
# `churnwh load --check` compares the files with these declarations and lists every mismatch.
"""

README = """# {name}: a churnwh project ({shape})

Made by `churnwh init`. Everything below runs from this folder (or add `--project {name}` elsewhere).

1. Put your data where `[sources.*]` in `churnwh.toml` point (default `data/`, ignored by git), and
   declare every column with its type and privacy class (made by `init --from`: review the guessed
   classes; a column you make a direct identifier must also leave `sql/staging/customers.sql`).
2. `churnwh load --check` compares the files with the declarations and lists every mismatch at once.
3. Adapt the SQL models under `sql/` to your columns (`churnwh dag` shows the build order).
4. `churnwh build` loads, pseudonymizes, builds the models, trains, scores and publishes
   `warehouse/churn.duckdb`; `churnwh evaluate` shows the test metrics next to the baselines.
5. `churnwh export churn_scores --format csv` writes the published scores for other tools.

Consent: customers whose profiling consent is withdrawn in `[sources.consent_events]` (a GDPR
objection, a CCPA opt-out, a Global Privacy Control signal) are never profiled, scored or published;
a header-only consent file means nobody has objected. A project without a consent source profiles
every customer under legitimate interest (`churnwh build` says so).

The pseudonym key is `.churnwh.key` (mode 0600, ignored by git): back it up outside the warehouse;
without it the pseudonyms cannot be recomputed. Direct identifiers never leave `raw` in
`warehouse/private.duckdb`; only the published file should be shared.
"""
