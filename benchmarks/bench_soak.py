"""Soak: N consecutive `churnwh build`s of one demo project, with time advancing in between.

Usage::

    python benchmarks/bench_soak.py                                  # 5 builds, 2,000 customers
    python benchmarks/bench_soak.py --builds 8 --customers 5000 --days 30 --json soak.json
    python benchmarks/bench_soak.py --builds 2 --customers 300 --network tiny   # what the test runs

Steps, in a new project folder (a temporary one unless ``--dir``): copy ``sql/`` and
``churnwh.toml`` from the repository, set ``demo.customers``, and run ``churnwh build`` as a
separate process, as a scheduler would. Between two builds the demo business moves on by ``--days``
the way the pilot does end to end: ``churnwh plan`` a campaign and ``churnwh demo-campaign`` plays it
out in the simulator, which advances every customer by ``--days`` days (usage, purchases, tickets,
churn, new customers...) with the treated members' churn hazard lowered; the default ``as_of`` follows
the data end, so the next build scores a later date, with more training rows, a new score snapshot
and new campaign rows. After every build from the second, ``churnwh backtest`` compares the snapshots
whose outcome window is over with realized churn (none before about 135 days of advances).

After every build it records the build's wall time and stage times, the size of the private
warehouse file, of the published file and of the models folder, the model versions, the number
of files under ``warehouse/``, the rows held in the private warehouse, any leftover file (a
temporary publish or rewrite copy, a WAL, a lock file, anything unexpected), and whether the
published file passes ``churnwh.privacy.publish.verify`` (opened read-only, as a BI tool would).

The verdict compares growth from the first to the last build with data growth (rows held):
``size growth / data growth`` near 1 means the files grow with the data and nothing is left over;
time is reported the same way (the first build also simulates the demo). The exit code is 1 when
a build failed, a published file failed verification or a leftover file was found; growth
figures never fail the run (wall-clock times on a shared machine are noisy).
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

from tests.helpers import TINY_NETWORK  # noqa: E402 - the suite's tiny network, for --network tiny

EXPECTED = {"private.duckdb", "churn.duckdb", "demo_truth.parquet", "uplift_truth.parquet", "demo_state", "models"}
"""What a finished build leaves at the top of warehouse/ (the default demo configuration)."""
STAGE_LINE = re.compile(r"^\s*([a-z]+)\s+[│|]\s+([0-9.]+)\s+[│|]")


def churnwh(project: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "churnwh", "--project", str(project), *args],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"}, timeout=3600)


def make_project(project: Path, customers: int, network: str) -> None:
    project.mkdir(parents=True, exist_ok=True)
    shutil.copytree(ROOT / "sql", project / "sql")
    config = (ROOT / "churnwh.toml").read_text()
    config, count = re.subn(r"(?m)^customers = \d+", f"customers = {customers}", config)
    if count != 1:
        raise SystemExit("churnwh.toml has no [demo] customers line to set")
    (project / "churnwh.toml").write_text(config + (TINY_NETWORK if network == "tiny" else ""))


def advance(project: Path, step: int, days: int) -> dict:
    """Plan a campaign and play it out while the demo advances ``days`` days (as_of follows the data)."""
    campaign = f"soak-{step}"
    planned = churnwh(project, "plan", "--campaign", campaign, "--budget", "1000000", "--cost", "high=40",
                      "--cost", "medium=8", "--cost", "low=1", "--success-rate", "low=0.05")
    if planned.returncode != 0:
        raise SystemExit(f"churnwh plan failed: {planned.stderr.strip()}")
    started = time.perf_counter()
    played = churnwh(project, "demo-campaign", campaign, "--days", str(days))
    if played.returncode != 0:
        raise SystemExit(f"churnwh demo-campaign failed: {played.stderr.strip()}")
    as_of = re.search(r"as_of = (\d{4}-\d\d-\d\d)", played.stdout).group(1)
    members = int(re.search(r"(\d+) members", played.stdout).group(1))
    added = int(re.search(r"\(([\d,]+) raw rows added\)", played.stdout).group(1).replace(",", ""))
    planted = float(re.search(r"expected ([0-9.]+) percentage points", played.stdout).group(1)) / 100
    return {"campaign": campaign, "members": members, "as_of": as_of, "rows_added": added,
            "planted_effect": planted, "advance_s": round(time.perf_counter() - started, 2)}


def pilot_report(project: Path, campaign: str) -> str:
    """``churnwh pilot-report``'s line for the campaign played out before this build (or why there is none)."""
    result = churnwh(project, "pilot-report", campaign)
    return (result.stdout if result.returncode == 0 else result.stderr).strip().removeprefix("error: ")


