"""Fuzzing the bad-input contract of the `churnwh` command (issue 8, item 3).

Every fuzzed case must end with exit code 0, or exit code 1 and exactly one line on stderr starting
with ``error:``; never exit code 2 (an internal error is a bug), never a traceback, and never with
a canary value (a customer id, e-mail or name planted in the fuzzed data) in stdout or stderr.

Inputs: config files, SQL model headers, the content of a declared CSV source, and the customer
id lists of ``churnwh forget``. The CLI runs in-process (``churnwh.cli.main`` with ``sys.argv`` and
the standard streams replaced, the way a shell starts it) so hypothesis can afford many examples;
``test_in_process_harness_matches_a_real_process`` proves the harness gives what a real process
gives. Example counts follow the hypothesis profile (tests/conftest.py): the default "quick" one
in CI, ``HYPOTHESIS_PROFILE=long`` for the long run (15 x more examples).
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import gc
import io
import itertools
import math
import os
import re
import shutil
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import churnwh.ml.train  # noqa: F401 - before hypothesis runs: JAX raises the recursion limit when imported
from tests.helpers import TINY_NETWORK, churnwh

# --- the in-process harness ------------------------------------------------------------------------


@dataclass
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


def run_cli(project: Path, *args: str, env: dict[str, str] | None = None) -> Outcome:
    """``churnwh --project PROJECT ARGS`` in this process, as a shell would start it.

    stdout and stderr are pipes as Python sets them up (UTF-8; stdout strict, stderr
    backslashreplace), so an unprintable value fails here as it would in a real process. Global
    state a command may change (the CLI's options, the registered source classification) is put back.
    """
    from churnwh import cli
    from churnwh.privacy import classification

    saved_argv, saved_out, saved_err = sys.argv, sys.stdout, sys.stderr
    saved_state = (cli.State.project, list(cli.State.source_paths))
    saved_classes = copy.deepcopy(classification.SOURCE_COLUMNS)
    saved_env = {name: os.environ.get(name) for name in [*(env or {}), "CHURNWH_DEBUG"]}
    out_bytes, err_bytes = io.BytesIO(), io.BytesIO()
    stdout = io.TextIOWrapper(out_bytes, encoding="utf-8", errors="strict", write_through=True)
    stderr = io.TextIOWrapper(err_bytes, encoding="utf-8", errors="backslashreplace", write_through=True)
    code = None
    try:
        os.environ.pop("CHURNWH_DEBUG", None)
        os.environ.update(env or {})
        sys.argv = ["churnwh", "--project", str(project), *args]
        sys.stdout, sys.stderr = stdout, stderr
        cli.State.source_paths = []
        try:
            cli.main()
            code = 0
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    finally:
        sys.argv, sys.stdout, sys.stderr = saved_argv, saved_out, saved_err
        cli.State.project, cli.State.source_paths = saved_state[0], saved_state[1]
        classification.SOURCE_COLUMNS.clear()
        classification.SOURCE_COLUMNS.update(saved_classes)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        gc.collect()  # DuckDB connections an error path dropped are closed now, not in a later example
    return Outcome(code, out_bytes.getvalue().decode("utf-8"), err_bytes.getvalue().decode("utf-8", "replace"))


def check_contract(outcome: Outcome, canaries: tuple[str, ...] = ()) -> None:
    """Exit 0, or exit 1 with one `error:` line; no traceback; no canary (also across line wraps)."""
    shown = f"exit {outcome.code}\n--- stdout\n{outcome.stdout}\n--- stderr\n{outcome.stderr}"
    assert outcome.code in (0, 1), shown
    assert "Traceback" not in outcome.text, shown
    if outcome.code == 1:
        lines = outcome.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), shown
    squeezed = re.sub(r"\s+", "", outcome.text).lower()
    for canary in canaries:
        assert canary.lower() not in outcome.text.lower(), f"canary {canary!r} in the output\n{shown}"
        assert re.sub(r"\s+", "", canary).lower() not in squeezed, f"canary {canary!r} in the output\n{shown}"


def examples(quick: int) -> settings:
    """``quick`` examples under the default profile, 15 x as many under HYPOTHESIS_PROFILE=long."""
    scale = 15 if settings().max_examples >= 300 else 1
    return settings(max_examples=quick * scale, suppress_health_check=[HealthCheck.too_slow,
                                                                       HealthCheck.data_too_large,
                                                                       HealthCheck.function_scoped_fixture])


_counter = itertools.count()


def fresh_copy(template: Path, scratch: Path) -> Path:
    target = scratch / f"p{next(_counter)}"
    shutil.copytree(template, target)
    return target


# --- a tiny flat project with canary customers -------------------------------------------------------

CANARY_ID = "CNRY7731Q"
CANARY_EMAIL = "quill.canary7731@example.org"
CANARY_NAME = "Quintessa Canarywood"
CANARIES = (CANARY_ID, CANARY_EMAIL, CANARY_NAME)
HEADER = ["customer_id", "full_name", "email", "region", "signup_date", "plan", "monthly_fee", "support_calls",
          "churned"]


def customer_rows(n: int, canaries: bool = True) -> list[list[str]]:
    import random

    rng = random.Random(11)
    rows = []
    for i in range(n):
        calls = rng.randint(0, 6)
        churned = "Yes" if rng.random() < 0.1 + 0.1 * calls else "No"
        rows.append([f"K{i:05d}", f"Person {i}", f"person{i}@example.net", rng.choice(["north", "south", "east"]),
                     f"2023-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}", rng.choice(["basic", "plus"]),
                     f"{rng.uniform(10, 90):.2f}", str(calls), churned])
    if canaries:
        rows[n // 2][:3] = [CANARY_ID, CANARY_NAME, CANARY_EMAIL]
        rows[n // 2][-1] = "No"  # a current customer: scored, published under its pseudonym
    return rows


def csv_text(rows: list[list[str]], header: list[str] | None = HEADER, delimiter: str = ",") -> str:
    lines = ([delimiter.join(header)] if header else []) + [delimiter.join(row) for row in rows]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


TEMPLATE_CONFIG = """# a flat project (what `churnwh init --flat` makes, written out here so the fuzz suite does not
# change when the scaffold does)
[source]
kind = "flat"

[sources.customers]
path = "data/customers.csv"
id_column = "customer_id"
label = "churned"
positive = ["Yes"]
negative = ["No"]

[sources.customers.columns]
customer_id = { type = "VARCHAR", class = "direct_identifier" }
full_name = { type = "VARCHAR", class = "direct_identifier" }
email = { type = "VARCHAR", class = "direct_identifier" }
region = { type = "VARCHAR", class = "quasi_identifier" }
signup_date = { type = "DATE", class = "quasi_identifier" }
plan = { type = "VARCHAR", class = "plain" }
monthly_fee = { type = "DOUBLE", class = "plain" }
support_calls = { type = "INTEGER", class = "plain" }
churned = { type = "VARCHAR", class = "plain" }

[vars]
as_of = "2026-01-01"

[warehouse]
# private = "warehouse/private.duckdb"

[training]
# seed = 0

[scoring]
value_column = "monthly_fee"

[tiers]
# high = 0.5

[key]
# file = ".churnwh.key"
""" + TINY_NETWORK
TEMPLATE_SQL = {
    "staging/customers.sql": """/*
materialized = "table"
grain = ["customer_pseudonym"]
description = "One row per customer, keyed by pseudonym."

[columns.customer_pseudonym]
privacy = "pseudonym"
checks = ["not_null", "unique"]

[columns.churned]
accepted_values = [0, 1]
*/
SELECT k.customer_pseudonym, c.region, date_diff('day', c.signup_date, getvariable('as_of')) AS tenure_days,
    c.plan, c.monthly_fee, c.support_calls, c.churned
FROM raw.customers AS c
JOIN raw.customer_keys AS k ON k.customer_id = c.customer_id
""",
    "marts/training_set.sql": """/*
materialized = "table"
grain = ["customer_pseudonym"]
*/
SELECT customer_pseudonym, CAST(NULL AS DATE) AS observation_date, region, tenure_days, plan, monthly_fee,
    support_calls, churned
FROM staging.customers
""",
    "marts/scoring_set.sql": """/*
materialized = "table"
grain = ["customer_pseudonym"]
*/
SELECT customer_pseudonym, getvariable('as_of') AS observation_date, region, tenure_days, plan, monthly_fee,
    support_calls
FROM staging.customers
WHERE churned = 0
""",
}


@pytest.fixture(scope="module")
def template(scratch) -> Path:
    """A flat project with an e-mail column, 200 customers (one canary), the tiny network; not loaded."""
    from churnwh.privacy import keys

    project = scratch / "template"
    for relative, text in {"churnwh.toml": TEMPLATE_CONFIG, "data/customers.csv": csv_text(customer_rows(200)),
                           **{f"sql/{name}": sql for name, sql in TEMPLATE_SQL.items()}}.items():
        (project / relative).parent.mkdir(parents=True, exist_ok=True)
        (project / relative).write_text(text)
    keys.generate_key_file(project / ".churnwh.key")
    return project


def test_in_process_harness_matches_a_real_process(template, scratch):
    """Same exit code and same stderr line in-process as in a real `python -m churnwh` process."""
    project = fresh_copy(template, scratch)
    (project / "sql" / "marts" / "broken.sql").write_text("/*\nmaterialized = 'tabel'\n*/\nSELECT 1 AS x")
    cases = [("dag",), ("load", "--check"), ("forget", "--file", str(project / "nowhere.txt")), ("lineage", "x")]
    for args in cases:
        inside, real = run_cli(project, *args), churnwh(project, *args)
        assert inside.code == real.returncode, (args, inside, real)
        assert inside.stderr.strip() == real.stderr.strip(), (args, inside, real)
        check_contract(inside)
    (project / "sql" / "marts" / "broken.sql").unlink()
    inside, real = run_cli(project, "dag"), churnwh(project, "dag")
    assert inside.code == real.returncode == 0 and inside.stdout.split() == real.stdout.split()


# --- source CSV content: `churnwh load` ---------------------------------------------------------------

ODD_VALUES = [
    "", " ", "NaN", "nan", "-nan", "inf", "-Infinity", "1e308", "1e309", "-1e308", "-0", "-0.0", "4.9e-324", "1e-400",
    "99999999999999999999999", "-9223372036854775809", "2147483648", "0x1F", "1,5", "12.5.3", "NULL", "N/A", '"',
    '""', "'", "Yes", "No", "yes ", "TRUE", "2023-02-30", "2023-13-01", "0000-00-00", "9999-12-31", "17/03/2023",
    "2023-01-01T25:00:00", "ünïcödé", "名前", "😀", "\u200b", "\ufeff", "\x00", "\x7f", ";", "\t", "|", ",", "\\",
    CANARY_ID, CANARY_EMAIL,
]


@st.composite
def csv_files(draw) -> tuple[bytes, dict[str, str]]:
    """A customer CSV (bytes) and changes to its [sources.customers] declaration."""
    kind = draw(st.sampled_from(["mutated"] * 6 + ["bytes", "empty", "header_only", "blank_lines"]))
    declaration: dict[str, str] = {}
    if draw(st.booleans()):
        declaration["delimiter"] = draw(st.sampled_from([",", ";", "\t", "|", "x", " "]))
    if draw(st.integers(0, 9)) == 0:
        declaration["header"] = "false"
    if kind == "bytes":
        raw = draw(st.binary(max_size=600))
        if draw(st.booleans()):  # random bytes around a canary row, so a leak has something to leak
            raw = raw[: len(raw) // 2] + ",".join([CANARY_ID, CANARY_NAME, CANARY_EMAIL]).encode() + raw[len(raw) // 2:]
        return raw, declaration
    if kind == "empty":
        return draw(st.sampled_from([b"", b"\n", b"\r\n", b"\xef\xbb\xbf", b"\xff\xfe"])), declaration
    if kind == "blank_lines":
        return b"\n" * draw(st.integers(1, 50)), declaration
    delimiter = draw(st.sampled_from([",", ",", ",", ";", "\t", "|"]))
    header: list[str] | None = list(HEADER)
    shape = draw(st.sampled_from(["real", "real", "real", "missing", "shuffled", "renamed", "extra", "duplicate",
                                  "short"]))
    if shape == "missing":
        header = None
    elif shape == "shuffled":
        header = draw(st.permutations(HEADER))
    elif shape == "renamed":
        header[draw(st.integers(0, len(HEADER) - 1))] = draw(st.text(min_size=1, max_size=12))
    elif shape == "extra":
        header.append(draw(st.sampled_from(["notes", "Ünïcode name", "名前", "", "customer_id", "a b"])))
    elif shape == "duplicate":
        header.append(draw(st.sampled_from(HEADER)))
    elif shape == "short":
        header = header[: draw(st.integers(1, len(HEADER) - 1))]
    rows = customer_rows(draw(st.integers(1, 25)), canaries=False)
    rows.insert(draw(st.integers(0, len(rows))), [CANARY_ID, CANARY_NAME, CANARY_EMAIL, "north", "2023-04-11",
                                                  "basic", "20.00", "1", "No"])
    for _ in range(draw(st.integers(0, 8))):
        row = draw(st.integers(0, len(rows) - 1))
        column = draw(st.integers(0, len(HEADER) - 1))
        rows[row][column] = draw(st.one_of(st.sampled_from(ODD_VALUES), st.text(max_size=16)))
    if draw(st.integers(0, 9)) == 0:  # a huge value (DuckDB's CSV reader stops at 2 MB a line by default)
        rows[draw(st.integers(0, len(rows) - 1))][draw(st.integers(0, len(HEADER) - 1))] = "9" * draw(
            st.sampled_from([400, 100_000, 3_000_000]))
    if draw(st.integers(0, 4)) == 0:  # a duplicated customer
        rows.append(list(draw(st.sampled_from(rows))))
    if draw(st.integers(0, 5)) == 0:  # a ragged row
        row = draw(st.integers(0, len(rows) - 1))
        rows[row] = rows[row][: draw(st.integers(0, len(HEADER) + 2))] + ["x"] * draw(st.integers(0, 2))
    quote = draw(st.booleans())

    def cell(value: str) -> str:
        if quote or any(char in value for char in (delimiter, '"', "\n", "\r")):
            return '"' + value.replace('"', '""') + '"'
        return value

    newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = ([delimiter.join(cell(h) for h in header)] if header else []) + [
        delimiter.join(cell(value) for value in row) for row in rows]
    text = newline.join(lines) + draw(st.sampled_from([newline, ""]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "utf-8-sig", "latin-1", "utf-16", "cp1252"]))
    return text.encode(encoding, errors="replace"), declaration


def declare(project: Path, changes: dict[str, str]) -> None:
    config = project / "churnwh.toml"
    text = config.read_text()
    for key, value in changes.items():
        literal = value if value in ("true", "false") else '"' + value.replace("\\", "\\\\").replace("\t", "\\t") + '"'
        text = text.replace('path = "data/customers.csv"\n', f'path = "data/customers.csv"\n{key} = {literal}\n', 1)
    config.write_text(text)


@examples(40)
@given(case=csv_files(), check_only=st.booleans())
@example(case=(csv_text(customer_rows(30)[15:] + customer_rows(30)[:15], header=None).encode(), {}),
         check_only=False)  # no header line and the canary first: its values were named as columns
@example(case=((",".join(HEADER) + "\n" + ",".join([CANARY_ID, CANARY_NAME, CANARY_EMAIL, "north", "2023-04-11",
                "basic", "20.00", "1", "No"]) + "\n").encode(), {"delimiter": "x"}), check_only=False)
def test_fuzzed_source_csv(template, scratch, case, check_only):
    content, declaration = case
    project = fresh_copy(template, scratch)
    (project / "data" / "customers.csv").write_bytes(content)
    declare(project, declaration)
    outcome = run_cli(project, "load", *(["--check"] if check_only else []))
    check_contract(outcome, CANARIES)


# --- TOML values and documents -----------------------------------------------------------------------


def toml_string(text: str) -> str:
    escaped = []
    for char in text:
        if char in '"\\' or ord(char) < 0x20 or ord(char) == 0x7F:
            escaped.append({'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t"}.get(char, f"\\u{ord(char):04x}"))
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (dt.date, dt.datetime, dt.time)):
        return value.isoformat()
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_string(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(type(value))


def toml_document(document: dict) -> str:
    """TOML text for a dict: top-level tables as [sections], deeper tables inline."""
    lines = [f"{toml_string(k)} = {toml_value(v)}" for k, v in document.items() if not isinstance(v, dict)]
    for key, table in document.items():
        if not isinstance(table, dict):
            continue
        lines.append(f"[{toml_string(key)}]")
        for sub, value in table.items():
            if isinstance(value, dict) and all(isinstance(v, dict) for v in value.values()) and value:
                for name, inner in value.items():  # [sources.customers.columns]-like nesting, as users write it
                    lines.append(f"[{toml_string(key)}.{toml_string(sub)}.{toml_string(name)}]")
                    lines += [f"{toml_string(k)} = {toml_value(v)}" for k, v in inner.items()]
                lines.append(f"[{toml_string(key)}]")
            else:
                lines.append(f"{toml_string(sub)} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


ODD_STRINGS = ["", " ", "\x00", "../..", "/", ".", "~", "nul\x00l", "4GB", "4 GB", "80%", "-1", "0", "1B", "lots",
               "x'; DROP TABLE raw.customers; --", "[/bold]", "[red]x", "%d/%m/%Y", "%Q", "schema.table", "a.b.c",
               "marts.training_set", "raw.customers", "customer_id", "churned", "VARCHAR", "plain", "csv", "flat",
               "demo", "events", "data/*.csv", "data/**", "warehouse/private.duckdb", "churnwh.toml", "sql",
               "CHURNWH_KEY", "PATH", "select", "é", "名前", "😀", "\u202e", "a" * 300]
scalars = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, -1, 10, 255, 256, 2**31, 2**53 + 1, 10**15, -(2**63), 2**63 - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.5, 1.0, 1e-320, 1e308, 0.999999999999]),
    st.text(max_size=20),
    st.sampled_from(ODD_STRINGS),
    st.dates(),
    st.datetimes(),
)
toml_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=6)
CONFIG_KEYS = ["warehouse", "private", "published", "models", "memory_limit", "sql", "path", "source", "kind",
               "sources", "customers", "format", "table", "delimiter", "header", "date_format", "id_column",
               "unique_id", "label", "positive", "negative", "columns", "type", "class", "demo", "seed", "start", "end",
               "truth", "training", "model", "scoring_model", "label_column", "date_column", "promote_tolerance",
               "network", "epochs", "hidden", "k", "batch_size", "tiers", "high", "medium", "mode", "actions",
               "scoring", "value_column", "horizon_months", "batch_rows", "key", "env", "file", "create", "vars",
               "as_of", "history_start", "publish", "k_anonymity", "retention", "budget", "cost", "success_rate",
               "control_fraction", "monitoring", "psi_warning"]
keys = st.one_of(st.sampled_from(CONFIG_KEYS), st.text(max_size=10))


def paths_of(document: dict, prefix: tuple = ()) -> list[tuple]:
    found = []
    for key, value in document.items():
        found.append((*prefix, key))
        if isinstance(value, dict):
            found += paths_of(value, (*prefix, key))
    return found


KNOWN_PATHS = [tuple(path.split(".")) for path in """warehouse.private warehouse.published warehouse.models
warehouse.memory_limit sql.path source.kind sources.customers.path sources.customers.format sources.customers.table
sources.customers.delimiter sources.customers.header sources.customers.date_format sources.customers.id_column
sources.customers.unique_id sources.customers.label sources.customers.positive sources.customers.negative
sources.customers.columns sources.customers.columns.monthly_fee sources.customers.columns.monthly_fee.type
sources.customers.columns.region.class sources.customers.columns.extra sources.other demo.customers demo.seed
demo.start demo.end demo.truth training.model training.scoring_model training.id_column training.label_column
training.date_column training.seed training.promote_tolerance network.epochs network.hidden network.k
network.batch_size network.learning_rate tiers.high tiers.medium tiers.mode tiers.actions tiers.actions.high
scoring.value_column scoring.horizon_months scoring.batch_rows key.env key.file key.create vars.as_of
vars.history_start vars.min_history_days vars.my_var vars.select publish.k_anonymity retention.budget
retention.cost retention.cost.high retention.success_rate.high retention.control_fraction
monitoring.psi_warning""".split()]


ODD_PATHS = ["data/customers.csv/x.duckdb", "data", "data/customers.csv", "/", "/dev/null", "/proc/self/mem", ".",
             "..", "~/x.duckdb", "warehouse/private.duckdb", "warehouse/churn.duckdb", "a b/ü.duckdb", "x" * 250,
             "warehouse/models", "sql", "data/*.csv", "data/**/*", "data/[", ".churnwh.key", "churnwh.toml"]
NAMES = ["marts.scoring_set", "marts.training_set", "staging.customers", "raw.customers", "a.b", "a.b.c", "x.",
         "customer_pseudonym", "customer_id", "monthly_fee", "churned", "region", "observation_date", "plan", "",
         "%d/%m/%Y", "%Y-%m-%d %H", "%s", "%", "%%", "csv", "parquet", "duckdb", "flat", "events", "demo", ",", ";",
         "\t", "\"", "'", "top_fraction", "probability", "4GB", "0.5GB", "80%", "1B", "-1GB", "CHURNWH_KEY",
         "A=B", "main.customers"]
BOUNDARY_INTS = [0, 1, 2, -1, 10, 255, 256, 2**31, 2**53 + 1, 2**63 - 1, -(2**63), 10**6]
BOUNDARY_FLOATS = [0.0, -0.0, 1e-320, 0.5, 0.999999, 1.0, 1.5, 1e308, math.inf, -math.inf, math.nan]
VARIABLE_NAMES = ["as_of", "history_start", "min_history_days", "lead_days", "my_var", "select", "order", "group",
                  "Table", "é", "名前", "_", "x" * 80, "a-b", "1x", "getvariable"]


def typed_value(path: tuple, draw):
    """A value of the type the key expects, at odd ends of its range (reaches code past the type checks)."""
    name = path[-1]
    if name in ("private", "published", "models", "temp_directory", "truth", "file") or path[:1] == ("sql",) or (
            path[:1] == ("sources",) and name == "path"):
        return draw(st.sampled_from(ODD_PATHS) | st.text(min_size=1, max_size=12))
    if name in ("customers", "seed", "epochs", "hidden", "k", "batch_size", "horizon_months", "batch_rows",
                "k_anonymity", "threads", "min_history_days", "lead_days", "n_bins", "patience"):
        return draw(st.sampled_from(BOUNDARY_INTS) | st.integers())
    if name in ("high", "medium", "promote_tolerance", "budget", "control_fraction", "psi_warning", "learning_rate"):
        return draw(st.sampled_from(BOUNDARY_FLOATS) | st.floats())
    if name in ("header", "unique_id", "create"):
        return draw(st.booleans())
    if name in ("positive", "negative"):
        return draw(st.lists(st.sampled_from(["Yes", "No", "yes", "", "1", "0"]) | st.integers(-1, 2) | st.booleans(),
                             max_size=3))
    if name in ("start", "end", "as_of", "history_start"):
        return draw(st.dates() | st.datetimes() | st.sampled_from(["2026-01-01", "2026-02-30", "01/01/2026", ""]))
    if name == "type":
        return draw(st.sampled_from(["VARCHAR", "DOUBLE", "BIGINT", "DATE", "TIMESTAMP", "BOOLEAN", "varchar", "TEXT"]))
    if name == "class":
        return draw(st.sampled_from(["plain", "direct_identifier", "quasi_identifier", "pseudonym", "secret", ""]))
    if path[:-1] == ("sources", "customers", "columns"):
        return draw(st.fixed_dictionaries({}, optional={
            "type": st.sampled_from(["VARCHAR", "DOUBLE", "BIGINT", "DATE", "TIMESTAMP", "BOOLEAN", "varchar",
                                     "TEXT", "INTEGER", ""]),
            "class": st.sampled_from(["plain", "direct_identifier", "quasi_identifier", "sensitive", "pseudonym",
                                      "secret", ""])}))
    return draw(st.sampled_from(NAMES) | st.sampled_from(ODD_STRINGS) | st.text(max_size=12))


def mutate(document: dict, draw) -> dict:
    """1-3 changes: set a known key to an odd value of its type (mostly) or to any value, delete a key,
    add a random key, or add a variable."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, 3))):
        operation = draw(st.sampled_from(["typed"] * 6 + ["variable", "set", "delete", "add"]))
        if operation == "variable":
            document.setdefault("vars", {})[draw(st.sampled_from(VARIABLE_NAMES))] = draw(scalars)
            continue
        if operation == "typed":
            path = draw(st.sampled_from(KNOWN_PATHS))
            parent = document
            for key in path[:-1]:
                if not isinstance(parent.get(key), dict):
                    parent[key] = {}
                parent = parent[key]
            parent[path[-1]] = typed_value(path, draw)
            continue
        path = draw(st.sampled_from(KNOWN_PATHS) | st.sampled_from(paths_of(document) or [("x",)]))
        parent = document
        for key in path[:-1]:
            if not isinstance(parent.get(key), dict):
                parent[key] = {}
            parent = parent[key]
        if operation == "delete":
            parent.pop(path[-1], None)
        elif operation == "add":
            target = parent.get(path[-1]) if isinstance(parent.get(path[-1]), dict) else parent
            target[draw(keys)] = draw(toml_values)
        else:
            parent[path[-1]] = draw(toml_values)
    return document


@st.composite
def config_files(draw, base_text: str) -> bytes:
    base = tomllib.loads(base_text)
    kind = draw(st.sampled_from(["mutated"] * 5 + ["random", "corrupted", "bytes", "valid"]))
    if kind == "valid":
        return base_text.encode()
    if kind == "mutated":
        return toml_document(mutate(base, draw)).encode("utf-8")
    if kind == "random":
        return toml_document(draw(st.dictionaries(keys, toml_values | st.dictionaries(keys, toml_values, max_size=4),
                                                  max_size=5))).encode("utf-8")
    if kind == "corrupted":
        text = base_text
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(text)))
            cut = draw(st.integers(0, 20))
            text = text[:at] + draw(st.one_of(st.text(max_size=8), st.sampled_from(
                ["[", "]", "=", '"', "'''", "\n[warehouse]\n", "\n[sources.customers]\n", "\\", "#", "\x00"]))) + text[at + cut:]
        return text.encode("utf-8", errors="surrogatepass")
    return draw(st.binary(max_size=300))


