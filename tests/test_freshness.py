"""Never score on stale data: each source's last event against the window the features read (as_of - 1).

The demo's raw data end 2025-12-31; its default as_of is 2026-01-01. Moving as_of to 2026-01-31 without
newer data is the route of issue 15: every recent-activity feature read zero and the build published
garbage with exit 0.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import duckdb
import pytest

from churnwh.config import load_config
from churnwh.errors import ConfigError
from churnwh.pipeline import build
from churnwh.sources import event_times
from churnwh.store import freshness
from churnwh.store.freshness import StaleDataError
from tests.helpers import churnwh, copy_project, private

DATA_END = "2025-12-31"


def set_as_of(project: Path, as_of: str, extra: str = "") -> None:
    config = project / "churnwh.toml"
    text = config.read_text()
    assert "[vars]\n" in text
    config.write_text(text.replace("[vars]\n", f'[vars]\nas_of = "{as_of}"\n', 1) + extra)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def published(project: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(project / "warehouse" / "churn.duckdb"), read_only=True)


def test_a_stale_source_stops_the_build_in_one_line_and_keeps_the_published_file(built_project, tmp_path):
    project = copy_project(built_project[0], tmp_path / "p")
    before = digest(project / "warehouse" / "churn.duckdb")
    set_as_of(project, "2026-01-31")
    result = churnwh(project, "build")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "source product_usage ends 2025-12-31, 30 days before" in lines[0]
    assert "as-of date 2026-01-31" in lines[0] and "--allow-stale" in lines[0] and "load newer data" in lines[0]
    assert digest(project / "warehouse" / "churn.duckdb") == before


def test_a_lag_within_the_tolerance_passes_and_a_smaller_tolerance_refuses(built_project, tmp_path):
    project = copy_project(built_project[0], tmp_path / "p")
    set_as_of(project, "2026-01-06")  # the features read up to 2026-01-05: the data end 5 days before
    build(load_config(project), only=("load", "freshness"))
    with private(project) as con:
        usage = [row for row in freshness.recorded(con) if row["source"] == "product_usage"][0]
        assert freshness.override(con) is None
    assert (usage["status"], usage["lag_days"], str(usage["last_event_date"])) == ("fresh", 5, DATA_END)

    strict = tmp_path / "strict"
    copy_project(project, strict)
    (strict / "churnwh.toml").write_text((strict / "churnwh.toml").read_text() + "\n[freshness]\nmax_lag_days = 3\n")
    with pytest.raises(StaleDataError, match="source transactions ends 2025-12-31, 5 days before that"):
        build(load_config(strict), only=("load", "freshness"))
    # sources that legitimately lag get their own tolerance
    (strict / "churnwh.toml").write_text((strict / "churnwh.toml").read_text() + "source_max_lag_days = { "
                                         "transactions = 5, product_usage = 5, web_sessions = 5 }\n")
    build(load_config(strict), only=("load", "freshness"))


def test_allow_stale_builds_and_the_audit_and_about_record_it(built_project, tmp_path):
    with published(built_project[0]) as con:  # built without the flag: no override anywhere
        details = [row[0] or "" for row in con.execute("SELECT detail FROM audit_log").fetchall()]
        keys = [row[0] for row in con.execute("SELECT key FROM about").fetchall()]
        data_end = con.execute("SELECT value FROM about WHERE key = 'data_end'").fetchall()
    assert not any("stale_override" in detail for detail in details) and "stale_override" not in keys
    assert data_end == [(DATA_END,)]

    project = copy_project(built_project[0], tmp_path / "p")
    set_as_of(project, "2026-01-31")
    # a month without activity data also drifts severely: that gate needs its own override
    drifted = churnwh(project, "build", "--allow-stale")
    assert drifted.returncode == 1 and "severe drift" in drifted.stderr, drifted.stderr
    result = churnwh(project, "build", "--allow-stale", "--allow-drift")
    assert result.returncode == 0, result.stderr
    with published(project) as con:
        detail = con.execute("SELECT detail FROM audit_log WHERE event = 'build' "
                             "ORDER BY logged_at DESC LIMIT 1").fetchall()[0][0]
        about = dict(con.execute("SELECT key, value FROM about").fetchall())
        quality = {row[0]: row[1:] for row in con.execute(
            "SELECT model, freshest_date, lag_days, freshness FROM data_quality WHERE model LIKE 'raw.%'").fetchall()}
    override = json.loads(detail)["stale_override"]
    assert override["as_of"] == "2026-01-31"
    assert override["sources"]["product_usage"] == {"last_event": DATA_END, "lag_days": 30, "max_lag_days": 7}
    assert "customers" not in override["sources"]  # a static table is never stale
    assert "product_usage: ends 2025-12-31, 30 days" in about["stale_override"]
    assert about["as_of"] == "2026-01-31" and about["data_end"] == DATA_END
    assert quality["raw.product_usage"] == (dt.date(2025, 12, 31), 30, "stale")
    assert quality["raw.customers"] == (None, None, "static")
    report = churnwh(project, "report", "--output", "report.html")
    assert report.returncode == 0, report.stderr
    page = (project / "report.html").read_text()
    assert "Scores as of 2026-01-31 · data end 2025-12-31" in page and "Built with --allow-stale:" in page


VISITS = """
[sources.visits]
path = "data/visits.csv"
{options}
[sources.visits.columns]
customer_id = {{ type = "VARCHAR", class = "direct_identifier" }}
visit_date = {{ type = "DATE", class = "plain" }}
pages = {{ type = "INTEGER", class = "plain" }}
"""


@pytest.fixture(scope="module")
def flat_with_visits(tmp_path_factory) -> Path:
    """`churnwh init --flat` plus a declared CSV of visits (an events table), not loaded yet."""
    from tests.test_sources import customer_rows, write_csv

    project = tmp_path_factory.mktemp("flat") / "shop"
    result = churnwh(Path("."), "init", str(project), "--flat")
    assert result.returncode == 0, result.stderr
    write_csv(project / "data" / "customers.csv", customer_rows(40))
    return project


def with_visits(template: Path, target: Path, last_visit_days_before_as_of: int, options: str) -> Path:
    from tests.test_sources import write_csv

    project = copy_project(template, target)
    as_of = load_config(project).variables["as_of"]
    (project / "churnwh.toml").write_text((project / "churnwh.toml").read_text() + VISITS.format(options=options))
    last = as_of - dt.timedelta(days=last_visit_days_before_as_of)
    rows = [[f"K{i:05d}", str(last - dt.timedelta(days=i)), str(i % 7)] for i in range(20)]
    write_csv(project / "data" / "visits.csv", rows, ["customer_id", "visit_date", "pages"])
    return project


def test_a_declared_csv_source_is_dated_by_its_event_time_column(flat_with_visits, tmp_path):
    fresh = with_visits(flat_with_visits, tmp_path / "fresh", 2, 'event_time = "visit_date"')
    build(load_config(fresh), only=("load", "freshness"))
    with private(fresh) as con:
        measured = {row["source"]: row for row in freshness.recorded(con)}
    assert (measured["visits"]["event_time_column"], measured["visits"]["status"], measured["visits"]["lag_days"]) \
        == ("visit_date", "fresh", 1)
    assert measured["customers"]["status"] == "static"  # the labelled one-row-per-customer table

    stale = with_visits(flat_with_visits, tmp_path / "stale", 40, 'event_time = "visit_date"\nmax_lag_days = 30')
    with pytest.raises(StaleDataError, match=r"source visits ends \S+, 39 days before that \(max_lag_days = 30\)"):
        build(load_config(stale), only=("load", "freshness"))

    inferred = with_visits(flat_with_visits, tmp_path / "inferred", 2, "")  # the one plain date column
    visits = [d for d in event_times.declarations(load_config(inferred)) if d.source == "visits"][0]
    assert (visits.column, visits.kind) == ("visit_date", freshness.EVENT)
    static = with_visits(flat_with_visits, tmp_path / "static", 2, 'event_time = ""')
    visits = [d for d in event_times.declarations(load_config(static)) if d.source == "visits"][0]
    assert (visits.column, visits.kind) == (None, freshness.STATIC)


def test_an_unknown_event_time_column_is_a_config_error_naming_source_and_column(flat_with_visits, tmp_path):
    project = with_visits(flat_with_visits, tmp_path / "p", 2, 'event_time = "visited_on"')
    with pytest.raises(ConfigError, match="sources.visits.event_time = 'visited_on' is not a declared column of "
                                          "source visits"):
        load_config(project)
    result = churnwh(project, "build")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "visited_on" in result.stderr and "source visits" in result.stderr
    assert not (project / "warehouse" / "private.duckdb").exists()

    typed = with_visits(flat_with_visits, tmp_path / "typed", 2, 'event_time = "pages"')
    with pytest.raises(ConfigError, match="'pages' names a column of type INTEGER in source visits"):
        load_config(typed)


def test_backtest_tells_the_data_end_from_the_data_not_the_config(built_project, tmp_path):
    project = copy_project(built_project[0], tmp_path / "p")
    set_as_of(project, "2026-01-31")  # the config says later; the data still end 2025-12-31
    result = churnwh(project, "backtest")
    assert result.returncode == 1
    assert f"data end {DATA_END}; as-of date 2026-01-31" in result.stderr
    assert "data ends 2026-01-31" not in result.stderr
