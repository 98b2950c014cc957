"""Uplift in the published file and the report (issue 21, item 4).

The uplift stage that writes ml.customer_uplift, ml.uplift_validation, ml.uplift_curve and
ml.uplift_status is its own piece: here those private tables are written with plain SQL in their
contract's shape into a copy of a built project (tests/test_uplift_campaigns.py fits the real stage),
and the build's real publish stage and `churnwh report` run over them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from churnwh.privacy import uplift_publish
from tests.helpers import churnwh

K = 5
CANARY_NAME, CANARY_EMAIL = "Ulrike Upliftcanary", "ulrike.upliftcanary@example.org"
RULES = ("uplift model", "two-model baseline", "churn risk")
TEST_MEMBERS = 100
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def published(project: Path) -> Path:
    return project / "warehouse" / "churn.duckdb"


def private(project: Path) -> Path:
    return project / "warehouse" / "private.duckdb"


def query(path: Path, sql: str, parameters: list | None = None) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, parameters or []).fetchall()


def write_uplift_tables(path: Path) -> None:
    """The uplift stage's private tables, contract shape. Every customer's uplift is a distinct unrounded
    number; one customer gets a lone extreme value; every customer with a positive uplift is recommended
    for contact, contactable or not (the publication must stop the latter); one row names a customer who
    is not scored (not profiled) and must never be published."""
    with duckdb.connect(str(path)) as con:
        con.execute("""CREATE TABLE ml.customer_uplift AS
            WITH s AS (SELECT customer_pseudonym, as_of, churn_probability, value_at_risk,
                              row_number() OVER (ORDER BY customer_pseudonym) AS n FROM ml.churn_scores),
            u AS (SELECT *, CASE WHEN n = 1 THEN 0.93 ELSE ((n * 7) % 23 - 6) / 100.0 + n / 1e6 END AS uplift FROM s)
            SELECT customer_pseudonym, as_of, greatest(churn_probability - uplift, 0) AS churn_if_contacted,
                   churn_probability AS churn_if_not_contacted, uplift AS expected_uplift,
                   uplift * value_at_risk / churn_probability AS expected_saved_value,
                   CASE WHEN uplift > 0.03 THEN 'contact' ELSE 'do not contact' END AS recommended_action,
                   'uplift-test-1' AS uplift_model_version
            FROM u""")
        con.execute("""INSERT INTO ml.customer_uplift
            SELECT customer_pseudonym, (SELECT max(as_of) FROM ml.churn_scores), 0.1, 0.5, 0.4, 100.0, 'contact',
                   'uplift-test-1'
            FROM raw.customer_keys WHERE customer_pseudonym NOT IN (SELECT customer_pseudonym FROM ml.churn_scores)
            LIMIT 1""")
        con.execute("""CREATE TABLE ml.uplift_validation AS
            SELECT (SELECT max(as_of) FROM ml.churn_scores) AS as_of, rule, qini, auuc, qini_gain_low,
                   qini_gain_high, 300::BIGINT AS members, ?::BIGINT AS test_members
            FROM (VALUES ('uplift model', 0.021, 0.030, 0.004, 0.031), ('two-model baseline', 0.012, 0.024,
                         -0.006, 0.020), ('churn risk', 0.001, 0.015, 0.0, 0.0)) v(rule, qini, auuc, qini_gain_low,
                                                                                    qini_gain_high)""",
                    [TEST_MEMBERS])
        con.execute("""CREATE TABLE ml.uplift_curve AS
            SELECT (SELECT max(as_of) FROM ml.churn_scores) AS as_of, rule, i / 100.0 AS share_targeted,
                   CASE rule WHEN 'uplift model' THEN 0.08 * sqrt(i / 100.0) WHEN 'two-model baseline'
                        THEN 0.06 * (i / 100.0) ^ 0.7 ELSE 0.04 * (i / 100.0) ^ 1.3 END AS qini,
                   0.04 * i / 100.0 AS uplift
            FROM (VALUES ('uplift model'), ('two-model baseline'), ('churn risk')) r(rule), range(0, 101) t(i)""")


@pytest.fixture(scope="module")
def uplift_project(built_project, tmp_path_factory):
    """A copy of the built demo with the uplift stage's tables, two evaluated campaigns (one per
    targeting rule), and canary identifiers on the raw row of the customer with the largest uplift; scored
    and so republished."""
    project = tmp_path_factory.mktemp("uplift") / "project"
    shutil.copytree(built_project[0], project)
    write_uplift_tables(private(project))
    with duckdb.connect(str(private(project))) as con:
        # ml.campaigns as `churnwh plan` writes it, with the uplift stage's targeting column
        con.execute("""CREATE TABLE ml.campaigns (campaign_id VARCHAR PRIMARY KEY, created_at TIMESTAMP, as_of DATE,
            budget DOUBLE, control_fraction DOUBLE, selected BIGINT, treated BIGINT, control BIGINT,
            treated_cost DOUBLE, expected_saved_value DOUBLE, model_version VARCHAR, targeting VARCHAR)""")
        con.execute("""INSERT INTO ml.campaigns (campaign_id, created_at, as_of, budget, targeting) VALUES
            ('spring', TIMESTAMP '2025-01-01 09:00', DATE '2025-01-01', 400, 'risk'),
            ('summer', TIMESTAMP '2025-01-02 09:00', DATE '2025-01-01', 400, 'uplift')""")
        con.execute("""CREATE TABLE ml.pilot_results AS SELECT * FROM (VALUES
            ('spring', now()::TIMESTAMP, DATE '2025-01-01', DATE '2025-04-01', 40, 10, 0.30, 0.32, 0.02, -0.11,
             0.15, 0.8, 400.0, 2.0),
            ('summer', now()::TIMESTAMP, DATE '2025-01-01', DATE '2025-04-01', 40, 10, 0.20, 0.35, 0.15, 0.02,
             0.28, 6.0, 400.0, 15.0))
            v(campaign_id, evaluated_at, campaign_as_of, outcome_through, treated, control, treated_churn_rate,
              control_churn_rate, effect, ci_low, ci_high, retained_customers, treated_cost, retained_per_1000_cost)""")
        con.execute("""UPDATE raw.customers SET full_name = ?, email = ? WHERE customer_id = (
                           SELECT k.customer_id FROM raw.customer_keys k JOIN ml.customer_uplift u USING (customer_pseudonym)
                           JOIN ml.churn_scores s USING (customer_pseudonym)
                           ORDER BY u.expected_uplift DESC LIMIT 1)""", [CANARY_NAME, CANARY_EMAIL])
    republish(project)
    return project


def republish(project: Path) -> None:
    """Only the build's publish stage, in its own process: `churnwh score` would also run the uplift
    stage, which replaces the contract-shaped tables with its own (no pilot here: none)."""
    code = ("import sys; from pathlib import Path; from churnwh.config import load_config; "
            "from churnwh.pipeline import build; build(load_config(Path(sys.argv[1])), only=('publish',))")
    done = subprocess.run([sys.executable, "-c", code, str(project)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr


def test_published_scores_carry_rounded_uplift_with_comments(uplift_project):
    path = published(uplift_project)
    comments = dict(query(path, "SELECT column_name, comment FROM duckdb_columns() WHERE table_name = 'churn_scores'"))
    assert "randomized pilots" in comments["expected_uplift"] and "Positive: a contact helps" in comments[
        "expected_uplift"]
    assert "value_at_risk / churn_probability" in comments["expected_saved_value"]
    assert "marketing consent" in comments["recommended_action"]
    rows = query(path, "SELECT customer_pseudonym, expected_uplift, expected_saved_value, value_at_risk, "
                       "recommended_action, contactable, churn_probability FROM churn_scores")
    private_uplift = dict(query(private(uplift_project), "SELECT customer_pseudonym, expected_uplift "
                                                         "FROM ml.customer_uplift"))
    assert rows and all(r[1] is not None for r in rows)
    # a percentage point, every value shared by at least k customers; the lone extreme value is moved
    assert all(abs(r[1] * 100 - round(r[1] * 100)) < 1e-9 for r in rows)
    sharing = query(path, "SELECT min(n) FROM (SELECT count(*) AS n FROM churn_scores GROUP BY expected_uplift)")
    assert sharing[0][0] >= K
    assert max(r[1] for r in rows) < 0.9 and max(private_uplift.values()) == 0.93
    assert not {r[1] for r in rows} & {v for v in private_uplift.values() if abs(v * 100 - round(v * 100)) > 1e-9}
    # saved value from published numbers only (no exact private value divides back out)
    # (value_at_risk / churn_probability is the banded value over the horizon, up to value_at_risk's cent)
    assert all(abs(r[2] - r[1] * r[3] / r[6]) <= abs(r[1]) * 0.005 / r[6] + 0.0051 for r in rows)
    # consent: contact only for contactable customers, and the private 'contact' of others is overruled
    assert [r for r in rows if r[4] == "contact" and not r[5]] == []
    overruled = query(private(uplift_project), """SELECT count(*) FROM ml.customer_uplift u JOIN ml.churn_scores s
        USING (customer_pseudonym) WHERE u.recommended_action = 'contact' AND NOT s.contactable""")[0][0]
    assert overruled > 0 and {r[4] for r in rows} == {"contact", "do not contact"}
    # the customer who is not scored (not profiled) is not published
    assert set(private_uplift) - {r[0] for r in rows}
    facts = dict(query(path, "SELECT key, value FROM about"))
    assert facts["uplift_model_version"] == "uplift-test-1"


def test_validation_and_qini_curve_are_published_as_aggregates(uplift_project):
    path = published(uplift_project)
    validation = query(path, "SELECT rule, members, test_members FROM uplift_validation ORDER BY rule")
    assert sorted(r[0] for r in validation) == sorted(RULES)
    curve = query(path, "SELECT rule, min(share_targeted) FILTER (WHERE share_targeted > 0), count(*) "
                        "FROM uplift_curve GROUP BY rule")
    # points covering fewer than k of the 100 held-out members (1% .. 4%) are left out
    assert {(rule, smallest, n) for rule, smallest, n in curve} == {(rule, 0.05, 97) for rule in RULES}
    for table in ("uplift_validation", "uplift_curve"):
        blank = query(path, "SELECT column_name FROM duckdb_columns() WHERE table_name = ? "
                            "AND coalesce(trim(comment), '') = ''", [table])
        assert blank == [], table
        assert query(path, "SELECT comment FROM duckdb_tables() WHERE table_name = ?", [table])[0][0]


def test_published_file_passes_the_check_and_holds_no_canary(uplift_project):
    assert CANARY_EMAIL.encode() in private(uplift_project).read_bytes()  # positive control
    data = published(uplift_project).read_bytes()
    assert CANARY_NAME.encode() not in data and CANARY_EMAIL.encode() not in data
    outcome = query(private(uplift_project), "SELECT outcome, detail FROM audit.audit_log WHERE event = 'publish' "
                                             "ORDER BY logged_at DESC LIMIT 1")
    assert outcome[0][0] == "ok" and '"uplift_problems": 0' in outcome[0][1]


@pytest.mark.parametrize("breach, expected", [
    ("UPDATE churn_scores SET recommended_action = 'contact' WHERE NOT contactable", "may not be contacted"),
    ("UPDATE churn_scores SET expected_uplift = 0.05, expected_saved_value = 10.0 WHERE customer_pseudonym = 'a'",
     "shared by fewer than k"),
    ("UPDATE churn_scores SET expected_saved_value = 12.34", "not derived from the published"),
    ("DELETE FROM uplift_validation", "of no validated rule"),
])
def test_the_publish_check_catches_an_uplift_leak(breach, expected):
    with duckdb.connect() as con:
        con.execute("ATTACH ':memory:' AS pub")
        con.execute("""CREATE TABLE pub.main.churn_scores AS SELECT chr(CAST(97 + i AS INTEGER)) AS customer_pseudonym,
                           i % 2 = 0 AS contactable, 0.5::DOUBLE AS churn_probability, 100.0::DOUBLE AS value_at_risk,
                           0.02::DOUBLE AS expected_uplift, 4.0::DOUBLE AS expected_saved_value, CASE WHEN i % 2 = 0 THEN 'contact' ELSE 'do not contact' END
                           AS recommended_action FROM range(12) t(i)""")
        con.execute("CREATE TABLE pub.main.uplift_validation AS SELECT DATE '2025-01-01' AS as_of, 'churn risk' AS rule,"
                    " 50 AS members, 20 AS test_members")
        con.execute("CREATE TABLE pub.main.uplift_curve AS SELECT DATE '2025-01-01' AS as_of, 'churn risk' AS rule, "
                    "0.5 AS share_targeted, 0.01 AS qini, 0.01 AS uplift")
        tables = {"churn_scores": {"contactable": "BOOLEAN", "churn_probability": "DOUBLE", "value_at_risk": "DOUBLE",
                                   "expected_uplift": "DOUBLE",
                                   "expected_saved_value": "DOUBLE", "recommended_action": "VARCHAR"},
                  "uplift_validation": {}, "uplift_curve": {}}
        assert uplift_publish.problems(con, "pub", tables, K) == []
        con.execute("USE pub")
        con.execute(breach)
        found = uplift_publish.problems(con, "pub", tables, K)
    assert len(found) == 1 and expected in found[0], found


def test_without_uplift_tables_the_columns_are_null_and_the_report_says_why(built_project, tmp_path):
    project, _ = built_project
    path = published(project)
    assert query(path, "SELECT count(*) = count(*) FILTER (WHERE expected_uplift IS NULL AND expected_saved_value "
                       "IS NULL AND recommended_action IS NULL) FROM churn_scores") == [(True,)]
    tables = {t for (t,) in query(path, "SELECT table_name FROM duckdb_tables()")}
    assert not tables & {"uplift_validation", "uplift_curve"}
    assert dict(query(path, "SELECT key, value FROM about"))["uplift_model"].startswith("none")
    copy = tmp_path / "project"
    shutil.copytree(project, copy)
    with duckdb.connect(str(private(copy))) as con:
        con.execute("CREATE OR REPLACE TABLE ml.uplift_status AS SELECT 'too small' AS status, 40::BIGINT AS members, "
                    "400::BIGINT AS needed, 'the pilots have too few members to learn from' AS reason")
    output = tmp_path / "report.html"
    result = churnwh(copy, "report", "--output", str(output))
    assert result.returncode == 0, result.stderr
    page = output.read_text()
    assert re.search(r'<figure data-plot="qini" data-state="empty">', page)
    assert "No uplift model yet: the pilots have too few members to learn from (40 members, 400 needed)" in page


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium; .ci/run does)")
def test_report_draws_the_qini_curves_and_the_realised_effect_per_rule(uplift_project, tmp_path):
    output = tmp_path / "report.html"
    result = churnwh(uplift_project, "report", "--output", str(output))
    assert result.returncode == 0, result.stderr
    page = output.read_text()
    assert CANARY_NAME not in page and CANARY_EMAIL not in page
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=5000",
                          "--window-size=794,1123", "--dump-dom", output.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    body = dict(re.findall(r'([\w-]+)="([^"]*)"', re.search(r"<body([^>]*)>", dom.stdout).group(1)))
    assert body["data-errors"] == "0" and body["data-labels-outside"] == "0" and body["data-overflow-x"] == "0"
    figure = re.search(r'<figure data-plot="qini" data-state="drawn">(.*?)</figure>', dom.stdout, re.DOTALL).group(1)
    assert "<svg" in figure and all(rule in figure for rule in RULES)
    assert "100 held-out members" in figure
    table = re.search(r'<table class="targeting" id="targeting-results">(.*?)</table>', dom.stdout,
                      re.DOTALL).group(1)
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table, re.DOTALL)]
    assert [tuple(r[:3]) + tuple(r[4:]) for r in rows if r] == [
        ("spring", "risk", "400", "+2.0%", "-11.0% to +15.0%", "2.00"),
        ("summer", "uplift", "400", "+15.0%", "+2.0% to +28.0%", "15.00")]
    assert re.search(r'id="uplift-summary">The uplift model estimates, for each of [\d,]+ scored customers', page)