@contextlib.contextmanager
def models_only():
    """`churnwh build` without train, score, explain, monitor and publish: what a header or a config
    value changes is checked by then, and the network stages cost seconds per example."""
    from churnwh import pipeline

    saved = pipeline.STAGES
    pipeline.STAGES = tuple(stage for stage in saved if stage[0] in ("load", "pseudonymize", "classify", "lineage",
                                                                     "models"))
    try:
        yield
    finally:
        pipeline.STAGES = saved


def with_setting(dotted: str, value, **more) -> bytes:
    """The template config with one key set, and more as ``a__b=value`` for a.b (the regression examples below)."""
    document = tomllib.loads(TEMPLATE_CONFIG)
    for key_path, setting in {dotted: value, **{k.replace("__", "."): v for k, v in more.items()}}.items():
        *parents, name = key_path.split(".")
        table = document
        for key in parents:
            table = table.setdefault(key, {})
        table[name] = setting
    return toml_document(document).encode()


@examples(30)
@given(content=config_files(TEMPLATE_CONFIG))
@example(content=with_setting("warehouse.private", "/"))  # Path('/').with_name: ValueError (exit 2)
@example(content=with_setting("warehouse.private", "a\x00b"))  # embedded NUL byte: ValueError (exit 2)
@example(content=with_setting("warehouse.private", "data/customers.csv/x.duckdb"))  # FileExistsError (exit 2)
@example(content=with_setting("vars.select", 1))  # SET VARIABLE select: ParserException (exit 2)
@example(content=with_setting("sources.customers.date_format", "%Q"))  # strptime format: exit 2
@example(content=with_setting("warehouse", {"x[/]": 1}))  # rich markup in an error line: MarkupError
@example(content=with_setting("sources.customers.format", "duckdb",  # a CSV attached as a DuckDB file: exit 2
                              sources__customers__table="marts.scoring_set"))
