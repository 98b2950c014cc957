"""The day after: a first `churnwh build`, then the demo advancing one day at a time and a build after each.

Usage::

    python benchmarks/bench_day_after.py                                  # 5,000 customers, 2 days after
    python benchmarks/bench_day_after.py --customers 100000 --days 1 --json day_after.json
    python benchmarks/bench_day_after.py --dir /path/to/built/project --days 3   # reuse a built project
    python benchmarks/bench_day_after.py --history-size 10 --customers 1000000   # ml.score_history's size

Each build runs as its own process, as a scheduler would (``churnwh build``, then ``churnwh demo-advance
--days 1``); for each it prints the wall time, the peak RSS of that process, each stage's seconds (from
the build's stage table), which SQL models were built incrementally (``_churnwh.incremental_state``)
and the day-after build's cost as a share of the first. The issue's target: at most 15%. Wall-clock
figures on a shared machine are noisy: the machine's load (``os.getloadavg``) is printed with each.

``--history-size N`` measures instead what ``ml.score_history`` costs on disk: N daily snapshots of the
scored customers (``SCORED_SHARE`` of ``--customers``, the demo's share of active customers) with the
table's columns and value shapes (32-hex pseudonyms, doubles, tiers) written to a new DuckDB file the
way the monitor stage does (one INSERT per build), the file size measured after each; then a year of
daily builds extrapolated with and without the retention defaults ([monitoring] score_history_days,
score_history_months).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
STAGE_LINE = re.compile(r"^\s*([a-z]+)\s+[│|]\s+([0-9.]+)\s+[│|]")
MODEL_LINE = re.compile(r"\smodels\s+(?:built|increment)\s+(\S+)\s+[0-9,]+ rows\s+([0-9.]+) s")
SLOW_MODEL_SECONDS = 5.0
"""Models that took at least this long are listed with their seconds."""


def run(project: Path, *args: str) -> dict:
    """One churnwh process: wall seconds, its own peak RSS (GiB), stage seconds, output."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "churnwh", "--project", str(project), *args],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "COLUMNS": "200"})
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"churnwh {' '.join(args)} failed:\n{output[-3000:]}")
    stages = {m.group(1): float(m.group(2)) for line in output.splitlines() if (m := STAGE_LINE.match(line))}
    return {"seconds": round(seconds, 1), "peak_rss_gib": round(usage.ru_maxrss / 1024**2, 2), "stages": stages,
            "load": [round(x, 1) for x in os.getloadavg()],
            "slow_models": {m.group(1): float(m.group(2)) for line in output.splitlines()
                            if (m := MODEL_LINE.search(line)) and float(m.group(2)) >= SLOW_MODEL_SECONDS},
            "full_rebuilds": [line.strip() for line in output.splitlines() if "full rebuild:" in line],
            "restated": [line.strip() for line in output.splitlines() if " values restated: " in line],
            "output": output}


def incremental_models(project: Path) -> dict[str, str]:
    import duckdb

    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        return dict(con.execute("SELECT model, mode FROM _churnwh.incremental_state ORDER BY model").fetchall())


SCORED_SHARE = 0.468
"""Scored (active) customers per demo customer: 2,340 of 5,000 at the default demo's data end."""


