"""Why an uplift-targeted campaign did or did not beat risk targeting: targeting rules refitted offline on a
finished `bench_uplift_campaign.py` project and scored against the planted truth of every candidate.

Needs a project whose compared campaign was played out with `demo-campaign --truth-for-everyone` (the
benchmark does so). The project is not changed: its private warehouse is copied to ``--work``, where the SQL
models are rebuilt as of the compared campaign's date, so that every candidate the plan chose from (the
scores of that date, ``ml.score_history``) gets its features as the plan saw them; the compared members'
snapshotted features are checked against the rebuilt ones. Only customers with marketing consent on that
date are candidates (a plan contacts no one else; `bench_uplift_campaign.py`'s oracle counted every scored
customer before 2026-12-07 and so overstated the best choice). The pilot's members are read as the build
that fitted the uplift model read them (``pilot_members`` as of the campaign date).

Each rule ranks the candidates; the top ``--contacts`` (default: as many as the compared campaign's members:
each arm chose its members from a random half of the candidates, so per contact it saved about what the
best ``2 x arm members`` of all would) are contacted and scored by their true uplift: true customers saved
per 1,000 contacts, ranking by the score alone and by the score x the customer's value over the horizon
(as the plans rank), and Spearman of the score with the true uplift over all candidates. Rules: the
oracle, the plan's churn probability, the planted no-contact churn, and the risk-offset estimator fitted
as the build fits it (70% of the pilot, the build's split), on every member, and on other random 70%
splits per L2 penalty. Then the compared campaign's arms are replayed (``replay_arms``) with the build's
fit at ``contacts / 2`` members per arm, to tell what each measurement could show at each campaign size.

    PYTHONPATH=$PWD python benchmarks/bench_uplift_diagnose.py --project /tmp/bench-uplift-campaign \
        --contacts 1000 2000 4000
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import logging
import shutil
import sys
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from churnwh.action import uplift as stage
from churnwh.config import load_config
from churnwh.ml import uplift
from churnwh.sources.demo.advance import SHADOW_SUFFIX
from churnwh.sources.demo.uplift import read_uplift_truth
from churnwh.sqlmodels.project import load_project
from churnwh.sqlmodels.run_models import run_models
from churnwh.stages import registry
from churnwh.store import warehouse

TRUE_RISK = "true_no_contact_churn"
TRUE_RISK_CONTACTED = "true_contacted_churn"


def rebuilt_copy(project: Path, work: Path, campaign: str):
    """A copy of the private warehouse with the models up to the scoring set rebuilt as of the campaign's date;
    the config with that date as ``as_of``."""
    config = load_config(project)
    work.mkdir(parents=True, exist_ok=True)
    copy = work / "private.duckdb"
    shutil.copyfile(config.warehouse.private, copy)
    con = duckdb.connect(str(copy))
    found = con.execute(f"SELECT as_of FROM {stage.CAMPAIGNS} WHERE campaign_id = ?", [campaign]).fetchall()
    if not found:
        raise SystemExit(f"campaign {campaign!r} is not in {stage.CAMPAIGNS} of {project}")
    as_of = found[0][0]
    as_of = as_of if isinstance(as_of, dt.date) else dt.date.fromisoformat(str(as_of))
    variables = dict(config.variables, as_of=as_of)
    sources = {name for name in warehouse.relations(con) if name.startswith(f"{warehouse.RAW_SCHEMA}.")}
    models = load_project(config.sql, known_sources=sources)
    run_models(con, models, variables, selected=models.select(f"+{config.training.scoring_model}"), full_refresh=True)
    return con, dataclasses.replace(config, variables=variables), as_of


def candidates(con, config, campaign: str, as_of: dt.date, truth_path: Path) -> tuple[pl.DataFrame, int]:
    """The customers a plan could contact on the campaign date (scored then, marketing consent granted then) with
    their features then, churn probability, value and truth;
    and how many compared members' snapshotted features differ from the rebuilt ones."""
    frame = pl.from_arrow(con.sql(
        f"""SELECT k.customer_id, h.churn_probability AS {stage.RISK}, h.value_at_risk, s.*
            FROM ml.score_history h JOIN {config.training.scoring_model} s
              ON s.{config.training.id_column} = h.customer_pseudonym
            JOIN raw.customer_keys k ON k.customer_pseudonym = h.customer_pseudonym
            WHERE h.as_of = ? AND h.customer_pseudonym IN (
              SELECT customer_pseudonym FROM staging.consent_state WHERE purpose = 'marketing' AND state = 'granted'
                 AND valid_from <= ? AND (valid_to IS NULL OR valid_to > ?))""", params=[as_of] * 3).to_arrow_table())
    truth = pl.from_arrow(read_uplift_truth(truth_path, campaign + SHADOW_SUFFIX)).select(
        "customer_id", pl.col("uplift").alias("true_uplift"), pl.col("churn_if_not_contacted").alias(TRUE_RISK),
        pl.col("churn_if_contacted").alias(TRUE_RISK_CONTACTED))
    frame = frame.join(truth, on="customer_id", how="inner")
    members = pl.from_arrow(con.sql(
        f"""SELECT k.customer_id, f.* EXCLUDE (campaign_id, customer_pseudonym) FROM {stage.SNAPSHOT} f
            JOIN raw.customer_keys k USING (customer_pseudonym) WHERE f.campaign_id = ?""", params=[campaign]).to_arrow_table())
    common = [c for c in members.columns if c in frame.columns and c != "customer_id"]
    joined = members.select("customer_id", *common).join(frame.select("customer_id", *common), on="customer_id",
                                                           suffix="_rebuilt")
    differing = sum(int((joined[c].cast(pl.String).fill_null("") != joined[f"{c}_rebuilt"].cast(pl.String)
                         .fill_null("")).sum()) for c in common)
    return frame, differing


