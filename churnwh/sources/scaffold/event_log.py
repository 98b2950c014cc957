"""`churnwh init --events --from FILE`: a purchase (activity) log with no subscriptions.

Non-contractual churn, the usual set-up: at each observation date t the features come from the
calibration window ``[t - calibration_days, t)`` and ``churned = 1`` when the customer makes no purchase
in the holdout window ``[t, t + holdout_days)``. The observation dates are a monthly grid from the
first date with enough history to the scoring date; only dates whose holdout window has ended train.
The time split's purge gap is the holdout window (the label window actually used), so no training
label looks into the validation or test period.

Every event column that can be a feature is one: numbers are summed and averaged over the
calibration window, a text column with few distinct values gives its most frequent value there.
Nothing of the file's values is written, only column names, counts and the dates that set the grid.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, replace
from pathlib import Path

from churnwh.errors import ChurnwhError
from churnwh.sources.scaffold.from_file import ID_NAMES, RESERVED_ALIASES
from churnwh.sources.scaffold.naming import (
    REASONS,
    _ident,
    _listed,
    _relative_or_absolute,
    _toml_key,
    comment_text,
    guess_class,
    snake,
    toml_string,
    words,
)
from churnwh.sources.scaffold.templates import COMMON, SOURCE_HELP
from churnwh.sources.scaffold.user_file import read_user_file

TIME_WORDS = ("ts", "timestamp", "time", "date", "datetime", "day", "at", "when", "ordered", "purchased")
MAX_CATEGORIES = 50
"""A text event column with at most this many distinct values is a category (its most frequent value
in the calibration window is a feature); one with more is a key or free text."""
DEFAULT_HOLDOUT_DAYS = 90
DEFAULT_CALIBRATION_DAYS = 365
DEFAULT_MIN_HISTORY_DAYS = 28
VALUE_WORDS = ("amount", "revenue", "price", "value", "spend", "total", "sales", "paid", "payment")


@dataclass
class EventColumn:
    name: str
    type: str
    privacy: str
    why: str
    feature: str = ""
    """"sum" (numbers: sum and mean over the calibration window), "mode" (a category), or "" (not a feature)."""
    left_out: str = ""
    alias: str = ""


@dataclass
class EventLog:
    """What `churnwh init --events --from FILE` learnt from a purchase log (names, types, counts, dates)."""

    path: Path
    format: str
    delimiter: str
    date_format: str | None
    columns: list[EventColumn]
    id_column: str
    time_column: str
    rows: int
    customers: int
    first_day: dt.date
    last_day: dt.date
    holdout_days: int = DEFAULT_HOLDOUT_DAYS
    calibration_days: int = DEFAULT_CALIBRATION_DAYS
    min_history_days: int = DEFAULT_MIN_HISTORY_DAYS
    observation_months: int = 1
    value_alias: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def as_of(self) -> dt.date:
        """The day after the last event: the scoring date (features use data strictly before it)."""
        return self.last_day + dt.timedelta(days=1)

    @property
    def history_start(self) -> dt.date:
        """The first observation date: min_history_days after the first event."""
        return self.first_day + dt.timedelta(days=self.min_history_days)

    def training_dates(self) -> list[dt.date]:
        """The grid dates whose holdout window ends by as_of (the ones with a known label)."""
        return observation_grid(self.history_start, self.as_of, self.observation_months, self.holdout_days)


def observation_grid(start: dt.date, as_of: dt.date, months: int, holdout_days: int) -> list[dt.date]:
    """Monthly dates from ``start`` (as DuckDB's ``range(..., to_months(months))``) whose holdout ends by as_of."""
    dates, step = [], 0
    while True:
        month = start.month - 1 + step * months
        year, month = start.year + month // 12, month % 12 + 1
        try:
            day = dt.date(year, month, start.day)
        except ValueError:  # DuckDB clamps 31 January + 1 month to the end of February
            day = (dt.date(year + month // 12, month % 12 + 1, 1) - dt.timedelta(days=1))
        if day >= as_of:
            return dates
        if day + dt.timedelta(days=holdout_days) <= as_of:
            dates.append(day)
        step += 1


def _split_holds(log: EventLog) -> bool:
    """Whether the training dates hold a test date, a validation date at least the purge gap (= holdout_days)
    before it, and a training date at least the purge gap before that."""
    dates = log.training_dates()
    purge = dt.timedelta(days=log.holdout_days)
    if dates:
        valid = [d for d in dates if d <= dates[-1] - purge]
        if valid and any(d <= valid[-1] - purge for d in dates):
            return True
    return False


def longest_holdout(log: EventLog) -> int | None:
    """The longest holdout window (days) with which the split holds on this log (None: not even one day).

    A third of the span bounds it; the monthly grid can make it shorter, so each length is tried."""
    bound = max(0, (log.as_of - log.first_day).days - log.min_history_days) // 3
    return next((days for days in range(bound, 0, -1) if _split_holds(replace(log, holdout_days=days))), None)


def split_feasibility(log: EventLog) -> str | None:
    """Why a time split cannot work on this log with these windows (None: it can).

    The split holds out the last training date for test and one date at least the purge gap
    (= holdout_days) before it for validation, and trains on dates a purge gap before that."""
    if _split_holds(log):
        return None
    span = (log.as_of - log.history_start).days
    needed = 3 * log.holdout_days
    longest = longest_holdout(log)
    fix = f"pass --holdout-days {longest} or less" if longest else "no holdout window fits"
    return (f"purge gap {log.holdout_days} days = holdout_days {log.holdout_days} (the label window); the "
            f"observation dates can span {span} days (the events span {(log.as_of - log.first_day).days} days, "
            f"less min_history_days {log.min_history_days}), and a time split needs 3 x holdout_days = {needed} "
            "days (a test date, a validation date a purge gap before it, training dates a purge gap before "
            f"that) on the monthly grid of observation dates: {fix}"
            + (" (or a smaller --min-history-days)" if log.min_history_days else "")
            + ", or bring a longer history")


def _pick_time(names: list[str], types: dict[str, str], wanted: str | None, id_column: str) -> str:
    if wanted is not None:
        if wanted not in names:
            raise ChurnwhError(f"--time-column {wanted!r}: the file has no such column: its columns are "
                               f"{_listed(names)}")
        if types[wanted] not in ("DATE", "TIMESTAMP"):
            raise ChurnwhError(f"--time-column {wanted}: the column does not hold dates or timestamps in every "
                               "row: pick the column with the time of each event (ISO 8601, e.g. 2025-03-01)")
        return wanted
    timed = [n for n in names if n != id_column and types[n] in ("DATE", "TIMESTAMP")]
    if len(timed) == 1:
        return timed[0]
    named = [n for n in timed if any(w in TIME_WORDS for w in words(n))]
    if len(named) == 1:
        return named[0]
    raise ChurnwhError("cannot tell which column is the time of each event: pass --time-column COLUMN "
                       f"({'the date columns are ' + _listed(timed) if timed else 'no column holds dates in every row; the columns are ' + _listed(names)})")


def sniff_events(path: Path, *, id_column: str | None = None, time_column: str | None = None,
                 holdout_days: int | None = None, calibration_days: int | None = None,
                 min_history_days: int | None = None) -> EventLog:
    """Read a purchase log (CSV or Parquet) the way `churnwh load` will and infer its declaration and windows.

    Raises when the history is too short for a time split with these windows, naming the parameters."""
    import duckdb

    from churnwh.config import SourceColumn
    from churnwh.sources import declared as sources
    from churnwh.sources.scaffold.from_file import _pick

    path = path.expanduser().resolve()
    if not path.is_file():
        raise ChurnwhError(f"--from {path}: no such file: give the path of your event CSV or Parquet file")
    for option, value in (("--holdout-days", holdout_days), ("--calibration-days", calibration_days)):
        if value is not None and value < 1:
            raise ChurnwhError(f"{option} {value}: give a number of days of at least 1")
    if min_history_days is not None and min_history_days < 0:
        raise ChurnwhError(f"--min-history-days {min_history_days}: give 0 or more days")
    con = duckdb.connect()
    try:
        user_file = read_user_file(con, path, [path], "events")
        delimiter, date_format, native, rows = (user_file.delimiter, user_file.date_format, user_file.native,
                                                user_file.rows)
        names = user_file.names
        ref = sources._ident

        types: dict[str, str] = {}
        for name in names:
            kind = user_file.inferred_type(name)
            types[name] = kind
        id_column = _pick(names, id_column, ID_NAMES, "--id-column", "the customer id")
        time_column = _pick_time(names, types, time_column, id_column)
        types[id_column] = "VARCHAR"
        when = sources.converted(SourceColumn(time_column, types[time_column], "plain"), native[time_column],
                                 date_format)
        first, last, timed, customers = con.execute(
            f"SELECT CAST(min(w) AS DATE), CAST(max(w) AS DATE), count(w), count(DISTINCT "
            f"trim(CAST({ref(id_column)} AS VARCHAR))) FROM (SELECT {when} AS w, {ref(id_column)} FROM src)"
        ).fetchone()
        if timed < rows:
            raise ChurnwhError(f"--time-column {time_column}: the column is empty or not a date in {rows - timed} "
                               "rows: every event needs its time (drop those rows or fill them in)")
        columns: list[EventColumn] = []
        taken = set(RESERVED_ALIASES) | {"tenure_days", "days_since_last_event", "events_calibration",
                                         "active_days_calibration", "events_30d", "events_total"}
        for name in names:
            privacy, word = guess_class(name)
            why = f"named like {word!r}: {REASONS[privacy]}" if word else "no identifying name"
            column = EventColumn(name, types[name], privacy, why)
            if name == id_column:
                column.privacy, column.why = "direct_identifier", "the customer id: loaded as customer_id and " \
                    "replaced by its keyed pseudonym"
                column.left_out = "the customer id (only its pseudonym leaves raw)"
            elif name == time_column:
                column.privacy, column.why = "plain", "the time of each event: sets the windows"
                column.left_out = "the event time (recency, tenure and the windows come from it)"
            elif privacy != "plain":
                column.left_out = f"{REASONS[privacy]}: not a feature"
            elif column.type == "BIGINT" and rows >= 20 and \
                    con.execute(f"SELECT count(DISTINCT {ref(name)}) FROM src").fetchone()[0] == rows:
                column.left_out = "a different value on every event: an event or order key, not a feature"
            elif column.type in ("BIGINT", "DOUBLE", "BOOLEAN"):
                column.feature = "sum"
            elif column.type == "VARCHAR":
                distinct = con.execute(f"SELECT count(DISTINCT {ref(name)}) FROM src").fetchone()[0]
                if distinct == 0:
                    column.left_out = "empty in every row"
                elif distinct <= MAX_CATEGORIES:
                    column.feature = "mode"
                else:
                    column.left_out = (f"more than {MAX_CATEGORIES} distinct values: an order key or free text, "
                                       "not a category")
            else:
                column.left_out = "a second date column: not a feature (derive one in the SQL if it matters)"
            if column.feature:
                alias = snake(name)
                while alias in taken or f"{alias}_calibration" in taken:
                    alias += "_"
                taken.add(alias)
                column.alias = alias
            columns.append(column)
        value_alias = next((c.alias for c in columns if c.feature == "sum" and c.type != "BOOLEAN"
                            and any(w in VALUE_WORDS for w in words(c.name))), None)
        log = EventLog(path=path, format=user_file.format, delimiter=delimiter, date_format=date_format, columns=columns,
                       id_column=id_column, time_column=time_column, rows=rows, customers=customers,
                       first_day=first, last_day=last, value_alias=value_alias)
        if holdout_days is not None:
            log.holdout_days = holdout_days
        if calibration_days is not None:
            log.calibration_days = calibration_days
        if min_history_days is not None:
            log.min_history_days = min_history_days
        problem = split_feasibility(log)
        if problem:
            raise ChurnwhError(f"--from {path.name}: {problem}; nothing was written")
        return log
    finally:
        con.close()


def event_config(log: EventLog, root: Path) -> str:
    """churnwh.toml for a purchase log: the declaration, and every parameter of the label and the split."""
    width = max(len(_toml_key(c.name)) for c in log.columns)
    lines = []
    for column in log.columns:
        spec = f'{{ type = "{column.type}", class = "{column.privacy}" }}'
        lines.append(f"{_toml_key(column.name).ljust(width)} = {spec.ljust(54)} # {comment_text(column.why)}")
    options = []
    if log.delimiter != ",":
        options.append(f'delimiter = "{chr(92) + "t" if log.delimiter == chr(9) else log.delimiter}"')
    if log.date_format:
        options.append(f"date_format = {toml_string(log.date_format)}")
    dates = log.training_dates()
    value = (f'value_column = "monthly_value"        # {log.value_alias} per month over the calibration window'
             if log.value_alias else
             'value_column = "monthly_value"        # no money column found: a value of 1 per customer; set yours')
    config = f"""# churnwh project: a purchase (activity) log, no subscriptions: non-contractual churn. Written by
# `churnwh init --events --from {comment_text(log.path.name)}` from the file's header and {log.rows:,} events of
# {log.customers:,} customers. Paths are relative to this file's folder.
#
# At each observation date t: features from the calibration window [t - calibration_days, t); churned = 1
# when the customer makes no purchase in the holdout window [t, t + holdout_days). Customers with no
# purchase in the calibration window are not observed at t (counted, with the reason, by
# features.dropped_customers and in the build output and ml.data_quality).

[source]
kind = "events"                          # demo | events | flat

{SOURCE_HELP}
[sources.events]
path = {toml_string(_relative_or_absolute(log.path, root))}   # moved? churnwh build --source events=NEW_PATH
format = "{log.format}"
{chr(10).join(options) + chr(10) if options else ''}id_column = {toml_string(log.id_column)}

# REVIEW the classes: GUESSES from the column names (direct_identifier stays in raw; quasi_identifier and
# sensitive columns are not features). Every plain number is summed and averaged over the calibration
# window; a text column with at most {MAX_CATEGORIES} distinct values gives its most frequent value there.
[sources.events.columns]
{chr(10).join(lines)}

@@CONSENT@@
[vars]
# The label and the time split. The file's events run from {log.first_day} to {log.last_day}; with these values
# {len(dates)} monthly observation dates have a known label. `churnwh build` checks them against the data again.
{_var("as_of", f'"{log.as_of}"', "scoring date, the day after the last event; features use data before it")}
{_var("history_start", f'"{log.history_start}"', "first observation date (first event + min_history_days)")}
{_var("observation_months", log.observation_months, "months between two observation dates")}
{_var("min_history_days", log.min_history_days, "a customer's first purchase must be this long before the date")}
{_var("calibration_days", log.calibration_days, "features from [t - calibration_days, t); no purchase there: not observed")}
{_var("holdout_days", log.holdout_days, "churned = no purchase in [t, t + holdout_days): the label window")}
# The time split: the latest observation date is test, one at least holdout_days before it validation, and
# training dates lie holdout_days before that (the purge gap = holdout_days, so no training label looks into
# the validation or test period). [network] valid_dates / test_dates widen the parts; [network] purge_days
# overrides the gap (never below holdout_days).
"""
    common = COMMON.replace('# value_column = "monthly_price"         # a scoring-set column: value at risk = '
                            'value x horizon_months', value + "  # value at risk = value x horizon_months", 1)
    return config + common


def _var(name: str, value: object, comment: str) -> str:
    return f"{name} = {value}".ljust(40) + f" # {comment}"


def _feature_lines(log: EventLog) -> list[str]:
    window = "e.event_date >= s.observation_date - getvariable('calibration_days')"
    lines = []
    for column in log.columns:
        if column.feature == "sum":
            ref = f"e.{_ident(column.alias)}"
            if column.type == "BOOLEAN":
                ref = f"CAST({ref} AS INTEGER)"
            lines += [f"    coalesce(sum({ref}) FILTER (WHERE {window}), 0) AS {column.alias}_calibration,",
                      f"    avg({ref}) FILTER (WHERE {window}) AS {column.alias}_per_event,"]
        elif column.feature == "mode":
            # ORDER BY: a tie goes to the first value in sort order, whatever order the rows were read in
            ref = f"e.{_ident(column.alias)}"
            lines.append(f"    mode({ref} ORDER BY {ref}) FILTER (WHERE {window}) AS {column.alias}_most_often,")
    return lines


def event_sql(log: EventLog) -> dict[str, str]:
    """The staging, spine, feature, drop-report and mart models over the log's columns."""
    event_columns = [c for c in log.columns if c.feature]
    staging_selects = [f"    e.{_ident(c.name)} AS {_ident(c.alias)}," for c in event_columns]
    notes = [f"--   {comment_text(c.name)}: {comment_text(c.left_out)}" for c in log.columns if c.left_out]
    staging = f"""/*
materialized = "table"
description = "One row per event, keyed by pseudonym: its day and every event column that can be a feature."

[columns.customer_pseudonym]
privacy = "pseudonym"
checks = ["not_null"]
*/
-- Written by `churnwh init --events --from`. Not carried into the features:
{chr(10).join(notes)}
SELECT
    k.customer_pseudonym,
{chr(10).join(staging_selects)}
    CAST(e.{_ident(log.time_column)} AS DATE) AS event_date
FROM raw.events AS e
JOIN raw.customer_keys AS k ON k.customer_id = e.customer_id
WHERE e.{_ident(log.time_column)} IS NOT NULL
"""
    features = f"""/*
materialized = "table"
grain = ["customer_pseudonym", "observation_date"]
description = '''Features of each observed customer at each observation date, from events strictly before it:
recency, tenure and totals, and every event column over the calibration window.'''
*/
SELECT
    s.customer_pseudonym,
    s.observation_date,
    date_diff('day', min(e.event_date), s.observation_date) AS tenure_days,
    date_diff('day', max(e.event_date), s.observation_date) AS days_since_last_event,
    count(*) FILTER (WHERE e.event_date >= s.observation_date - getvariable('calibration_days')) AS events_calibration,
    count(DISTINCT e.event_date) FILTER (WHERE e.event_date >= s.observation_date - getvariable('calibration_days'))
        AS active_days_calibration,
    count(*) FILTER (WHERE e.event_date >= s.observation_date - 30) AS events_30d,
{chr(10).join(_feature_lines(log))}
    count(*) AS events_total
FROM features.observation_spine AS s
JOIN staging.events AS e
  ON e.customer_pseudonym = s.customer_pseudonym AND e.event_date < s.observation_date
GROUP BY s.customer_pseudonym, s.observation_date
"""
    value = (f"{log.value_alias}_calibration / (getvariable('calibration_days') / 30.4375)" if log.value_alias
             else "1.0")
    scoring = f"""/*
materialized = "table"
grain = ["customer_pseudonym", "observation_date"]
description = "The same features at as_of, for the customers observed then, and their value per month."
*/
SELECT *, CAST({value} AS DOUBLE) AS monthly_value
FROM features.customer_features
WHERE observation_date = getvariable('as_of')
"""
    return {"staging/events.sql": staging, "features/observation_spine.sql": SPINE,
            "features/dropped_customers.sql": DROPPED, "features/customer_features.sql": features,
            "marts/training_set.sql": TRAINING, "marts/scoring_set.sql": scoring}


GRID = """WITH dates AS (
    SELECT CAST(d AS DATE) AS observation_date
    FROM range(CAST(getvariable('history_start') AS TIMESTAMP), CAST(getvariable('as_of') AS TIMESTAMP),
               to_months(getvariable('observation_months'))) AS t(d)
    UNION SELECT getvariable('as_of')
),
before AS (
    SELECT d.observation_date, e.customer_pseudonym,
        min(e.event_date) AS first_event, max(e.event_date) AS last_event
    FROM dates AS d JOIN staging.events AS e ON e.event_date < d.observation_date
    GROUP BY ALL
),
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
),
checked AS (
    -- every (customer, date) with an event before the date, and the first filter it fails (NULL: observed)
    SELECT b.customer_pseudonym, b.observation_date,
        CASE
            WHEN b.customer_pseudonym IN (SELECT customer_pseudonym FROM objectors)
                THEN 'profiling consent withdrawn'
            WHEN EXISTS (SELECT 1 FROM withdrawn AS w
                         WHERE w.customer_pseudonym = b.customer_pseudonym AND w.valid_from <= b.observation_date
                           AND (w.valid_to IS NULL OR w.valid_to > b.observation_date))
                THEN 'profiling consent withdrawn at the date'
            WHEN b.first_event > b.observation_date - getvariable('min_history_days')
                THEN 'first purchase less than min_history_days before the date'
            WHEN b.last_event < b.observation_date - getvariable('calibration_days')
                THEN 'no purchase in the calibration window (calibration_days) before the date'
        END AS dropped_because
    FROM before AS b
)"""

SPINE = """/*
materialized = "table"
grain = ["customer_pseudonym", "observation_date"]
description = '''(customer, observation date) on a monthly grid up to as_of, for customers with a purchase in
the calibration window before the date, a first purchase at least min_history_days before it, and profiling
consent (GDPR objection, CCPA opt-out, Global Privacy Control: absent; one who consents again contributes only
dates on which consent held). The label window is never used here: a customer is not dropped for being about
to churn. features.dropped_customers counts who is left out and why.'''

[columns.customer_pseudonym]
privacy = "pseudonym"
checks = ["not_null"]

[[audits]]
name = "no_observation_after_as_of"
sql = "SELECT customer_pseudonym FROM this WHERE observation_date > getvariable('as_of')"
*/
""" + GRID + """
SELECT customer_pseudonym, observation_date
FROM checked
WHERE dropped_because IS NULL
"""

DROPPED = """/*
materialized = "table"
tags = ["dropped_customers"]
description = '''Customers with purchases that the spine leaves out of every observation date, by the filter
that removes them at the latest date (counts only): reported by `churnwh build` and in ml.data_quality.'''
*/
""" + GRID + """,
never_observed AS (
    SELECT customer_pseudonym, arg_max(dropped_because, observation_date) AS dropped_because
    FROM checked
    GROUP BY customer_pseudonym
    HAVING count(*) FILTER (WHERE dropped_because IS NULL) = 0
)
SELECT 'features.observation_spine' AS model, dropped_because AS reason, count(*) AS customers
FROM never_observed
GROUP BY ALL
"""

def sample_dropped_sql() -> str:
    """features.dropped_customers for the sample event-log project (`init --events` without --from), whose
    daily staging.activity has the same spine filters: the same counts of who is left out and why."""
    return (DROPPED.replace("staging.events", "staging.activity").replace("e.event_date", "e.activity_date")
            .replace("first purchase", "first activity").replace("no purchase", "no activity"))


TRAINING = """/*
materialized = "table"
grain = ["customer_pseudonym", "observation_date"]
description = '''Features at each past observation date and the label: churned = 1 when the customer made no
purchase in the holdout window [observation_date, observation_date + holdout_days). Only dates whose holdout
window has ended by as_of.'''

[columns.churned]
checks = ["not_null"]
accepted_values = [0, 1]
*/
SELECT
    f.*,
    CAST(NOT EXISTS (
        SELECT 1 FROM staging.events AS e
        WHERE e.customer_pseudonym = f.customer_pseudonym
          AND e.event_date >= f.observation_date
          AND e.event_date < f.observation_date + getvariable('holdout_days')
    ) AS INTEGER) AS churned
FROM features.customer_features AS f
WHERE f.observation_date + getvariable('holdout_days') <= getvariable('as_of')
"""
