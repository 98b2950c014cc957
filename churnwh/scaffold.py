"""`churnwh init DIR`: a new project folder a user fills with their own data.

Three shapes:

- ``events`` (default): the canonical raw schema of the demo (customers, subscriptions, purchases,
  usage, tickets, web, e-mail, consent; one CSV each), the repository's staging/feature/mart models;
- ``flat`` (``--flat``): one row per customer with a churn flag, no history; stratified random split;
- ``inactivity`` (``--events``): activity events only, no subscriptions; churn = no activity within
  ``inactivity_days`` after the observation date, on a monthly grid, features strictly before it.

Every project gets churnwh.toml with every option commented, sql/, a .gitignore that keeps warehouse
files, exports and keys out of git, a README, and a fresh pseudonym key (mode 0600).
"""

from __future__ import annotations

from pathlib import Path

from churnwh import keys
from churnwh.errors import ChurnwhError

REPO_SQL = Path(__file__).resolve().parents[1] / "sql"

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

[network]
# epochs = 60                            # any churnwh.train.TrainConfig field, e.g. hidden, k, batch_size

[scoring]
# value_column = "monthly_price"         # a scoring-set column: value at risk = value x horizon_months
# horizon_months = 12
# batch_rows = 65536

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

[vars]
as_of = "2026-01-01"                     # the scoring date written with each score
""" + COMMON.replace('# value_column = "monthly_price"', 'value_column = "monthly_fee"  ', 1).replace(
    "\n[scoring]\n", "\n[scoring]\n", 1)

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

[sources.consent_events]
path = "data/consent_events.csv"

[sources.consent_events.columns]
event_id = { type = "VARCHAR", class = "plain" }
customer_id = { type = "VARCHAR", class = "direct_identifier" }
purpose = { type = "VARCHAR", class = "plain" }        # profiling | marketing
action = { type = "VARCHAR", class = "plain" }
event_ts = { type = "TIMESTAMP", class = "plain" }
source = { type = "VARCHAR", class = "plain" }
regulation = { type = "VARCHAR", class = "plain" }

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
description = '''(customer, observation date) on a monthly grid up to as_of, for customers still active:
first activity at least min_history_days before the date, last activity within inactivity_days before it.'''
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
)
SELECT customer_pseudonym, observation_date
FROM before
WHERE first_activity <= observation_date - getvariable('min_history_days')
  AND last_activity > observation_date - getvariable('inactivity_days')
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
   declare every column with its type and privacy class.
2. `churnwh load --check` compares the files with the declarations and lists every mismatch at once.
3. Adapt the SQL models under `sql/` to your columns (`churnwh dag` shows the build order).
4. `churnwh build` loads, pseudonymizes, builds the models, trains, scores and publishes
   `warehouse/churn.duckdb`; `churnwh evaluate` shows the test metrics next to the baselines.
5. `churnwh export churn_scores --format csv` writes the published scores for other tools.

The pseudonym key is `.churnwh.key` (mode 0600, ignored by git): back it up outside the warehouse;
without it the pseudonyms cannot be recomputed. Direct identifiers never leave `raw` in
`warehouse/private.duckdb`; only the published file should be shared.
"""


def init_project(directory: Path, shape: str) -> list[Path]:
    """Create the project folder for ``shape`` (events | flat | inactivity); return the files written."""
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ChurnwhError(f"{directory} already exists and is not empty: pick a new folder name")
    if shape == "events" and not REPO_SQL.is_dir():
        raise ChurnwhError(f"the canonical SQL models are not installed at {REPO_SQL}: install churnwh from its "
                           "repository (pip install -e .) or use --flat / --events")
    config = {"flat": FLAT_CONFIG, "events": EVENTS_CONFIG, "inactivity": INACTIVITY_CONFIG}[shape]
    described = {"flat": "flat customer table", "events": "event tables with subscriptions",
                 "inactivity": "activity events, churn by inactivity"}[shape]
    files: dict[str, str] = {
        "churnwh.toml": config,
        ".gitignore": GITIGNORE,
        "README.md": README.format(name=directory.name, shape=described),
        "data/.keep": "",
    }
    if shape == "flat":
        files.update({f"sql/{path}": text for path, text in FLAT_SQL.items()})
    elif shape == "inactivity":
        files.update({f"sql/{path}": text for path, text in INACTIVITY_SQL.items()})
    else:
        for path in sorted(REPO_SQL.rglob("*.sql")):
            files[f"sql/{path.relative_to(REPO_SQL)}"] = path.read_text(encoding="utf-8")
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
