"""The day after: a first `churnwh build`, then the demo advancing one day at a time and a build after each.

Usage::

    python benchmarks/bench_day_after.py                                  # 5,000 customers, 2 days after
    python benchmarks/bench_day_after.py --customers 100000 --days 1 --json day_after.json
    python benchmarks/bench_day_after.py --dir /path/to/built/project --days 3   # reuse a built project

Each build runs as its own process, as a scheduler would (``churnwh build``, then ``churnwh demo-advance
--days 1``); for each it prints the wall time, the peak RSS of that process, each stage's seconds (from
the build's stage table), which SQL models were built incrementally (``_churnwh.incremental_state``)
and the day-after build's cost as a share of the first. The issue's target: at most 15%. Wall-clock
figures on a shared machine are noisy: the machine's load (``os.getloadavg``) is printed with each.
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
STAGE_LINE = re.compile(r"^\s*([a-z]+)\s+[│|]\s+([0-9.]+)\s+[│|]")


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
            "load": [round(x, 1) for x in os.getloadavg()]}


def incremental_models(project: Path) -> dict[str, str]:
    import duckdb

    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        return dict(con.execute("SELECT model, mode FROM _churnwh.incremental_state ORDER BY model").fetchall())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--days", type=int, default=2, help="day-after builds to run (one demo day each)")
    parser.add_argument("--dir", type=Path, help="project folder (built already: no first build); default a new one")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args()

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
              f"stages {after['stages']}, models {after['incremental']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(f"project: {project}")


if __name__ == "__main__":
    main()
