"""Resource limits (issue 8): DuckDB memory limit and temp directory, a full disk while publishing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

from churnwh import pipeline
from churnwh.config import load_config
from churnwh.store import faults
from tests.helpers import churnwh
from tests.test_crash import leftovers, sha

BIG_SORT = """/*
materialized = "table"
description = "A sort several times larger than the memory limit (tests/test_resources.py)."
*/
SELECT i, md5(i::VARCHAR) || md5((i + 1)::VARCHAR) AS h FROM range(3000000) AS t(i) ORDER BY h
"""
LIMITS = 'memory_limit = "100MB"\nthreads = 2\ntemp_directory = "spill"\n'


def with_warehouse_keys(project: Path, keys: str) -> None:
    config = project / "churnwh.toml"
    config.write_text(config.read_text().replace("[warehouse]\n", "[warehouse]\n" + keys, 1))


def test_a_model_larger_than_the_memory_limit_spills_to_the_temp_directory(built_project, tmp_path):
    project = shutil.copytree(built_project[0], tmp_path / "project")
    (project / "sql" / "marts" / "big_sort.sql").write_text(BIG_SORT)
    with_warehouse_keys(project, LIMITS)
    config = load_config(project)
    assert (config.warehouse.memory_limit, config.warehouse.threads) == ("100MB", 2)

    spilled = []
    report = pipeline.build(config, pipeline.BuildOptions(select="marts.big_sort"), only=("models",),
                            on_model=lambda result: spilled.append((project / "spill").is_dir()))

    assert [(m.name, m.status, m.rows) for m in report.models] == [("marts.big_sort", "built", 3_000_000)]
    assert spilled == [True]  # DuckDB created the configured folder to spill into (and removes it on close)
    assert not (project / "spill").exists() or not os.listdir(project / "spill")
    # the same query under the same limit without a place to spill fails: the data exceeds the limit
    with duckdb.connect(config={"memory_limit": "100MB", "threads": "2", "temp_directory": ""}) as con:
        with pytest.raises(duckdb.OutOfMemoryException):
            con.execute("CREATE TABLE big AS " + BIG_SORT.split("*/")[1])


def test_unknown_memory_limit_is_a_config_error(tmp_path):
    from churnwh.config import parse_config
    from churnwh.errors import ConfigError

    with pytest.raises(ConfigError, match=r"warehouse.memory_limit = 'lots' is not allowed: a size such as '4GB'"):
        parse_config({"warehouse": {"memory_limit": "lots"}}, tmp_path)
    with pytest.raises(ConfigError, match=r"warehouse.threads = 0 is not allowed"):
        parse_config({"warehouse": {"threads": 0}}, tmp_path)
    config = parse_config({"warehouse": {"temp_directory": "spill", "memory_limit": "2GB", "threads": 4}}, tmp_path)
    assert (config.warehouse.temp_directory, config.warehouse.threads) == (tmp_path / "spill", 4)


def check_disk_full(result: subprocess.CompletedProcess, published: Path, before: str) -> None:
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: publishing failed: no space left on device writing the new copy in {published.parent}: free some "
        f"space and rerun `churnwh build`; the published file {published.name} was kept"
    )
    assert sha(published) == before
    assert not [name for name in os.listdir(published.parent) if name.startswith(f".{published.name}.")]


def test_disk_full_while_publishing_keeps_the_old_file(built_project, tmp_path):
    """An injected ENOSPC at the second table copied into the new file."""
    project = shutil.copytree(built_project[0], tmp_path / "project")
    published = project / "warehouse" / "churn.duckdb"
    before = sha(published)
    result = churnwh(project, "build", env={faults.ENV: "publish.copy@2:ENOSPC"})
    check_disk_full(result, published, before)
    assert leftovers(project) == []


@pytest.fixture
def small_filesystem(tmp_path):
    """mount(bytes) -> a tmpfs of that size (needs root; skipped where mounting is refused)."""
    mounted = []

    def mount(size: int) -> Path:
        if os.geteuid() != 0 or not shutil.which("mount"):
            pytest.skip("mounting a tmpfs needs root")
        point = tmp_path / "small"
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", str(point)], check=False)


def test_a_real_full_disk_while_publishing_keeps_the_old_file(built_project, tmp_path, small_filesystem):
    project = shutil.copytree(built_project[0], tmp_path / "project")
    old = project / "warehouse" / "churn.duckdb"
    published = small_filesystem(old.stat().st_size + 1024 * 1024) / "churn.duckdb"  # a second copy cannot fit
    shutil.copy(old, published)
    config = project / "churnwh.toml"
    config.write_text(config.read_text().replace('published = "warehouse/churn.duckdb"', f'published = "{published}"'))
    before = sha(published)
    result = churnwh(project, "build")
    check_disk_full(result, published, before)
    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM ml.churn_scores").fetchone()[0] > 0


def test_disk_full_in_a_model_names_the_stage_and_keeps_both_files(built_project, tmp_path):
    project = shutil.copytree(built_project[0], tmp_path / "project")
    published = project / "warehouse" / "churn.duckdb"
    before = sha(published)
    result = churnwh(project, "build", "--full-refresh", env={faults.ENV: "models.in_transaction@2:ENOSPC"})
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == (
        "error: stage models failed: no space left on device: free some space (or set warehouse.temp_directory "
        "to a larger disk) and rerun; the published file was kept"
    )
    assert sha(published) == before and leftovers(project) == []
    assert churnwh(project, "build").returncode == 0
