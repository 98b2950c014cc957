"""Incremental models by time range (churnwh.sqlmodels.incremental): the day after processes only the new
days, gives the same tables as a full refresh, and rebuilds in full when an increment cannot be right
(a late event, a changed model SQL, a changed input schema); a build killed mid-increment keeps the old table."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from churnwh.action.actions import demo_advance
from churnwh.config import load_config
from churnwh.errors import ModelError
from churnwh.pipeline import BuildOptions, build
from churnwh.sqlmodels import incremental
from churnwh.sqlmodels.project import load_project
from churnwh.sqlmodels.run_models import run_models
from churnwh.store import faults, warehouse
from tests.helpers import REPO, copy_project, make_project

MODEL_STAGES = ("load", "pseudonymize", "models")
STAGING = ("staging.product_usage", "staging.transactions", "staging.web_sessions", "staging.email_events")
INCREMENTAL = (*STAGING, "features.customer_features")
BUILD_MODELS = """
import sys
from pathlib import Path
from churnwh.config import load_config
from churnwh.pipeline import build
build(load_config(Path(sys.argv[1])), only=("load", "pseudonymize", "models"))
"""


def build_models(project: Path, *, full_refresh: bool = False) -> dict[str, tuple[str, str]]:
    """Build the models stage; model -> (mode, note) of the models built."""
    report = build(load_config(project), BuildOptions(full_refresh=full_refresh), only=MODEL_STAGES)
    return {result.name: (result.mode, result.note) for result in report.models if result.status == "built"}


def model_tables(project: Path) -> dict[str, list[tuple]]:
    """Every model table's rows, sorted (bit for bit: doubles compared exactly)."""
    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        names = [f"{schema}.{table}" for schema, table in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE schema_name IN ('staging', 'features', 'marts')"
        ).fetchall()]
        return {name: sorted(con.execute(f"SELECT * FROM {name}").fetchall(), key=repr) for name in sorted(names)}


def assert_equals_a_full_refresh(project: Path, tmp_path: Path) -> None:
    expected = copy_project(project, tmp_path / "expected")
    build_models(expected, full_refresh=True)
    assert model_tables(project) == model_tables(expected)


def execute(project: Path, sql: str) -> None:
    with duckdb.connect(str(project / "warehouse" / "private.duckdb")) as con:
        con.execute(sql)


@pytest.fixture(scope="module")
def advanced(tmp_path_factory):
    """A 200-customer demo built, then advanced day by day (and once past a month start) and built again."""
    project = make_project(tmp_path_factory.mktemp("incremental"), customers=200)
    build_models(project)
    modes = []
    for days in (1, 30, 1):
        demo_advance(load_config(project), days)
        modes.append(build_models(project))
    return project, modes


def test_incremental_builds_equal_a_full_refresh(advanced, tmp_path):
    project, modes = advanced
    for step in modes:  # every step ran an increment for the raw event tables' staging models
        assert {name: step[name][0] for name in STAGING} == dict.fromkeys(STAGING, "incremental")
    assert any(step["features.customer_features"][0] == "incremental" for step in modes)
    incremental = model_tables(project)
    full = copy_project(project, tmp_path / "full")
    refreshed = build_models(full, full_refresh=True)
    assert {refreshed[name][0] for name in INCREMENTAL} == {"full"}
    assert model_tables(full) == incremental


def test_a_late_event_rebuilds_in_full(advanced, tmp_path):
    project = copy_project(advanced[0], tmp_path / "late")
    # one more usage row for a customer and day long processed (the copy of an old row, a day earlier)
    execute(project, "INSERT INTO raw.product_usage SELECT * REPLACE (CAST(activity_date AS DATE) - 1 AS activity_date) "
                     "FROM raw.product_usage ORDER BY activity_date LIMIT 1")
    built = build_models(project)
    mode, note = built["staging.product_usage"]
    assert mode == "full" and "raw.product_usage has rows dated before" in note
    # customer_features reads only its own customer's rows ([incremental] key): it restates that one
    mode, note = built["features.customer_features"]
    assert mode == "incremental" and note.startswith("1 customer_pseudonym values restated: staging.product_usage")
    assert_equals_a_full_refresh(project, tmp_path)


