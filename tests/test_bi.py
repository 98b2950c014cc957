"""What BI tools see in the published file of a real build, through the routes they really take.

- SQLAlchemy's inspector through duckdb-engine (Superset, many SQL tools): every published table is
  listed, its columns reflect with types and comments, keys and indexes reflect (as none), a
  ``Table`` autoloads and a query runs. DuckDB's ENUM reflects with no labels (DuckDB's pg_enum is
  empty), so an autoloaded ``Table`` must declare such a column as a string: the test asserts both.
- The DuckDB 1.x shell (tools that bundle a 1.x driver) reads the file, the ENUM and the about table.
- Every table and column carries a comment; the about table says what the numbers mean.
- churn_scores: risk_tier sorts by severity, segments, contactable and campaign_group; identifying
  segments are refused; `churnwh score` republishes what it changes.
"""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import duckdb
import pytest

from churnwh.config import ConfigError, parse_config
from tests.helpers import churnwh

TIER_TYPE = "ENUM('high', 'medium', 'low')"


def published(project: Path) -> Path:
    return project / "warehouse" / "churn.duckdb"


def private(project: Path) -> Path:
    return project / "warehouse" / "private.duckdb"


def copy_of(built_project, tmp_path: Path) -> Path:
    project, _ = built_project
    target = tmp_path / "copy"
    shutil.copytree(project, target)
    return target


def query(path: Path, sql: str, parameters: list | None = None) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, parameters or []).fetchall()


def user_tables(path: Path) -> dict[str, dict[str, tuple[str, str | None]]]:
    """table -> column -> (DuckDB type, comment), user tables only."""
    tables: dict[str, dict[str, tuple[str, str | None]]] = {}
    for table, column, kind, comment in query(
            path, "SELECT table_name, column_name, data_type, comment FROM duckdb_columns() "
                  "WHERE database_name = current_database() AND NOT internal ORDER BY table_name, column_index"):
        tables.setdefault(table, {})[column] = (kind, comment)
    return tables


# --- comments and the about table ----------------------------------------------------------------


def test_every_published_table_and_column_has_a_comment(built_project):
    path = published(built_project[0])
    tables = user_tables(path)
    assert {"churn_scores", "model_runs", "model_metrics", "about", "tier_summary"} <= set(tables)
    blank_columns = [f"{t}.{c}" for t, columns in tables.items() for c, (_, comment) in columns.items()
                     if not (comment or "").strip()]
    blank_tables = query(path, "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
                               "AND coalesce(trim(comment), '') = ''")
    assert blank_columns == [] and blank_tables == []


def test_the_about_table_says_what_the_numbers_mean(built_project):
    project, _ = built_project
    facts = dict(query(published(project), "SELECT key, value FROM about"))
    as_of, version, run_id = query(published(project),
                                   "SELECT DISTINCT as_of, model_version, run_id FROM churn_scores")[0]
    assert facts["as_of"] == str(as_of) and facts["model_version"] == version and facts["model_run_id"] == run_id
    start, end = as_of + dt.timedelta(days=14), as_of + dt.timedelta(days=14 + 90)
    assert facts["churn_window_start"] == str(start) and facts["churn_window_end"] == str(end)
    assert facts["churn_probability"] == f"P(churn between {start} and {end})"
    assert facts["lead_days"] == "14" and facts["label_window_days"] == "90"
    assert facts["currency"] == "EUR" and facts["value_horizon_months"] == "12"
    assert facts["tier_mode"] == "probability" and (facts["tier_high"], facts["tier_medium"]) == ("0.5", "0.2")
    assert facts["segments"] == "current_plan, acquisition_channel, tenure_band"
    trained = query(private(project), "SELECT trained_at FROM ml.model_runs WHERE version = ?", [version])[0][0]
    assert facts["model_trained_at"] == str(trained)
    # freshness: the last date of each source's data, never from a quasi-identifier (birth month, signup date)
    freshness = {key.removeprefix("freshness."): value for key, value in facts.items() if key.startswith("freshness.")}
    last_event = query(private(project), "SELECT CAST(max(transaction_ts) AS DATE) FROM staging.transactions")[0][0]
    assert freshness["staging.transactions"] == str(last_event)
    assert "staging.customers" not in freshness
    assert query(published(project), "SELECT freshest_date FROM data_quality WHERE model = 'staging.customers'") == [
        (None,)]


# --- churn_scores: severity order, segments, consent, campaign group -------------------------------


