"""`churnwh init DIR`: a new project folder a user fills with their own data.

Three shapes:

- ``events`` (default): the canonical raw schema of the demo (customers, subscriptions, purchases,
  usage, tickets, web, e-mail, consent; one CSV each), the repository's staging/feature/mart models;
- ``flat`` (``--flat``): one row per customer with a churn flag, no history; stratified random split;
- ``inactivity`` (``--events``): activity events only, no subscriptions; churn = no activity within
  ``inactivity_days`` after the observation date, on a monthly grid, features strictly before it;
  consent events with the canonical consent models, applied in the spine as in the demo's.

Every project gets churnwh.toml with every option commented, sql/, a .gitignore that keeps warehouse
files, exports and keys out of git, a README, and a fresh pseudonym key (mode 0600).

``--flat --from FILE`` reads the user's own CSV or Parquet file (DuckDB's sniffer, then the loader's
own conversions) and writes the source declaration with its real columns and types, a classification
guessed from the column names (marked for review), and feature SQL over those columns, so that
``churnwh build`` runs at once. Nothing of the file's values is written except the label's values.

``--consent FILE`` declares a consent file in the canonical consent_events schema as
``[sources.consent_events]`` (``allow_empty``: a header-only file means nobody has objected). A flat
project then gets the canonical consent models and ``staging.customers`` leaves out every customer
whose profiling consent is withdrawn as of the build; without it a flat project declares no consent
source, and `init` and `build` say that every customer is profiled under legitimate interest.

The canonical SQL models are the repository's ``sql/``; a wheel ships the same files as the package
data ``churnwh/sql_templates`` (pyproject.toml maps that package to ``sql/``: one copy, no drift).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from pathlib import Path

from churnwh.errors import ChurnwhError
from churnwh.privacy import keys

PACKAGE_SQL = Path(__file__).resolve().parents[1] / "sql_templates"
"""The canonical models inside an installed wheel (built from the repository's sql/)."""
REPO_SQL = Path(__file__).resolve().parents[2] / "sql"
"""The canonical models in a source checkout or an editable install."""


def template_sql() -> Path:
    """The folder holding the canonical SQL models: the package data, else the repository's sql/."""
    for candidate in (PACKAGE_SQL, REPO_SQL):
        if candidate.is_dir() and any(candidate.rglob("*.sql")):
            return candidate
    raise ChurnwhError(f"the canonical SQL models are missing (looked in {PACKAGE_SQL} and {REPO_SQL}): "
                       "reinstall churnwh (pip install churnwh) or use --flat")

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
# seed = 0
# promote_tolerance = 0.005              # keep the current model if it beats a new one by more
# keep_versions = 10                    # model artifacts kept: the current one and the newest 10 (0 = all)

[network]
# epochs = 60                            # any churnwh.ml.train.TrainConfig field, e.g. hidden, k, batch_size

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

FLAT_CONFIG = """# churnwh project: a flat customer table (one row per customer with a churn flag).
# Paths are relative to this file's folder. Uncommented lines are required; the rest show defaults.

[source]
kind = "flat"                            # demo | events | flat

""" + SOURCE_HELP + """
[sources.customers]
path = "data/customers.csv"
id_column = "customer_id"
label = "churned"
positive = ["Yes"]
negative = ["No"]

[sources.customers.columns]
customer_id = { type = "VARCHAR", class = "direct_identifier" }
full_name = { type = "VARCHAR", class = "direct_identifier" }
region = { type = "VARCHAR", class = "quasi_identifier" }
signup_date = { type = "DATE", class = "quasi_identifier" }
plan = { type = "VARCHAR", class = "plain" }
monthly_fee = { type = "DOUBLE", class = "plain" }
support_calls = { type = "INTEGER", class = "plain" }
churned = { type = "VARCHAR", class = "plain" }

@@CONSENT@@
[vars]
as_of = "2026-01-01"                     # the scoring date written with each score
""" + COMMON.replace('# value_column = "monthly_price"', 'value_column = "monthly_fee"  ', 1)

EVENTS_CONFIG = """# churnwh project: customers, subscriptions, purchases and consent as event tables (the canonical
# raw schema of the demo). Paths are relative to this file's folder.

[source]
kind = "events"                          # demo | events | flat

""" + SOURCE_HELP + """
# One [sources.NAME] per raw table the models in sql/ read: customers, plans, plan_prices,
# subscriptions, transactions, product_usage, support_tickets, web_sessions, email_events,
# consent_events (examples/events/churnwh.toml declares all of them). Two shown here:

[sources.customers]
path = "data/customers.csv"

[sources.customers.columns]
customer_id = { type = "VARCHAR", class = "direct_identifier" }
full_name = { type = "VARCHAR", class = "direct_identifier" }
email = { type = "VARCHAR", class = "direct_identifier" }
phone = { type = "VARCHAR", class = "direct_identifier" }
street_address = { type = "VARCHAR", class = "direct_identifier" }
birth_date = { type = "DATE", class = "direct_identifier" }
gender = { type = "VARCHAR", class = "quasi_identifier" }
region = { type = "VARCHAR", class = "quasi_identifier" }
signup_date = { type = "DATE", class = "quasi_identifier" }
acquisition_channel = { type = "VARCHAR", class = "plain" }

@@CONSENT@@
[vars]
as_of = "2026-01-01"                     # scoring date; features use data strictly before it
history_start = "2023-01-01"             # first date of the monthly observation grid
# observation_months = 1                 # grid step
# min_history_days = 180                 # history a customer needs before an observation date
# lead_days = 14                         # time to act before the label window starts
# label_window_days = 90                 # churn within this window after the lead time = 1
# churn_gap_days = 30                    # a re-signup within this gap continues the period
""" + COMMON

INACTIVITY_CONFIG = """# churnwh project: activity events only (purchases, logins, usage), no subscriptions.
# Churn = no activity within inactivity_days after the observation date. Paths relative to this folder.

[source]
kind = "events"                          # demo | events | flat

""" + SOURCE_HELP + """
[sources.events]
path = "data/events.csv"                 # one row per activity: who, when, and an optional amount
id_column = "customer_id"

[sources.events.columns]
customer_id = { type = "VARCHAR", class = "direct_identifier" }
event_ts = { type = "TIMESTAMP", class = "plain" }
amount = { type = "DOUBLE", class = "plain" }

@@CONSENT@@
[vars]
as_of = "2026-01-01"                     # scoring date; features use data strictly before it
history_start = "2024-01-01"             # first date of the monthly observation grid
observation_months = 1                   # grid step
min_history_days = 90                    # a customer's first activity must be this long before the date
inactivity_days = 60                     # churned = no activity in [date, date + inactivity_days)
""" + COMMON.replace('# value_column = "monthly_price"', 'value_column = "amount_90d"    ', 1)

FLAT_SQL = {
    "staging/customers.sql": """/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "One row per customer, keyed by pseudonym. List your columns; never a direct identifier."

[columns.customer_pseudonym]
privacy = "pseudonym"
checks = ["not_null", "unique"]

[columns.churned]
accepted_values = [0, 1]
*/
SELECT
    k.customer_pseudonym,
    c.region,
    date_diff('day', c.signup_date, getvariable('as_of')) AS tenure_days,
    c.plan,
    c.monthly_fee,
    c.support_calls,
    c.churned                              -- the label: loaded as 1 (positive) / 0 (negative)
FROM raw.customers AS c
JOIN raw.customer_keys AS k ON k.customer_id = c.customer_id
""",
    "marts/training_set.sql": """/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "Features and the churn flag; observation_date is NULL (no time), so training splits stratified at random."
*/
SELECT customer_pseudonym, CAST(NULL AS DATE) AS observation_date,
    region, tenure_days, plan, monthly_fee, support_calls, churned
FROM staging.customers
""",
    "marts/scoring_set.sql": """/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "Current customers (churned = 0) with the same features, scored at as_of."
*/
SELECT customer_pseudonym, getvariable('as_of') AS observation_date,
    region, tenure_days, plan, monthly_fee, support_calls
FROM staging.customers
WHERE churned = 0
""",
}

INACTIVITY_SQL = {
    "staging/activity.sql": """/*
materialized = "table"
grain = ["customer_pseudonym", "activity_date"]
description = "Daily activity per customer (pseudonymized): events and amount per day."
*/
SELECT
    k.customer_pseudonym,
    CAST(e.event_ts AS DATE) AS activity_date,
    count(*) AS events,
    coalesce(sum(e.amount), 0) AS amount
FROM raw.events AS e
JOIN raw.customer_keys AS k ON k.customer_id = e.customer_id
WHERE e.event_ts IS NOT NULL
GROUP BY ALL
""",
    "features/observation_spine.sql": """/*
materialized = "table"
grain = ["customer_pseudonym", "observation_date"]
description = '''(customer, observation date) on a monthly grid up to as_of, for customers still active
(first activity at least min_history_days before the date, last activity within inactivity_days before
it) whose profiling consent holds: customers who withdrew it (GDPR objection, CCPA opt-out, Global Privacy
Control) as of the build are absent; one who consents again contributes only dates on which consent held.'''

[columns.customer_pseudonym]
privacy = "pseudonym"
checks = ["not_null"]

[[audits]]
name = "no_observation_after_as_of"
sql = "SELECT customer_pseudonym FROM this WHERE observation_date > getvariable('as_of')"
*/
WITH dates AS (
    SELECT CAST(d AS DATE) AS observation_date
    FROM range(CAST(getvariable('history_start') AS TIMESTAMP), CAST(getvariable('as_of') AS TIMESTAMP),
               to_months(getvariable('observation_months'))) AS t(d)
    UNION SELECT getvariable('as_of')
),
before AS (
    SELECT d.observation_date, a.customer_pseudonym,
        min(a.activity_date) AS first_activity, max(a.activity_date) AS last_activity
    FROM dates AS d JOIN staging.activity AS a ON a.activity_date < d.observation_date
    GROUP BY ALL
),
active AS (
    SELECT customer_pseudonym, observation_date
    FROM before
    WHERE first_activity <= observation_date - getvariable('min_history_days')
      AND last_activity > observation_date - getvariable('inactivity_days')
),
-- Consent, applied before any feature is computed (the rules of the canonical features.observation_spine):
-- profiling withdrawals (GDPR objection, CCPA opt-out, Global Privacy Control) from staging.consent_state.
withdrawn AS (
    SELECT customer_pseudonym, valid_from, valid_to
    FROM staging.consent_state
    WHERE purpose = 'profiling' AND state = 'withdrawn'
),
objectors AS (
    -- withdrawn on as_of, or by their latest decision: such a customer contributes no row at all
    SELECT DISTINCT customer_pseudonym
    FROM withdrawn
    WHERE valid_to IS NULL
       OR (valid_from <= getvariable('as_of') AND valid_to > getvariable('as_of'))
)
SELECT a.customer_pseudonym, a.observation_date
FROM active AS a
WHERE a.customer_pseudonym NOT IN (SELECT customer_pseudonym FROM objectors)
  -- a customer who consents again contributes only observation dates on which consent held
  AND NOT EXISTS (
      SELECT 1
      FROM withdrawn AS w
      WHERE w.customer_pseudonym = a.customer_pseudonym
        AND w.valid_from <= a.observation_date
        AND (w.valid_to IS NULL OR w.valid_to > a.observation_date)
  )
""",
    "features/customer_features.sql": """/*
materialized = "table"
grain = ["customer_pseudonym", "observation_date"]
description = "Activity features from data strictly before the observation date."
*/
SELECT
    s.customer_pseudonym,
    s.observation_date,
    date_diff('day', min(a.activity_date), s.observation_date) AS tenure_days,
    date_diff('day', max(a.activity_date), s.observation_date) AS days_since_last_activity,
    coalesce(sum(a.events) FILTER (WHERE a.activity_date >= s.observation_date - 30), 0) AS events_30d,
    coalesce(sum(a.events) FILTER (WHERE a.activity_date >= s.observation_date - 90), 0) AS events_90d,
    coalesce(sum(a.amount) FILTER (WHERE a.activity_date >= s.observation_date - 90), 0) AS amount_90d,
    count(DISTINCT a.activity_date) FILTER (WHERE a.activity_date >= s.observation_date - 90) AS active_days_90d,
    sum(a.events) AS events_total
FROM features.observation_spine AS s
JOIN staging.activity AS a
  ON a.customer_pseudonym = s.customer_pseudonym AND a.activity_date < s.observation_date
GROUP BY s.customer_pseudonym, s.observation_date
""",
    "marts/training_set.sql": """/*
materialized = "table"
grain = ["customer_pseudonym", "observation_date"]
description = '''Features at each past observation date and the label: churned = 1 when the customer had no
activity in [observation_date, observation_date + inactivity_days). Only dates whose window has ended.'''

[columns.churned]
checks = ["not_null"]
accepted_values = [0, 1]
*/
SELECT
    f.*,
    CAST(NOT EXISTS (
        SELECT 1 FROM staging.activity AS a
        WHERE a.customer_pseudonym = f.customer_pseudonym
          AND a.activity_date >= f.observation_date
          AND a.activity_date < f.observation_date + getvariable('inactivity_days')
    ) AS INTEGER) AS churned
FROM features.customer_features AS f
WHERE f.observation_date + getvariable('inactivity_days') <= getvariable('as_of')
""",
    "marts/scoring_set.sql": """/*
materialized = "table"
grain = ["customer_pseudonym", "observation_date"]
description = "The same features at as_of, for the customers active then."
*/
SELECT * FROM features.customer_features WHERE observation_date = getvariable('as_of')
""",
}

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


def init_project(directory: Path, shape: str, flat_source: "FlatSource | None" = None,
                 consent: "ConsentSource | None" = None) -> list[Path]:
    """Create the project folder for ``shape`` (events | flat | inactivity); return the files written.

    ``flat_source`` (``--flat --from FILE``): the declaration and the feature SQL are written for that
    file's real columns instead of the sample ones. ``consent`` (``--consent FILE``): the consent source
    reads that file; a flat project gets the canonical consent models and excludes objectors in
    ``staging.customers`` (without it a flat project declares no consent source).
    """
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ChurnwhError(f"{directory} already exists and is not empty: pick a new folder name")
    if flat_source is not None and shape != "flat":
        raise ChurnwhError("--from reads a flat customer table (one row per customer): use it with --flat")
    config = {"flat": FLAT_CONFIG, "events": EVENTS_CONFIG, "inactivity": INACTIVITY_CONFIG}[shape]
    described = {"flat": "flat customer table", "events": "event tables with subscriptions",
                 "inactivity": "activity events, churn by inactivity"}[shape]
    sql: dict[str, str] = {"flat": FLAT_SQL, "inactivity": INACTIVITY_SQL, "events": {}}[shape]
    if shape == "events":
        canonical = template_sql()
        sql = {str(path.relative_to(canonical)): path.read_text(encoding="utf-8")
               for path in sorted(canonical.rglob("*.sql"))}
    elif shape == "inactivity":
        canonical = template_sql()
        sql = {**{name: (canonical / name).read_text(encoding="utf-8") for name in CONSENT_MODELS}, **sql}
    if flat_source is not None:
        config, sql = flat_config(flat_source, directory.resolve()), flat_sql(flat_source)
    config = config.replace("@@CONSENT@@\n", consent_config(shape, consent, directory.resolve()), 1)
    if shape == "flat" and consent is not None:
        sql = flat_consent_sql(sql)
    files: dict[str, str] = {
        "churnwh.toml": config,
        ".gitignore": GITIGNORE,
        "README.md": README.format(name=directory.name, shape=described),
        "data/.keep": "",
    }
    files.update({f"sql/{path}": text for path, text in sql.items()})
    written = []
    directory.mkdir(parents=True, exist_ok=True)
    for relative, text in files.items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    (directory / "warehouse").mkdir(exist_ok=True)
    keys.generate_key_file(directory / ".churnwh.key")
    written.append(directory / ".churnwh.key")
    return written


# --- `churnwh init --flat --from FILE`: a declaration and feature SQL for the user's own file ------------

CONSENT_MODELS = ("staging/consent_events.sql", "staging/consent_state.sql")
"""Copied from the canonical models into the inactivity and flat templates: one consent logic everywhere."""

# --- consent: `--consent FILE`, and the [sources.consent_events] declaration of every shape -------------------

CONSENT_COLUMNS = {
    # the canonical consent_events schema (what sql/staging/consent_events.sql reads): type, comment
    "event_id": ("VARCHAR", "one id per decision"),
    "customer_id": ("VARCHAR", "the same ids as the customer table"),
    "purpose": ("VARCHAR", "profiling | marketing"),
    "action": ("VARCHAR", "grant | withdraw (opt_in, opt_out, object... accepted)"),
    "event_ts": ("TIMESTAMP", "when the decision was recorded"),
    "source": ("VARCHAR", "e.g. signup_form, preference_center, gpc (Global Privacy Control)"),
    "regulation": ("VARCHAR", "GDPR | CCPA"),
}
TIMESTAMP_FORMATS = ("%d/%m/%Y %H:%M:%S", "%d/%m/%Y %H:%M", "%d/%m/%Y", "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M",
                     "%m/%d/%Y", "%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d")
"""Tried for event_ts when the sniffer finds no format and the loader's ISO reading fails."""

CONSENT_RULES = {
    "flat": """# Consent decisions, applied before any feature (sql/staging/consent_state.sql, read by
# sql/staging/customers.sql): a customer whose profiling consent is withdrawn as of the build (a GDPR
# objection, a CCPA opt-out, a Global Privacy Control signal) is in no feature row, training row, score or
# published table; a marketing withdrawal stops contact, not scoring. No decision = profiled under
# legitimate interest. The build's audit entry counts the excluded customers by reason, never who.
""",
    "events": """# Consent decisions, applied before any feature (sql/staging/consent_state.sql, the observation spine): a
# customer whose profiling consent is withdrawn as of the build (GDPR objection, CCPA opt-out, Global Privacy
# Control) is in no feature row, training row, score or published table; one who consents again
# contributes only the dates on which consent held. No decision = profiled under legitimate interest.
""",
}
CONSENT_RULES["inactivity"] = CONSENT_RULES["events"]

NO_CONSENT = """# No consent source is declared: every customer is profiled under legitimate interest (`churnwh build`
# says so). To exclude customers who objected (GDPR Art. 21) or opted out (CCPA, Global Privacy Control),
# create the project with `churnwh init DIR --flat --from customers.csv --consent consent.csv`: it declares
# [sources.consent_events] (event_id, customer_id, purpose, action, event_ts, source, regulation) and
# applies it in sql/staging/customers.sql. A declared consent source that no model reads stops the build.

"""


@dataclass
class ConsentSource:
    """What `churnwh init --consent FILE` learnt from the consent file (names and types, no values)."""

    path: Path
    format: str
    delimiter: str
    date_format: str | None
    id_column: str
    columns: list[tuple[str, str, str, str]]
    """(name, type, class, comment) of every column of the file, in its order."""
    rows: int


def sniff_consent(path: Path, *, id_column: str | None = None) -> ConsentSource:
    """Read a consent file (CSV or Parquet) in the canonical consent_events schema the way `churnwh load` will.

    ``id_column`` is the customer table's id column: a consent file may name its customer id that way
    instead of ``customer_id``. A header-only file is fine (nobody has objected). The file is then checked
    with the loader's own checks; messages name columns and rows, never values.
    """
    import types

    import duckdb

    from churnwh.config import SourceColumn, SourceConfig
    from churnwh.sources import declared as sources

    path = path.expanduser().resolve()
    if not path.is_file():
        raise ChurnwhError(f"--consent {path}: no such file: give the path of your consent CSV or Parquet file "
                           f"(columns {', '.join(CONSENT_COLUMNS)})")
    fmt = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"
    con = duckdb.connect()
    try:
        delimiter, date_format, event_ts_type = ",", None, None
        if fmt == "csv":
            try:
                found = con.execute("SELECT Delimiter, HasHeader, Columns, DateFormat, TimestampFormat FROM "
                                    "sniff_csv(?)", [str(path)]).fetchone()
            except duckdb.Error as err:
                raise ChurnwhError(f"--consent {path}: cannot be read as a CSV file ({type(err).__name__}): export "
                                   "it again as CSV with a header row") from None
            delimiter, has_header, described, date_fmt, ts_fmt = found
            if not has_header:
                raise ChurnwhError(f"--consent {path}: the first line is not a header: churnwh needs the column "
                                   f"names ({', '.join(CONSENT_COLUMNS)}) in the first line")
            event_ts_type = {c["name"]: str(c["type"]) for c in described}.get("event_ts")
            chosen = ts_fmt if event_ts_type == "TIMESTAMP" else date_fmt if event_ts_type == "DATE" else None
            if chosen and not chosen.startswith("%Y-%m-%d"):
                date_format = chosen
        if len(delimiter) != 1:
            raise ChurnwhError(f"--consent {path}: the delimiter is not one character: export it with , or ;")
        probe = SourceConfig(name=sources.CONSENT_SOURCE, path=str(path), format=fmt, columns=(), delimiter=delimiter)
        sql = sources.read_sql(probe, [path])
        try:
            native = sources._columns_of(con, sql)
        except duckdb.Error as err:
            raise ChurnwhError(f"--consent {path}: cannot be read ({type(err).__name__}): check that it is a CSV "
                               "with a header row or a Parquet file") from None
        names = list(native)
        customer = "customer_id" if "customer_id" in names else id_column if id_column in names else None
        missing = [c for c in CONSENT_COLUMNS if c not in names and not (c == "customer_id" and customer)]
        if missing:
            raise ChurnwhError(f"--consent {path.name}: the consent file has no column {', '.join(missing)}: it "
                               f"needs {', '.join(CONSENT_COLUMNS)} (the file's columns are {_listed(names)})")
        columns = []
        for name in names:
            if name == customer:
                columns.append((name, "VARCHAR", "direct_identifier", "the customer id: loaded as customer_id and "
                                "pseudonymized"))
            elif name in CONSENT_COLUMNS:
                columns.append((name, CONSENT_COLUMNS[name][0], "plain", CONSENT_COLUMNS[name][1]))
            else:
                privacy, word = guess_class(name)
                why = f"named like {word!r}: {REASONS[privacy]}" if word else "not read by the consent models"
                columns.append((name, "VARCHAR", privacy, why))
        if date_format is None and native["event_ts"] == "VARCHAR":
            ts = SourceColumn("event_ts", "TIMESTAMP", "plain")
            present = "nullif(trim(event_ts), '') IS NOT NULL"

            def failing(fmt_: str | None) -> int:
                conversion = sources.converted(ts, "VARCHAR", fmt_)
                return con.execute(f"SELECT count(*) FROM ({sql}) WHERE {present} AND {conversion} IS NULL").fetchone()[0]

            if failing(None):
                fitting = [f for f in TIMESTAMP_FORMATS if not failing(f)]
                if len({f.split(" ")[0] for f in fitting}) > 1:
                    raise ChurnwhError(f"--consent {path.name}: column event_ts: the dates read both day-first and "
                                       "month-first: export ISO timestamps (YYYY-MM-DD HH:MM:SS)")
                date_format = fitting[0] if fitting else None
        consent = ConsentSource(path=path, format=fmt, delimiter=delimiter, date_format=date_format,
                                id_column=customer, columns=columns, rows=0)
        declared = SourceConfig(
            name=sources.CONSENT_SOURCE, path=str(path), format=fmt, delimiter=delimiter, date_format=date_format,
            columns=tuple(SourceColumn(n, kind, privacy) for n, kind, privacy, _ in columns),
            id_column=customer, allow_empty=True)
        problems, check = sources.check_source(con, types.SimpleNamespace(root=path.parent), declared)
        if problems or check is None:
            raise ChurnwhError(f"--consent {path.name}: " + "; ".join(problems or ["cannot be read"]))
        consent.rows = check.rows
        return consent
    finally:
        con.close()


def consent_config(shape: str, consent: ConsentSource | None, root: Path) -> str:
    """The [sources.consent_events] declaration (every shape has one, a flat one only with ``--consent``)."""
    if shape == "flat" and consent is None:
        return NO_CONSENT
    if consent is None:
        path, options = '"data/consent_events.csv"', []
        columns = [(name, kind, "direct_identifier" if name == "customer_id" else "plain", comment)
                   for name, (kind, comment) in CONSENT_COLUMNS.items()]
    else:
        path = json.dumps(_relative_or_absolute(consent.path, root))
        options = [f'format = "{consent.format}"']
        if consent.delimiter != ",":
            options.append(f"delimiter = {json.dumps(consent.delimiter)}")  # a JSON string is a TOML string
        if consent.date_format:
            options.append(f"date_format = {json.dumps(consent.date_format)}")
        if consent.id_column != "customer_id":
            options.append(f"id_column = {json.dumps(consent.id_column)}")
        columns = consent.columns
    width = max(len(_toml_key(name)) for name, *_ in columns)
    lines = [f'{_toml_key(name).ljust(width)} = {{ type = "{kind}", class = "{privacy}" }}'.ljust(width + 54)
             + f" # {comment}" for name, kind, privacy, comment in columns]
    head = [f"path = {path}".ljust(40) + " # one row per decision; unknown purposes stop the build",
            "allow_empty = true".ljust(40) + " # a header-only file loads as no rows: nobody has objected", *options]
    return (CONSENT_RULES[shape] + "[sources.consent_events]\n" + "\n".join(head)
            + "\n\n[sources.consent_events.columns]\n" + "\n".join(lines) + "\n\n")


CONSENT_FILTER = """-- Consent, applied before any feature (staging.consent_state, the rules of every churnwh shape): a
-- customer whose profiling consent is withdrawn as of the build (GDPR objection, CCPA opt-out, Global
-- Privacy Control; by the latest decision, or on as_of) is in no feature row, training row or score.
WHERE k.customer_pseudonym NOT IN (
    SELECT customer_pseudonym
    FROM staging.consent_state
    WHERE purpose = 'profiling' AND state = 'withdrawn'
      AND (valid_to IS NULL OR (valid_from <= getvariable('as_of') AND valid_to > getvariable('as_of')))
)
"""


def flat_consent_sql(sql: dict[str, str]) -> dict[str, str]:
    """The flat models with consent: the canonical consent models, and objectors left out of staging.customers
    (which the training and scoring sets read)."""
    canonical = template_sql()
    staging = sql["staging/customers.sql"]
    if not staging.rstrip().endswith("k.customer_id = c.customer_id"):
        raise AssertionError("staging/customers.sql of the flat template must end with its key join")
    staging = re.sub(r'(\ndescription = "[^"\n]*?)"', r'\1 Customers whose profiling consent is withdrawn as of '
                     r'the build are absent."', staging, count=1)
    return {**{name: (canonical / name).read_text(encoding="utf-8") for name in CONSENT_MODELS},
            **sql, "staging/customers.sql": staging.rstrip() + "\n" + CONSENT_FILTER}

DIRECT_WORDS = {"name", "names", "surname", "firstname", "lastname", "fullname", "forename", "username",
                "email", "mail", "phone", "mobile", "telephone", "tel", "fax", "address", "street",
                "ssn", "passport", "iban"}
QUASI_WORDS = {"birth", "birthday", "birthdate", "dob", "age", "zip", "zipcode", "postcode", "postal",
               "gender", "sex", "region", "country", "geography", "city", "nationality", "senior"}
SENSITIVE_WORDS = {"salary", "income", "credit", "health", "religion", "ethnicity"}
ID_NAMES = ("customer_id", "client_id", "account_id", "user_id", "member_id", "subscriber_id", "id", "customer")
LABEL_NAMES = ("churn", "churned", "is_churned", "churn_flag", "exited", "attrition", "attrited", "left")
POSITIVE_GUESSES = ("Yes", "yes", "YES", "Y", "y", "1", "true", "True", "TRUE", "churned", "Churned")
VALUE_WORDS = ("charge", "charges", "fee", "fees", "price", "revenue", "spend", "amount", "balance",
               "arpu", "mrr", "payment", "bill", "value")
RESERVED_ALIASES = {"customer_pseudonym", "observation_date", "churned", "customer_id"}
TYPE_MAP = {"BIGINT": "BIGINT", "INTEGER": "BIGINT", "SMALLINT": "BIGINT", "TINYINT": "BIGINT",
            "UBIGINT": "BIGINT", "UINTEGER": "BIGINT", "USMALLINT": "BIGINT", "UTINYINT": "BIGINT",
            "HUGEINT": "DOUBLE", "DOUBLE": "DOUBLE", "FLOAT": "DOUBLE", "BOOLEAN": "BOOLEAN", "DATE": "DATE"}
MAX_LABEL_VALUES = 10


@dataclass
class SniffedColumn:
    name: str
    type: str
    privacy: str
    why: str
    """Why the class was guessed (written as a comment beside the declaration)."""
    alias: str = ""
    """The feature's name in the SQL models; empty when the column is not a feature."""
    left_out: str = ""
    """Why the column is not a feature (written as a comment in the SQL)."""


@dataclass
class FlatSource:
    """What `churnwh init --flat --from FILE` learnt from the user's file (names and types, no values)."""

    path: Path
    format: str
    delimiter: str
    date_format: str | None
    columns: list[SniffedColumn]
    id_column: str
    label: str
    positive: list[str]
    negative: list[str]
    rows: int
    value_column: str | None


def words(name: str) -> list[str]:
    """``MonthlyCharges`` -> ["monthly", "charges"]; ``customerID`` -> ["customer", "id"]."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", spaced)
    return [w for w in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if w]


def snake(name: str) -> str:
    joined = "_".join(words(name)) or "column"
    return f"c_{joined}" if joined[0].isdigit() else joined


def guess_class(name: str) -> tuple[str, str | None]:
    """A privacy class guessed from a column name, and the word that decided it (None: plain)."""
    found = words(name)
    joined = "".join(found)
    for privacy, vocabulary, fragments in (
        ("direct_identifier", DIRECT_WORDS, ("surname", "firstname", "lastname", "fullname", "email", "phone")),
        ("quasi_identifier", QUASI_WORDS, ("birth", "zipcode", "postcode")),
        ("sensitive", SENSITIVE_WORDS, ()),
    ):
        for word in found:
            if word in vocabulary:
                return privacy, word
        for fragment in fragments:
            if fragment in joined:
                return privacy, fragment
    return "plain", None


REASONS = {
    "direct_identifier": "a direct identifier, never leaves raw",
    "quasi_identifier": "identifies a person in combination",
    "sensitive": "personal and sensitive",
}


def _ident(name: str) -> str:
    """``name`` as an SQL identifier (quoted only when it has to be)."""
    from sqlglot.dialects.duckdb import DuckDB

    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) and name.upper() not in DuckDB.Tokenizer.KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _showable(columns: list[str]) -> list[str]:
    """Column names that may appear in a message: none that looks like a data value."""
    return [c for c in columns if len(c) <= 64 and not any(ch in c for ch in "@,;|\t\r\n")
            and not "".join(c.split()).isdigit()]


def _listed(columns: list[str]) -> str:
    """The file's column names for an error message, without any that look like data (never shown)."""
    shown = _showable(columns)
    hidden = len(columns) - len(shown)
    return ", ".join(shown[:40]) + (f" and {len(columns) - len(shown[:40])} more" if hidden or len(shown) > 40 else "")


def _pick(columns: list[str], wanted: str | None, guesses: tuple[str, ...], option: str, what: str) -> str:
    if wanted is not None:
        if wanted in columns:
            return wanted
        import difflib

        close = difflib.get_close_matches(wanted, _showable(columns), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ChurnwhError(f"{option} {wanted!r}: the file has no such column: {hint}its columns are "
                           f"{_listed(columns)}")
    by_snake = {snake(c): c for c in columns}
    for guess in guesses:
        if guess in by_snake:
            return by_snake[guess]
    raise ChurnwhError(f"cannot tell which column is {what}: pass {option} COLUMN (the file's columns are "
                       f"{_listed(columns)})")


def sniff_flat(path: Path, *, id_column: str | None = None, label: str | None = None,
               positive: list[str] | None = None, negative: list[str] | None = None) -> FlatSource:
    """Read ``path`` (CSV or Parquet) the way `churnwh load` will, and infer its declaration.

    Types are what DuckDB's sniffer sees, confirmed with the loader's own conversion (a type that
    would reject a value falls back to VARCHAR; a text column whose non-blank values all parse as
    numbers becomes a number). Messages name columns, never values.
    """
    import duckdb

    from churnwh.config import SourceColumn, SourceConfig
    from churnwh.sources import declared as sources

    path = path.expanduser().resolve()
    if not path.is_file():
        raise ChurnwhError(f"--from {path}: no such file: give the path of your customer CSV or Parquet file")
    fmt = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"
    con = duckdb.connect()
    try:
        delimiter, date_format, sniffed = ",", None, {}
        if fmt == "csv":
            try:
                found = con.execute("SELECT Delimiter, HasHeader, Columns, DateFormat FROM sniff_csv(?)",
                                    [str(path)]).fetchone()
            except duckdb.Error as err:
                raise ChurnwhError(f"--from {path}: cannot be read as a CSV file ({type(err).__name__}): "
                                   "export it again as CSV with a header row") from None
            delimiter, has_header, described, date_format = found
            if not has_header:
                raise ChurnwhError(f"--from {path}: the first line is not a header: churnwh needs the column "
                                   "names in the first line")
            sniffed = {c["name"]: str(c["type"]) for c in described}
            if date_format in ("%Y-%m-%d", ""):
                date_format = None
        if len(delimiter) != 1:
            raise ChurnwhError(f"--from {path}: the delimiter is not one character: export it with , or ;")
        source = SourceConfig(name="customers", path=str(path), format=fmt, columns=(), delimiter=delimiter)
        sql = sources.read_sql(source, [path])
        try:
            native = sources._columns_of(con, sql)
            con.execute(f"CREATE TEMP TABLE src AS {sql}")
        except duckdb.Error as err:
            raise ChurnwhError(f"--from {path}: cannot be read ({type(err).__name__}): check that it is a "
                               "CSV with a header row or a Parquet file") from None
        names = list(native)
        rows = con.execute("SELECT count(*) FROM src").fetchone()[0]
        if rows == 0:
            raise ChurnwhError(f"--from {path}: the file has a header but no data rows: export the data again")
        id_column = _pick(names, id_column, ID_NAMES, "--id-column", "the customer id")
        label = _pick(names, label, LABEL_NAMES, "--label", "the churn flag")
        if label == id_column:
            raise ChurnwhError("--label and --id-column name the same column: the churn flag and the customer id "
                               "are two columns")

        ref = sources._ident

        def failures(column: str, kind: str) -> int:
            declared = SourceColumn(column, kind, "plain")
            present = f"({ref(column)} IS NOT NULL AND trim(CAST({ref(column)} AS VARCHAR)) <> '')"
            conversion = sources.converted(declared, native[column], date_format)
            return con.execute(f"SELECT count(*) FROM src WHERE {present} AND {conversion} IS NULL").fetchone()[0]

        # the id: one row per customer, never empty
        empty, duplicated = con.execute(
            f"SELECT count(*) FILTER (WHERE coalesce(trim(CAST({ref(id_column)} AS VARCHAR)), '') = ''), "
            f"count(*) - count(DISTINCT trim(CAST({ref(id_column)} AS VARCHAR))) FROM src").fetchone()
        if empty or duplicated:
            problem = f"is empty in {empty} rows" if empty else f"repeats {duplicated} values"
            raise ChurnwhError(f"--id-column {id_column}: the column {problem}: a flat customer table needs one "
                               "row per customer with its id; pick the column that identifies a customer")
        # the label: on every row; its values, the positive and negative ones
        unlabelled = con.execute(
            f"SELECT count(*) FROM src WHERE coalesce(trim(CAST({ref(label)} AS VARCHAR)), '') = ''").fetchone()[0]
        if unlabelled:
            raise ChurnwhError(f"--label {label}: the column is empty in {unlabelled} rows: every customer needs the "
                               "churn flag (drop those rows or fill them in)")
        values = [v for (v,) in con.execute(
            f"SELECT DISTINCT trim(CAST({ref(label)} AS VARCHAR)) AS v FROM src WHERE v IS NOT NULL AND v <> '' "
            f"ORDER BY v LIMIT {MAX_LABEL_VALUES + 1}").fetchall()]
        if len(values) > MAX_LABEL_VALUES:
            raise ChurnwhError(f"--label {label}: the column has more than {MAX_LABEL_VALUES} distinct values: "
                               "is it the churn flag? pass --label with the column saying who churned")
        if len(values) < 2:
            raise ChurnwhError(f"--label {label}: the column has {len(values)} distinct value(s): a churn flag "
                               "needs churned and retained customers")
        if not positive:
            guessed = [v for v in values if v in POSITIVE_GUESSES]
            if len(guessed) != 1 or len(values) != 2:
                raise ChurnwhError(f"--label {label}: cannot tell which value means churned: pass --positive "
                                   "VALUE (and --negative VALUE)")
            positive = guessed
        for value in [*positive, *(negative or [])]:
            if value not in values:
                raise ChurnwhError(f"--positive/--negative: no row of column {label} holds that value "
                                   f"({len(values)} distinct values there): check the spelling")
        negative = list(negative or [v for v in values if v not in positive])
        if set(positive) & set(negative) or not negative:
            raise ChurnwhError("--positive and --negative must be different values of the label column")

        columns: list[SniffedColumn] = []
        taken = set(RESERVED_ALIASES)
        for name in names:
            kind = source_type(sniffed.get(name, native[name]))
            if name in (id_column, label):
                kind = "VARCHAR"
            elif native[name] == "VARCHAR":
                if kind != "VARCHAR" and failures(name, kind):
                    kind = "VARCHAR"  # the sniffer saw a sample; the loader checks every row
                if kind == "VARCHAR":
                    for candidate in ("BIGINT", "DOUBLE"):
                        if con.execute(f"SELECT count(*) FROM src WHERE nullif(trim({ref(name)}), '') IS NOT NULL"
                                       ).fetchone()[0] and not failures(name, candidate):
                            kind = candidate
                            break
                if kind in ("BIGINT", "DOUBLE") and con.execute(
                        f"SELECT count(*) FROM src WHERE regexp_matches(trim({ref(name)}), '^[+-]?0[0-9]')"
                ).fetchone()[0]:
                    kind = "VARCHAR"  # codes with leading zeros (postcodes, account numbers) stay text
            distinct, present = con.execute(
                f"SELECT count(DISTINCT v), count(v) FROM (SELECT nullif(trim(CAST({ref(name)} AS VARCHAR)), '') AS v "
                "FROM src)").fetchone()
            # a Yes/No or a small set of codes is a category, whatever the name (PhoneService, email_opt_in)
            category = kind == "BOOLEAN" or (distinct <= MAX_LABEL_VALUES and rows >= 5 * MAX_LABEL_VALUES)
            privacy, word = guess_class(name)
            why = f"named like {word!r}: {REASONS[privacy]}" if word else "no identifying name"
            if privacy == "direct_identifier" and category:
                privacy, why = "plain", f"named like {word!r} but holds only {distinct} distinct values"
            column = SniffedColumn(name, kind, privacy, why)
            if name == id_column:
                column.privacy, column.why = "direct_identifier", "the customer id: loaded as customer_id and " \
                    "replaced by its keyed pseudonym"
                column.left_out = "the customer id (only its pseudonym leaves raw)"
            elif name == label:
                column.privacy, column.why = "plain", "the churn flag: loaded as 1 (positive) / 0 (negative)"
            elif column.privacy == "direct_identifier":
                column.left_out = "a direct identifier: stays in raw"
            elif present == 0:
                column.left_out = "empty in every row"
            elif kind in ("VARCHAR", "BIGINT") and rows >= 20 and distinct == rows:
                column.left_out = "a different value on every row: a key or a row number, not a feature"
                if kind == "VARCHAR" and column.privacy == "plain":
                    column.privacy = "direct_identifier"
                    column.why = "a different value on every row: looks like an identifier"
            elif kind == "VARCHAR" and rows >= 20 and distinct > rows // 2:
                column.left_out = "more distinct values than half the rows: free text or a code, not a category"
                if column.privacy == "quasi_identifier":
                    column.left_out += f" (a quasi-identifier: coarsen it, e.g. left(c.{_ident(name)}, 2), to use it)"
            if not column.left_out and name != label:
                alias = snake(name)
                if kind in ("DATE", "TIMESTAMP"):
                    alias += "_years" if column.privacy == "quasi_identifier" else "_days"
                while alias in taken:
                    alias += "_"
                taken.add(alias)
                column.alias = alias
            columns.append(column)
        if not any(c.alias for c in columns):
            raise ChurnwhError(f"--from {path}: no column besides the id and the label can be a feature: "
                               "a flat table needs at least one attribute of the customer")
        features = [c for c in columns if c.alias and c.type in ("BIGINT", "DOUBLE")]
        value_column = None
        for preferred in (True, False):
            for column in features:
                found = words(column.name)
                if any(w in VALUE_WORDS for w in found) and (not preferred or "monthly" in found or "month" in found):
                    value_column = column.alias
                    break
            if value_column:
                break
        return FlatSource(path=path, format=fmt, delimiter=delimiter, date_format=date_format, columns=columns,
                          id_column=id_column, label=label, positive=list(positive), negative=negative, rows=rows,
                          value_column=value_column)
    finally:
        con.close()


def source_type(duckdb_type: str) -> str:
    """The declarable type (config.SOURCE_TYPES) for a DuckDB type."""
    upper = duckdb_type.upper()
    if upper in TYPE_MAP:
        return TYPE_MAP[upper]
    if upper.startswith(("DECIMAL", "NUMERIC")):
        return "DOUBLE"
    if upper.startswith("TIMESTAMP"):
        return "TIMESTAMP"
    return "VARCHAR"


def _relative_or_absolute(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def flat_config(flat: FlatSource, root: Path) -> str:
    """churnwh.toml for the user's file: its real columns, types and a reviewed-by-you classification."""
    width = max(len(_toml_key(c.name)) for c in flat.columns)
    lines = []
    for column in flat.columns:
        spec = f'{{ type = "{column.type}", class = "{column.privacy}" }}'
        lines.append(f"{_toml_key(column.name).ljust(width)} = {spec.ljust(54)} # {column.why}")
    options = []
    if flat.delimiter != ",":
        shown = "\\t" if flat.delimiter == "\t" else flat.delimiter
        options.append(f'delimiter = "{shown}"')
    if flat.date_format:
        options.append(f"date_format = {json.dumps(flat.date_format)}")
    value = (f'value_column = "{flat.value_column}"' if flat.value_column else
             'value_column = "customer_value"     # no money column found: a value of 1 per customer; set yours')
    config = f"""# churnwh project: a flat customer table (one row per customer with a churn flag), written by
# `churnwh init --flat --from {flat.path.name}` from the file's header and {flat.rows:,} rows.
# Paths are relative to this file's folder. Uncommented lines are required; the rest show defaults.

[source]
kind = "flat"                            # demo | events | flat

{SOURCE_HELP}
[sources.customers]
path = {json.dumps(_relative_or_absolute(flat.path, root))}   # moved? churnwh build --source customers=NEW_PATH
format = "{flat.format}"
{chr(10).join(options) + chr(10) if options else ''}id_column = {json.dumps(flat.id_column)}
label = {json.dumps(flat.label)}
positive = {json.dumps(flat.positive)}
negative = {json.dumps(flat.negative)}

# REVIEW EVERY LINE BELOW before a real build. The types were read from the file; the classes are
# GUESSES from the column names: direct_identifier (names, e-mails, phones, addresses, ids: stay in raw),
# quasi_identifier (age, birth date, postcode, gender, region, country: identify in combination),
# sensitive, pseudonym, plain. A column you reclassify as direct_identifier must also leave
# sql/staging/customers.sql (the build's lineage proof stops otherwise).
[sources.customers.columns]
{chr(10).join(lines)}

@@CONSENT@@
[vars]
as_of = "{dt.date.today().isoformat()}"                  # the scoring date of each score; dates become days before it
"""
    common = COMMON.replace('# value_column = "monthly_price"         # a scoring-set column: value at risk = '
                            'value x horizon_months', value + "  # value at risk = value x horizon_months", 1)
    return config + common


def flat_sql(flat: FlatSource) -> dict[str, str]:
    """The staging and mart models over the file's columns (features: every column not left out)."""
    selects, notes = [], []
    for column in flat.columns:
        ref = f"c.{_ident(column.name)}"
        if column.name == flat.label:
            selects.append(f"    {ref} AS churned,                    -- the label: loaded as 1 (positive) / 0")
        elif column.alias and column.type in ("DATE", "TIMESTAMP"):
            part = "year" if column.privacy == "quasi_identifier" else "day"
            selects.append(f"    date_diff('{part}', CAST({ref} AS DATE), getvariable('as_of')) AS {column.alias},"
                           f"  -- {part}s before as_of")
        elif column.alias:
            selects.append(f"    {ref} AS {column.alias},")
        else:
            notes.append(f"--   {column.name}: {column.left_out}")
    features = [c.alias for c in flat.columns if c.alias]
    quasi = [c for c in flat.columns if c.alias and c.privacy == "quasi_identifier"]
    docs = "".join(f'\n[columns.{c.alias}]\nprivacy = "quasi_identifier"\n' for c in quasi)
    listed = ",\n    ".join(", ".join(features[i:i + 6]) for i in range(0, len(features), 6))
    value = "" if flat.value_column else ",\n    CAST(1 AS DOUBLE) AS customer_value   -- [scoring] value_column"
    staging = f"""/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "One row per customer, keyed by pseudonym: the features read from raw.customers. Never a direct identifier."

[columns.customer_pseudonym]
privacy = "pseudonym"
checks = ["not_null", "unique"]

[columns.churned]
checks = ["not_null"]
accepted_values = [0, 1]
{docs}*/
-- Written by `churnwh init --flat --from`. Left out of the features:
{chr(10).join(notes) if notes else '--   (nothing)'}
SELECT
    k.customer_pseudonym,
{chr(10).join(selects)}
FROM raw.customers AS c
JOIN raw.customer_keys AS k ON k.customer_id = c.customer_id
"""
    # the trailing comma of the last feature line goes: the label is always listed, put it last
    staging = re.sub(r",(\s*(?:--[^\n]*)?)\nFROM raw", r"\1\nFROM raw", staging)
    training = f"""/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "Features and the churn flag; observation_date is NULL (no time), so training splits stratified at random."
*/
SELECT
    customer_pseudonym,
    CAST(NULL AS DATE) AS observation_date,
    {listed},
    churned
FROM staging.customers
"""
    scoring = f"""/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "Current customers (churned = 0) with the same features, scored at as_of."
*/
SELECT
    customer_pseudonym,
    getvariable('as_of') AS observation_date,
    {listed}{value}
FROM staging.customers
WHERE churned = 0
"""
    return {"staging/customers.sql": staging, "marts/training_set.sql": training, "marts/scoring_set.sql": scoring}
