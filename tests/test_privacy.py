"""Privacy (issue 4): classification, lineage proof, consent, the published file, erasure, audit, keys.

Real processes on real DuckDB files: a 300-customer demo with canary customers (unique names,
e-mails, phones) inserted into raw before the build.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest

from churnwh.errors import ChurnwhError
from churnwh.privacy import about, audit, classification, publish
from churnwh.privacy import proofs as privacy

REPO = Path(__file__).resolve().parents[1]

CANARIES = {
    # id: (name, email, phone, consent events [(purpose, action, ts, source, regulation)])
    "CANARY0001": ("Zyxqv Canaryone", "zyxqv.canaryone@canary-mail.test", "+1-555-010-7771",
                   [("profiling", "grant", "2023-01-10 09:00:00", "signup_form", "GDPR"),
                    ("marketing", "grant", "2023-01-10 09:00:00", "signup_form", "GDPR")]),
    "CANARY0002": ("Qwvxz Objectortwo", "qwvxz.objector@canary-mail.test", "+1-555-010-7772",
                   [("profiling", "withdraw", "2025-06-01 10:00:00", "preference_center", "GDPR")]),
    "CANARY0003": ("Vxqzw Regrantthree", "vxqzw.regrant@canary-mail.test", "+1-555-010-7773",
                   [("profiling", "withdraw", "2024-03-10 10:00:00", "gpc", "CCPA"),
                    ("profiling", "grant", "2024-09-05 10:00:00", "preference_center", "CCPA")]),
    "CANARY0004": ("Wqzxv Forgetfour", "wqzxv.forget@canary-mail.test", "+1-555-010-7774",
                   [("profiling", "grant", "2023-01-10 09:00:00", "signup_form", "GDPR")]),
}
PAYLOAD = "x'; DROP TABLE churn_scores; --"


def churnwh(project: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "churnwh", "--project", str(project), *args],
        capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=600,
    )


def insert_canaries(private: Path) -> None:
    with duckdb.connect(str(private)) as con:
        for number, (cid, (name, email, phone, events)) in enumerate(CANARIES.items(), start=1):
            con.execute(
                "INSERT INTO raw.customers VALUES (?, ?, ?, ?, ?, DATE '1980-02-03', 'F', 'north', DATE '2023-01-10', 'organic')",
                [cid, name, email, phone, f"{number} Canary Lane"],
            )
            con.execute(
                "INSERT INTO raw.subscriptions VALUES (?, ?, 'standard', DATE '2023-01-10', NULL, NULL)",
                [f"SCANARY{number}", cid],
            )
            for day in range(0, 1000, 7):
                con.execute(
                    "INSERT INTO raw.product_usage VALUES (?, DATE '2023-01-11' + ?::INTEGER, 1, 30.0, 'search')",
                    [cid, day],
                )
            for i, (purpose, action, ts, source, regulation) in enumerate(events):
                con.execute(
                    "INSERT INTO raw.consent_events VALUES (?, ?, ?, ?, ?::TIMESTAMP, ?, ?)",
                    [f"CECANARY{number}{i}", cid, purpose, action, ts, source, regulation],
                )


def make_project(root: Path, customers: int = 300) -> Path:
    shutil.copytree(REPO / "sql", root / "sql")
    config = (REPO / "churnwh.toml").read_text().replace("customers = 5000", f"customers = {customers}")
    config += "\n[network]\nepochs = 2\npatience = 1\n"
    (root / "churnwh.toml").write_text(config)
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    project = make_project(tmp_path_factory.mktemp("privacy"))
    demo = churnwh(project, "demo")
    assert demo.returncode == 0, demo.stderr
    insert_canaries(project / "warehouse" / "private.duckdb")
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr + result.stdout
    return project


def copy_of(project: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(project, target)
    return target


def published(project: Path) -> Path:
    return project / "warehouse" / "churn.duckdb"


def private(project: Path) -> Path:
    return project / "warehouse" / "private.duckdb"


def pseudonym_of(project: Path, customer_id: str) -> str:
    with duckdb.connect(str(private(project)), read_only=True) as con:
        return con.execute("SELECT customer_pseudonym FROM raw.customer_keys WHERE customer_id = ?", [customer_id]).fetchone()[0]


def all_text(path: Path) -> str:
    """Every value of every column of every table, as text."""
    chunks = []
    with duckdb.connect(str(path), read_only=True) as con:
        for schema, table in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchall():
            for row in con.execute(f'SELECT * FROM "{schema}"."{table}"').fetchall():
                chunks.append("\x1f".join(str(v) for v in row))
    return "\n".join(chunks)


def identifiers(customer_id: str) -> list[str]:
    name, email, phone, _ = CANARIES[customer_id]
    return [customer_id, name, email, phone]


# --- classification and lineage -------------------------------------------------------------------


def test_unclassified_source_column_fails_naming_table_and_column():
    con = duckdb.connect()
    con.execute("CREATE SCHEMA raw; CREATE TABLE raw.customers (customer_id VARCHAR, email VARCHAR, nickname VARCHAR)")
    with pytest.raises(ChurnwhError, match=r"source column raw\.customers\.nickname is not classified"):
        classification.classify_sources(con)
    con.execute("ALTER TABLE raw.customers DROP COLUMN nickname")
    assert classification.classify_sources(con) == 2


def test_every_demo_source_column_is_classified(built):
    with duckdb.connect(str(private(built)), read_only=True) as con:
        columns = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'raw'"
        ).fetchall()
    assert columns and all(classification.classification(f"raw.{t}", c) for t, c in columns)
    direct = {c for _, c in classification.direct_identifiers()}
    assert {"customer_id", "full_name", "email", "phone", "street_address", "birth_date"} <= direct


def test_model_selecting_an_email_fails_the_build_with_the_lineage_message(built, tmp_path):
    copy = copy_of(built, tmp_path)
    (copy / "sql" / "features" / "contact_points.sql").write_text(textwrap.dedent("""
        SELECT k.customer_pseudonym, lower(c.email) AS contact
        FROM raw.customers AS c JOIN raw.customer_keys AS k USING (customer_id)
    """))
    before = published(copy).read_bytes()
    result = churnwh(copy, "build")
    assert result.returncode == 1
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1
    assert "lineage violation: model features.contact_points output column contact" in line
    assert "raw.customers.email" in line
    assert published(copy).read_bytes() == before
    with duckdb.connect(str(private(copy)), read_only=True) as con:  # proven before any model is built
        assert con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'contact_points'"
        ).fetchone()[0] == 0


def test_lineage_proof_is_cached_by_model_fingerprint(built, tmp_path):
    from churnwh.sqlmodels.project import load_project

    copy = copy_of(built, tmp_path)
    with duckdb.connect(str(private(copy))) as con:
        report = privacy.prove_lineage(con, load_project(copy / "sql"))
    assert report.models >= 15 and report.cached == report.models
    # A changed model is proven again; the others (its downstream models included: they read the
    # same column names) stay cached.
    features = copy / "sql" / "features" / "customer_features.sql"
    features.write_text(features.read_text() + "\n-- changed\n")
    with duckdb.connect(str(private(copy))) as con:
        again = privacy.prove_lineage(con, load_project(copy / "sql"))
    assert (again.models, again.cached) == (report.models, report.models - 1)


# --- consent ---------------------------------------------------------------------------------------


def test_objectors_absent_from_features_training_scores_and_published(built):
    objector = pseudonym_of(built, "CANARY0002")
    with duckdb.connect(str(private(built)), read_only=True) as con:
        objectors = {
            row[0]
            for row in con.execute(
                "SELECT customer_pseudonym FROM staging.consent_state WHERE purpose = 'profiling' AND state = 'withdrawn' "
                "AND (valid_to IS NULL OR (valid_from <= DATE '2026-01-01' AND valid_to > DATE '2026-01-01'))"
            ).fetchall()
        }
        assert objector in objectors and len(objectors) > 3
        for table in ("features.observation_spine", "features.customer_features", "marts.training_set",
                      "marts.scoring_set", "ml.churn_scores"):
            found = {row[0] for row in con.execute(f"SELECT DISTINCT customer_pseudonym FROM {table}").fetchall()}
            assert not found & objectors, table
        scored_canary = pseudonym_of(built, "CANARY0001")
        assert con.execute("SELECT count(*) FROM ml.churn_scores WHERE customer_pseudonym = ?", [scored_canary]).fetchone()[0] == 1
    text = all_text(published(built))
    assert not any(p in text for p in objectors)
    assert scored_canary in text


def test_a_customer_who_consents_again_contributes_only_dates_with_consent(built):
    pseudonym = pseudonym_of(built, "CANARY0003")
    with duckdb.connect(str(private(built)), read_only=True) as con:
        dates = [row[0] for row in con.execute(
            "SELECT observation_date FROM features.observation_spine WHERE customer_pseudonym = ? ORDER BY 1", [pseudonym]
        ).fetchall()]
        training = con.execute("SELECT count(*) FROM marts.training_set WHERE customer_pseudonym = ?", [pseudonym]).fetchone()[0]
    assert any(d < dt.date(2024, 3, 10) for d in dates) and any(d >= dt.date(2024, 9, 5) for d in dates)
    assert not any(dt.date(2024, 3, 10) <= d < dt.date(2024, 9, 5) for d in dates)
    assert training > 0


def test_audit_log_counts_exclusions_by_reason_and_holds_no_identifier(built):
    with duckdb.connect(str(private(built)), read_only=True) as con:
        rows = con.execute("SELECT * FROM audit.audit_log WHERE event = 'build'").fetchall()
        audit_key = bytes.fromhex((built / ".churnwh.audit.key").read_text().strip())
        assert audit.verify_chain(con, audit_key) == 0
        excluded = con.execute("SELECT rows_excluded, rows_read, key_version, config_fingerprint FROM audit.audit_log "
                               "WHERE event = 'build'").fetchone()
        ids = {r[0] for r in con.execute("SELECT customer_id FROM raw.customer_keys").fetchall()}
        pseudonyms = {r[0] for r in con.execute("SELECT customer_pseudonym FROM raw.customer_keys").fetchall()}
        log_text = "\n".join(str(r) for r in con.execute("SELECT * FROM audit.audit_log").fetchall())
    assert rows and '"gdpr_objection"' in excluded[0] and '"gpc"' in excluded[0]
    assert excluded[1] > 10000 and excluded[2] and excluded[3]
    tokens = set(re.findall(r"[A-Za-z0-9]+", log_text))
    assert not tokens & ids and not tokens & pseudonyms


@pytest.mark.parametrize(
    ("purpose", "ts", "expected"),
    [("newsletter", "2024-01-01 00:00:00", "unknown purpose"), ("profiling", "2099-01-01 00:00:00", "in the future")],
)
def test_bad_consent_input_fails_with_one_line_and_keeps_the_published_file(built, tmp_path, purpose, ts, expected):
    copy = copy_of(built, tmp_path)
    before = published(copy).read_bytes()
    with duckdb.connect(str(private(copy))) as con:
        con.execute("INSERT INTO raw.consent_events VALUES ('CEBAD1', 'CANARY0001', ?, 'withdraw', ?::TIMESTAMP, "
                    "'support_call', 'GDPR')", [purpose, ts])
    result = churnwh(copy, "build")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and expected in result.stderr
    assert "CANARY" not in result.stderr
    assert published(copy).read_bytes() == before


# --- the published file ----------------------------------------------------------------------------


def test_published_file_holds_only_the_allowlist_and_no_canary(built):
    with duckdb.connect(str(published(built)), read_only=True) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        schemas = {r[0] for r in con.execute("SELECT DISTINCT schema_name FROM duckdb_tables()").fetchall()}
    assert {"churn_scores", "tier_summary", "audit_log", "model_runs", "model_metrics"} <= tables
    allowed = {name for _, name in publish.ALLOWLIST} | {publish.TIER_SUMMARY, about.TABLE}
    assert tables <= allowed and schemas == {"main"}
    text = all_text(published(built))
    data = published(built).read_bytes()
    for customer_id in CANARIES:
        for value in identifiers(customer_id):
            assert value not in text
            assert value.encode() not in data
    # positive control: the canaries are in the private file's bytes
    assert CANARIES["CANARY0001"][1].encode() in private(built).read_bytes()


def test_published_file_opens_in_the_duckdb_1x_shell_with_comments(built):
    shell = Path(sys.executable).parent / "duckdb"
    shell = shell if shell.exists() else Path(shutil.which("duckdb") or "duckdb")
    version = subprocess.run([str(shell), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("v1."), version.stdout
    query = ("SELECT count(*) FROM churn_scores; "
             "SELECT comment FROM duckdb_columns() WHERE table_name = 'churn_scores' AND column_name = 'churn_probability';")
    result = subprocess.run([str(shell), "-readonly", "-csv", str(published(built)), "-c", query],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert int(lines[1]) > 50
    assert "probability" in result.stdout.lower() and len(lines) >= 4


def test_published_file_opens_through_sqlalchemy_duckdb_engine(built):
    import duckdb_engine  # noqa: F401  (the `test` extra installs both: a missing one fails here)
    import sqlalchemy

    engine = sqlalchemy.create_engine(f"duckdb:///{published(built)}", connect_args={"read_only": True})
    with engine.connect() as connection:
        count = connection.execute(sqlalchemy.text("SELECT count(*) FROM churn_scores")).scalar()
        comments = dict(connection.execute(sqlalchemy.text(
            "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'churn_scores'")).fetchall())
        tiers = dict(connection.execute(sqlalchemy.text(
            "SELECT risk_tier, count(*) FROM churn_scores WHERE risk_tier IN (:tier, :other) GROUP BY ALL"),
            {"tier": "high", "other": "low"}).fetchall())
    engine.dispose()
    with duckdb.connect(str(published(built)), read_only=True) as con:
        expected = dict(con.execute("SELECT risk_tier, count(*) FROM churn_scores WHERE risk_tier IN ('high', 'low') "
                                    "GROUP BY ALL").fetchall())
    assert count > 50 and tiers == expected and sum(tiers.values()) > 0  # bound parameters reach the query
    assert {"customer_pseudonym", "churn_probability", "risk_tier", "value_at_risk"} <= set(comments)
    assert comments["churn_probability"]


READER = textwrap.dedent("""
    import sys, time, duckdb
    path, stop = sys.argv[1], sys.argv[2]
    con = duckdb.connect(path, read_only=True)
    queries = 0
    import os
    while not os.path.exists(stop):
        con.execute("SELECT count(*) FROM churn_scores").fetchall()
        queries += 1
        time.sleep(0.05)
    con.close()
    print(queries)
