"""`churnwh init`: each project shape is complete and builds; a flat CSV goes all the way to a
published churn_scores and an export, with no direct identifier in either."""

from __future__ import annotations

import datetime as dt
import os
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


def test_inactivity_project_builds_from_demo_purchases(tmp_path):
    """--events: churn = no purchase within inactivity_days; point-in-time features and labels."""
    from churnwh import demo

    project = init(tmp_path, "--events")
    tiny(project)
    data = demo.simulate(300, 5, dt.date(2024, 1, 1), dt.date(2025, 12, 31))
    con = duckdb.connect()
    con.register("t", data.tables["transactions"])
    con.execute(f"COPY (SELECT customer_id, transaction_ts AS event_ts, amount FROM t) TO "
                f"'{project}/data/events.csv' (HEADER)")
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
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
