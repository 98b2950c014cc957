"""`churnwh` as a user runs it: a real process, a real project folder, real DuckDB files."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import churnwh, copy_project, make_project, private

IDENTIFIER_COLUMNS = {"customer_id", "full_name", "email", "phone", "street_address", "birth_date"}
COMMANDS = ["build", "demo", "dag", "lineage", "keygen", "train", "score", "evaluate", "models", "rollback"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(tmp_path, command):
    result = churnwh(tmp_path, command, "--help")
    assert result.returncode == 0
    assert "Example: churnwh" in result.stdout


def test_build_on_a_fresh_demo_project(built_project):
    project, result = built_project
    assert "models" in result.stdout
    key = project / ".churnwh.key"
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    with private(project) as con:
        relations = dict(
            con.execute("SELECT table_schema || '.' || table_name, 1 FROM information_schema.tables").fetchall()
        )
        for name in ("raw.customers", "staging.customers", "features.customer_features", "marts.training_set"):
            assert name in relations
        leaked = con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE table_schema NOT IN ('raw', '_churnwh') AND column_name IN ?",
            [sorted(IDENTIFIER_COLUMNS)],
        ).fetchall()
        assert leaked == []
        assert con.execute("SELECT count(*) FROM marts.training_set").fetchone()[0] > 1000
        pseudonyms = con.execute("SELECT DISTINCT customer_pseudonym FROM features.customer_features").fetchall()
        ids = {row[0] for row in con.execute("SELECT customer_id FROM raw.customers").fetchall()}
        assert pseudonyms and not ids & {row[0] for row in pseudonyms}
    key_text = key.read_text().strip()
    assert key_text not in (project / "warehouse" / "private.duckdb").read_bytes().decode("latin-1")


def test_second_build_skips_unchanged_models_and_select_rebuilds_downstream(built_project, tmp_path):
    project = copy_project(built_project[0], tmp_path / "copy")
    again = churnwh(project, "build")
    assert again.returncode == 0, again.stderr
    assert "unchanged" in again.stdout and "built" not in again.stdout.replace("0 built", "")
    selected = churnwh(project, "build", "--select", "marts.training_set+", "--full-refresh")
    assert selected.returncode == 0, selected.stderr
    assert "marts.training_set" in selected.stdout and "staging.customers" not in selected.stdout


def test_dag_and_lineage(built_project):
    project, _ = built_project
    dag = churnwh(project, "dag")
    assert dag.returncode == 0
    order = [line.split()[0] for line in dag.stdout.splitlines()]
    assert order.index("staging.customers") < order.index("features.customer_features") < order.index(
        "marts.training_set"
    )
    lineage = churnwh(project, "lineage", "staging.customers.region")
    assert lineage.returncode == 0, lineage.stderr
    assert "raw.customers.region" in lineage.stdout


def broken_copy(built_project, tmp_path, relative: str, text: str) -> Path:
    copy = copy_project(built_project[0], tmp_path / "copy")
    (copy / "sql" / relative).parent.mkdir(parents=True, exist_ok=True)
    (copy / "sql" / relative).write_text(text)
    return copy


@pytest.mark.parametrize(
    ("relative", "text", "expected"),
    [
        ("marts/bad.sql", "SELECT a,\nFROM staging.customers WHERE ((", r"bad.sql:2:"),
        ("marts/bad.sql", "SELECT * FROM staging.nowhere", "staging.nowhere is neither a model nor a source"),
        ("marts/loop_a.sql", "SELECT * FROM marts.loop_b", "dependency cycle"),
    ],
)
def test_bad_models_exit_1_with_one_line(built_project, tmp_path, relative, text, expected):
    copy = broken_copy(built_project, tmp_path, relative, text)
    (copy / "sql" / "marts" / "loop_b.sql").write_text("SELECT * FROM marts.loop_a") if "loop" in relative else None
    result = churnwh(copy, "build")
    assert result.returncode == 1
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_failed_check_exits_1_and_keeps_tables(built_project, tmp_path):
    project, _ = built_project
    copy = broken_copy(
        built_project,
        tmp_path,
        "staging/customers.sql",
        (project / "sql/staging/customers.sql").read_text().replace('checks = ["not_null", "unique"]', 'checks = ["not_null", "unique"]\naccepted_values = ["nobody"]', 1),
    )
    with private(copy) as con:
        before = con.execute("SELECT * FROM staging.customers ORDER BY ALL").fetchall()
    result = churnwh(copy, "build")
    assert result.returncode == 1
    assert "accepted_values(customer_pseudonym)" in result.stderr and "staging.customers" in result.stderr
    assert "previous table is kept" in result.stderr
    with private(copy) as con:
        assert con.execute("SELECT * FROM staging.customers ORDER BY ALL").fetchall() == before
        ids = [row[0] for row in con.execute("SELECT customer_id FROM raw.customers").fetchall()]
    assert not any(customer_id in result.stderr for customer_id in ids)


@pytest.mark.parametrize(
    "args, expected",
    [
        (("forget", "-x"), "No such option: -x: see `churnwh forget --help`"),
        (("build", "--wait", "soon"), "Invalid value for '--wait'"),
        (("nosuch",), "No such command 'nosuch': see `churnwh --help`"),
        (("rollback",), "Missing argument"),
    ],
)
def test_usage_errors_are_one_line_exit_1(tmp_path, args, expected):
    result = churnwh(tmp_path, *args)
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_config_and_short_key_exit_1(tmp_path):
    (tmp_path / "churnwh.toml").write_text("[demo]\ncustomers = 'lots'\n")
    result = churnwh(tmp_path, "build")
    assert result.returncode == 1 and "demo.customers = 'lots' is not allowed" in result.stderr
    project = make_project(tmp_path / "p")
    result = churnwh(project, "build", env={"CHURNWH_KEY": "abcdef"})
    assert result.returncode == 1 and "churnwh keygen" in result.stderr and "abcdef" not in result.stderr
