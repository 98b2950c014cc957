"""Crash safety (issue 8): `churnwh build`, `forget` and `rotate-key` killed with SIGKILL, then rebuilt.

A process is killed at a named point (churnwh.store.faults, env CHURNWH_FAULT_AT=NAME[@N]). After each
kill: the published file is a complete one (the one before, byte for byte, or one that passes the
privacy verification against the private file) and opens read-only; the private file opens; the
write lock is reported stale. The next `churnwh build` exits 0, publishes a verified file, gives
the scores of an uninterrupted run, and leaves no temporary file.

Quick (default): one project killed in turn at loading, a model, training, scoring and publishing,
then in an erasure's rewrite, then built (about 3 minutes on 2 cores). Every point alone, every
model, key rotation and kills at random times: `python -m pytest -m slow tests/test_crash.py`.
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from churnwh.config import load_config
from churnwh.privacy import classification, keys, publish
from churnwh.sqlmodels.project import load_project
from churnwh.store import faults, lock, warehouse
from tests.helpers import REPO, churnwh

NEW_SEED = 8
"""The demo seed of the changed data: every stage of the next build has work to do."""

SCORE_COLUMNS = ("customer_pseudonym, as_of, churn_probability, risk_tier, action, value_at_risk, priority_rank, "
                 "model_version")
LEFTOVER = re.compile(r".*(\.tmp|\.wal|\.rewrite|\.partial|\.lock|\.new)$|duckdb_temp_.*")


# --- helpers --------------------------------------------------------------------------------------


def copy_project(source: Path, target: Path, *, seed: int | None = None) -> Path:
    shutil.copytree(source, target)
    if seed is not None:
        config = target / "churnwh.toml"
        text = config.read_text()
        assert "\nseed = 7\n" in text
        config.write_text(text.replace("\nseed = 7\n", f"\nseed = {seed}\n", 1))
    return target


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def verify_published(project: Path) -> list[str]:
    """publish.verify of the installed published file against the private file, both read-only."""
    config = load_config(project)
    con = duckdb.connect(str(config.warehouse.private), read_only=True)
    try:
        warehouse.set_variables(con, config.variables)
        con.execute(f"ATTACH {warehouse.sql_literal(str(config.warehouse.published))} AS {publish.PUB} (READ_ONLY)")
        quasi = classification.quasi_identifier_names(load_project(config.sql))
        problems, _ = publish.verify(con, config.publish.k_anonymity, quasi)
    finally:
        con.close()
    return problems


def check_files_after_kill(project: Path, known_published: set[str]) -> None:
    """The published file is complete and readable, the private file opens, the lock is stale."""
    config = load_config(project)
    published = config.warehouse.published
    with duckdb.connect(str(published), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM churn_scores").fetchone()[0] > 0
    digest = sha(published)
    if digest not in known_published:  # a new file: it must pass the verification now
        assert verify_published(project) == []
        known_published.add(digest)
    with duckdb.connect(str(config.warehouse.private), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.customer_keys").fetchone()[0] > 0
    state = lock.inspect(config.warehouse.private)
    assert state.stale and not state.held and state.pid is not None


def kill_at(project: Path, point: str, *args: str, known_published: set[str]) -> None:
    result = churnwh(project, *(args or ("build",)), env={faults.ENV: point})
    assert result.returncode == -signal.SIGKILL, (point, result.returncode, result.stderr[-2000:])
    check_files_after_kill(project, known_published)


def leftovers(project: Path) -> list[str]:
    found = []
    for path in project.rglob("*"):
        if path.relative_to(project).parts[0] == "sql" or not LEFTOVER.fullmatch(path.name):
            continue
        found.append(str(path.relative_to(project)))
    return sorted(found)


def scores(project: Path) -> list[tuple]:
    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        return con.execute(f"SELECT {SCORE_COLUMNS} FROM ml.churn_scores ORDER BY customer_pseudonym").fetchall()


def build_after_kill(project: Path) -> None:
    """The next build completes, reports the stale lock, publishes a verified file, leaves nothing."""
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr[-2000:]
    assert re.search(r"stale lock .*\(pid \d+\)", result.stderr), result.stderr[-2000:]
    assert verify_published(project) == []
    assert leftovers(project) == []
    assert not lock.lock_path(project / "warehouse" / "private.duckdb").exists()


def erased_id(project: Path) -> str:
    """A customer who is scored, so erasing them changes the scores."""
    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        return con.execute(
            "SELECT k.customer_id FROM raw.customer_keys AS k JOIN ml.churn_scores USING (customer_pseudonym) "
            "ORDER BY 1 LIMIT 1"
        ).fetchone()[0]


def identifiers_in_private_file(project: Path, customer_id: str) -> list[str]:
    """The customer's id and e-mail (both unique), asserting that both are in the private file's bytes
    now: the positive control for check_erased, taken before the erasure."""
    private = project / "warehouse" / "private.duckdb"
    with duckdb.connect(str(private), read_only=True) as con:
        [email] = con.execute("SELECT email FROM raw.customers WHERE customer_id = ?", [customer_id]).fetchone()
    values = [customer_id, email]
    data = private.read_bytes()
    assert all(value.encode() in data for value in values), values
    return values


def check_erased(project: Path, identifiers: list[str]) -> None:
    """None of the identifiers (from identifiers_in_private_file) is left in the private file."""
    data = (project / "warehouse" / "private.duckdb").read_bytes()
    assert not [value for value in identifiers if value.encode() in data]
    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM raw.customers WHERE customer_id = ?",
                           [identifiers[0]]).fetchone()[0] == 0


# --- references: the same work, uninterrupted --------------------------------------------------------


@pytest.fixture(scope="module")
def changed_reference(built_project, tmp_path_factory):
    """The built project with new demo data, built without a fault: (project, scores, seconds the
    build took, to time kills at random moments within such a build)."""
    project = copy_project(built_project[0], tmp_path_factory.mktemp("reference") / "changed", seed=NEW_SEED)
    started = time.monotonic()
    result = churnwh(project, "build")
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    return project, scores(project), seconds


@pytest.fixture(scope="module")
def erasure_reference(changed_reference, tmp_path_factory):
    """changed_reference, then `forget ID` and a build, without a fault: (project, id, scores)."""
    project = copy_project(changed_reference[0], tmp_path_factory.mktemp("reference") / "erased")
    customer = erased_id(project)
    for args in (("forget", customer), ("build",)):
        result = churnwh(project, *args)
        assert result.returncode == 0, result.stderr
    return project, customer, scores(project)


# --- quick: every stage, one project killed in turn --------------------------------------------------

QUICK_BUILD_KILLS = (
    "load.raw_table@3",  # inside the raw-table transaction
    "models.in_transaction@4",  # inside a model's transaction (after three models committed)
    "train.after_artifact",  # model folder installed, no registry row
    "score.mid_stream",  # scores half streamed
    "publish.before_rename",  # verified copy written, not installed
)


def test_kills_at_every_stage_then_the_next_build_gives_the_uninterrupted_result(
    built_project, erasure_reference, tmp_path
):
    _, customer, expected = erasure_reference
    project = copy_project(built_project[0], tmp_path / "project", seed=NEW_SEED)
    known = {sha(project / "warehouse" / "churn.duckdb")}
    for point in QUICK_BUILD_KILLS:
        kill_at(project, point, known_published=known)
    # then an erasure, committed, its rewrite of the private file killed before the rename
    identifiers = identifiers_in_private_file(project, customer)
    kill_at(project, "rewrite.before_rename", "forget", customer, known_published=known)
    build_after_kill(project)
    check_erased(project, identifiers)
    assert scores(project) == expected


# --- slow: every point alone -------------------------------------------------------------------------


def _model_count() -> int:
    return len(list((REPO / "sql").rglob("*.sql")))


BUILD_POINTS = (
    ["load.raw_table@1", "load.raw_table@5", "load.after_raw", "pseudonymize.mid"]
    + [f"models.in_transaction@{n}" for n in range(1, _model_count() + 1)]
    + ["models.after_commit@1", f"models.after_commit@{_model_count()}"]
    + ["train.after_fit", "train.after_artifact", "train.after_record"]
    + ["score.mid_stream", "score.before_commit", "after.score", "after.explain", "after.monitor"]
    + ["publish.copy@2", "publish.temp_written", "publish.before_rename", "publish.after_rename"]
)

FORGET_POINTS = ("forget.after_delete", "rewrite.temp_written", "rewrite.before_rename", "rewrite.after_rename",
                 "forget.before_publish", "publish.temp_written", "publish.after_rename")

ROTATE_POINTS = ("rotate.new_key_written", "models.after_commit@5", "train.after_artifact", "publish.after_rename",
                 "rotate.before_key_rename", "rotate.after_key_rename", "rewrite.before_rename",
                 "rewrite.after_rename")


@pytest.mark.slow
@pytest.mark.parametrize("point", BUILD_POINTS)
def test_build_killed_at_one_point_recovers(point, built_project, changed_reference, tmp_path):
    project = copy_project(built_project[0], tmp_path / "project", seed=NEW_SEED)
    # --full-refresh: every model is built, also one the new data leaves unchanged (staging.plan_prices)
    kill_at(project, point, "build", "--full-refresh", known_published={sha(project / "warehouse" / "churn.duckdb")})
    build_after_kill(project)
    assert scores(project) == changed_reference[1]


@pytest.mark.slow
@pytest.mark.parametrize("point", FORGET_POINTS)
def test_forget_killed_at_one_point_recovers(point, changed_reference, erasure_reference, tmp_path):
    _, customer, expected = erasure_reference
    project = copy_project(changed_reference[0], tmp_path / "project")
    identifiers = identifiers_in_private_file(project, customer)
    kill_at(project, point, "forget", customer, known_published={sha(project / "warehouse" / "churn.duckdb")})
    build_after_kill(project)
    check_erased(project, identifiers)
    assert scores(project) == expected


@pytest.mark.slow
@pytest.mark.parametrize("point", ROTATE_POINTS)
def test_rotate_key_killed_at_one_point_recovers(point, built_project, tmp_path):
    """Either key may be in force afterwards (the old one if the kill came before the rename);
    the files agree with it, the other key is gone, and no pseudonym of a dead key is published."""
    project = copy_project(built_project[0], tmp_path / "project")
    before = scores(project)
    old_key = (project / ".churnwh.key").read_bytes()
    kill_at(project, point, "rotate-key", known_published={sha(project / "warehouse" / "churn.duckdb")})
    build_after_kill(project)
    config = load_config(project)
    key = keys.load_key(config.key)
    with duckdb.connect(str(config.warehouse.private), read_only=True) as con:
        assert warehouse.get_meta(con, "key_id") == keys.key_id(key)
        assert warehouse.get_meta(con, "rewrite_pending") is None
    after = scores(project)
    assert len(after) == len(before)
    if (project / ".churnwh.key").read_bytes() == old_key:
        assert [row[0] for row in after] == [row[0] for row in before]
    else:  # rotated: no old pseudonym left in the bytes of either file
        assert not {row[0] for row in after} & {row[0] for row in before}
        for path in (config.warehouse.private, config.warehouse.published):
            data = path.read_bytes()
            assert not any(row[0].encode() in data for row in before[:20])


RANDOM_KILLS = 5
"""Kills that must land while a build runs; a build that finishes before its kill does not count."""
RANDOM_ATTEMPTS = 12


@pytest.mark.slow
def test_builds_killed_at_random_times_recover(built_project, changed_reference, tmp_path):
    """SIGKILL from outside at random moments (seeded), not at named points: a random share of the time
    the uninterrupted build took. A build that finishes before its kill leaves nothing to recover,
    so the project starts again from the unbuilt copy; RANDOM_KILLS kills must land mid-build."""
    _, expected, build_seconds = changed_reference
    rng = random.Random(8)
    outcomes: list[str] = []
    project, known = None, set()
    while outcomes.count("killed") < RANDOM_KILLS and len(outcomes) < RANDOM_ATTEMPTS:
        if project is None:
            project = copy_project(built_project[0], tmp_path / f"project{len(outcomes)}", seed=NEW_SEED)
            known = {sha(project / "warehouse" / "churn.duckdb")}
        process = subprocess.Popen([sys.executable, "-m", "churnwh", "--project", str(project), "build"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            process.wait(timeout=rng.uniform(0.1, 0.9) * build_seconds)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
        if process.wait() == -signal.SIGKILL:
            outcomes.append("killed")
            check_files_after_kill(project, known)
        else:
            assert process.returncode == 0, outcomes
            outcomes.append("finished")
            project = None
    assert outcomes.count("killed") >= RANDOM_KILLS, outcomes
    build_after_kill(project)
    assert scores(project) == expected


def test_every_fault_point_in_the_code_is_listed():
    used = set()
    for path in (REPO / "churnwh").rglob("*.py"):
        used |= set(re.findall(r'faults\.point\("([a-z_.]+)"\)', path.read_text()))
    assert used <= set(faults.POINTS), used - set(faults.POINTS)
    assert {point for point in faults.POINTS if not point.startswith("after.")} <= used