""")


def test_a_reader_holds_the_published_file_open_during_a_whole_build(built, tmp_path):
    copy = copy_of(built, tmp_path)
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(published(copy)), str(stop)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1.0)
        result = churnwh(copy, "build", "--select", "marts.scoring_set+", "--full-refresh")
        assert result.returncode == 0, result.stderr
    finally:
        stop.write_text("")
        out, errors = reader.communicate(timeout=60)
    assert reader.returncode == 0, errors
    assert int(out.strip()) > 5
    with duckdb.connect(str(published(copy)), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM audit_log WHERE event = 'publish'").fetchone()[0] >= 2


def _private_with_scores(tmp_path: Path, action: str = "call", extra: str | None = None) -> tuple[Path, object]:
    from churnwh.config import parse_config

    config = parse_config({}, tmp_path)
    config.warehouse.private.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(config.warehouse.private)) as con:
        con.execute("CREATE SCHEMA raw; CREATE SCHEMA ml")
        con.execute("CREATE TABLE raw.customers (customer_id VARCHAR, full_name VARCHAR, email VARCHAR, phone VARCHAR)")
        con.execute("INSERT INTO raw.customers VALUES ('C1', 'Ann Example', 'ann@example.org', '+1-555-000-1111')")
        con.execute("CREATE TABLE raw.customer_keys (customer_id VARCHAR, customer_pseudonym VARCHAR)")
        con.execute("INSERT INTO raw.customer_keys SELECT 'C' || i, md5(i::VARCHAR) FROM range(1, 30) t(i)")
        con.execute(
            "CREATE TABLE ml.churn_scores AS SELECT md5(i::VARCHAR) AS customer_pseudonym, DATE '2026-01-01' AS as_of, "
            "0.5 AS churn_probability, 'high' AS risk_tier, ? AS action, 10.0 AS value_at_risk, i::INTEGER AS priority_rank, "
            "'v0001' AS model_version, 'r1' AS run_id FROM range(1, 30) t(i)", [action])
        con.execute("COMMENT ON COLUMN ml.churn_scores.churn_probability IS 'Probability of churn.'")
        if extra:
            con.execute(extra)
    return config.warehouse.private, config


@pytest.mark.parametrize(
    ("action", "extra", "expected"),
    [
        ("mail ann@example.org", None, "like an e-mail address"),
        ("call +1-555-010-9999", None, "like a phone number"),
        ("card 4111 1111 1111 1111", None, "like a card number"),
        ("iban DE89 3704 0044 0532 0130 00", None, "like an IBAN"),
        ("Ann Example", None, "like a raw direct-identifier value"),
        ("call", "CREATE TABLE ml.churn_drivers AS SELECT customer_pseudonym, CASE WHEN priority_rank = 1 THEN 'rare' "
                 "ELSE 'common' END AS region FROM ml.churn_scores", "smaller than k = 5"),
    ],
)
def test_publish_verification_fails_and_keeps_the_old_file(tmp_path, action, extra, expected):
    path, config = _private_with_scores(tmp_path, action, extra)
    config.warehouse.published.write_bytes(b"previous published file")
    with duckdb.connect(str(path)) as con:
        con.execute("SET VARIABLE as_of = DATE '2026-01-01'")
        with pytest.raises(publish.PublishError, match=expected):
            publish.publish(con, config, run_id="t")
        outcome = con.execute("SELECT outcome FROM audit.audit_log WHERE event = 'publish'").fetchone()[0]
    assert outcome == "failed"
    assert config.warehouse.published.read_bytes() == b"previous published file"
    assert [p.name for p in config.warehouse.published.parent.iterdir() if ".tmp" in p.name] == []


def test_publish_writes_a_v1_file_with_comments_and_a_tier_summary(tmp_path):
    path, config = _private_with_scores(tmp_path)
    with duckdb.connect(str(path)) as con:
        con.execute("SET VARIABLE as_of = DATE '2026-01-01'")
        result = publish.publish(con, config, run_id="t")
    assert result.tables["churn_scores"] == 29 and result.tables["tier_summary"] == 1
    with duckdb.connect(str(config.warehouse.published), read_only=True) as con:
        assert con.execute("SELECT comment FROM duckdb_columns() WHERE column_name = 'churn_probability' "
                           "AND table_name = 'churn_scores'").fetchone()[0] == "Probability of churn."
        assert con.execute("SELECT customers FROM tier_summary").fetchone()[0] == 29
        [(tags,)] = con.execute("SELECT tags FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    assert tags["storage_version"].startswith("v1.0.0")
    # The storage version number in the file header (the bytes after b"DUCK"): DuckDB 1.5 reads 64 to 68.
    header = config.warehouse.published.read_bytes()[:20]
    assert header[8:12] == b"DUCK" and 64 <= int.from_bytes(header[12:20], "little") <= 68


def test_luhn_and_iban_checks():
    assert publish.luhn_ok("4111111111111111") and not publish.luhn_ok("4111111111111112")
    assert publish.iban_ok("DE89 3704 0044 0532 0130 00") and not publish.iban_ok("DE89 3704 0044 0532 0130 01")


# --- erasure ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def forgotten(built, tmp_path_factory):
    copy = tmp_path_factory.mktemp("forget") / "p"
    shutil.copytree(built, copy)
    pseudonym = pseudonym_of(copy, "CANARY0004")
    before = {"private": private(copy).read_bytes(), "published": published(copy).read_bytes()}
    result = churnwh(copy, "forget", "CANARY0004")
    return copy, pseudonym, before, result


def test_forget_removes_identifiers_and_pseudonym_from_the_bytes_of_both_files(forgotten):
    copy, pseudonym, before, result = forgotten
    assert result.returncode == 0, result.stderr
    assert "1 of 1 customers found" in result.stdout
    # positive controls: the values were there before
    assert CANARIES["CANARY0004"][1].encode() in before["private"]
    assert pseudonym.encode() in before["published"]
    for name in ("private", "published"):
        data = (private(copy) if name == "private" else published(copy)).read_bytes()
        for value in identifiers("CANARY0004") + [pseudonym]:
            assert value.encode() not in data, (name, value)
    assert not Path(str(private(copy)) + ".wal").exists()
    with duckdb.connect(str(private(copy)), read_only=True) as con:
        entry = con.execute("SELECT erasures, detail FROM audit.audit_log WHERE event = 'erasure'").fetchone()
        mark = con.execute("SELECT value FROM _churnwh.meta WHERE name = 'erasure_since_model'").fetchone()
        others = con.execute("SELECT count(*) FROM raw.customers WHERE customer_id LIKE 'CANARY%'").fetchone()[0]
    assert entry[0] == 1 and "CANARY" not in entry[1] and mark
    assert others == 3
    assert "CANARY0004" not in result.stdout + result.stderr


def test_forget_with_an_injection_payload_changes_nothing_else(forgotten, tmp_path):
    copy = copy_of(forgotten[0], tmp_path)

    def snapshot():
        with duckdb.connect(str(private(copy)), read_only=True) as con:
            tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name <> 'audit'").fetchall()
            counts = {f"{s}.{t}": con.execute(f'SELECT count(*) FROM "{s}"."{t}"').fetchone()[0] for s, t in tables}
        with duckdb.connect(str(published(copy)), read_only=True) as con:
            counts["published.churn_scores"] = con.execute("SELECT count(*) FROM churn_scores").fetchone()[0]
        return counts

    before = snapshot()
    result = churnwh(copy, "forget", PAYLOAD)
    assert result.returncode == 0, result.stderr
    assert "0 of 1 customers found" in result.stdout
    after = snapshot()
    assert after == before


def test_malformed_id_file_fails_naming_the_line_and_changes_nothing(forgotten, tmp_path):
    copy = forgotten[0]
    ids = tmp_path / "ids.txt"
    ids.write_text("CANARY0001\n# a comment\n\nCANARY0003,CANARY0002\n")
    before = (private(copy).read_bytes(), published(copy).read_bytes())
    result = churnwh(copy, "forget", "--file", str(ids))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "ids.txt:4: malformed line" in result.stderr
    assert "CANARY" not in result.stderr
    assert (private(copy).read_bytes(), published(copy).read_bytes()) == before


# --- access ----------------------------------------------------------------------------------------


def test_contacts_and_subject_report_are_logged_without_identifiers(built, tmp_path):
    copy = copy_of(built, tmp_path)
    with duckdb.connect(str(private(copy)), read_only=True) as con:
        tier = con.execute("SELECT risk_tier FROM ml.churn_scores WHERE customer_pseudonym = ?",
                           [pseudonym_of(copy, "CANARY0001")]).fetchone()[0]
    output = tmp_path / "out" / "contacts.csv"
    result = churnwh(copy, "contacts", "--tier", tier, "--output", str(output))
    assert result.returncode == 0, result.stderr
    assert oct(output.stat().st_mode & 0o777) == "0o600"
    text = output.read_text()
    assert "zyxqv.canaryone@canary-mail.test" in text  # consented to marketing
    assert "qwvxz.objector@canary-mail.test" not in text
    report = churnwh(copy, "subject-report", "CANARY0001")
    assert report.returncode == 0, report.stderr
    assert "raw.customers 1" in report.stdout and "consent profiling: granted" in report.stdout
    assert pseudonym_of(copy, "CANARY0001") in report.stdout and "score: churn probability" in report.stdout
    with duckdb.connect(str(private(copy)), read_only=True) as con:
        rows = con.execute("SELECT event, detail FROM audit.audit_log WHERE event IN ('contacts_export', 'subject_report')").fetchall()
    assert {r[0] for r in rows} == {"contacts_export", "subject_report"}
    assert all("CANARY" not in r[1] and "@" not in r[1] for r in rows)
    rows_logged = [r[1] for r in rows if r[0] == "contacts_export"][0]
    assert f'"rows": {len(text.splitlines()) - 1}' in rows_logged


def test_contacts_with_a_wrong_key_fails_without_key_material(built, tmp_path):
    copy = copy_of(built, tmp_path)
    other = "ab" * 32
    result = churnwh(copy, "contacts", env={"CHURNWH_KEY": other})
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "not the one the warehouse was built with" in result.stderr and other not in result.stderr
    short = churnwh(copy, "build", env={"CHURNWH_KEY": "abcdef"})
    assert short.returncode == 1 and "abcdef" not in short.stderr


def test_rotate_key_shares_nothing_with_the_old_pseudonyms(built, tmp_path):
    copy = copy_of(built, tmp_path)
    with duckdb.connect(str(private(copy)), read_only=True) as con:
        old = {r[0] for r in con.execute("SELECT customer_pseudonym FROM raw.customer_keys").fetchall()}
    old_key = (copy / ".churnwh.key").read_text()
    result = churnwh(copy, "rotate-key")
    assert result.returncode == 0, result.stderr
    assert (copy / ".churnwh.key").read_text() != old_key and not list(copy.glob(".churnwh.key.*"))
    assert oct((copy / ".churnwh.key").stat().st_mode & 0o777) == "0o600"
    with duckdb.connect(str(private(copy)), read_only=True) as con:
        new = {r[0] for r in con.execute("SELECT customer_pseudonym FROM raw.customer_keys").fetchall()}
        versions = con.execute("SELECT key_version, detail FROM audit.audit_log WHERE event = 'key_rotation'").fetchone()
    assert new and not new & old
    assert versions[0] in result.stdout and "previous_key_version" in versions[1]
    sample = sorted(old)[:20]
    for path in (private(copy), published(copy)):
        data = path.read_bytes()
        assert not any(p.encode() in data for p in sample), path


def test_new_commands_have_help_with_an_example(tmp_path):
    for command in ("forget", "rotate-key", "contacts", "subject-report"):
        result = churnwh(tmp_path, command, "--help")
        assert result.returncode == 0 and "Example: churnwh" in result.stdout


def test_private_and_published_must_differ_and_k_is_configurable(tmp_path):
    from churnwh.config import parse_config
    from churnwh.errors import ConfigError

    assert parse_config({"publish": {"k_anonymity": 10}}, tmp_path).publish.k_anonymity == 10
    assert parse_config({}, tmp_path).publish.k_anonymity == 5
    with pytest.raises(ConfigError, match="publish.k_anonymity"):
        parse_config({"publish": {"k_anonymity": 0}}, tmp_path)
