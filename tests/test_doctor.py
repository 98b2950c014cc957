"""`churnwh doctor`: a healthy project exits 0; each broken state is named with what to do about it,
and `--fix` repairs the safe ones (key mode, stale lock, leftover temporary files)."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests.helpers import TINY_NETWORK, churnwh
from tests.test_fuzz import run_cli
from tests.test_sources import customer_rows, write_csv


@pytest.fixture(scope="module")
def healthy(tmp_path_factory) -> Path:
    """A flat project with 200 customers after one full `churnwh build` (copy it before changing it)."""
    project = tmp_path_factory.mktemp("doctor") / "shop"
    assert churnwh(Path("."), "init", str(project), "--flat").returncode == 0
    config = project / "churnwh.toml"
    config.write_text(config.read_text().replace("\n[network]\n", TINY_NETWORK, 1))
    write_csv(project / "data" / "customers.csv", customer_rows(200))
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    return project


@pytest.fixture
def project(healthy, tmp_path) -> Path:
    target = tmp_path / "shop"
    shutil.copytree(healthy, target)
    return target


def doctor(project: Path, *args: str, real: bool = False) -> subprocess.CompletedProcess:
    """`churnwh doctor` in this process (tests/test_fuzz.py's harness: no 2 s of imports), or a real one."""
    if real:
        result = churnwh(project, "doctor", *args)
    else:
        outcome = run_cli(project, "doctor", *args)
        result = subprocess.CompletedProcess(["churnwh", "doctor", *args], outcome.code, outcome.stdout, outcome.stderr)
    assert "Traceback" not in result.stderr
    key = (project / ".churnwh.key")
    if key.exists():
        assert key.read_text().strip() not in result.stdout + result.stderr  # never key material
    if result.returncode == 1:
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "problem" in lines[0], result.stderr
    return result


def problems(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith("problem")]


def test_a_healthy_project_exits_0(project):
    result = doctor(project, real=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert problems(result) == []
    for check in ("config", "key", "private", "published", "models", "lock", "leftovers"):
        assert any(line.split()[:2] == ["ok", check] for line in result.stdout.splitlines()), check
    assert "passes verification" in result.stdout


def test_help_has_an_example(tmp_path):
    result = churnwh(tmp_path, "doctor", "--help")
    assert result.returncode == 0 and "Example: churnwh doctor" in result.stdout


def test_key_file_readable_by_others_is_fixed(project):
    key = project / ".churnwh.key"
    os.chmod(key, 0o644)
    result = doctor(project)
    assert result.returncode == 1
    [line] = problems(result)
    assert "key" in line and "0644" in line and f"chmod 600 {key}" in line
    fixed = doctor(project, "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert f"fixed    set mode 0600 on {key}" in fixed.stdout
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_missing_key_is_named_and_not_recreated(project):
    (project / ".churnwh.key").unlink()
    for args in ((), ("--fix",)):
        result = doctor(project, *args)
        assert result.returncode == 1
        [line] = problems(result)
        assert "no pseudonym key" in line and "restore the key file from your backup" in line
    assert not (project / ".churnwh.key").exists()


def test_a_different_key_is_named(project):
    key = project / ".churnwh.key"
    key.unlink()
    assert churnwh(project, "keygen").returncode == 0
    result = doctor(project)
    assert result.returncode == 1
    assert any("is not the one the warehouse was built with" in line for line in problems(result))


def test_corrupt_published_file(project):
    published = project / "warehouse" / "churn.duckdb"
    published.write_bytes(os.urandom(64 * 1024))
    result = doctor(project)
    assert result.returncode == 1
    [line] = problems(result)
    assert "published" in line and "cannot be opened" in line and "churnwh build" in line


def test_published_file_with_a_planted_identifier(project):
    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        customer_id, name = con.execute("SELECT customer_id, full_name FROM raw.customers LIMIT 1").fetchone()
    published = project / "warehouse" / "churn.duckdb"
    with duckdb.connect(str(published)) as con:
        con.execute("CREATE TABLE notes AS SELECT ? AS note UNION ALL SELECT 'write to ada@example.org'",
                    [customer_id])
    result = doctor(project)
    assert result.returncode == 1
    [line] = problems(result)
    assert "fails verification" in line and "notes.note" in line
    assert "raw direct-identifier value" in line and "e-mail" in line and f"rm {published}" in line
    for secret in (customer_id, name, "ada@example.org"):
        assert secret not in result.stdout + result.stderr


def hold_lock(private: Path, then: str) -> subprocess.Popen:
    """A process holding the write lock that is SIGKILLed ("die"), or a build holding lock and file ("sleep")."""
    holder = "lock.write_lock" if then == "die" else "warehouse.connect"
    code = ("import os, signal, sys, time\nfrom pathlib import Path\nfrom churnwh.store import lock, warehouse\n"
            f"with {holder}(Path({str(private)!r})):\n"
            "    print('locked', flush=True)\n"
            + ("    os.kill(os.getpid(), signal.SIGKILL)\n" if then == "die" else "    time.sleep(60)\n"))
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "locked"
    return process


def test_stale_lock_of_a_killed_build_is_cleared(project):
    private = project / "warehouse" / "private.duckdb"
    killed = hold_lock(private, "die")
    assert killed.wait(timeout=30) == -signal.SIGKILL
    result = doctor(project)
    assert result.returncode == 1
    [line] = problems(result)
    assert f"stale lock from a killed build (pid {killed.pid})" in line and "churnwh doctor --fix" in line
    fixed = doctor(project, "--fix", real=True)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert f"cleared the stale lock of pid {killed.pid}" in fixed.stdout


def test_a_running_build_is_information_not_a_problem(project):
    private = project / "warehouse" / "private.duckdb"
    running = hold_lock(private, "sleep")
    try:
        result = doctor(project)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"a build is running (pid {running.pid})" in result.stdout
        assert "its checks are skipped" in result.stdout  # the private file is held open for writing
        assert doctor(project, "--fix").returncode == 0 and running.poll() is None  # --fix leaves it alone
    finally:
        running.kill()
        running.wait()


def test_leftover_temporary_files_are_removed(project):
    warehouse = project / "warehouse"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    spill = warehouse / "private.duckdb.tmp"
    spill.mkdir()
    (warehouse / "models" / ".v0002.partial").mkdir()
    leftovers = [warehouse / ".churn.duckdb.0123456789ab.tmp", warehouse / ".churn.duckdb.0123456789ab.tmp.wal",
                 warehouse / ".private.duckdb.ba9876543210.rewrite", warehouse / "churn.duckdb.wal",
                 spill / f"duckdb_temp_{int(dead.stdout)}_0.tmp"]
    for path in leftovers:
        path.write_bytes(b"\0" * 100)
    leftovers.append(warehouse / "models" / ".v0002.partial")
    kept = [warehouse / ".churn.duckdb.notours.tmp", spill / f"duckdb_temp_{os.getpid()}_0.tmp"]  # not ours / alive
    for path in kept:
        path.write_text("keep")
    result = doctor(project)
    assert result.returncode == 1
    [line] = problems(result)
    assert "6 temporary file(s) left by killed runs" in line and "churnwh doctor --fix" in line
    fixed = doctor(project, "--fix")
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert not any(path.exists() for path in leftovers) and all(path.exists() for path in kept)
    assert fixed.stdout.count("fixed    removed") == 6


def test_interrupted_key_rotation_is_named_and_left_to_the_build(project):
    pending = project / ".churnwh.key.new"
    assert churnwh(project, "keygen", "--path", str(pending)).returncode == 0
    for args in ((), ("--fix",)):
        result = doctor(project, *args)
        assert result.returncode == 1
        [line] = problems(result)
        assert "interrupted `churnwh rotate-key`" in line and "run `churnwh build`" in line
        assert pending.read_text().strip() not in result.stdout
    assert pending.exists()


def test_model_table_dropped_behind_its_fingerprint(project):
    with duckdb.connect(str(project / "warehouse" / "private.duckdb")) as con:
        con.execute("DROP TABLE marts.scoring_set")
    result = doctor(project)
    assert result.returncode == 1
    [line] = problems(result)
    assert "model marts.scoring_set has a fingerprint" in line and "churnwh build --select marts.scoring_set+" in line


def test_changed_model_sql_is_information(project):
    model = project / "sql" / "marts" / "scoring_set.sql"
    model.write_text(model.read_text() + "\n-- reviewed\n")
    result = doctor(project)
    assert result.returncode == 0, result.stdout + result.stderr
    assert any(line.startswith("info") and "marts.scoring_set" in line and "next `churnwh build` rebuilds" in line
               for line in result.stdout.splitlines())


def test_missing_model_artifact(project):
    shutil.rmtree(project / "warehouse" / "models" / "v0001")
    result = doctor(project)
    assert result.returncode == 1
    [line] = problems(result)
    assert "current model v0001 has no artifact" in line and "churnwh train --force" in line


def test_invalid_config(project):
    (project / "churnwh.toml").write_text("[warehouse]\nprivate = 3\n")
    result = doctor(project)
    assert result.returncode == 1
    [line] = problems(result)
    assert "warehouse.private = 3 is not allowed" in line


def test_doctor_writes_nothing(project):
    before = {path: path.stat().st_mtime_ns for path in project.rglob("*") if path.is_file()}
    time.sleep(0.01)
    assert doctor(project).returncode == 0
    after = {path: path.stat().st_mtime_ns for path in project.rglob("*") if path.is_file()}
    assert after == before