def test_a_withdrawn_consent_restates_only_that_customers_features(advanced, tmp_path):
    """About 170 customers a day withdraw at a million: each removes their past spine rows, which used to
    rebuild every customer's features (682 s of a 1,435 s day)."""
    project = copy_project(advanced[0], tmp_path / "withdrawn")
    with duckdb.connect(str(project / "warehouse" / "private.duckdb")) as con:
        customer, last_day = con.execute(
            "SELECT customer_id, (SELECT max(CAST(activity_date AS DATE)) FROM raw.product_usage) FROM raw.customers "
            "WHERE customer_id IN (SELECT customer_id FROM raw.product_usage) ORDER BY customer_id LIMIT 1").fetchone()
        con.execute("INSERT INTO raw.consent_events VALUES ('CE_RESTATE', ?, 'profiling', 'withdraw', ?, 'web', 'GDPR')",
                    [customer, last_day])
    built = build_models(project)
    mode, note = built["features.customer_features"]
    assert mode == "incremental" and note.startswith("1 customer_pseudonym values restated: features.observation_spine")
    assert_equals_a_full_refresh(project, tmp_path)
    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        stored = con.execute("SELECT count(*), count(DISTINCT key_hash) FROM _churnwh.incremental_keys "
                             "WHERE model = 'features.customer_features'").fetchone()
        customers = con.execute("SELECT count(*) FROM staging.customers").fetchone()[0]
        columns = [row[0] for row in con.execute("DESCRIBE _churnwh.incremental_keys").fetchall()]
    assert stored[0] == stored[1] and 0 < stored[0] <= customers and columns == ["model", "key_hash", "digest"]  # never the pseudonym
    assert_recorded_state_is_measured_afresh(project, "features.customer_features")


def assert_recorded_state_is_measured_afresh(project: Path, name: str) -> None:
    """The history and key digests an increment records (the day before's plus the rows since) equal what
    measuring every input row again gives."""
    spec = load_project(project / "sql").models[name].incremental
    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        state = incremental.load_state(con, name)
        assert incremental.history(con, spec, state.processed_until) == state.history
        sql, params = incremental._key_digests(con, spec, state.processed_until)
        fresh = con.execute(f"SELECT key_hash, digest FROM ({sql}) ORDER BY 1", params).fetchall()
        stored = con.execute(f"SELECT key_hash, digest FROM {incremental.KEY_STATE} WHERE model = ? ORDER BY 1",
                             [name]).fetchall()
    assert fresh == stored and fresh


QUIET_EVENTS = {  # raw event table -> the day its rows count from in customer_features
    "raw.product_usage": "activity_date",
    "raw.transactions": "CAST(greatest(transaction_ts, loaded_at) AS DATE)",
    "raw.web_sessions": "CAST(session_start AS DATE)",
    "raw.email_events": "CAST(event_ts AS DATE)",
}


def test_events_older_than_every_window_still_give_the_last_dates(advanced, tmp_path):
    """An increment's running totals start a few months before its new date (180 days for purchases, 90
    for use, visits, e-mail): customers silent for longer still get their last dates from the older rows
    (one of them with only e-mail left, so that the last engagement is their last sign of life)."""
    project = copy_project(advanced[0], tmp_path / "quiet")

    def silence(since: str) -> None:
        for table, day in QUIET_EVENTS.items():
            everything = "" if table == "raw.email_events" else " OR only_email"
            execute(project, f"DELETE FROM {table} WHERE customer_id IN (SELECT customer_id FROM quiet_customers "
                             f"WHERE {day} >= DATE '{since}'{everything})")

    with duckdb.connect(str(project / "warehouse" / "private.duckdb")) as con:
        since = con.execute("SELECT max(activity_date) - 200 FROM raw.product_usage").fetchone()[0]
        con.execute(f"""CREATE TABLE quiet_customers AS
                        SELECT customer_id, row_number() OVER (ORDER BY customer_id) = 1 AS only_email
                        FROM raw.subscriptions
                        WHERE end_date IS NULL
                          AND customer_id IN (SELECT customer_id FROM raw.product_usage WHERE activity_date < DATE '{since}')
                          AND customer_id IN (SELECT customer_id FROM raw.email_events
                                              WHERE event_type = 'opened' AND CAST(event_ts AS DATE) < DATE '{since}')
                        ORDER BY customer_id LIMIT 5""")
    silence(str(since))
    assert build_models(project)["features.customer_features"][0] == "incremental"  # their rows restated
    demo_advance(load_config(project), 1)
    silence(str(since))  # the new day's events of theirs: dated after the processed range, no restatement
    built = build_models(project)
    assert built["features.customer_features"] == ("incremental", "")
    assert_equals_a_full_refresh(project, tmp_path)
    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        silent = con.execute(
            "SELECT count(*) FILTER (WHERE days_since_last_use > 200), "
            "count(*) FILTER (WHERE days_since_last_use IS NULL AND days_since_last_activity > 200) "
            "FROM features.customer_features WHERE observation_date = (SELECT max(observation_date) "
            "FROM features.customer_features)").fetchone()
    assert silent[0] >= 1 and silent[1] >= 1