def scores(frame: pl.DataFrame, estimates: list[np.ndarray], contacts: int) -> dict:
    """True customers saved per 1,000 contacts by the top ``contacts`` (by the estimate and by the estimate x
    the customer's value over the horizon) and Spearman with the true uplift: mean and range over the fits."""
    true = frame["true_uplift"].to_numpy()
    value = (frame["value_at_risk"] / frame[stage.RISK]).to_numpy()
    results = np.array([(1000 * true[np.argsort(-e, kind="stable")[:contacts]].mean(),
                         1000 * true[np.argsort(-e * value, kind="stable")[:contacts]].mean(),
                         spearmanr(e, true)[0]) for e in estimates])
    out = {}
    for i, name in enumerate(("saved_per_1000", "saved_per_1000_by_value", "spearman")):
        column = results[:, i]
        digits = 3 if name == "spearman" else 1
        out[name] = round(float(column.mean()), digits)
        if len(column) > 1:
            out[name + "_range"] = [round(float(column.min()), digits), round(float(column.max()), digits)]
    out["fits"] = len(estimates)
    return out


def replay_arms(frame: pl.DataFrame, uplift_key: np.ndarray, members: int, draws: int, seed: int = 0) -> dict:
    """The compared campaign's procedure replayed on the candidates: a random half each, each arm selects its top
    ``members`` (uplift arm by ``uplift_key``, risk arm by value at risk, as the plans rank), treats a random half
    of them; outcomes drawn from the planted probabilities. Per draw the planted-truth difference (mean true
    uplift of the treated, uplift arm minus risk arm) and the realised one (each arm's control minus treated
    churn rate), each with its 95% interval as `bench_uplift_campaign.py` and `pilot-report` compute them."""
    rng = np.random.default_rng(seed)
    keys = {"uplift": uplift_key, "risk": frame["value_at_risk"].to_numpy()}
    true = frame["true_uplift"].to_numpy()
    churn = {False: frame[TRUE_RISK].to_numpy(), True: frame[TRUE_RISK_CONTACTED].to_numpy()}
    n = frame.height
    rows = []
    for _ in range(draws):
        order = rng.permutation(n)
        arms = {}
        for arm, half in (("uplift", order[: n // 2]), ("risk", order[n // 2:])):
            chosen = half[np.argsort(-keys[arm][half], kind="stable")[:members]]
            treated = rng.permutation(chosen)[: members // 2]
            control = np.setdiff1d(chosen, treated)
            churned_treated = rng.random(treated.size) < churn[True][treated]
            churned_control = rng.random(control.size) < churn[False][control]
            arms[arm] = (true[treated].mean(), true[treated].std(ddof=1) / np.sqrt(treated.size),
                         churned_control.mean() - churned_treated.mean(),
                         np.sqrt(churned_control.var() / control.size + churned_treated.var() / treated.size))
        (tu, su, ru, eu), (tr, sr, rr, er) = arms["uplift"], arms["risk"]
        rows.append((tu, tr, tu - tr, 1.96 * np.hypot(su, sr), ru - rr, 1.96 * np.hypot(eu, er)))
    r = np.array(rows)
    return {"members_per_arm": members, "treated_per_arm": members // 2, "draws": draws,
            "true_saved_per_1000_uplift_arm": round(1000 * float(r[:, 0].mean()), 1),
            "true_saved_per_1000_risk_arm": round(1000 * float(r[:, 1].mean()), 1),
            "true_difference": round(1000 * float(r[:, 2].mean()), 1),
            "true_interval_half_width": round(1000 * float(r[:, 3].mean()), 1),
            "share_true_interval_above_0": round(float(np.mean(r[:, 2] - r[:, 3] > 0)), 3),
            "realised_difference": round(1000 * float(r[:, 4].mean()), 1),
            "realised_interval_half_width": round(1000 * float(r[:, 5].mean()), 1),
            "share_realised_interval_above_0": round(float(np.mean(r[:, 4] - r[:, 5] > 0)), 3)}


def markdown(rules: dict, contacts: list[int]) -> str:
    def cell(entry: dict, name: str) -> str:
        low_high = entry.get(name + "_range")
        return f"{entry[name]}" + (f" ({low_high[0]} to {low_high[1]})" if low_high else "")

    lines = ["| rule | fits | " + " | ".join(f"top {k:,}: by score / x value" for k in contacts) + " | Spearman |",
             "|---|---|" + "---|" * len(contacts) + "---|"]
    for name, per in rules.items():
        first = per[contacts[0]]
        lines.append(f"| {name} | {first['fits']} | " + " | ".join(
            f"{cell(per[k], 'saved_per_1000')} / {cell(per[k], 'saved_per_1000_by_value')}" for k in contacts)
            + f" | {cell(first, 'spearman')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench-uplift-diagnose"),
                        help="folder for the warehouse copy (replaced)")
    parser.add_argument("--campaign", default="compared")
    parser.add_argument("--contacts", type=int, nargs="+", default=None,
                        help="how many candidates each rule contacts (default: the compared campaign's members)")
    parser.add_argument("--splits", type=int, default=6, help="random 70%% splits per L2 penalty")
    parser.add_argument("--draws", type=int, default=400, help="replays of the compared campaign's arms")
    parser.add_argument("--l2", type=float, nargs="+", default=[uplift.OFFSET_L2, 3000.0])
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    shutil.rmtree(args.work, ignore_errors=True)
    con, config, as_of = rebuilt_copy(args.project, args.work, args.campaign)
    frame, differing = candidates(con, config, args.campaign, as_of, config.warehouse.private.parent / "uplift_truth.parquet")
    features = sorted(registry.features(config.warehouse.models, registry.current(con).version))
    pilot = stage.pilot_members(con, config, features).drop("campaign_id")
    compared = con.execute(f"SELECT count(*) FROM {stage.MEMBERS} WHERE campaign_id = ?", [args.campaign]).fetchall()[0][0]
    contacts = args.contacts or [compared]
    settings = stage.fit_settings(config)

    def fit(members: pl.DataFrame, l2: float = uplift.OFFSET_L2) -> np.ndarray:
        model = uplift.fit_offset_uplift(members, treatment_column=stage.TREATMENT, label_column=stage.LABEL,
                                         risk_column=stage.RISK, config=settings, rule=None, l2=l2)
        return uplift.predict_offset_uplift(model, frame).prevented

    def split(seed: int) -> pl.DataFrame:
        return uplift.split_members(pilot, treatment_column=stage.TREATMENT, label_column=stage.LABEL,
                                    test_fraction=settings.test_fraction, seed=seed)[0]

    estimates = {
        "oracle (true uplift)": [frame["true_uplift"].to_numpy()],
        "churn probability the plan saw": [frame[stage.RISK].to_numpy()],
        "planted no-contact churn": [frame[TRUE_RISK].to_numpy()],
        "risk-offset, as the build fits it (its 70% split)": [fit(split(settings.seed + 1))],
        "risk-offset on every pilot member": [fit(pilot)],
    }
    for l2 in args.l2:
        estimates[f"risk-offset, L2 {l2:g}, random 70% splits"] = [
            fit(split(seed), l2) for seed in range(settings.seed + 1, settings.seed + 1 + args.splits)]
    rules = {name: {k: scores(frame, found, k) for k in contacts} for name, found in estimates.items()}
    value = (frame["value_at_risk"] / frame[stage.RISK]).to_numpy()
    build_key = estimates["risk-offset, as the build fits it (its 70% split)"][0] * value
    replays = [replay_arms(frame, build_key, k // 2, args.draws) for k in contacts]
    pilot_risk = pilot[stage.RISK].to_numpy()
    print(json.dumps({
        "campaign": args.campaign, "as_of": str(as_of), "candidates": frame.height, "contacts": contacts,
        "compared_member_cells_differing_from_rebuilt": differing,
        "pilot_members": pilot.height, "pilot_churn_rate": round(float(pilot[stage.LABEL].mean()), 4),
        "risk_quartiles_pilot": np.quantile(pilot_risk, [0.25, 0.5, 0.75]).round(4).tolist(),
        "risk_quartiles_candidates": np.quantile(frame[stage.RISK].to_numpy(), [0.25, 0.5, 0.75]).round(4).tolist(),
        "rules": rules, "arm_replays": replays,
    }, indent=1))
    print(markdown(rules, contacts))


if __name__ == "__main__":
    main()
