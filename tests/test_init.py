"""`churnwh init`: each project shape is complete and builds; a flat CSV goes all the way to a
published churn_scores and an export, with no direct identifier in either; `--flat --from FILE`
declares and models the user's own file; the event-log template honours consent; a regular
(non-editable) install ships the canonical SQL models."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import stat
from pathlib import Path

import duckdb
import pytest

from tests.helpers import TINY_NETWORK, churnwh, private
from tests.test_sources import customer_rows, write_csv


def init(tmp_path: Path, *flags: str) -> Path:
    project = tmp_path / "proj"
    result = churnwh(Path("."), "init", str(project), *flags)
    assert result.returncode == 0, result.stderr
    return project


def tiny(project: Path) -> None:
    """Replace the scaffold's [network] section with the tests' tiny network."""
    config = project / "churnwh.toml"
    text = config.read_text()
    assert "\n[network]\n" in text
    config.write_text(text.replace("\n[network]\n", TINY_NETWORK, 1))


@pytest.mark.parametrize("flags", [(), ("--flat",), ("--events",)])
def test_init_writes_a_complete_project(tmp_path, flags):
    project = init(tmp_path, *flags)
    for name in ("churnwh.toml", ".gitignore", "README.md", ".churnwh.key"):
        assert (project / name).exists(), name
    assert stat.S_IMODE(os.stat(project / ".churnwh.key").st_mode) == 0o600
    ignore = (project / ".gitignore").read_text()
    for pattern in ("warehouse/", "*.duckdb", "*.key", ".churnwh.key", "data/"):
        assert pattern in ignore
    assert list((project / "sql").rglob("*.sql"))
    config = (project / "churnwh.toml").read_text()
    for section in ("[warehouse]", "[training]", "[network]", "[scoring]", "[tiers]", "[publish]", "[key]", "[vars]"):
        assert section in config, section
    dag = churnwh(project, "dag")
    assert dag.returncode == 0, dag.stderr


def test_init_refuses_a_folder_that_is_not_empty(tmp_path):
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "mine.txt").write_text("x")
    result = churnwh(Path("."), "init", str(tmp_path / "proj"))
    assert result.returncode == 1 and "not empty" in result.stderr
    assert churnwh(Path("."), "init", str(tmp_path / "x"), "--flat", "--events").returncode == 1


def test_flat_csv_to_published_scores_and_export(tmp_path):
    project = init(tmp_path, "--flat")
    tiny(project)
    write_csv(project / "data" / "customers.csv", customer_rows(400))
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    assert "no consent source is declared" in result.stdout and "legitimate interest" in result.stdout
    published = duckdb.connect(str(project / "warehouse" / "churn.duckdb"), read_only=True)
    scores = published.execute("SELECT count(*), min(as_of) FROM churn_scores").fetchone()
    runs = published.execute("SELECT count(*) FROM model_runs").fetchone()[0]
    published.close()
    with private(project) as con:
        current = con.execute("SELECT count(*) FROM raw.customers WHERE churned = 0").fetchone()[0]
        split = con.execute("SELECT count(*) FROM marts.training_set").fetchone()[0]
    assert scores == (current, dt.date(2026, 1, 1)) and runs == 1 and split == 400
    data = (project / "warehouse" / "churn.duckdb").read_bytes()
    for secret in (b"Ada Quill", b"K00001"):
        assert secret not in data

    for fmt in ("csv", "parquet"):
        target = tmp_path / f"scores.{fmt}"
        exported = churnwh(project, "export", "churn_scores", "--format", fmt, "--output", str(target))
        assert exported.returncode == 0, exported.stderr
        reader = "read_csv" if fmt == "csv" else "read_parquet"
        assert duckdb.sql(f"SELECT count(*) FROM {reader}('{target}')").fetchall()[0][0] == current
    assert b"Ada Quill" not in (tmp_path / "scores.csv").read_bytes()
    bad = churnwh(project, "export", "churn_score")
    assert bad.returncode == 1 and "did you mean 'churn_scores'" in bad.stderr
    assert churnwh(project, "export", "raw.customers").returncode == 1  # only the published file is read
    evaluate = churnwh(project, "evaluate")  # the stratified split is reproduced for evaluation
    assert evaluate.returncode == 0, evaluate.stderr


CONSENT_COLUMNS = "event_id, customer_id, purpose, action, event_ts, source, regulation"


def test_inactivity_project_builds_from_demo_purchases(tmp_path):
    """--events: churn = no purchase within inactivity_days; point-in-time features and labels; consent
    applied before features: a customer who withdraws profiling consent (GDPR objection, or a Global
    Privacy Control opt-out) is in no feature row, training row or score; a marketing opt-out is not."""
    from churnwh.sources import demo

    project = init(tmp_path, "--events")
    tiny(project)
    data = demo.simulate(300, 5, dt.date(2024, 1, 1), dt.date(2025, 12, 31))
    con = duckdb.connect()
    con.register("t", data.tables["transactions"])
    con.register("c", data.tables["consent_events"])
    con.execute(f"COPY (SELECT customer_id, transaction_ts AS event_ts, amount FROM t) TO "
                f"'{project}/data/events.csv' (HEADER)")
    con.execute(f"COPY (SELECT {CONSENT_COLUMNS} FROM c) TO '{project}/data/consent_events.csv' (HEADER)")
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    assert "consent events" in result.stdout
    with private(project) as db:
        # no training row looks past as_of; features only from days before the observation date
        late = db.execute("SELECT count(*) FROM marts.training_set "
                          "WHERE observation_date + getvariable('inactivity_days') > DATE '2026-01-01'").fetchone()
        assert late[0] == 0
        leaked = db.execute(
            """SELECT count(*) FROM features.customer_features AS f
               WHERE f.days_since_last_activity < 1""").fetchone()[0]
        assert leaked == 0
        labels = db.execute("SELECT count(DISTINCT churned), count(DISTINCT observation_date) FROM marts.training_set"
                            ).fetchone()
        assert labels[0] == 2 and labels[1] > 6
        assert db.execute("SELECT count(*) FROM ml.churn_scores").fetchone()[0] > 0

    # the demo's own objectors are already absent; now three scored customers change their minds
    with private(project) as db:
        assert db.execute(NOT_HELD.format(table="ml.churn_scores")).fetchone()[0] == 0
        scored = db.execute("SELECT k.customer_id, k.customer_pseudonym FROM ml.churn_scores AS s "
                            "JOIN raw.customer_keys AS k USING (customer_pseudonym) ORDER BY 2 LIMIT 3").fetchall()
    (objector, objector_p), (opted_out, opted_out_p), (no_mail, no_mail_p) = scored
    with (project / "data" / "consent_events.csv").open("a") as handle:
        handle.write(f"x-1,{objector},profiling,withdraw,2025-12-20 10:00:00,preference_center,GDPR\n"
                     f"x-2,{opted_out},profiling,opt_out,2025-12-21 10:00:00,gpc,CCPA\n"
                     f"x-3,{no_mail},marketing,withdraw,2025-12-21 10:00:00,preference_center,GDPR\n")
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    with private(project) as db:
        for table in ("features.observation_spine", "features.customer_features", "marts.training_set",
                      "marts.scoring_set", "ml.churn_scores"):
            present = {p for (p,) in db.execute(f"SELECT DISTINCT customer_pseudonym FROM {table}").fetchall()}
            assert not present & {objector_p, opted_out_p}, table
            assert db.execute(NOT_HELD.format(table=table)).fetchone()[0] == 0, table
        assert db.execute("SELECT count(*) FROM ml.churn_scores WHERE customer_pseudonym = ?",
                          [no_mail_p]).fetchone()[0] == 1
    published = duckdb.connect(str(project / "warehouse" / "churn.duckdb"), read_only=True)
    try:
        for table in ("churn_scores", "churn_drivers"):
            assert not published.execute(f"SELECT count(*) FROM {table} WHERE customer_pseudonym IN (?, ?)",
                                         [objector_p, opted_out_p]).fetchone()[0]
        excluded = published.execute("SELECT rows_excluded FROM audit_log WHERE event = 'build' "
                                     "ORDER BY logged_at DESC LIMIT 1").fetchone()[0]
    finally:
        published.close()
    assert '"gdpr_objection"' in excluded and '"gpc"' in excluded and objector not in excluded


NOT_HELD = """SELECT count(*) FROM {table} AS t
    WHERE t.customer_pseudonym IN (SELECT customer_pseudonym FROM staging.consent_state
                                   WHERE purpose = 'profiling' AND state = 'withdrawn' AND is_latest)"""


# --- `churnwh init --flat --from FILE`: the user's own file, declared and modelled at once ----------------

CANARY = "Qzxcanary"


def canary_csv(path: Path, rows: int = 300) -> Path:
    """A semicolon CSV with day-first dates, a name, an e-mail, postcodes with leading zeros, a Yes/No
    column named like an e-mail, a row number and a free-text note: the shapes a real export has."""
    import csv
    import random

    rng = random.Random(5)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter=";")
        writer.writerow(["Client Nr", "Full Name", "E-mail", "Zip", "Signup Date", "plan", "Monthly Fee", "calls",
                         "Has Email Opt In", "row", "Churned?"])
        for i in range(rows):
            calls = rng.randint(0, 6)
            writer.writerow([f"C-{i:04d}", f"{CANARY} Person{i}", f"p{i}@example.org", f"0{rng.randint(1000, 9999)}",
                             f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/202{rng.randint(1, 4)}",
                             rng.choice(["basic", "plus"]), f"{rng.uniform(10, 90):.2f}", calls,
                             rng.choice(["true", "false"]), i + 1, "yes" if rng.random() < 0.1 + 0.1 * calls else "no"])
    return path


def declared(project: Path) -> dict[str, tuple[str, str]]:
    from churnwh.config import load_config

    (source,) = load_config(project).sources
    return {c.name: (c.type, c.privacy) for c in source.columns}


def test_init_from_a_csv_declares_its_columns_and_builds_without_publishing_the_name(tmp_path):
    data = canary_csv(tmp_path / "shop.csv")
    project = init(tmp_path, "--flat", "--from", str(data), "--id-column", "Client Nr", "--label", "Churned?")
    config = (project / "churnwh.toml").read_text()
    assert 'delimiter = ";"' in config and 'date_format = "%d/%m/%Y"' in config and "REVIEW EVERY LINE" in config
    assert 'positive = ["yes"]' in config and 'negative = ["no"]' in config and CANARY not in config
    assert declared(project) == {
        "Client Nr": ("VARCHAR", "direct_identifier"), "Full Name": ("VARCHAR", "direct_identifier"),
        "E-mail": ("VARCHAR", "direct_identifier"), "Zip": ("VARCHAR", "quasi_identifier"),
        "Signup Date": ("DATE", "plain"), "plan": ("VARCHAR", "plain"), "Monthly Fee": ("DOUBLE", "plain"),
        "calls": ("BIGINT", "plain"), "Has Email Opt In": ("BOOLEAN", "plain"), "row": ("BIGINT", "plain"),
        "Churned?": ("VARCHAR", "plain"),
    }
    staging = (project / "sql" / "staging" / "customers.sql").read_text()
    selected = staging.split("\nSELECT\n", 1)[1]  # what the model reads (comments above say what it leaves out)
    for left_out in ('c."Full Name"', 'c."E-mail"', 'c."Client Nr"', "c.Zip", "c.row"):
        assert left_out not in selected, left_out
    assert "signup_date_days" in selected and 'value_column = "monthly_fee"' in config
    tiny(project)
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    with private(project) as con:
        stayed = con.execute('SELECT count(*) FROM raw.customers WHERE "Churned?" = 0').fetchone()[0]
        assert con.execute("SELECT count(*) FROM ml.churn_scores").fetchone()[0] == stayed > 0
        derived = [f"{s}.{t}" for s, t in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema <> 'raw'").fetchall()]
        for relation in derived:  # the name and e-mail reached no model, score or audit table
            text = str(con.execute(f"SELECT * FROM {relation}").fetchall())
            assert CANARY not in text and "@example.org" not in text, relation
    assert CANARY.encode() not in (project / "warehouse" / "churn.duckdb").read_bytes()
    target = tmp_path / "scores.csv"
    assert churnwh(project, "export", "churn_scores", "--format", "csv", "-o", str(target)).returncode == 0
    assert CANARY not in target.read_text() and "C-0" not in target.read_text()


def test_init_from_a_parquet_file_reads_its_types(tmp_path):
    data = canary_csv(tmp_path / "shop.csv", rows=60)
    parquet = tmp_path / "shop.parquet"
    duckdb.execute(f"COPY (SELECT * REPLACE (strptime(\"Signup Date\", '%d/%m/%Y')::DATE AS \"Signup Date\", "
                   f"CAST(\"Monthly Fee\" AS DECIMAL(8, 2)) AS \"Monthly Fee\") FROM read_csv('{data}', "
                   f"all_varchar = true)) TO '{parquet}' (FORMAT parquet)")
    project = init(tmp_path, "--flat", "--from", str(parquet), "--id-column", "Client Nr", "--label", "Churned?")
    columns = declared(project)
    assert columns["Signup Date"][0] == "DATE" and columns["Monthly Fee"][0] == "DOUBLE"
    assert columns["calls"][0] == "BIGINT" and columns["Full Name"][1] == "direct_identifier"
    assert 'format = "parquet"' in (project / "churnwh.toml").read_text()
    check = churnwh(project, "load", "--check")
    assert check.returncode == 0 and "60 rows" in check.stdout, check.stderr


TELCO = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "telco_ibm" / "Telco-Customer-Churn.csv"
BANK = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "bank_churn_modelling" / "Churn_Modelling.csv"


def head(source: Path, rows: int, target: Path) -> Path:
    target.write_text("".join(source.read_text().splitlines(keepends=True)[: rows + 1]))
    return target


@pytest.mark.skipif(not TELCO.exists(), reason="the public Telco data is not in ../shared/datasets")
def test_init_from_a_telco_sample_builds_at_once(tmp_path):
    data = head(TELCO, 400, tmp_path / "telco.csv")
    project = init(tmp_path, "--flat", "--from", str(data), "--id-column", "customerID", "--label", "Churn")
    columns = declared(project)
    assert columns["customerID"] == ("VARCHAR", "direct_identifier")
    assert columns["gender"][1] == columns["SeniorCitizen"][1] == "quasi_identifier"
    assert columns["PhoneService"][1] == "plain"  # named like a phone, but a Yes/No
    assert columns["TotalCharges"][0] == columns["MonthlyCharges"][0] == "DOUBLE"
    assert 'positive = ["Yes"]' in (project / "churnwh.toml").read_text()
    tiny(project)
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    published = (project / "warehouse" / "churn.duckdb").read_bytes()
    ids = [line.split(",")[0] for line in data.read_text().splitlines()[1:]]
    assert not [i for i in ids if i.encode() in published]


@pytest.mark.skipif(not BANK.exists(), reason="the public bank churn data is not in ../shared/datasets")
def test_init_from_a_bank_sample_guesses_the_label_and_leaves_out_surname_and_row_number(tmp_path):
    data = head(BANK, 300, tmp_path / "bank.csv")
    project = init(tmp_path, "--flat", "--from", str(data), "--id-column", "CustomerId")
    columns = declared(project)
    assert columns["Surname"] == ("VARCHAR", "direct_identifier")
    assert columns["Age"][1] == columns["Geography"][1] == "quasi_identifier"
    config = (project / "churnwh.toml").read_text()
    assert 'label = "Exited"' in config and 'positive = ["1"]' in config
    staging = (project / "sql" / "staging" / "customers.sql").read_text()
    assert "c.Surname" not in staging and "c.RowNumber" not in staging and "c.CustomerId" not in staging
    check = churnwh(project, "load", "--check")
    assert check.returncode == 0 and "300 rows" in check.stdout, check.stderr
    dag = churnwh(project, "dag")  # the SQL parses and reads only known tables (the builds run above)
    assert dag.returncode == 0 and "marts.scoring_set" in dag.stdout, dag.stderr


def test_init_from_refuses_what_it_cannot_guess_with_one_line(tmp_path):
    data = canary_csv(tmp_path / "shop.csv", rows=60)
    duplicated = tmp_path / "dup.csv"
    duplicated.write_text(data.read_text().replace("C-0002;", "C-0001;"))
    unlabelled = tmp_path / "unlabelled.csv"
    unlabelled.write_text(data.read_text().replace(";no\n", ";\n", 2))
    cases = [
        (("--from", str(data)), "--from reads a flat customer table"),
        (("--flat", "--label", "x"), "--label describes the file given with --from"),
        (("--flat", "--from", str(tmp_path / "nowhere.csv")), "no such file"),
        (("--flat", "--from", str(data)), "pass --id-column COLUMN"),
        (("--flat", "--from", str(data), "--id-column", "Client No"), "did you mean 'Client Nr'"),
        (("--flat", "--from", str(data), "--id-column", "Client Nr", "--label", "Full Name"), "more than 10 distinct"),
        (("--flat", "--from", str(data), "--id-column", "Client Nr", "--label", "Churned?", "--positive", "Yes"),
         "no row of column Churned? holds that value"),
        (("--flat", "--from", str(duplicated), "--id-column", "Client Nr"), "repeats 1 values"),
        (("--flat", "--from", str(unlabelled), "--id-column", "Client Nr", "--label", "Churned?"), "empty in 2 rows"),
    ]
    for number, (flags, expected) in enumerate(cases):
        result = churnwh(Path("."), "init", str(tmp_path / f"p{number}"), *flags)
        message = result.stderr.strip()
        assert result.returncode == 1 and expected in message and len(message.splitlines()) == 1, (flags, message)
        assert CANARY not in message and "C-0001" not in message
        assert not (tmp_path / f"p{number}").exists()


# --- consent in a flat project: `churnwh init --flat --consent FILE` ----------------------------------------

CONSENT_HEADER = "event_id,customer_id,purpose,action,event_ts,source,regulation\n"


def test_a_flat_project_with_consent_never_profiles_objectors_or_opt_outs(tmp_path):
    """--consent FILE: a GDPR objection and a Global Privacy Control opt-out are in no feature row, training
    row, score or published table, and the audit log counts them by reason; a marketing-only withdrawal and a
    withdrawal later granted again are still scored. Without --consent, init and build say every customer is
    profiled under legitimate interest."""
    import json

    rows = customer_rows(300)
    data = write_csv(tmp_path / "customers.csv", rows)
    stayed = [r[0] for r in rows if r[7] == "No"]
    objector, opted_out, no_mail, back = stayed[:4]
    consent = tmp_path / "consent.csv"
    consent.write_text(CONSENT_HEADER
                       + "".join(f"g{i},{cid},profiling,grant,2024-01-0{1 + i % 9} 09:00:00,signup_form,GDPR\n"
                                 for i, cid in enumerate(stayed[4:40]))
                       + f"e1,{objector},profiling,withdraw,2025-06-01 10:00:00,preference_center,GDPR\n"
                       f"e2,{opted_out},profiling,opt_out,2025-07-01 10:00:00,gpc,CCPA\n"
                       f"e3,{no_mail},marketing,withdraw,2025-07-01 10:00:00,preference_center,GDPR\n"
                       f"e4,{back},profiling,withdraw,2025-01-01 10:00:00,preference_center,GDPR\n"
                       f"e5,{back},profiling,grant,2025-03-01 10:00:00,preference_center,GDPR\n")
    plain = churnwh(Path("."), "init", str(tmp_path / "plain"), "--flat", "--from", str(data))
    assert plain.returncode == 0 and "profiled under legitimate interest" in plain.stdout, plain.stderr
    assert "# No consent source is declared" in (tmp_path / "plain" / "churnwh.toml").read_text()

    made = churnwh(Path("."), "init", str(tmp_path / "proj"), "--flat", "--from", str(data), "--consent", str(consent))
    assert made.returncode == 0 and "consent.csv (41 decisions)" in made.stdout, made.stderr
    assert "legitimate interest" not in made.stdout
    project = tmp_path / "proj"
    config = (project / "churnwh.toml").read_text()
    assert "[sources.consent_events]" in config and "allow_empty = true" in config
    for model in ("consent_events.sql", "consent_state.sql"):  # the canonical consent rules, byte for byte
        assert (project / "sql" / "staging" / model).read_bytes() == (Path("sql") / "staging" / model).read_bytes()
    tiny(project)
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    assert "legitimate interest" not in result.stdout

    with private(project) as db:
        pseudonym = dict(db.execute("SELECT customer_id, customer_pseudonym FROM raw.customer_keys WHERE customer_id "
                                    "IN (?, ?, ?, ?)", [objector, opted_out, no_mail, back]).fetchall())
        excluded = {pseudonym[objector], pseudonym[opted_out]}
        for table in ("staging.customers", "marts.training_set", "marts.scoring_set", "ml.churn_scores"):
            present = {p for (p,) in db.execute(f"SELECT customer_pseudonym FROM {table}").fetchall()}
            assert not present & excluded, table
            assert db.execute(NOT_HELD.format(table=table)).fetchone()[0] == 0, table
            if table != "marts.training_set":
                assert {pseudonym[no_mail], pseudonym[back]} <= present, table
        assert db.execute("SELECT count(*) FROM marts.training_set").fetchone()[0] == 298
        assert db.execute("SELECT count(*) FROM ml.churn_scores").fetchone()[0] == len(stayed) - 2
    published = duckdb.connect(str(project / "warehouse" / "churn.duckdb"), read_only=True)
    try:
        tables = [t for (t,) in published.execute("SELECT DISTINCT table_name FROM information_schema.columns "
                                                  "WHERE column_name = 'customer_pseudonym'").fetchall()]
        assert "churn_scores" in tables
        for table in tables:
            assert not published.execute(f"SELECT count(*) FROM {table} WHERE customer_pseudonym IN (?, ?)",
                                         sorted(excluded)).fetchone()[0], table
        assert published.execute("SELECT count(*) FROM churn_scores WHERE customer_pseudonym = ?",
                                 [pseudonym[no_mail]]).fetchone()[0] == 1
        audit = published.execute("SELECT rows_excluded FROM audit_log WHERE event = 'build' "
                                  "ORDER BY logged_at DESC LIMIT 1").fetchone()[0]
    finally:
        published.close()
    assert json.loads(audit)["customers_excluded"] == {"gdpr_objection": 1, "gpc": 1}
    assert objector not in audit and pseudonym[objector] not in audit


def test_init_consent_reads_the_users_layout_and_refuses_what_it_cannot_use(tmp_path):
    """The consent file may name its customer id like the customer table, use ; and day-first timestamps;
    a file without the canonical columns, or with dates that read day- and month-first, stops init."""
    data = canary_csv(tmp_path / "shop.csv", rows=60)
    consent = tmp_path / "consent.csv"
    consent.write_text("event_id;Client Nr;purpose;action;event_ts;source;regulation\n"
                       "e1;C-0001;profiling;withdraw;20/06/2025 10:00;preference_center;GDPR\n")
    flags = ("--flat", "--from", str(data), "--id-column", "Client Nr", "--label", "Churned?")
    project = init(tmp_path, *flags, "--consent", str(consent))
    config = (project / "churnwh.toml").read_text()
    assert 'id_column = "Client Nr"' in config and 'date_format = "%d/%m/%Y %H:%M"' in config
    assert 'delimiter = ";"' in config.split("[sources.consent_events]")[1]
    check = churnwh(project, "load", "--check")
    assert check.returncode == 0 and "consent_events: 1 rows" in check.stdout, check.stderr
    ambiguous = tmp_path / "ambiguous.csv"
    ambiguous.write_text(CONSENT_HEADER + "e1,C-0001,profiling,withdraw,01/02/2025 10:00,gpc,CCPA\n")
    incomplete = tmp_path / "incomplete.csv"
    incomplete.write_text("event_id,customer_id,purpose,when\n")
    for number, (path, expected) in enumerate([(ambiguous, "day-first and month-first"),
                                               (incomplete, "no column action, event_ts, source, regulation"),
                                               (tmp_path / "nowhere.csv", "no such file")]):
        result = churnwh(Path("."), "init", str(tmp_path / f"c{number}"), *flags, "--consent", str(path))
        message = result.stderr.strip()
        assert result.returncode == 1 and expected in message and len(message.splitlines()) == 1, message
        assert "C-0001" not in message and not (tmp_path / f"c{number}").exists()


# --- a regular (non-editable) install ships the canonical SQL models -------------------------------------


def see_dependencies_of_this_environment(python):
    """Give the venv of `python` the site-packages of the interpreter running the tests (`.venv` in CI) as plain
    path entries: a `--system-site-packages` venv would see the *base* interpreter's packages instead, which on a
    fresh machine has none of ours. Plain entries, so this environment's own .pth files (its editable churnwh)
    stay inactive and `import churnwh` finds the wheel."""
    import subprocess
    import sysconfig

    venv_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip()
    ours = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(venv_site) / "dependencies.pth").write_text("".join(f"{path}\n" for path in ours))


def test_a_wheel_ships_the_sql_models_and_init_works_from_a_regular_install(tmp_path):
    """`pip install .` (no -e): the wheel carries the repository's sql/ as churnwh/sql_templates, byte for
    byte (one copy: pyproject maps the package to sql/), and `churnwh init` + `dag` work from it."""
    import subprocess
    import sys
    import zipfile

    from tests.helpers import REPO

    source = tmp_path / "src"  # a copy, so the build writes nothing into the working tree
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (source / name).write_bytes((REPO / name).read_bytes())
    for folder in ("churnwh", "sql"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                            str(source)], capture_output=True, text=True, timeout=300)
    if built.returncode != 0 and "Could not find a version that satisfies" in built.stderr:
        pytest.skip("no package index to fetch the build backend (setuptools) from")
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("churnwh-*.whl")
    repo_sql = sorted(p.relative_to(REPO / "sql").as_posix() for p in (REPO / "sql").rglob("*.sql"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        shipped = sorted(n.removeprefix("churnwh/sql_templates/") for n in names
                         if n.startswith("churnwh/sql_templates/") and n.endswith(".sql"))
        assert shipped == repo_sql and len(repo_sql) > 10
        for relative in repo_sql:
            assert archive.read(f"churnwh/sql_templates/{relative}") == (REPO / "sql" / relative).read_bytes()
        modules = {p.relative_to(REPO).as_posix() for p in (REPO / "churnwh").rglob("*.py")}
        assert {n for n in names if n.endswith(".py")} == modules

    venv = tmp_path / "venv"  # churnwh from the wheel, its dependencies from the test run's own environment
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    see_dependencies_of_this_environment(python)
    installed = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                                "--no-index", "-q", str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]
    probe = "import churnwh.sources.scaffold as s; print(s.__file__); print(s.template_sql())"
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the wheel, not a checkout on the path
    where = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path, env=clean,
                           check=True).stdout.split()
    assert all(str(venv) in line for line in where) and where[1].endswith("sql_templates"), where
    project = tmp_path / "fresh"
    for args in (("init", str(project)), ("--project", str(project), "dag")):
        result = subprocess.run([str(venv / "bin" / "churnwh"), *args], capture_output=True, text=True, env=clean,
                                cwd=tmp_path, timeout=300)
        assert result.returncode == 0, result.stderr
    written = sorted(p.relative_to(project / "sql").as_posix() for p in (project / "sql").rglob("*.sql"))
    assert written == repo_sql
    events = tmp_path / "events"
    result = subprocess.run([str(venv / "bin" / "churnwh"), "init", str(events), "--events"], capture_output=True,
                            text=True, cwd=tmp_path, timeout=300, env=clean)
    assert result.returncode == 0, result.stderr
    assert (events / "sql" / "staging" / "consent_state.sql").read_bytes() == \
        (REPO / "sql" / "staging" / "consent_state.sql").read_bytes()