def test_a_new_email_event_repeating_an_earlier_one_counts_once(advanced, tmp_path):
    """staging.email_events keeps the first event per id, then per customer, campaign and type: on an
    increment the new day's events are checked against the earlier events they repeat."""
    project = copy_project(advanced[0], tmp_path / "repeats")

    def insert(con, event_id, customer, campaign, kind, day, hour=12):
        con.execute("INSERT INTO raw.email_events VALUES (?, ?, ?, ?, ?)",
                    [event_id, customer, campaign, kind, f"{day} {hour:02d}:00:00"])

    with duckdb.connect(str(project / "warehouse" / "private.duckdb")) as con:
        last_day = con.execute("SELECT max(CAST(event_ts AS DATE)) FROM raw.email_events").fetchone()[0]
        first, second = con.execute(
            "SELECT event_id, customer_id, campaign_id FROM raw.email_events WHERE event_type = 'opened' "
            "AND CAST(event_ts AS DATE) < ? - 5 ORDER BY event_id LIMIT 2", [last_day]).fetchall()
        # earlier: one id twice, first in campaign C_A, so its open in C_B does not count
        insert(con, "E_FIRST", first[1], "C_A", "sent", last_day - dt.timedelta(days=20))
        insert(con, "E_FIRST", first[1], "C_B", "opened", last_day - dt.timedelta(days=10))
    build_models(project, full_refresh=True)
    demo_advance(load_config(project), 1)
    with duckdb.connect(str(project / "warehouse" / "private.duckdb")) as con:
        new_day = last_day + dt.timedelta(days=1)
        insert(con, "E_NEW", first[1], "C_B", "opened", new_day)  # counts: C_B's earlier open did not
        insert(con, "E_REOPEN", first[1], first[2], "open", new_day)  # a re-open of an earlier e-mail
        insert(con, second[0], second[1], "C_OTHER", "clicked", new_day)  # an earlier id re-delivered
    built = build_models(project)
    assert built["staging.email_events"] == ("incremental", "")
    assert_equals_a_full_refresh(project, tmp_path)
    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        kept = con.execute("SELECT event_id FROM staging.email_events WHERE event_id IN ('E_NEW', 'E_REOPEN') "
                           "OR campaign_id = 'C_OTHER'").fetchall()
    assert kept == [("E_NEW",)]


def test_a_changed_model_sql_rebuilds_in_full(advanced, tmp_path):
    project = copy_project(advanced[0], tmp_path / "changed")
    path = project / "sql" / "staging" / "web_sessions.sql"
    path.write_text(path.read_text().replace("least(greatest(TRY_CAST(w.pages AS INTEGER), 0), 500)",
                                             "least(greatest(TRY_CAST(w.pages AS INTEGER), 0), 400)"))
    built = build_models(project)
    assert built["staging.web_sessions"] == ("full", "full rebuild: its SQL or variables changed")


def test_a_changed_input_schema_rebuilds_in_full(advanced, tmp_path):
    project = copy_project(advanced[0], tmp_path / "schema")
    execute(project, "ALTER TABLE raw.transactions ADD COLUMN note VARCHAR")
    built = build_models(project)
    assert built["staging.transactions"] == ("full", "full rebuild: an input's columns changed")


def test_a_build_killed_mid_increment_keeps_the_old_table_and_recovers(advanced, tmp_path):
    project = copy_project(advanced[0], tmp_path / "killed")
    demo_advance(load_config(project), 1)
    before = model_tables(project)
    env = {**os.environ, faults.ENV: "models.in_increment", "PYTHONPATH": str(REPO)}
    killed = subprocess.run([sys.executable, "-c", BUILD_MODELS, str(project)], env=env, capture_output=True,
                            timeout=600)
    assert killed.returncode == -9, killed.stderr
    after_kill = model_tables(project)
    assert after_kill["staging.product_usage"] == before["staging.product_usage"]  # the old table, not half of it
    build_models(project)
    assert_equals_a_full_refresh(project, tmp_path)