def backtest(project: Path) -> list[dict]:
    """``churnwh backtest``'s rows (snapshots with their outcome window over), with the model's test AUC."""
    import duckdb

    result = churnwh(project, "backtest")
    if result.returncode != 0:
        return []
    con = duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True)
    try:
        rows = con.execute(
            """SELECT CAST(b.as_of AS VARCHAR), b.model_version, b.customers, b.realized_rate, b.roc_auc,
                      r.test_roc_auc FROM ml.backtest b LEFT JOIN ml.model_runs r ON r.version = b.model_version
               ORDER BY b.as_of""").fetchall()
    finally:
        con.close()
    return [{"as_of": a, "model_version": v, "customers": c, "realized_rate": rr, "roc_auc": auc, "test_roc_auc": t}
            for a, v, c, rr, auc, t in rows]


def folder_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def leftovers(warehouse: Path) -> list[str]:
    """Files a finished build should not leave: temporary copies, WALs, lock files, anything else."""
    found = [p.name for p in warehouse.iterdir() if p.name not in EXPECTED]
    found += [str(p.relative_to(warehouse)) for p in (warehouse / "models").rglob("*")
              if p.name.startswith(".") or p.suffix in (".tmp", ".wal", ".new")]
    return sorted(found)


def verify_published(project: Path) -> tuple[bool, str]:
    """churnwh.privacy.publish.verify on the published file, both files opened read-only."""
    import duckdb

    from churnwh.config import load_config
    from churnwh.privacy import classification, publish
    from churnwh.sources import declared as sources
    from churnwh.sqlmodels.project import load_project

    config = load_config(project)
    sources.register_classification(config)
    if not config.warehouse.published.exists():
        return False, "no published file"
    con = duckdb.connect(str(config.warehouse.private), read_only=True)
    try:
        con.execute(f"ATTACH '{config.warehouse.published}' AS {publish.PUB} (READ_ONLY)")
        quasi = classification.quasi_identifier_names(load_project(config.sql))
        problems, _ = publish.verify(con, config.publish.k_anonymity, quasi)
    finally:
        con.close()
    return not problems, "; ".join(problems[:3])


def rows_held(private: Path) -> dict[str, int]:
    """Rows per kind of table, model versions, the scored date and the file's free blocks."""
    import duckdb

    con = duckdb.connect(str(private), read_only=True)
    try:
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary").fetchall()
        counts = {f"{s}.{t}": con.execute(f'SELECT count(*) FROM "{s}"."{t}"').fetchall()[0][0] for s, t in tables}
        versions = con.execute("SELECT count(*) FROM ml.model_runs").fetchall()[0][0] \
            if "ml.model_runs" in counts else 0
        as_of = con.execute("SELECT max(as_of) FROM ml.churn_scores").fetchall()[0][0] \
            if "ml.churn_scores" in counts else None
        block_size, free_blocks = con.execute("SELECT block_size, free_blocks FROM pragma_database_size()").fetchall()[0]
    finally:
        con.close()
    return {"total": sum(counts.values()), "raw": sum(v for k, v in counts.items() if k.startswith("raw.")),
            "training_set": counts.get("marts.training_set", 0), "score_history": counts.get("ml.score_history", 0),
            "model_versions": versions, "as_of": str(as_of), "free_bytes": int(block_size) * int(free_blocks)}