def test_fuzzed_config_file(template, scratch, content):
    project = fresh_copy(template, scratch)
    (project / "churnwh.toml").write_bytes(content)
    with models_only():
        for args in (("dag",), ("load",), ("build",)):
            check_contract(run_cli(project, *args), CANARIES)


# --- SQL model headers: `churnwh dag`, `churnwh build --select` ----------------------------------------

MODEL_COLUMNS = ["customer_pseudonym", "region", "tenure_days", "monthly_fee", "churned"]
MODEL_BODY = "SELECT customer_pseudonym, region, tenure_days, monthly_fee, churned FROM staging.customers\n"
AUDIT_SQL = [
    "SELECT * FROM this WHERE monthly_fee < 0", "SELECT * FROM this WHERE monthly_fee > 0",
    "SELECT * FROM this WHERE churned = 1", "SELECT customer_id AS customer_pseudonym FROM raw.customers",
    "SELECT email AS customer_pseudonym FROM raw.customers", "SELECT full_name AS customer_pseudonym, * FROM raw.customers",
    "SELECT * FROM raw.customers", "DROP TABLE staging.customers", "SELECT 1; SELECT 2", "", '"unterminated', "'",
    "/*", "SELECT * FROM this)", "SELECT * FROM nowhere.table", "SELECT * FROM read_csv('data/customers.csv')",
    "COPY this TO 'leak.csv'", "SELECT * FROM this WHERE x = getvariable('nope')", "SELECT 1/0 FROM this",
]
column_specs = st.one_of(st.fixed_dictionaries({}, optional={
    "description": st.text(max_size=30),
    "privacy": st.sampled_from(["plain", "pseudonym", "quasi_identifier", "direct_identifier", "secret"]) | scalars,
    "checks": st.lists(st.sampled_from(["not_null", "unique", "positive", ""]), max_size=3) | scalars,
    "accepted_values": st.lists(scalars, max_size=3) | scalars,
    "range": st.lists(st.sampled_from(BOUNDARY_FLOATS) | st.integers() | scalars, max_size=3) | scalars,
    "kind": scalars,
}), scalars)
audit_specs = st.one_of(st.fixed_dictionaries({"name": st.text(max_size=10) | scalars,
                                               "sql": st.sampled_from(AUDIT_SQL) | st.text(max_size=30) | scalars}),
                        scalars)