def test_risk_tier_is_an_enum_that_sorts_by_severity(built_project):
    project, _ = built_project
    for path, table in ((private(project), "ml.churn_scores"), (published(project), "churn_scores"),
                        (published(project), "tier_summary")):
        schema, name = table.split(".") if "." in table else ("main", table)
        kind = query(path, "SELECT data_type FROM duckdb_columns() WHERE database_name = current_database() AND "
                           "schema_name = ? AND table_name = ? AND column_name = 'risk_tier'", [schema, name])
        assert kind == [(TIER_TYPE,)], (table, kind)
    ordered = query(published(project), f"SELECT t FROM (VALUES ('low'), ('high'), ('medium')) v(s), "
                                        f"LATERAL (SELECT CAST(s AS {TIER_TYPE}) AS t) ORDER BY t")
    assert [row[0] for row in ordered] == ["high", "medium", "low"]


def test_churn_scores_carry_segments_consent_and_campaign_group(built_project):
    project, _ = built_project
    columns = user_tables(published(project))["churn_scores"]
    assert list(columns)[-8:] == ["current_plan", "acquisition_channel", "tenure_band", "contactable",
                                  "campaign_group", "expected_uplift", "expected_saved_value", "recommended_action"]
    assert columns["contactable"][0] == "BOOLEAN"
    assert "Plan" in columns["current_plan"][1] and "segment" in columns["current_plan"][1].lower()
    rows = dict(query(published(project), "SELECT customer_pseudonym, contactable FROM churn_scores"))
    consenting = {row[0] for row in query(
        private(project), "SELECT customer_pseudonym FROM staging.consent_state "
                          "WHERE purpose = 'marketing' AND is_latest AND state = 'granted'")}
    assert {p for p, ok in rows.items() if ok} == consenting & set(rows)
    assert 0 < sum(rows.values()) < len(rows)
    bands = {row[0] for row in query(published(project), "SELECT DISTINCT tenure_band FROM churn_scores")}
    assert bands <= {"under 6 months", "6-12 months", "1-2 years", "2+ years"} and len(bands) > 1
    assert query(published(project), "SELECT DISTINCT campaign_group FROM churn_scores") == [("none",)]


def test_a_campaign_sets_campaign_group_and_score_publishes_it(built_project, tmp_path):
    project = copy_of(built_project, tmp_path)
    planned = churnwh(project, "plan", "--campaign", "c1", "--budget", "60", "--cost", "high=1", "--cost",
                      "medium=1", "--cost", "low=1", "--success-rate", "low=0.1", "--control-fraction", "0.3")
    assert planned.returncode == 0, planned.stderr
    assert "published file shows it after the next `churnwh score`" in " ".join(planned.stdout.split())
    members = dict(query(private(project), "SELECT customer_pseudonym, CASE pilot_group WHEN 'treatment' THEN "
                                           "'treated' ELSE 'control' END FROM ml.campaign_members"))
    groups = dict(query(private(project), "SELECT customer_pseudonym, campaign_group FROM ml.churn_scores"))
    assert {p: g for p, g in groups.items() if g != "none"} == members and set(members.values()) == {"treated",
                                                                                                      "control"}
    assert query(published(project), "SELECT DISTINCT campaign_group FROM churn_scores") == [("none",)]
    scored = churnwh(project, "score")
    assert scored.returncode == 0, scored.stderr
    assert dict(query(published(project), "SELECT customer_pseudonym, campaign_group FROM churn_scores")) == groups


@pytest.mark.parametrize(("segments", "expected"), [
    ('["region"]', "scoring.segments names 'region', classified quasi_identifier"),
    ('["email"]', "scoring.segments names 'email', classified direct_identifier"),
    ('["cancel_reason"]', "scoring.segments names 'cancel_reason', classified sensitive"),
    ('["risk_tier"]', "a column churn_scores always has"),
    ('"current_plan"', "is not allowed: a list of scoring-set column names"),
    ('["current_plan", "current_plan"]', "each column once"),
])
def test_identifying_or_malformed_segments_are_refused_in_one_line(built_project, tmp_path, segments, expected):
    project = copy_of(built_project, tmp_path)
    config = project / "churnwh.toml"
    config.write_text(config.read_text().replace(
        'segments = ["current_plan", "acquisition_channel", "tenure_band"]', f"segments = {segments}"))
    before = published(project).read_bytes()
    result = churnwh(project, "score")
    # one error line (a warning, such as drift on this small demo, may come before it)
    assert result.returncode == 1 and len([x for x in result.stderr.splitlines() if x.startswith("error:")]) == 1
    assert expected in result.stderr
    assert published(project).read_bytes() == before