def test_an_incremental_model_declares_every_input(write_models):
    header = """
    /*
    [incremental]
    time_column = "day"
    {inputs}
    */
    SELECT day FROM raw.events WHERE day >= {start}
    """
    declared = '[[incremental.inputs]]\nrelation = "raw.events"\ntime = "day"'
    with pytest.raises(ModelError, match=r"reads raw\.events: declare it in \[\[incremental\.inputs\]\]"):
        load_project(write_models({"staging/a.sql": header.format(inputs="", start="getvariable('incremental_start')")}))
    with pytest.raises(ModelError, match=r"filters on getvariable\('incremental_start'\)"):
        load_project(write_models({"staging/a.sql": header.format(inputs=declared, start="DATE '2020-01-01'")}))
    project = load_project(write_models({"staging/a.sql": header.format(
        inputs=declared, start="getvariable('incremental_start')")}))
    assert project.models["staging.a"].incremental.time_column == "day"
    keyed = declared.replace("[[incremental.inputs]]", 'key = "customer"\n[[incremental.inputs]]', 1)
    with pytest.raises(ModelError, match=r"incremental\.key filters its customer on getvariable\('incremental_keys'\)"):
        load_project(write_models({"staging/a.sql": header.format(inputs=keyed, start="getvariable('incremental_start')")}))
    restating = header.format(inputs=keyed, start="getvariable('incremental_start')").replace(
        "SELECT day FROM raw.events WHERE", "SELECT day FROM raw.events WHERE (getvariable('incremental_keys') IS NULL "
        "OR customer IN (SELECT unnest(getvariable('incremental_keys')))) AND")
    assert load_project(write_models({"staging/a.sql": restating})).models["staging.a"].incremental.key == "customer"


def test_score_history_keeps_what_its_retention_says(tmp_path):
    from churnwh.stages.monitor import compact_score_history
    from churnwh.stages.registry import SCORE_HISTORY

    with duckdb.connect(str(tmp_path / "history.duckdb")) as con:
        con.execute("CREATE SCHEMA ml")
        con.execute(f"CREATE TABLE {SCORE_HISTORY} AS SELECT TIMESTAMP '2026-01-01' AS snapshot_at, CAST(d AS DATE) AS as_of, "
                    "'p' || c AS customer_pseudonym, 0.5 AS churn_probability, 'high' AS risk_tier, 1.0 AS value_at_risk, "
                    "'v0001' AS model_version FROM range(DATE '2025-01-10', DATE '2026-03-11', INTERVAL 1 DAY) AS r(d), "
                    "range(3) AS k(c)")
        deleted = compact_score_history(con, 30, 3)
        kept = [row[0].isoformat() for row in con.execute(f"SELECT DISTINCT as_of FROM {SCORE_HISTORY} ORDER BY 1").fetchall()]
        # newest 2026-03-10: every day from 2026-02-08 on, and the first snapshot of each month from December
        assert kept == ["2025-12-01", "2026-01-01", "2026-02-01"] + [f"2026-02-{d:02d}" for d in range(8, 29)] \
            + [f"2026-03-{d:02d}" for d in range(1, 11)]
        assert deleted == (425 - len(kept)) * 3
        assert compact_score_history(con, 30, 3) == 0  # settled: nothing more to delete
        assert compact_score_history(con, 0, 0) == 0  # 0 days: keep everything


def test_a_full_disk_mid_increment_stops_with_one_line_and_keeps_the_table(advanced, tmp_path, monkeypatch):
    from churnwh.errors import ChurnwhError

    project = copy_project(advanced[0], tmp_path / "full-disk")
    demo_advance(load_config(project), 1)
    before = model_tables(project)["staging.product_usage"]
    monkeypatch.setattr(faults, "_hits", faults.Counter())
    monkeypatch.setenv(faults.ENV, "models.in_increment:ENOSPC")
    with pytest.raises(ChurnwhError, match=r"^stage models failed: no space left on device: .*published file was kept$"):
        build_models(project)
    assert model_tables(project)["staging.product_usage"] == before