headers = st.fixed_dictionaries({}, optional={
    "materialized": st.sampled_from(["table", "view", "TABLE", "ephemeral"]) | scalars,
    "grain": st.lists(st.sampled_from([*MODEL_COLUMNS, "nope", "Region", ""]), max_size=3) | scalars,
    "description": st.text(max_size=40) | scalars,
    "columns": st.dictionaries(st.sampled_from([*MODEL_COLUMNS, "missing_col", "ü", 'a"b', ""]), column_specs,
                               max_size=3) | scalars,
    "audits": st.lists(audit_specs, max_size=2) | scalars,
    "tags": st.lists(st.text(max_size=5), max_size=2) | scalars,
    "owner": scalars,
})


BASE_HEADER = {
    "materialized": "table", "grain": ["customer_pseudonym"], "description": "A fuzzed model.",
    "columns": {"monthly_fee": {"description": "Fee.", "checks": ["not_null"], "range": [0, 1000]},
                "region": {"privacy": "quasi_identifier", "accepted_values": ["north", "south", "east"]}},
    "audits": [{"name": "fee_positive", "sql": "SELECT * FROM this WHERE monthly_fee < 0"}],
}
HEADER_VALUES = {
    "materialized": st.sampled_from(["table", "view", "TABLE", "ephemeral", ""]),
    "grain": st.lists(st.sampled_from([*MODEL_COLUMNS, "nope", "Region", ""]), max_size=3),
    "description": st.text(max_size=40) | st.sampled_from(ODD_STRINGS),
    "tags": st.lists(st.text(max_size=5), max_size=2),
    "privacy": st.sampled_from(["plain", "pseudonym", "quasi_identifier", "direct_identifier", "sensitive", "x"]),
    "checks": st.lists(st.sampled_from(["not_null", "unique", "positive", ""]), max_size=3),
    "accepted_values": st.lists(st.sampled_from(["north", "south", 1, 0, 1.5, "", "'", "\\"]) | scalars, max_size=3),
    "range": st.lists(st.sampled_from(BOUNDARY_FLOATS) | st.sampled_from(BOUNDARY_INTS), min_size=2, max_size=2),
    "name": st.text(max_size=10) | st.sampled_from(ODD_STRINGS),
    "sql": st.sampled_from(AUDIT_SQL) | st.text(max_size=30),
}