def history_size(customers: int, snapshots: int) -> dict:
    import duckdb

    from churnwh.config import MonitoringConfig

    rows = int(customers * SCORED_SHARE)
    folder = Path(tempfile.mkdtemp(prefix="churnwh-history-"))
    path = folder / "history.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA ml")
    con.execute("CREATE TABLE ml.score_history (snapshot_at TIMESTAMP, as_of DATE, customer_pseudonym VARCHAR, "
                "churn_probability DOUBLE, risk_tier VARCHAR, value_at_risk DOUBLE, model_version VARCHAR)")
    sizes = []
    for day in range(snapshots):
        con.execute(
            f"""INSERT INTO ml.score_history SELECT current_localtimestamp(), DATE '2026-01-01' + CAST({day} AS INTEGER),
                md5(CAST(i AS VARCHAR)), p, CASE WHEN p >= 0.5 THEN 'high' WHEN p >= 0.2 THEN 'medium' ELSE 'low' END,
                round(p * 12 * 20, 2), 'v0001' FROM (SELECT i, random() ^ 3 AS p FROM range({rows}) AS r(i))""")
        con.execute("CHECKPOINT")
        sizes.append(path.stat().st_size)
    # then as many builds again under a retention of half as many days: the file stops growing (DuckDB
    # reuses the deleted rows' blocks after a checkpoint)
    from churnwh.stages.monitor import compact_score_history

    retained = []
    for day in range(snapshots, 2 * snapshots):
        con.execute(
            f"""INSERT INTO ml.score_history SELECT current_localtimestamp(), DATE '2026-01-01' + CAST({day} AS INTEGER),
                md5(CAST(i AS VARCHAR)), p, 'low', round(p * 240, 2), 'v0001'
                FROM (SELECT i, random() ^ 3 AS p FROM range({rows}) AS r(i))""")
        compact_score_history(con, snapshots // 2, 0)
        con.execute("CHECKPOINT")
        retained.append(path.stat().st_size)
    con.close()
    per_snapshot = (sizes[-1] - sizes[0]) / max(snapshots - 1, 1)
    shutil.rmtree(folder)
    kept = snapshots_kept_after_a_year(MonitoringConfig())
    return {"customers": customers, "rows_per_snapshot": rows, "snapshots_measured": snapshots,
            "bytes_per_snapshot": int(per_snapshot), "bytes_per_row": round(per_snapshot / rows, 1),
            "file_mib_growing": [size // 2**20 for size in sizes],
            f"file_mib_keeping_{snapshots // 2 + 1}_days": [size // 2**20 for size in retained],
            "year_without_retention_gib": round(365 * per_snapshot / 1024**3, 2),
            "snapshots_kept_with_defaults": kept,
            "year_with_retention_gib": round(kept * per_snapshot / 1024**3, 2)}


def snapshots_kept_after_a_year(monitoring) -> int:
    """How many of 365 daily snapshots the retention (churnwh.stages.monitor.compact_score_history) keeps."""
    import duckdb

    from churnwh.stages.monitor import compact_score_history
    from churnwh.stages.registry import SCORE_HISTORY

    with duckdb.connect() as con:
        con.execute("CREATE SCHEMA ml")
        con.execute(f"CREATE TABLE {SCORE_HISTORY} AS SELECT DATE '2026-01-01' + CAST(i AS INTEGER) AS as_of FROM range(365) AS r(i)")
        compact_score_history(con, monitoring.score_history_days, monitoring.score_history_months)
        return con.execute(f"SELECT count(*) FROM {SCORE_HISTORY}").fetchall()[0][0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--days", type=int, default=2, help="day-after builds to run (one demo day each)")
    parser.add_argument("--dir", type=Path, help="project folder (built already: no first build); default a new one")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--history-size", type=int, metavar="N",
                        help="measure N snapshots of ml.score_history instead and extrapolate a year")
    args = parser.parse_args()
    if args.history_size:
        figures = history_size(args.customers, args.history_size)
        print(json.dumps(figures, indent=2))
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2))
        return

    project = args.dir or Path(tempfile.mkdtemp(prefix="churnwh-day-after-"))
    results: dict = {"customers": args.customers, "builds": []}
    if args.dir is None:
        shutil.copytree(ROOT / "sql", project / "sql")
        config = re.sub(r"(?m)^customers = \d+", f"customers = {args.customers}", (ROOT / "churnwh.toml").read_text())
        (project / "churnwh.toml").write_text(config)
        first = run(project, "build")
        results["first"] = first
        print(f"first build: {first['seconds']} s, peak RSS {first['peak_rss_gib']} GiB, load {first['load']}, "
              f"stages {first['stages']}")
    for day in range(1, args.days + 1):
        run(project, "demo-advance", "--days", "1")
        after = run(project, "build")
        after["incremental"] = incremental_models(project)
        results["builds"].append(after)
        share = f" = {100 * after['seconds'] / results['first']['seconds']:.1f}% of the first" if "first" in results else ""
        print(f"day {day} after: {after['seconds']} s{share}, peak RSS {after['peak_rss_gib']} GiB, load {after['load']}, "
              f"stages {after['stages']}, slow models {after['slow_models']}, incremental {after['incremental']}, "
              f"full rebuilds {after['full_rebuilds']}, "
              f"restated {after['restated']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(f"project: {project}")


if __name__ == "__main__":
    main()
