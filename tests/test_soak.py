"""The soak benchmark (benchmarks/bench_soak.py) at tiny size: two builds, well-formed figures."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import REPO


def test_soak_benchmark_reports_every_build_and_a_verdict(tmp_path):
    report = tmp_path / "soak.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_soak.py"), "--builds", "2", "--customers", "200",
         "--network", "tiny", "--days", "45", "--dir", str(tmp_path / "project"), "--json", str(report)],
        capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(report.read_text())
    builds, verdict = figures["builds"], figures["verdict"]
    assert [b["build"] for b in builds] == [1, 2]
    for build in builds:
        assert build["returncode"] == 0 and build["verified"] is True and build["leftovers"] == []
        assert build["wall_s"] > 0 and {"train", "score", "explain", "publish"} <= set(build["stages_s"])
        assert min(build["private_bytes"], build["published_bytes"], build["models_bytes"]) > 0
        assert build["warehouse_files"] >= 4 and build["rows"]["total"] > build["rows"]["raw"] > 0
    # Time advanced by the campaign window: the second build scored a later date and kept two snapshots.
    [step] = figures["steps"]
    assert builds[1]["rows"]["as_of"] == step["as_of"] > builds[0]["rows"]["as_of"]
    assert builds[1]["rows"]["score_history"] > builds[0]["rows"]["score_history"]
    assert verdict["ok"] is True and verdict["builds"] == 2
    for key in ("data_growth", "private_bytes_growth_per_data_growth", "published_bytes_growth_per_data_growth",
                "models_bytes_growth_per_data_growth", "wall_s_growth_per_data_growth"):
        assert isinstance(verdict[key], float) and verdict[key] > 0, key
    lines = result.stdout.splitlines()
    assert lines[0].startswith("soak: 2 builds of a 200-customer demo")
    assert sum(line.split()[0] in ("1", "2") for line in lines if line.strip()) == 2
    assert lines[-1].startswith("verdict: ok")
    assert not (tmp_path / "project" / ".churnwh.key.new").exists()


def _bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_soak", REPO / "benchmarks" / "bench_soak.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_soak_verdict_fails_on_leftovers_and_unverified_files(tmp_path):
    bench = _bench()
    warehouse = tmp_path / "warehouse"
    (warehouse / "models" / "v0001").mkdir(parents=True)
    for name in ("private.duckdb", "churn.duckdb", "demo_truth.parquet", "models/v0001/arrays.npz"):
        (warehouse / name).write_bytes(b"x")
    assert bench.leftovers(warehouse) == []
    (warehouse / ".churn.duckdb.0123456789ab.tmp").write_bytes(b"x")
    (warehouse / "private.duckdb.wal").write_bytes(b"x")
    assert bench.leftovers(warehouse) == [".churn.duckdb.0123456789ab.tmp", "private.duckdb.wal"]

    def build(number, **changes):
        return {"build": number, "returncode": 0, "wall_s": 10.0, "private_bytes": 100, "published_bytes": 10,
                "models_bytes": 5, "rows": {"total": 1000}, "leftovers": [], "verified": True} | changes

    assert bench.verdict([build(1), build(2, private_bytes=200, rows={"total": 2000})])["ok"] is True
    flat = bench.verdict([build(1), build(2, private_bytes=200, rows={"total": 2000})])
    assert flat["data_growth"] == 2.0 and flat["private_bytes_growth_per_data_growth"] == 1.0
    assert bench.verdict([build(1), build(2, verified=False)])["unverified"] == [2]
    assert bench.verdict([build(1), build(2, leftovers=["x.tmp"])])["ok"] is False
