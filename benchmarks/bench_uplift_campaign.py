"""Uplift-targeted against risk-targeted campaigns on the same budget, on the demo that moves on in time.

The issue's done-when, with the real CLI on a demo project: build; a risk-targeted pilot large enough for the
pilot-size rule; `demo-campaign` plays it out (heterogeneous planted effect); build (the uplift step fits the
network on the pilot); `plan --by uplift --compare risk` on one budget (two random halves, half the budget
each, each with its own control group); `demo-campaign`; build; `pilot-report`: per arm the realised effect and
customers saved per 1,000 spent with 95% intervals, and the difference. Against the planted truth
(``uplift_truth.parquet``, outside the warehouse): per arm the expected customers saved by its treated members
(``expected_saved``, the sum of their true uplift) per 1,000 spent.

    PYTHONPATH=$PWD python benchmarks/bench_uplift_campaign.py --customers 20000 --folder /tmp/bench-uplift
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from churnwh.sources.demo.advance import SHADOW_SUFFIX  # noqa: E402
from churnwh.sources.demo.uplift import expected_saved, read_uplift_truth  # noqa: E402

COSTS = ("--cost", "high=1", "--cost", "medium=1", "--cost", "low=1")
"""One contact costs 1 in every tier, so saved per 1,000 spent is saved per 1,000 contacts. (The demo's
expected saved values, churn prevented x the value over the horizon, are a few units: a cost of 10 would
leave the uplift arm empty, every contact worth less than it costs.)"""
RATES = ("--success-rate", "low=0.05")


def run(project: Path, *args: str) -> str:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "churnwh", "--project", str(project), *args],
                            capture_output=True, text=True)
    print(f"[{time.perf_counter() - started:6.1f} s] churnwh {' '.join(args)}", file=sys.stderr, flush=True)
    if result.returncode != 0:
        raise SystemExit(f"churnwh {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout + result.stderr


def make_project(folder: Path, customers: int, network: str = "", uplift_min_gain: float | None = None) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    shutil.copytree(REPO / "sql", folder / "sql")
    config = (REPO / "churnwh.toml").read_text().replace("customers = 5000", f"customers = {customers}")
    if uplift_min_gain is not None:
        config = config.replace("[retention]\n", f"[retention]\nuplift_min_gain = {uplift_min_gain}\n", 1)
    (folder / "churnwh.toml").write_text(config + network)
    return folder


def truth_per_arm(project: Path, campaign: str) -> dict:
    """Expected customers saved by each arm's treated members (the planted truth) per 1,000 spent."""
    truth = read_uplift_truth(project / "warehouse" / "uplift_truth.parquet", campaign)
    con = duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True)
    try:
        rows = con.execute(
            """SELECT coalesce(m.arm, 'all'), m.pilot_group, k.customer_id, m.cost FROM ml.campaign_members m
               JOIN raw.customer_keys k USING (customer_pseudonym) WHERE m.campaign_id = ?""", [campaign]).fetchall()
    finally:
        con.close()
    arms: dict[str, dict] = {}
    for arm, group, customer, cost in rows:
        entry = arms.setdefault(arm, {"treated": [], "cost": 0.0, "all": []})
        entry["all"].append(customer)
        if group == "treatment":
            entry["treated"].append(customer)
            entry["cost"] += cost
    uplift = dict(zip(truth.column("customer_id").to_pylist(), truth.column("uplift").to_pylist()))
    out, spread = {}, {}
    for arm, entry in arms.items():
        saved = expected_saved(truth, entry["treated"])
        values = np.array([uplift[c] for c in entry["treated"]])
        # 95% interval of the mean true uplift per contact (cost 1 each) over the contacted members: what the
        # rule saves per 1,000 contacts in expectation, the draw of who is treated being the only noise
        half = 1.96 * values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else float("nan")
        spread[arm] = (values.mean() if values.size else float("nan"), half)
        out[arm] = {"members": len(entry["all"]), "treated": len(entry["treated"]), "cost": entry["cost"], "true_saved": round(saved, 2),
                    "true_saved_per_1000": round(1000 * saved / entry["cost"], 3) if entry["cost"] else None,
                    "true_saved_per_1000_low": round(1000 * (spread[arm][0] - half), 1),
                    "true_saved_per_1000_high": round(1000 * (spread[arm][0] + half), 1),
                    "mean_true_uplift_treated": round(saved / max(len(entry["treated"]), 1), 4)}
    if {"uplift", "risk"} <= spread.keys():
        difference = spread["uplift"][0] - spread["risk"][0]
        half = float(np.hypot(spread["uplift"][1], spread["risk"][1]))
        out["uplift_minus_risk_per_1000"] = {"difference": round(1000 * difference, 1),
                                             "low": round(1000 * (difference - half), 1),
                                             "high": round(1000 * (difference + half), 1)}
    return out


def scored_customers(project: Path) -> set[str]:
    """The customers the current scores hold who may be contacted (the candidates a plan chooses from: it never
    selects a customer without marketing consent, a third of the demo's scored customers)."""
    con = duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True)
    try:
        return {row[0] for row in con.execute(
            "SELECT k.customer_id FROM ml.churn_scores JOIN raw.customer_keys k USING (customer_pseudonym) "
            "WHERE contactable").fetchall()}
    finally:
        con.close()