def measure(project: Path, number: int, seconds: float, result: subprocess.CompletedProcess) -> dict:
    warehouse = project / "warehouse"
    stages = {m.group(1): float(m.group(2)) for m in map(STAGE_LINE.match, result.stdout.splitlines()) if m}
    ok, problems = verify_published(project) if result.returncode == 0 else (False, "build failed")
    rows = rows_held(warehouse / "private.duckdb") if result.returncode == 0 else {}
    return {
        "build": number, "returncode": result.returncode, "wall_s": round(seconds, 2), "stages_s": stages,
        "private_bytes": (warehouse / "private.duckdb").stat().st_size if (warehouse / "private.duckdb").exists() else 0,
        "published_bytes": (warehouse / "churn.duckdb").stat().st_size if (warehouse / "churn.duckdb").exists() else 0,
        "models_bytes": folder_bytes(warehouse / "models"),
        "warehouse_files": sum(1 for p in warehouse.rglob("*") if p.is_file()),
        "rows": rows, "leftovers": leftovers(warehouse), "verified": ok, "verify_problems": problems,
        "error": result.stderr.strip().splitlines()[-1] if result.returncode else "",
    }


def verdict(builds: list[dict]) -> dict:
    """Growth from the first to the last successful build, and what failed."""
    done = [b for b in builds if b["returncode"] == 0] or builds[:1]
    first, last = done[0], done[-1]
    data = last["rows"].get("total", 0) / max(first["rows"].get("total", 0), 1)

    def growth(key: str) -> float:
        return last[key] / first[key] if first[key] else float("nan")

    out = {"builds": len(builds), "compared": [first["build"], last["build"]], "data_growth": round(data, 3)}
    for key in ("private_bytes", "published_bytes", "models_bytes", "wall_s"):
        out[f"{key}_growth"] = round(growth(key), 3)
        out[f"{key}_growth_per_data_growth"] = round(growth(key) / data, 3) if data else None
    if len(done) > 2:  # the first build also simulates the demo and fills an empty file: also from the second
        second = done[1]
        data_second = last["rows"].get("total", 0) / max(second["rows"].get("total", 0), 1)
        out["data_growth_from_second"] = round(data_second, 3)
        for key in ("private_bytes", "published_bytes", "models_bytes", "wall_s"):
            from_second = last[key] / second[key] if second[key] else float("nan")
            out[f"{key}_growth_from_second_per_data_growth"] = round(from_second / data_second, 3)
    out["failed_builds"] = [b["build"] for b in builds if b["returncode"] != 0]
    out["unverified"] = [b["build"] for b in builds if not b["verified"]]
    out["leftovers"] = sorted({name for b in builds for name in b["leftovers"]})
    out["ok"] = not (out["failed_builds"] or out["unverified"] or out["leftovers"])
    return out


