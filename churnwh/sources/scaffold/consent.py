"""Consent: `churnwh init --consent FILE`, and the [sources.consent_events] declaration of every shape."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from churnwh.errors import ChurnwhError
from churnwh.sources.scaffold.naming import (
    REASONS,
    _listed,
    _relative_or_absolute,
    _toml_key,
    check_names,
    comment_text,
    guess_class,
    toml_string,
)
from churnwh.sources.scaffold.templates import CONSENT_MODELS, template_sql

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
        check_names(names, f"--consent {path}")
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
        path = toml_string(_relative_or_absolute(consent.path, root))
        options = [f'format = "{consent.format}"']
        if consent.delimiter != ",":
            options.append(f"delimiter = {toml_string(consent.delimiter)}")
        if consent.date_format:
            options.append(f"date_format = {toml_string(consent.date_format)}")
        if consent.id_column != "customer_id":
            options.append(f"id_column = {toml_string(consent.id_column)}")
        columns = consent.columns
    width = max(len(_toml_key(name)) for name, *_ in columns)
    lines = [f'{_toml_key(name).ljust(width)} = {{ type = "{kind}", class = "{privacy}" }}'.ljust(width + 54)
             + f" # {comment_text(comment)}" for name, kind, privacy, comment in columns]
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