def oracle_per_arm(project: Path, campaign: str, arms: dict, scored: set[str]) -> dict | None:
    """The planted truth of an oracle arm: true customers saved per 1,000 contacts (cost 1 each) when an arm
    selects, among the scored customers the plan chose from, those a contact saves most. An arm selects its
    members (treated and control alike) from a random half of the candidates and contacts a random part of
    them, so per contact it saves the mean true uplift of its selected members: for an oracle arm selecting
    m members, the best m of a half, in expectation the best 2m of all candidates. Needs `demo-campaign
    --truth-for-everyone` (every customer's true uplift, outside the warehouse)."""
    path = project / "warehouse" / "uplift_truth.parquet"
    try:
        truth = read_uplift_truth(path, campaign + SHADOW_SUFFIX)
    except ValueError:
        return None
    uplift = {c: u for c, u in zip(truth.column("customer_id").to_pylist(), truth.column("uplift").to_pylist())
              if c in scored}
    ranked = sorted(uplift.values(), reverse=True)
    out = {}
    for arm, entry in arms.items():
        if "members" not in entry:  # the difference between the arms
            continue
        best = ranked[: 2 * entry["members"]]
        out[arm] = {"members": entry["members"], "candidates": len(ranked),
                    "true_saved_per_1000": round(1000 * sum(best) / max(len(best), 1), 3)}
    return out


def table(project: Path, query: str) -> list[dict]:
    con = duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True)
    try:
        cursor = con.execute(query)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, (round(v, 5) if isinstance(v, float) else v for v in row)))
                for row in cursor.fetchall()]
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--folder", type=Path, default=Path("/tmp/bench-uplift-campaign"))
    parser.add_argument("--pilot-budget", type=float, default=4_000, help="risk-targeted pilot (cost 1 a member)")
    parser.add_argument("--budget", type=float, default=2_000, help="the compared campaign's budget (both arms)")
    parser.add_argument("--control-fraction", type=float, default=0.5, help="of the pilot")
    parser.add_argument("--effect", type=float, default=0.3)
    parser.add_argument("--compared-control-fraction", type=float, default=0.5)
    parser.add_argument("--light-churn-network", action="store_true",
                        help="a smaller churn network (hidden 64, k 4, 32,768 rows an epoch) for a busy CPU; the "
                             "uplift network keeps its own defaults")
    parser.add_argument("--uplift-min-gain", type=float, default=None,
                        help="[retention] uplift_min_gain for the project (default: the project's own); a large "
                             "value lets a small smoke run pass the pilot-size rule")
    args = parser.parse_args()
    light = "\n[network]\nhidden = 64\nk = 4\nmax_epoch_rows = 32768\n" if args.light_churn_network else ""
    project = make_project(args.folder, args.customers, light, args.uplift_min_gain)
    started = time.perf_counter()
    run(project, "build")
    pilot = run(project, "plan", "--campaign", "pilot", "--budget", str(args.pilot_budget), *COSTS, *RATES,
                "--control-fraction", str(args.control_fraction))
    run(project, "demo-campaign", "pilot", "--days", "90", "--effect", str(args.effect))
    fitted = run(project, "build")
    status = table(project, "SELECT status, members, needed, uplift_model_version FROM ml.uplift_status")
    if not status or status[0]["uplift_model_version"] is None:
        raise SystemExit(f"the uplift stage fitted no model on the pilot: {status} (a larger --pilot-budget, or "
                         "--uplift-min-gain for a smoke run)")
    validation = table(project, "SELECT rule, qini, auuc, qini_gain_low, qini_gain_high, members, test_members "
                                "FROM ml.uplift_validation ORDER BY rule")
    pilot_report = run(project, "pilot-report", "pilot")
    compared = run(project, "plan", "--campaign", "compared", "--budget", str(args.budget), *COSTS, *RATES,
                   "--by", "uplift", "--compare", "risk", "--control-fraction",
                   str(args.compared_control_fraction))
    if "; uplift arm:" not in compared or "; risk arm:" not in compared:
        raise SystemExit(f"an arm of the compared plan is empty (no contact worth its cost?): {compared}")
    candidates = scored_customers(project)
    run(project, "demo-campaign", "compared", "--days", "90", "--effect", str(args.effect), "--truth-for-everyone")
    run(project, "build")
    report = run(project, "pilot-report", "compared")
    print(json.dumps({
        "customers": args.customers, "effect": args.effect, "budget": args.budget,
        "seconds": round(time.perf_counter() - started, 1),
        "pilot_plan": pilot.strip().splitlines()[-1], "pilot_report": pilot_report.strip(),
        "uplift_status": status, "uplift_validation": validation,
        "fit_build_uplift_line": [line for line in fitted.splitlines() if "uplift" in line][:3],
        "compared_plan": compared.strip().splitlines()[-1],
        "compared_report": report.strip().splitlines(),
        "arm_results": table(project, "SELECT arm, treated, control, treated_churn_rate, control_churn_rate, effect, "
                                      "ci_low, ci_high, treated_cost, retained_per_1000_cost, retained_per_1000_low, "
                                      "retained_per_1000_high FROM ml.pilot_arm_results"),
        "comparison": table(project, "SELECT * EXCLUDE (evaluated_at) FROM ml.pilot_comparison"),
        "truth_per_arm": (arms := truth_per_arm(project, "compared")),
        "truth_oracle_per_arm": oracle_per_arm(project, "compared", arms, candidates),
        "truth_pilot": truth_per_arm(project, "pilot"),
    }, indent=1, default=str))


if __name__ == "__main__":
    main()