def slice_customer_features(project: Path, rows: int) -> None:
    path = project / "sql" / "features" / "customer_features.sql"
    text = path.read_text()
    assert "rows = 1000000" in text
    path.write_text(text.replace("rows = 1000000", f"rows = {rows}", 1))


def test_customer_features_built_in_slices_equal_one_statement(advanced, tmp_path):
    project, _ = advanced
    sliced = copy_project(project, tmp_path / "sliced")
    slice_customer_features(sliced, 500)
    report = build(load_config(sliced), BuildOptions(full_refresh=True), only=MODEL_STAGES)
    features = next(result for result in report.models if result.name == "features.customer_features")
    assert features.slices > 2  # the control: it was cut
    assert model_tables(sliced) == model_tables(project)
    # the day after, in slices too: the increment's rows are cut by the spine rows of its dates
    path = sliced / "sql" / "features" / "customer_features.sql"
    path.write_text(path.read_text().replace("rows = 500", "rows = 40", 1))
    build_models(sliced)  # a changed SQL file: one full rebuild, then increments
    demo_advance(load_config(sliced), 1)
    report = build(load_config(sliced), BuildOptions(), only=MODEL_STAGES)
    features = next(result for result in report.models if result.name == "features.customer_features")
    assert (features.mode, features.slices > 1) == ("incremental", True)
    incremental = model_tables(sliced)
    build_models(sliced, full_refresh=True)
    assert model_tables(sliced) == incremental


def test_a_sliced_model_filters_on_both_slice_variables(write_models):
    header = """/*
[slices]
relation = "raw.events"
key = "customer"
rows = 10
*/
SELECT customer FROM raw.events WHERE {where}
"""
    with pytest.raises(ModelError, match=r"filters its customer on getvariable\('slice_from'\)"):
        load_project(write_models({"staging/a.sql": header.format(where="customer >= getvariable('slice_from')")}))
    both = "customer >= getvariable('slice_from') AND customer < getvariable('slice_to')"
    with pytest.raises(ModelError, match="slices.rows must be a whole number"):
        load_project(write_models({"staging/a.sql": header.replace("rows = 10", "rows = 0").format(where=both)}))
    with pytest.raises(ModelError, match="slices.relation must name a schema.table the model reads"):
        load_project(write_models({"staging/a.sql": header.replace('"raw.events"', '"raw.other"').format(where=both)}))
    assert load_project(write_models({"staging/a.sql": header.format(where=both)})).models["staging.a"].slices.rows == 10


CHECKED_INCREMENT = """
/*
grain = ["id", "day"]
[incremental]
time_column = "day"
[[incremental.inputs]]
relation = "raw.days"
time = "day"
columns = []
[columns.id]
checks = ["unique"]
[columns.n]
range = [0, 10]
*/
SELECT id, day, n FROM raw.days WHERE day >= getvariable('incremental_start')
"""


@pytest.mark.parametrize("new_row, failed", [
    (("a", 5), r"check unique\(id\) failed"),  # the id of an earlier day's row: found among the old rows
    (("e", 11), r"check range\(n, 0, 10\) failed"),
])
def test_an_increment_checks_its_new_rows_against_the_old(tmp_path, write_models, new_row, failed):
    """An increment's screens read the rows it wrote (and, for a unique column without the time column, the
    old rows sharing their keys); a bad new row fails the increment, then the full rebuild's checks."""
    project = load_project(write_models({"staging/checked.sql": CHECKED_INCREMENT}))
    with warehouse.connect(tmp_path / "private.duckdb") as con:
        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.days AS SELECT * FROM (VALUES ('a', DATE '2026-01-01', 1), "
                    "('b', DATE '2026-01-02', 2), ('c', DATE '2026-01-03', 3)) AS t(id, day, n)")
        run_models(con, project, {"as_of": "2026-01-04"})
        con.execute("INSERT INTO raw.days VALUES ('d', DATE '2026-01-04', 4)")
        (result,) = run_models(con, project, {"as_of": "2026-01-05"})
        assert (result.mode, result.note) == ("incremental", "")
        con.execute("INSERT INTO raw.days VALUES (?, DATE '2026-01-05', ?)", list(new_row))
        with pytest.raises(ModelError, match=failed):
            run_models(con, project, {"as_of": "2026-01-06"})
