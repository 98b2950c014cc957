"""Concurrent use (issue 8): one writer at a time, stale locks, BI readers during a build.

Real processes: two `churnwh build` runs on one project, a BI reader holding the published file
open read-only through both, commands refused while the write lock is held, a killed build's lock.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from churnwh.store import faults, lock
from tests.helpers import churnwh
from tests.test_crash import leftovers, sha, verify_published

READER = """
import sys, time, pathlib, duckdb
path, stop = sys.argv[1], pathlib.Path(sys.argv[2])
def publishes(con):
    return con.execute("SELECT count(*) FROM audit_log WHERE event = 'publish'").fetchone()[0]
con = duckdb.connect(path, read_only=True)
before, queries = publishes(con), 0
while not stop.exists():
    con.execute("SELECT count(*), sum(churn_probability) FROM churn_scores").fetchone()
    con.execute("SELECT risk_tier, customers FROM tier_summary").fetchall()
    queries += 1
    time.sleep(0.05)
con.close()
with duckdb.connect(path, read_only=True) as con:
    print(queries, before, publishes(con))
"""


def private(project: Path) -> Path:
    return project / "warehouse" / "private.duckdb"


def wait_for_lock(project: Path, pid: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        state = lock.inspect(private(project))
        if state.held and state.pid == pid:
            return
        assert process.poll() is None, process.communicate()[1][-2000:]
        time.sleep(0.1)
    raise AssertionError("the build never took the write lock")


def test_a_second_build_exits_naming_the_first_or_waits_behind_it_while_a_reader_reads(built_project, tmp_path):
    project = shutil.copytree(built_project[0], tmp_path / "project")
    published = project / "warehouse" / "churn.duckdb"
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(published), str(stop)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = subprocess.Popen([sys.executable, "-m", "churnwh", "--project", str(project), "build", "--force-train"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_lock(project, first.pid, first)
        refused = churnwh(project, "build")
        assert refused.returncode == 1
        lines = refused.stderr.strip().splitlines()
        assert len(lines) == 1 and f"another build is running (pid {first.pid})" in lines[0], refused.stderr
        assert first.poll() is None, "the first build ended before the second one queued: make it longer"
        queued = churnwh(project, "build", "--wait", "600")
        assert queued.returncode == 0, queued.stderr[-2000:]
        assert first.wait(timeout=600) == 0, first.communicate()[1][-2000:]
    finally:
        stop.write_text("")
        out, errors = reader.communicate(timeout=120)
        if first.poll() is None:
            first.kill()
    assert reader.returncode == 0, errors
    queries, before, after = map(int, out.split())
    assert queries > 20
    assert after == before + 2  # reopened, the reader sees both builds' files
    assert verify_published(project) == [] and leftovers(project) == []
    assert not lock.lock_path(private(project)).exists()


WRITERS = (
    ("build",), ("train",), ("score",), ("demo", "--force"), ("forget", "C00000001"), ("rotate-key",),
    ("rollback", "v0001"), ("plan", "--campaign", "c1", "--budget", "100", "--cost", "high=1"),
    ("demo-campaign", "c1"), ("demo-advance", "--days", "30"), ("contacts", "--tier", "high"),
)


def test_every_writing_command_is_refused_while_the_lock_is_held(built_project, tmp_path):
    project = shutil.copytree(built_project[0], tmp_path / "project")
    files = [private(project), project / "warehouse" / "churn.duckdb", project / ".churnwh.key"]
    before = [sha(path) for path in files]
    with lock.write_lock(private(project)):
        processes = [
            subprocess.Popen([sys.executable, "-m", "churnwh", "--project", str(project), *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
            for args in WRITERS
        ]
        results = [(args, process.wait(timeout=300), process.communicate()[1]) for args, process in
                   zip(WRITERS, processes)]
    for args, code, errors in results:
        assert code == 1, (args, errors)
        assert errors.strip() == (
            f"error: another build is running (pid {os.getpid()}) on {private(project)}: wait for it to finish "
            "(`churnwh build --wait SECONDS` queues behind it)"
        ), (args, errors)
    assert [sha(path) for path in files] == before
    assert not (tmp_path / "contacts.csv").exists()


def test_a_killed_builds_lock_is_reported_stale_and_cleared(built_project, tmp_path):
    project = shutil.copytree(built_project[0], tmp_path / "project")
    killed = churnwh(project, "build", env={faults.ENV: "pseudonymize.mid"})
    assert killed.returncode == -9
    state = lock.inspect(private(project))
    assert state.stale and not state.held and state.pid
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr[-2000:]
    notices = [line for line in result.stderr.splitlines() if "stale lock" in line]
    assert notices == [f"churnwh: cleared a stale lock left by a killed churnwh process (pid {state.pid})"]
    assert not lock.inspect(private(project)).stale


def test_lock_is_reentrant_and_a_dead_holder_is_stale(tmp_path):
    path = tmp_path / "private.duckdb"
    with lock.write_lock(path) as stale:
        assert stale is None
        with lock.write_lock(path):
            pass
        assert lock.inspect(path).held and lock.inspect(path).pid == os.getpid()
    assert not lock.lock_path(path).exists()
    holder = ("import os, sys; from pathlib import Path; from churnwh.store import lock\n"
              "with lock.write_lock(Path(sys.argv[1])): os.kill(os.getpid(), 9)")
    died = subprocess.run([sys.executable, "-c", holder, str(path)])
    assert died.returncode == -9
    state = lock.inspect(path)
    assert state.stale and state.pid and not state.held
    assert lock.clear_stale(path) and not lock.lock_path(path).exists()
    assert not lock.clear_stale(path)


def test_a_reader_of_the_private_file_during_a_build_is_told_to_wait(built_project, tmp_path):
    project = shutil.copytree(built_project[0], tmp_path / "project")
    with lock.write_lock(private(project)), duckdb.connect(str(private(project))):
        result = churnwh(project, "models")
    assert result.returncode == 1
    assert re.fullmatch(rf"error: warehouse file \S+ is being written by a build \(pid {os.getpid()}\): run this "
                        r"again when it finishes", result.stderr.strip()), result.stderr