def test_segments_classified_in_declared_sources_or_model_headers_are_refused(built_project, tmp_path):
    flat = {"source": {"kind": "flat"}, "sources": {"customers": {
        "path": "c.csv", "label": "churned", "positive": ["1"], "negative": ["0"],
        "columns": {"customer_id": {"type": "VARCHAR", "class": "direct_identifier"},
                    "zip": {"type": "VARCHAR", "class": "quasi_identifier"},
                    "plan": {"type": "VARCHAR", "class": "plain"},
                    "churned": {"type": "VARCHAR", "class": "plain"}}}}}
    assert parse_config(flat, tmp_path).scoring.segments == ()
    assert parse_config(flat | {"scoring": {"segments": ["plan"]}}, tmp_path).scoring.segments == ("plan",)
    with pytest.raises(ConfigError, match="'zip', classified quasi_identifier"):
        parse_config(flat | {"scoring": {"segments": ["zip"]}}, tmp_path)
    # a model header that classifies the column, and a column the scoring set lacks: refused at scoring
    project = copy_of(built_project, tmp_path)
    model = project / "sql" / "marts" / "scoring_set.sql"
    original = model.read_text()
    model.write_text(original.replace(
        '[columns.tenure_band]\ndescription = "Tenure band on the scoring date (from tenure_days): a segment to slice '
        'scores by, not a model feature."\nprivacy = "plain"',
        '[columns.tenure_band]\ndescription = "Tenure band."\nprivacy = "quasi_identifier"'))
    assert model.read_text() != original
    before = published(project).read_bytes()
    refused = churnwh(project, "score")
    assert refused.returncode == 1 and len([x for x in refused.stderr.splitlines() if x.startswith("error:")]) == 1
    assert "scoring.segments names 'tenure_band', classified quasi_identifier in the SQL models" in refused.stderr
    shutil.copy(built_project[0] / "sql" / "marts" / "scoring_set.sql", model)
    config = project / "churnwh.toml"
    config.write_text(config.read_text().replace('"tenure_band"]', '"no_such_column"]'))
    missing = churnwh(project, "score")
    assert missing.returncode == 1
    assert "marts.scoring_set has no column 'no_such_column' (scoring.segments)" in missing.stderr
    assert published(project).read_bytes() == before


# --- scores change -> the published file follows ------------------------------------------------------


def test_rollback_then_score_republishes_the_old_models_scores(built_project, tmp_path):
    project = copy_of(built_project, tmp_path)
    assert churnwh(project, "train", "--force").returncode == 0
    assert churnwh(project, "score").returncode == 0
    published_versions = "SELECT DISTINCT model_version FROM churn_scores"
    assert query(published(project), published_versions) == [("v0002",)]
    back = churnwh(project, "rollback", "v0001")
    assert back.returncode == 0, back.stderr
    assert "still the previous model's until you run `churnwh score`" in " ".join(back.stdout.split())
    assert query(published(project), published_versions) == [("v0002",)]
    rescored = churnwh(project, "score")
    assert rescored.returncode == 0, rescored.stderr
    assert query(published(project), published_versions) == [("v0001",)]
    assert query(published(project), "SELECT value FROM about WHERE key = 'model_version'") == [("v0001",)]
    private_scores = query(private(project), "SELECT customer_pseudonym, churn_probability FROM ml.churn_scores "
                                             "ORDER BY 1")
    assert query(published(project), "SELECT customer_pseudonym, churn_probability FROM churn_scores "
                                     "ORDER BY 1") == private_scores


# --- the routes BI tools take ---------------------------------------------------------------------------