def mutate_header(draw) -> dict:
    """The valid base header with 1-3 changes: mostly a known key set to a value of its type."""
    header = copy.deepcopy(BASE_HEADER)
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.sampled_from(["top", "column", "new_column", "audit", "delete", "any"]))
        if where == "top":
            key = draw(st.sampled_from(["materialized", "grain", "description", "tags"]))
            header[key] = draw(HEADER_VALUES[key])
        elif where in ("column", "new_column"):
            name = draw(st.sampled_from(["monthly_fee", "region"]) if where == "column" else
                        st.sampled_from([*MODEL_COLUMNS, "missing_col", "ü", 'a"b', "", "Region"]))
            key = draw(st.sampled_from(["privacy", "checks", "accepted_values", "range", "description"]))
            columns = header["columns"] if isinstance(header.get("columns"), dict) else {}
            header["columns"] = columns
            column = columns.setdefault(name, {})
            column[key] = draw(HEADER_VALUES.get(key, st.text(max_size=20)))
        elif where == "audit":
            audits = header["audits"] if isinstance(header.get("audits"), list) else []
            header["audits"] = audits
            audits.append({"name": draw(HEADER_VALUES["name"]), "sql": draw(HEADER_VALUES["sql"])})
        elif where == "delete":
            header.pop(draw(st.sampled_from(sorted(header) or ["x"])), None)
        else:
            header[draw(st.sampled_from([*BASE_HEADER, "owner", "kind"]))] = draw(toml_values)
    return header


