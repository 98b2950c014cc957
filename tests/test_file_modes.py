"""Who else on the machine can read the private data: the private file, its WAL, DuckDB's spill files
and the model artifacts are owner-only whatever the umask, stay so across the rewrites of `forget`
and `rotate-key`, and `doctor` names anything looser and `--fix` repairs it. The published file,
made for BI tools, keeps the mode the umask (or the operator) gave it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from churnwh.store import warehouse
from tests.helpers import churnwh
from tests.test_adversary_ids import flat_project
from tests.test_sources import customer_rows


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)  # the usual umask: new files 0644, folders 0755 (inherited by the CLI runs)
    yield
    os.umask(previous)


def private_paths(project: Path) -> list[Path]:
    found = [project / "warehouse" / "private.duckdb"]
    models = project / "warehouse" / "models"
    return found + [models, *models.rglob("*")]


def test_the_wal_and_spill_files_of_a_private_connection_are_owner_only(tmp_path, umask_022):
    path = tmp_path / "w" / "private.duckdb"
    with warehouse.connect(path, memory_limit="40MB", threads=1) as con:
        con.execute("SET preserve_insertion_order = false")
        con.execute("CREATE TABLE big AS SELECT md5(range::VARCHAR) AS s FROM range(1500000)")
        assert mode(Path(str(path) + ".wal")) == 0o600
        con.execute("CREATE TABLE sorted AS SELECT * FROM big ORDER BY s")  # above the limit: spills
        spill = Path(str(path) + ".tmp")
        assert mode(spill) == 0o700 and [mode(f) for f in spill.iterdir()] and all(
            mode(f) == 0o600 for f in spill.iterdir())
    assert mode(path) == 0o600
    (tmp_path / "after.txt").write_text("x")
    assert mode(tmp_path / "after.txt") == 0o644  # the process umask is restored on close


def test_private_files_stay_owner_only_through_forget_and_rotate_key_and_doctor_repairs_them(tmp_path, umask_022):
    rows = customer_rows(200)
    project = flat_project(tmp_path, rows)
    built = churnwh(project, "build")
    assert built.returncode == 0, built.stderr
    private, published = project / "warehouse" / "private.duckdb", project / "warehouse" / "churn.duckdb"
    assert {p: mode(p) for p in private_paths(project)} == {
        p: (0o700 if p.is_dir() else 0o600) for p in private_paths(project)}
    assert mode(published) == 0o644

    private.chmod(0o644)  # a file made before this release, or copied with cp
    (project / "warehouse" / "models").chmod(0o755)
    found = churnwh(project, "doctor")
    line = next((l for l in found.stdout.splitlines() if " modes " in l), "")
    assert found.returncode == 1 and line.startswith("problem") and "churnwh doctor --fix" in line, found.stdout
    fixed = churnwh(project, "doctor", "--fix")
    assert fixed.returncode == 0 and f"took group and other permissions off {private}" in fixed.stdout, fixed.stdout
    assert mode(private) == 0o600 and mode(project / "warehouse" / "models") == 0o700

    assert churnwh(project, "forget", rows[3][0]).returncode == 0
    assert mode(private) == 0o600 and mode(published) == 0o644
    rotated = churnwh(project, "rotate-key")
    assert rotated.returncode == 0, rotated.stderr
    assert all(mode(p) == (0o700 if p.is_dir() else 0o600) for p in private_paths(project))
    assert mode(published) == 0o644
    assert " modes " in (clean := churnwh(project, "doctor").stdout) and "problem  modes" not in clean