def test_sqlalchemy_inspector_reflects_every_published_table(built_project):
    sqlalchemy = pytest.importorskip("sqlalchemy")
    duckdb_engine = pytest.importorskip("duckdb_engine")
    from sqlalchemy.sql import sqltypes

    path = published(built_project[0])
    truth = user_tables(path)
    constraints = query(path, "SELECT count(*) FROM duckdb_constraints() WHERE database_name = current_database()")
    indexes = query(path, "SELECT count(*) FROM duckdb_indexes() WHERE database_name = current_database()")
    assert constraints == [(0,)] and indexes == [(0,)]  # the published copy has no keys or indexes to reflect
    counts = {table: query(path, f'SELECT count(*) FROM "{table}"')[0][0] for table in truth}
    engine = sqlalchemy.create_engine(f"duckdb:///{path}", connect_args={"read_only": True})
    try:
        with engine.connect() as connection:
            inspector = sqlalchemy.inspect(connection)
            assert sorted(inspector.get_table_names()) == sorted(truth)
            for table, columns in truth.items():
                reflected = inspector.get_columns(table)
                assert [c["name"] for c in reflected] == list(columns), table
                for column in reflected:
                    kind, comment = columns[column["name"]]
                    assert column["comment"] == comment, (table, column["name"])
                    assert not isinstance(column["type"], sqltypes.NullType), (table, column["name"], kind)
                assert inspector.get_table_comment(table)["text"]
                assert inspector.get_pk_constraint(table)["constrained_columns"] == []
                assert inspector.get_foreign_keys(table) == []
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    assert inspector.get_indexes(table) == []
                assert any(issubclass(w.category, duckdb_engine.DuckDBEngineWarning) for w in caught)
                # autoload: an ENUM reflects without its labels, so declare it as a string
                enums = [c["name"] for c in reflected if isinstance(c["type"], sqltypes.Enum)]
                assert enums == (["risk_tier"] if "risk_tier" in columns else []), table
                loaded = sqlalchemy.Table(table, sqlalchemy.MetaData(),
                                          *(sqlalchemy.Column(name, sqlalchemy.String) for name in enums),
                                          autoload_with=connection)
                assert [c.name for c in loaded.columns] == list(columns)
                assert all(loaded.columns[name].comment == comment for name, (_, comment) in columns.items()
                           if name not in enums)
                rows = connection.execute(sqlalchemy.select(loaded)).fetchall()
                assert len(rows) == counts[table]
            # without the override, reading the ENUM through the autoloaded Table fails
            bare = sqlalchemy.Table("churn_scores", sqlalchemy.MetaData(), autoload_with=connection)
            with pytest.raises(LookupError, match="is not among the defined enum values"):
                connection.execute(sqlalchemy.select(bare.c.risk_tier)).fetchall()
            # text SQL (what Superset's SQL Lab and charts send) sorts tiers by severity
            tiers = connection.execute(sqlalchemy.text(
                "SELECT risk_tier, count(*) AS n FROM churn_scores GROUP BY ALL ORDER BY risk_tier")).fetchall()
            order = ["high", "medium", "low"]
            assert [t for t, _ in tiers] == [t for t in order if t in {t for t, _ in tiers}]
            about = dict(connection.execute(sqlalchemy.text("SELECT key, value FROM about")).fetchall())
            assert about["currency"] == "EUR"
    finally:
        engine.dispose()


def test_the_duckdb_1x_shell_reads_the_enum_and_the_about_table(built_project):
    shell = Path(sys.executable).parent / "duckdb"
    shell = shell if shell.exists() else Path(shutil.which("duckdb") or "duckdb")
    sql = ("SELECT version(); SELECT array_to_string(enum_range(risk_tier), '>') FROM churn_scores LIMIT 1; "
           "SELECT value FROM about WHERE key = 'currency'; "
           "SELECT count(*) FROM duckdb_columns() WHERE NOT internal AND coalesce(comment, '') = '';")
    result = subprocess.run([str(shell), "-readonly", "-noheader", "-csv", str(published(built_project[0])), "-c", sql],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    version, tiers, currency, uncommented = result.stdout.splitlines()
    assert version.startswith("v1.") and tiers == "high>medium>low" and currency == "EUR" and uncommented == "0"


def test_a_flat_projects_about_says_the_probability_is_of_its_flag_not_of_a_churn_window(tmp_path):
    """A flat file has no dates: its label means what the file says, not churn in [as_of + lead_days, + 90 days)."""
    import datetime as dt

    import duckdb

    from churnwh.config import parse_config
    from churnwh.privacy.about import about_rows

    config = parse_config({"source": {"kind": "flat"}, "sources": {"customers": {
        "path": "customers.csv", "id_column": "customer_id", "label": "Churn", "positive": ["Yes"],
        "negative": ["No"], "columns": {"customer_id": {"type": "VARCHAR", "class": "direct_identifier"},
                                        "Churn": {"type": "VARCHAR", "class": "plain"}}}}}, tmp_path)
    facts = {row["key"]: row for row in about_rows(duckdb.connect(), config, published_at=dt.datetime(2026, 1, 1))}
    assert facts["churn_probability"]["value"] == "P(Churn = Yes)"
    assert "no dates" in facts["churn_probability"]["description"]
    for key in ("lead_days", "label_window_days", "churn_window_start", "churn_window_end"):
        assert facts[key]["value"] is None, key