@st.composite
def model_files(draw) -> bytes:
    kind = draw(st.sampled_from(["mutated"] * 6 + ["structured", "random", "broken", "unclosed", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200)) + MODEL_BODY.encode()
    if kind == "random":
        header = toml_document(draw(st.dictionaries(keys, toml_values, max_size=4)))
    elif kind == "mutated":
        header = toml_document(mutate_header(draw))
    elif kind == "structured":
        header = toml_document(draw(headers))
    else:
        header = draw(st.text(max_size=60) | st.sampled_from(['materialized = "table" */ grain = 1', "[columns.x",
                                                              'description = """', "= 1", "*/", "/*"]))
    closing = "" if kind == "unclosed" else "*/\n"
    return f"{draw(st.sampled_from(['', ' ', chr(10)]))}/*\n{header}\n{closing}{MODEL_BODY}".encode("utf-8")


@pytest.fixture(scope="module")
def modelled(template, scratch) -> Path:
    """The template after `churnwh build` through the models stage (no network)."""
    project = fresh_copy(template, scratch)
    with models_only():
        outcome = run_cli(project, "build")
    assert outcome.code == 0, outcome.text
    return project


@examples(30)
@given(content=model_files())
@example(content=b'/*\naudits = false\n*/\n' + MODEL_BODY.encode())  # TypeError (exit 2)
@example(content=b'/*\n[[audits]]\nname = "a"\nsql = "\'unterminated"\n*/\n' + MODEL_BODY.encode())  # TokenError
@example(content=('/*\n[[audits]]\nname = "a"\nsql = "SELECT customer_id AS customer_pseudonym FROM raw.customers"'
                  '\n*/\n' + MODEL_BODY).encode())  # the failed audit's "examples" were raw customer ids
def test_fuzzed_model_header(modelled, scratch, content):
    project = fresh_copy(modelled, scratch)
    (project / "sql" / "marts" / "fuzz_model.sql").write_bytes(content)
    check_contract(run_cli(project, "dag"), CANARIES)
    with models_only():
        check_contract(run_cli(project, "build", "--select", "marts.fuzz_model"), CANARIES)


# --- customer id lists: `churnwh forget` ------------------------------------------------------------

EXISTING_IDS = ["K00000", "K00001", "K00150", CANARY_ID]
ODD_IDS = ["", " ", "K00001 ", " K00001", "k00001", "K00001\r", "K00001,K00002", "'; DROP TABLE raw.customers; --",
           "' OR '1'='1", "%", "_", "*", "\\", "NULL", "😀", "\u202e", "\ufeffK00001", "x" * 129, "y" * 10_000,
           "-x", "--file", "#K00002", "[red]K00003[/red]"]
customer_ids = st.one_of(
    st.sampled_from(EXISTING_IDS),
    st.sampled_from(ODD_IDS),
    st.text(max_size=16),
    st.binary(min_size=1, max_size=12).filter(lambda b: b"\x00" not in b).map(os.fsdecode),  # argv bytes, as a shell passes them
)


@st.composite
def forget_requests(draw) -> tuple[list[str], bytes | None, bool]:
    """Ids given as arguments, the bytes of an --file (or None), and whether the canary is requested."""
    ids = draw(st.lists(customer_ids, max_size=5))
    mode = draw(st.sampled_from(["args", "file", "both"]))
    if mode == "args":
        return ids, None, CANARY_ID in ids
    content_kind = draw(st.sampled_from(["lines"] * 4 + ["bytes"]))
    erases = False
    if content_kind == "bytes":
        content = draw(st.binary(max_size=200))
    else:
        lines = draw(st.lists(customer_ids | st.sampled_from(["# a comment", "", "  "]), max_size=8))
        newline = draw(st.sampled_from(["\n", "\r\n", "\r"]))
        text = newline.join(lines) + draw(st.sampled_from(["", newline]))
        encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"]))
        content = text.encode(encoding, errors="surrogateescape" if encoding.startswith("utf-8") else "replace")
        erases = CANARY_ID in lines and encoding.startswith("utf-8")  # a byte-order mark included
    ids = ids if mode == "both" else []
    return ids, content, erases or CANARY_ID in ids


@pytest.fixture(scope="module")
def built(template, scratch) -> Path:
    """The template after a full `churnwh build` (trained, scored, published)."""
    project = fresh_copy(template, scratch)
    outcome = run_cli(project, "build")
    assert outcome.code == 0, outcome.text
    return project


def raw_customers(project: Path) -> int:
    import duckdb

    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        return con.execute("SELECT count(*) FROM raw.customers").fetchone()[0]


@examples(12)
@given(request=forget_requests())
@example(request=(["\udc80"], None, False))  # a non-UTF-8 argument byte: UnicodeEncodeError (exit 2)
@example(request=([], f"{CANARY_ID}\nK00001\n".encode("utf-8-sig"), True))  # BOM: the first id was never found
def test_fuzzed_forget_ids(built, scratch, request):
    ids, content, erases = request
    project = fresh_copy(built, scratch)
    args = ["forget"]
    if content is not None:
        (project / "ids.txt").write_bytes(content)
        args += ["--file", str(project / "ids.txt")]
    before = raw_customers(project)
    outcome = run_cli(project, *args, *(["--", *ids] if ids else []))
    check_contract(outcome, CANARIES)
    if outcome.code == 1:
        assert raw_customers(project) == before, "a failed forget changed the private file"
    if outcome.code == 0 and erases:
        for name in ("private.duckdb", "churn.duckdb"):
            data = (project / "warehouse" / name).read_bytes()
            assert CANARY_ID.encode() not in data and CANARY_EMAIL.encode() not in data, name