def mib(value: int) -> str:
    return f"{value / 2**20:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--builds", type=int, default=5, help="consecutive builds (at least 2)")
    parser.add_argument("--customers", type=int, default=2000, help="demo customers")
    parser.add_argument("--days", type=int, default=30, help="days the demo advances between builds")
    parser.add_argument("--network", choices=("default", "tiny"), default="default",
                        help="the project's network settings, or a tiny network (tests)")
    parser.add_argument("--dir", type=Path, help="project folder to create (default: a temporary one, removed)")
    parser.add_argument("--json", type=Path, help="also write every figure and the verdict as JSON here")
    args = parser.parse_args(argv)
    if args.builds < 2 or args.customers < 1 or args.days < 1:
        parser.error("--builds must be at least 2, --customers and --days at least 1")
    temporary = None if args.dir else tempfile.TemporaryDirectory(prefix="churnwh-soak-")
    project = args.dir or Path(temporary.name) / "project"
    try:
        make_project(project, args.customers, args.network)
        builds, steps = [], []
        for number in range(1, args.builds + 1):
            if number > 1:
                steps.append(advance(project, number, args.days))
            started = time.perf_counter()
            result = churnwh(project, "build")
            builds.append(measure(project, number, time.perf_counter() - started, result))
            if result.returncode != 0:
                break
            builds[-1]["backtest"] = backtest(project) if number > 1 else []
            if number > 1:
                steps[-1]["pilot_report"] = pilot_report(project, steps[-1]["campaign"])
        summary = verdict(builds)
    finally:
        if temporary is not None:
            temporary.cleanup()

    print(f"soak: {len(builds)} builds of a {args.customers:,}-customer demo, {args.days} days between builds "
          f"(network: {args.network})")
    header = (f"{'build':>5} {'as_of':>10} {'wall s':>7} {'train s':>7} {'explain s':>9} {'private MiB':>11} "
              f"{'(free)':>7} {'published MiB':>13} {'models MiB':>10} {'versions':>8} {'files':>5} "
              f"{'rows held':>10} {'verified':>8}  leftovers")
    print(header)
    for build in builds:
        print(f"{build['build']:>5} {build['rows'].get('as_of', '-'):>10} {build['wall_s']:>7.1f} "
              f"{build['stages_s'].get('train', 0):>7.1f} "
              f"{build['stages_s'].get('explain', 0):>9.1f} {mib(build['private_bytes']):>11} "
              f"{mib(build['rows'].get('free_bytes', 0)):>7} "
              f"{mib(build['published_bytes']):>13} {mib(build['models_bytes']):>10} "
              f"{build['rows'].get('model_versions', 0):>8} {build['warehouse_files']:>5} "
              f"{build['rows'].get('total', 0):>10,} {'yes' if build['verified'] else 'NO':>8}  "
              f"{', '.join(build['leftovers']) or '-'}" + (f"  FAILED: {build['error']}" if build["returncode"] else ""))
    for build in builds:
        for row in build.get("backtest", []):
            auc = "-" if row["roc_auc"] is None else f"{row['roc_auc']:.3f}"
            test = "-" if row["test_roc_auc"] is None else f"{row['test_roc_auc']:.3f}"
            print(f"backtest after build {build['build']}: snapshot {row['as_of']} ({row['model_version']}, "
                  f"{row['customers']:,} customers): realized churn {row['realized_rate']:.3f}, ROC-AUC {auc} "
                  f"(model's test ROC-AUC {test})")
    for number, step in enumerate(steps, start=2):
        print(f"advance before build {number}: {step['rows_added']:,} raw rows added in {step['advance_s']:.1f} s, "
              f"campaign {step['campaign']} ({step['members']:,} members, planted effect {step['planted_effect']:.3f})")
        if "pilot_report" in step:
            print(f"pilot report after build {number}: {step['pilot_report']}")
    first, last = summary["compared"]
    print(f"data growth (rows held), build {first} -> {last}: x{summary['data_growth']}"
          + (f"; from build 2: x{summary['data_growth_from_second']}" if "data_growth_from_second" in summary else ""))
    for key, label in (("private_bytes", "private file"), ("published_bytes", "published file"),
                       ("models_bytes", "models folder"), ("wall_s", "build time")):
        print(f"{label + ' growth':>22}: x{summary[key + '_growth']}, per data growth "
              f"x{summary[key + '_growth_per_data_growth']}"
              + (f"; from build 2 (the first simulates the demo into an empty file), per data growth "
                 f"x{summary[key + '_growth_from_second_per_data_growth']}"
                 if key + "_growth_from_second_per_data_growth" in summary else ""))
    problems = []
    if summary["failed_builds"]:
        problems.append(f"builds {summary['failed_builds']} failed")
    if summary["unverified"]:
        problems.append(f"published file of builds {summary['unverified']} failed verification")
    if summary["leftovers"]:
        problems.append(f"leftover files: {', '.join(summary['leftovers'])}")
    print("verdict: " + ("ok: every build succeeded and published a verified file, no leftover files"
                         if summary["ok"] else "FAILED: " + "; ".join(problems)))
    if args.json:
        args.json.write_text(json.dumps({"settings": vars(args) | {"dir": str(args.dir) if args.dir else None,
                                                                  "json": str(args.json)},
                                         "steps": steps, "builds": builds, "verdict": summary}, indent=1))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
