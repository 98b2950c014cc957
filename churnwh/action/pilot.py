"""Campaigns: the budgeted plan with a deterministic control group, and the pilot report.

A customer's group in campaign ``C`` is a pure function of (pseudonym, C) and the selection: the
first 64 bits of SHA-256 of ``"C:pseudonym"`` as a number in [0, 1); the ``round(control_fraction x
selected)`` customers with the smallest numbers are the control (not contacted), the rest treatment
(complete randomization: the group sizes are exact, not left to chance, so a small pilot is not
short of controls by luck). The same campaign id always gives the same groups, the assignment
ignores every customer attribute (so the groups are balanced in expectation), and another campaign
id gives an independent split.

Only customers who may be contacted are selected: latest marketing consent granted (no record: not
contactable), the definition `churnwh contacts` and `churn_scores.contactable` use.

A campaign is *active* while its pilot runs: from its campaign date (the ``as_of`` of the scores it was
planned from) for ``retention.pilot_days`` days, measured against the ``as_of`` of the current scores
(the data's date, not the wall clock, so a rebuild for a later date moves time on). The control group of
an active campaign must not be contacted: ``churnwh contacts`` leaves it out and a new plan never
selects it (a customer held out by a running pilot and treated by another campaign would spoil both).

Tables (schema ``ml``): ``retention_plan`` (the latest plan), ``campaigns`` (one row per campaign),
``campaign_members`` (who was selected, in which group, at what cost) and ``pilot_results`` (each
evaluation of a campaign).

The pilot report compares realized churn of treated and control members: a member churned when the
active period they were in on the campaign date ended before the last build's ``as_of`` (the data
loaded since). The effect is control rate - treated rate (churn prevented per treated customer),
with Newcombe's 95% score interval for a difference of two proportions; retained per cost is effect x treated
customers / money spent on them.

A key rotation (``churnwh rotate-key``) recomputes every pseudonym and rebuilds what the build
makes, but campaigns, the plan and the score history outlive builds: ``pseudonym_owners`` (before
the rotation's build) and ``rekey`` (after it) carry their rows over to the new pseudonyms, so a
campaign planned before a rotation is still evaluated after it. The old pseudonyms are held in
memory only, never written.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa

from churnwh.action import uplift
from churnwh.action.retention import optimize, optimize_net
from churnwh.config import Config
from churnwh.errors import ChurnwhError
from churnwh.privacy import withdrawal
from churnwh.stages.explain import write_table
from churnwh.stages.registry import SCHEMA
from churnwh.stages.score import contactable_sql, refresh_campaign_group
from churnwh.store import warehouse

PLAN = f"{SCHEMA}.retention_plan"
CAMPAIGNS = f"{SCHEMA}.campaigns"
MEMBERS = f"{SCHEMA}.campaign_members"
RESULTS = f"{SCHEMA}.pilot_results"
MEMBER_FEATURES = uplift.SNAPSHOT
"""Members' scoring-set rows on the campaign date (churnwh.action.uplift.snapshot_members)."""
ARM_RESULTS = f"{SCHEMA}.pilot_arm_results"
OUTLIVE_BUILDS = (MEMBERS, PLAN, f"{SCHEMA}.score_history", withdrawal.SUBJECTS, MEMBER_FEATURES)
"""Tables keyed by pseudonym that no build recreates (re-keyed by a key rotation)."""
Z95 = 1.959963984540054

PLAN_COMMENTS = {
    "campaign_id": "The campaign this plan belongs to.",
    "customer_pseudonym": "Keyed pseudonym of the customer.",
    "as_of": "Scoring date the plan was made from.",
    "risk_tier": "Risk tier of the customer.",
    "action": "Action for the tier (tiers.actions); control customers get no action.",
    "churn_probability": "Calibrated churn probability.",
    "value_at_risk": "churn_probability x monthly value x horizon.",
    "cost": "Cost of the action for this tier.",
    "success_rate": "Assumed share of contacted customers of the tier who stay.",
    "expected_saved_value": "What contacting this customer is expected to save: value_at_risk x success_rate "
                            "(targeting by risk) or the uplift model's expected saved value (targeting by uplift, "
                            "ml.customer_uplift; success_rate is then NULL).",
    "plan_rank": "1 = the most valuable customer to contact.",
    "pilot_group": "treatment (contact) or control (held out, not contacted, to measure the effect).",
    "arm": "In a campaign comparing two targeting rules (`churnwh plan --by uplift --compare risk`): the rule "
           "that selected the customer, each arm with its own control group; NULL in a one-rule campaign.",
}

RESULT_COMMENTS = {
    "campaign_id": "The campaign evaluated.",
    "evaluated_at": "When the pilot report ran.",
    "campaign_as_of": "Campaign date (the scores it was planned from).",
    "outcome_through": "Outcomes counted up to this date (the build's as_of).",
    "treated": "Customers contacted.",
    "control": "Customers held out (not contacted).",
    "treated_churn_rate": "Share of treated customers whose active period ended since the campaign date.",
    "control_churn_rate": "Share of control customers whose active period ended since the campaign date.",
    "effect": "control_churn_rate - treated_churn_rate: churn prevented per treated customer.",
    "ci_low": "Lower end of the 95% confidence interval of the effect (Newcombe's hybrid score interval: Wilson intervals of both rates).",
    "ci_high": "Upper end of the 95% confidence interval of the effect.",
    "retained_customers": "effect x treated: customers kept by the campaign.",
    "treated_cost": "Money spent on the treated customers.",
    "retained_per_1000_cost": "Customers retained per 1,000 spent.",
}
ARM_COMMENTS = {
    **RESULT_COMMENTS,
    "arm": "The targeting rule of this arm of the campaign (risk or uplift); each arm has its own control group.",
    "retained_per_1000_low": "Lower end of the 95% interval of retained_per_1000_cost (the effect's interval, scaled).",
    "retained_per_1000_high": "Upper end of that interval.",
}
COMPARISON = f"{SCHEMA}.pilot_comparison"
COMPARISON_COMMENTS = {
    "campaign_id": "The campaign whose two arms are compared.",
    "evaluated_at": "When the pilot report ran.",
    "outcome_through": "Outcomes counted up to this date.",
    "first_arm": "The arm planned by --by.",
    "second_arm": "The arm planned by --compare.",
    "effect_difference": "first arm's effect - second arm's effect (churn prevented per treated customer).",
    "effect_difference_low": "Lower end of its 95% interval (independent arms: the variances add).",
    "effect_difference_high": "Upper end of that interval.",
    "per_1000_difference": "first arm's retained_per_1000_cost - second arm's: customers saved per 1,000 spent.",
    "per_1000_difference_low": "Lower end of its 95% interval.",
    "per_1000_difference_high": "Upper end of that interval.",
}


class CampaignError(ChurnwhError):
    """A campaign that does not exist or cannot be evaluated yet."""


def control_share(pseudonyms: pl.Series, campaign_id: str) -> np.ndarray:
    """Deterministic uniform numbers in [0, 1) from (campaign id, pseudonym)."""
    out = np.empty(pseudonyms.len(), dtype=np.float64)
    prefix = f"{campaign_id}:".encode()
    for i, pseudonym in enumerate(pseudonyms.to_list()):
        digest = hashlib.sha256(prefix + str(pseudonym).encode()).digest()
        out[i] = int.from_bytes(digest[:8], "big") / 2.0**64
    return out


def assign_groups(pseudonyms: pl.Series, campaign_id: str, control_fraction: float) -> pl.Series:
    share = control_share(pseudonyms, campaign_id)
    controls = round(control_fraction * len(share))
    is_control = np.zeros(len(share), dtype=bool)
    is_control[np.argsort(share, kind="stable")[:controls]] = True
    return pl.Series("pilot_group", np.where(is_control, "control", "treatment"))


def wilson_interval(rate: float, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion observed as ``rate`` among ``n``."""
    z2 = Z95 * Z95
    centre = (rate + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half


def pilot_statistics(treated_churned: np.ndarray, control_churned: np.ndarray, treated_cost: float) -> dict:
    """Effect (control churn rate - treated churn rate), its 95% interval and retained per cost.

    The interval is Newcombe's hybrid score interval (Wilson intervals of both rates combined): unlike
    the rates' normal approximation it does not collapse when a small group has no churner at all."""
    n_t, n_c = len(treated_churned), len(control_churned)
    if n_t == 0 or n_c == 0:
        raise CampaignError("the campaign has no treated or no control customers: use a larger selection or "
                            "a control_fraction between 0 and 1")
    p_t, p_c = float(np.mean(treated_churned)), float(np.mean(control_churned))
    effect = p_c - p_t
    (low_t, high_t), (low_c, high_c) = wilson_interval(p_t, n_t), wilson_interval(p_c, n_c)
    retained = effect * n_t
    return {
        "treated": n_t, "control": n_c, "treated_churn_rate": p_t, "control_churn_rate": p_c,
        "effect": effect, "ci_low": effect - math.hypot(p_c - low_c, high_t - p_t),
        "ci_high": effect + math.hypot(high_c - p_c, p_t - low_t),
        "retained_customers": retained, "treated_cost": float(treated_cost),
        "retained_per_1000_cost": 1000.0 * retained / treated_cost if treated_cost > 0 else None,
    }


def active_campaigns(con: duckdb.DuckDBPyConnection, config: Config, on: dt.date) -> list[str]:
    """The campaigns whose pilot still runs on ``on``: ``as_of <= on < as_of + retention.pilot_days``,
    and campaigns dated after ``on`` (scores rebuilt for an earlier date), oldest first."""
    if CAMPAIGNS not in warehouse.relations(con):
        return []
    return [row[0] for row in con.execute(
        f"SELECT campaign_id FROM {CAMPAIGNS} WHERE CAST(? AS DATE) < CAST(as_of AS DATE) + CAST(? AS INTEGER) "
        "ORDER BY created_at, campaign_id", [on, config.retention.pilot_days]).fetchall()]


def held_out_sql(campaign_ids: list[str]) -> str:
    """A query for the pseudonyms in the control group of any of ``campaign_ids`` (no row for none)."""
    if not campaign_ids:
        return "SELECT NULL::VARCHAR AS customer_pseudonym WHERE false"
    ids = ", ".join(warehouse.sql_literal(campaign_id) for campaign_id in campaign_ids)
    return (f"SELECT DISTINCT customer_pseudonym FROM {MEMBERS} "
            f"WHERE pilot_group = 'control' AND campaign_id IN ({ids})")


def scores_date(con: duckdb.DuckDBPyConnection, config: Config) -> dt.date:
    """The as_of of the current scores (the build's as_of before the first score)."""
    scores = f"{SCHEMA}.churn_scores"
    found = (con.execute(f"SELECT max(as_of) FROM {scores}").fetchall()[0][0]
             if scores in warehouse.relations(con) else None)
    found = found or config.variables["as_of"]
    return found.date() if isinstance(found, dt.datetime) else found


logger = logging.getLogger(__name__)

TARGETING = ("risk", "uplift")
"""`churnwh plan --by`: risk (value at risk x the tier's assumed success rate) or uplift (the uplift model's
expected saved value, net of the cost)."""
ARM_SPLIT = "arm"
"""Salt of the hash that splits a comparison campaign's customers into its two arms."""


def uplift_candidates(con: duckdb.DuckDBPyConnection, candidates: pl.DataFrame) -> pl.DataFrame:
    """``candidates`` with the uplift model's ``expected_saved_value``; ``CampaignError`` saying why and how
    many pilot members are needed when there is no fitted model for these scores."""
    status = uplift.current_status(con)
    if status is None or not status.fitted or uplift.CUSTOMER_UPLIFT not in warehouse.relations(con):
        members, needed = (status.members, status.needed) if status else (0, None)
        need = f"at least {needed}" if needed else "enough"
        raise CampaignError(
            f"plan --by uplift needs a fitted uplift model, and there is none: finished pilots have {members} "
            f"members with outcomes, {need} are needed (ml.uplift_status); plan a risk-targeted pilot of that size "
            "(`churnwh plan --by risk`), let its window pass, build, then plan by uplift")
    estimates = pl.from_arrow(con.sql(
        f"SELECT customer_pseudonym, as_of AS uplift_as_of, expected_uplift, expected_saved_value "
        f"FROM {uplift.CUSTOMER_UPLIFT}").to_arrow_table())
    joined = candidates.join(estimates, on="customer_pseudonym", how="left")
    if joined.height and (joined["uplift_as_of"].is_null().any()
                          or (joined["uplift_as_of"] != joined["as_of"].cast(pl.Date)).any()):
        raise CampaignError("the uplift estimates (ml.customer_uplift) are not those of the current scores: run "
                            "`churnwh build` (or `churnwh score`) so that both are from the same date")
    return joined.drop("uplift_as_of")


def guard_uplift(con: duckdb.DuckDBPyConnection, by: str, compare: str | None,
                 rules: list[str]) -> tuple[str, list[str], str | None]:
    """Targeting by uplift only where the uplift model beat churn risk on its held-out pilot members.

    Not measurably better (the Qini gain's 95% interval includes 0): a warning, and a plan by uplift all the
    same when the gain is positive. No better at all (gain at or below 0): a plan ``--by uplift`` alone
    targets by risk instead and says so; a comparison campaign (``--compare``) keeps its uplift arm, since
    measuring the two rules against each other is its purpose. Returns (by, rules, the warning or None)."""
    verdict = uplift.versus_risk(con)
    if verdict is None or verdict.better:
        return by, rules, None
    if verdict.worse and compare is None:
        warning = f"{verdict.message()}: targeting by churn risk instead (plan --by risk)"
        by, rules = "risk", ["risk"]
    elif verdict.worse:
        warning = f"{verdict.message()}: the uplift arm is planned all the same, as the comparison measures it"
    else:
        warning = f"{verdict.message()}: targeting by uplift, the held-out estimate favours it"
    logger.warning("%s", warning)
    return by, rules, warning


def select_arm(candidates: pl.DataFrame, rule: str, budget: float, cost: dict[str, float],
               success_rate: dict[str, float]) -> pl.DataFrame:
    """The customers one targeting rule selects within ``budget``, in the plan's columns."""
    if rule == "uplift":
        chosen = optimize_net(candidates, budget, cost).drop("net_gain")
    else:
        chosen = optimize(candidates.drop("expected_uplift", "expected_saved_value", strict=False), budget, cost,
                          success_rate)
    return chosen.with_columns(arm=pl.lit(rule))


def make_plan(con: duckdb.DuckDBPyConnection, config: Config, campaign_id: str, *, budget: float | None,
              cost: dict[str, float], success_rate: dict[str, float], control_fraction: float,
              by: str = "risk", compare: str | None = None) -> dict:
    """Select customers within the budget by a targeting rule, split off the control group, store the
    campaign and its members' features on the campaign date.

    ``by``: ``risk`` (value at risk x the tier's success rate, the knapsack ``optimize``) or ``uplift``
    (the uplift model's expected saved value net of the cost, ``optimize_net``). ``compare``: a second rule
    tested in the same campaign: the eligible customers are split at random (hash of the campaign id) into
    two halves, each half gets half the budget and is selected by its own rule (its *arm*), and each arm
    gets its own control group of exactly ``control_fraction``.
    """
    scores = f"{SCHEMA}.churn_scores"
    if scores not in warehouse.relations(con):
        raise ChurnwhError("no scores yet: run `churnwh build` first")
    if not campaign_id or not campaign_id.replace("-", "").replace("_", "").isalnum():
        raise CampaignError(f"campaign id {campaign_id!r} is not allowed: use letters, digits, - and _")
    for rule, option in ((by, "--by"), (compare, "--compare")):
        if rule is not None and rule not in TARGETING:
            raise CampaignError(f"{option} {rule} is not allowed: give {' or '.join(TARGETING)}")
    if compare == by:
        raise CampaignError(f"--compare {compare} is the rule of --by itself: compare with the other rule")
    if CAMPAIGNS in warehouse.relations(con) and con.execute(
            f"SELECT count(*) FROM {CAMPAIGNS} WHERE campaign_id = ?", [campaign_id]).fetchall()[0][0]:
        raise CampaignError(f"campaign {campaign_id} already exists: choose a new campaign id")
    if not 0 < control_fraction < 1:
        raise CampaignError(f"control fraction {control_fraction} is not allowed: use a number between 0 and 1")
    # Only customers who may be contacted are selected: the same definition as `churnwh contacts` and
    # churn_scores.contactable (latest marketing consent granted; no consent record means no).
    no_contact = f"AND {contactable_sql(warehouse.relations(con))}"
    # The control groups of running pilots stay untouched: never treated by this campaign.
    running = active_campaigns(con, config, scores_date(con, config))
    held_out = f"AND customer_pseudonym NOT IN ({held_out_sql(running)})" if running else ""
    candidates = pl.from_arrow(con.sql(
        f"SELECT customer_pseudonym, as_of, risk_tier, action, churn_probability, value_at_risk, model_version "
        f"FROM {scores} WHERE true {no_contact} {held_out} ORDER BY customer_pseudonym").to_arrow_table())
    rules = [by] if compare is None else [by, compare]
    warning = None
    if "uplift" in rules:
        candidates = uplift_candidates(con, candidates)
        by, rules, warning = guard_uplift(con, by, compare, rules)
    if compare is None:
        arms = [select_arm(candidates, by, budget, cost, success_rate)]
    else:
        in_first = control_share(candidates["customer_pseudonym"], f"{campaign_id}:{ARM_SPLIT}") < 0.5
        halves = (candidates.filter(pl.Series(in_first)), candidates.filter(~pl.Series(in_first)))
        arms = [select_arm(half, rule, budget / 2, cost, success_rate) for half, rule in zip(halves, rules)]
    if sum(arm.height for arm in arms) == 0:
        raise CampaignError(
            f"no customer can be selected: the tiers with a cost ({', '.join(sorted(cost))}) have no scored customer "
            "with a positive expected saved value (net of the cost when targeting by uplift), or the budget is below one "
            "action's cost; add a cost for another tier or raise the budget")
    columns = ["customer_pseudonym", "as_of", "risk_tier", "action", "churn_probability", "value_at_risk", "cost",
               "success_rate", "expected_saved_value", "arm"]
    selected = pl.concat([arm.select(columns).with_columns(pl.col("success_rate").cast(pl.Float64))
                          for arm in arms])
    groups = pl.concat([assign_groups(arm["customer_pseudonym"], campaign_id, control_fraction) for arm in arms])
    plan = selected.with_columns(groups).with_columns(
        campaign_id=pl.lit(campaign_id),
        plan_rank=pl.int_range(1, selected.height + 1, dtype=pl.Int32),
        action=pl.when(pl.col("pilot_group") == "control").then(pl.lit("control: no contact"))
        .otherwise(pl.col("action")),
        arm=pl.col("arm") if compare is not None else pl.lit(None, dtype=pl.String),
    ).select("campaign_id", "customer_pseudonym", "as_of", "risk_tier", "action", "churn_probability",
             "value_at_risk", "cost", "success_rate", "expected_saved_value", "plan_rank", "pilot_group", "arm")
    treated = plan.filter(pl.col("pilot_group") == "treatment")
    summary = {
        "campaign_id": campaign_id, "created_at": dt.datetime.now(), "as_of": plan["as_of"].max()
        if plan.height else candidates["as_of"].max(),
        "budget": float(budget), "control_fraction": control_fraction, "selected": plan.height,
        "treated": treated.height, "control": plan.height - treated.height,
        "treated_cost": float(treated["cost"].sum()),
        "expected_saved_value": float(treated["expected_saved_value"].sum()),
        "model_version": candidates["model_version"].max() if candidates.height else None,
        "targeting": by if compare is None else f"{by} vs {compare}",
    }
    write_table(con, PLAN, plan.to_arrow(), PLAN_COMMENTS,
                "The latest retention plan: customers to contact within the budget, with the pilot control group.")
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"""CREATE TABLE IF NOT EXISTS {CAMPAIGNS} (campaign_id VARCHAR PRIMARY KEY, created_at TIMESTAMP,
            as_of DATE, budget DOUBLE, control_fraction DOUBLE, selected BIGINT, treated BIGINT, control BIGINT,
            treated_cost DOUBLE, expected_saved_value DOUBLE, model_version VARCHAR)""")
        con.execute(f"ALTER TABLE {CAMPAIGNS} ADD COLUMN IF NOT EXISTS targeting VARCHAR")
        con.execute(f"""CREATE TABLE IF NOT EXISTS {MEMBERS} (campaign_id VARCHAR, customer_pseudonym VARCHAR,
            as_of DATE, risk_tier VARCHAR, churn_probability DOUBLE, cost DOUBLE, pilot_group VARCHAR)""")
        con.execute(f"ALTER TABLE {MEMBERS} ADD COLUMN IF NOT EXISTS arm VARCHAR")
        con.register("_campaign_row", pa.Table.from_pylist([summary]))
        con.execute(f"INSERT INTO {CAMPAIGNS} BY NAME SELECT * FROM _campaign_row")
        con.unregister("_campaign_row")
        members = plan.select("campaign_id", "customer_pseudonym", "as_of", "risk_tier", "churn_probability", "cost",
                              "pilot_group", "arm").to_arrow()
        con.register("_campaign_members", members)
        con.execute(f"INSERT INTO {MEMBERS} BY NAME SELECT * FROM _campaign_members")
        con.unregister("_campaign_members")
        uplift.snapshot_members(con, config, campaign_id, members)
        refresh_campaign_group(con)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    summary["warning"] = warning
    summary["arms"] = {arm: {"selected": part.height,
                             "treated": int((part["pilot_group"] == "treatment").sum()),
                             "control": int((part["pilot_group"] == "control").sum()),
                             "treated_cost": float(part.filter(pl.col("pilot_group") == "treatment")["cost"].sum())}
                       for (arm,), part in plan.group_by("arm", maintain_order=True)} if compare else {}
    return summary


def _frame(con: duckdb.DuckDBPyConnection, query: str, parameters: list) -> pl.DataFrame:
    cursor = con.cursor()
    try:
        return pl.from_arrow(cursor.sql(query, params=parameters).to_arrow_table())
    finally:
        cursor.close()


def campaign(con: duckdb.DuckDBPyConnection, campaign_id: str) -> dict:
    if CAMPAIGNS not in warehouse.relations(con):
        raise CampaignError(f"campaign {campaign_id} does not exist: no campaign was planned yet "
                            "(create one with `churnwh plan --campaign ID --budget AMOUNT`)")
    rows = _frame(con, f"SELECT * FROM {CAMPAIGNS} WHERE campaign_id = ?", [campaign_id])
    if rows.height == 0:
        known = [r[0] for r in con.execute(f"SELECT campaign_id FROM {CAMPAIGNS} ORDER BY created_at").fetchall()]
        raise CampaignError(f"campaign {campaign_id} does not exist: known campaigns are {', '.join(known) or 'none'}")
    return rows.row(0, named=True)


def pilot_report(con: duckdb.DuckDBPyConnection, config: Config, campaign_id: str) -> dict:
    """Realized churn of treated vs control members since the campaign date; stored in ml.pilot_results."""
    info = campaign(con, campaign_id)
    # Outcomes come from the tables of the last build, so they run through that build's as_of, not the
    # config's (which `demo-campaign` has already moved on before the build that loads the new data).
    data_end = scores_date(con, config)
    if data_end <= info["as_of"]:
        raise CampaignError(
            f"campaign {campaign_id} started {info['as_of']} and the last build's data ends there (as_of "
            f"{data_end}): no outcome data yet; load newer data and run `churnwh build` first")
    arm_column = "m.arm" if "arm" in warehouse.columns(con, MEMBERS) else "CAST(NULL AS VARCHAR)"
    outcomes = _frame(con,
        f"""SELECT m.pilot_group, m.cost, {arm_column} AS arm,
                   CASE WHEN p.period_end IS NOT NULL AND p.period_end < ? THEN 1 ELSE 0 END AS churned
            FROM {MEMBERS} m
            LEFT JOIN staging.active_periods p
              ON p.customer_pseudonym = m.customer_pseudonym AND p.period_start < m.as_of
             AND (p.period_end IS NULL OR p.period_end >= m.as_of)
            WHERE m.campaign_id = ?""", [data_end, campaign_id])
    treated = outcomes.filter(pl.col("pilot_group") == "treatment")
    control = outcomes.filter(pl.col("pilot_group") == "control")
    k = config.publish.k_anonymity
    if min(treated.height, control.height) < k:
        raise CampaignError(
            f"campaign {campaign_id} has {treated.height} treated and {control.height} control customers; each group "
            f"needs at least {k} (publish.k_anonymity) to be reported: plan a larger campaign or control fraction")
    stats = pilot_statistics(treated["churned"].to_numpy(), control["churned"].to_numpy(),
                             float(treated["cost"].sum()))
    row = {"campaign_id": campaign_id, "evaluated_at": dt.datetime.now(), "campaign_as_of": info["as_of"],
           "outcome_through": data_end, **stats}
    table = pa.Table.from_pylist([row])
    arms = arm_statistics(outcomes, campaign_id, k, info.get("targeting"))
    con.execute("BEGIN TRANSACTION")
    try:
        con.register("_pilot_row", table)
        con.execute(f"CREATE TABLE IF NOT EXISTS {RESULTS} AS SELECT * FROM _pilot_row WHERE false")
        con.execute(f"DELETE FROM {RESULTS} WHERE campaign_id = ? AND outcome_through = ?", [campaign_id, data_end])
        con.execute(f"INSERT INTO {RESULTS} BY NAME SELECT * FROM _pilot_row")
        con.unregister("_pilot_row")
        for column, text in RESULT_COMMENTS.items():
            con.execute(f"COMMENT ON COLUMN {RESULTS}.{column} IS {warehouse.sql_literal(text)}")
        con.execute(f"COMMENT ON TABLE {RESULTS} IS 'Pilot evaluations: realized churn of treated vs control "
                    "customers, effect = control rate - treated rate with a 95% interval.'")
        if arms:
            base = {"campaign_id": campaign_id, "evaluated_at": row["evaluated_at"],
                    "campaign_as_of": info["as_of"], "outcome_through": data_end}
            _store_evaluation(con, ARM_RESULTS, [{**base, **arm} for arm in arms["arms"]], campaign_id, data_end,
                              ARM_COMMENTS, "Pilot evaluations per targeting arm of a campaign comparing two rules.")
            comparison = {key: value for key, value in base.items() if key != "campaign_as_of"}
            _store_evaluation(con, COMPARISON, [{**comparison, **arms["comparison"]}], campaign_id, data_end,
                              COMPARISON_COMMENTS, "The difference between the two targeting arms of a campaign, "
                              "with 95% intervals.")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return {**row, **arms}


def _store_evaluation(con: duckdb.DuckDBPyConnection, table_name: str, rows: list[dict], campaign_id: str,
                      data_end, comments: dict[str, str], table_comment: str) -> None:
    """Replace this campaign's rows for this outcome date in ``table_name`` (in the caller's transaction)."""
    table = pa.Table.from_pylist(rows)
    table = table.cast(pa.schema([pa.field(f.name, pa.float64()) if pa.types.is_null(f.type) else f
                                  for f in table.schema]))  # an interval that could not be computed: a DOUBLE NULL
    con.register("_evaluation_rows", table)
    try:
        con.execute(f"CREATE TABLE IF NOT EXISTS {table_name} AS SELECT * FROM _evaluation_rows WHERE false")
        con.execute(f"DELETE FROM {table_name} WHERE campaign_id = ? AND outcome_through = ?", [campaign_id, data_end])
        con.execute(f"INSERT INTO {table_name} BY NAME SELECT * FROM _evaluation_rows")
    finally:
        con.unregister("_evaluation_rows")
    for column, text in comments.items():
        if column in rows[0]:
            con.execute(f"COMMENT ON COLUMN {table_name}.{column} IS {warehouse.sql_literal(text)}")
    con.execute(f"COMMENT ON TABLE {table_name} IS {warehouse.sql_literal(table_comment)}")


def arm_statistics(outcomes: pl.DataFrame, campaign_id: str, k: int, targeting: str | None) -> dict:
    """Per arm of a comparison campaign: ``pilot_statistics`` with an interval for the customers saved per
    1,000 spent; and the first arm minus the second (effect and saved per 1,000, independent arms so the
    variances add). ``{}`` for a one-rule campaign. Every group of every arm needs ``k`` customers."""
    names = [name for name in outcomes["arm"].unique(maintain_order=True).to_list() if name is not None]
    if len(names) < 2:
        return {}
    if targeting and " vs " in targeting:  # the --by arm first
        order = targeting.split(" vs ")
        names = sorted(names, key=lambda name: order.index(name) if name in order else len(order))
    arms, spread = [], {}
    for name in names:
        part = outcomes.filter(pl.col("arm") == name)
        treated, control = part.filter(pl.col("pilot_group") == "treatment"), part.filter(pl.col("pilot_group") == "control")
        if min(treated.height, control.height) < k:
            raise CampaignError(
                f"campaign {campaign_id}'s {name} arm has {treated.height} treated and {control.height} control "
                f"customers; each group of each arm needs at least {k} (publish.k_anonymity) to be reported: plan "
                "a larger campaign or control fraction")
        stats = pilot_statistics(treated["churned"].to_numpy(), control["churned"].to_numpy(),
                                 float(treated["cost"].sum()))
        # the interval is asymmetric: the difference of two arms takes the wider side as its spread
        se = max(stats["ci_high"] - stats["effect"], stats["effect"] - stats["ci_low"]) / Z95
        scale = 1000.0 * stats["treated"] / stats["treated_cost"] if stats["treated_cost"] > 0 else None
        arms.append({"arm": name, **stats,
                     "retained_per_1000_low": None if scale is None else scale * stats["ci_low"],
                     "retained_per_1000_high": None if scale is None else scale * stats["ci_high"]})
        spread[name] = (se, None if scale is None else scale * se)
    first, second = arms[0], arms[1]
    effect_difference = first["effect"] - second["effect"]
    effect_se = math.hypot(spread[first["arm"]][0], spread[second["arm"]][0])
    comparison = {"first_arm": first["arm"], "second_arm": second["arm"], "effect_difference": effect_difference,
                  "effect_difference_low": effect_difference - Z95 * effect_se,
                  "effect_difference_high": effect_difference + Z95 * effect_se,
                  "per_1000_difference": None, "per_1000_difference_low": None, "per_1000_difference_high": None}
    if first["retained_per_1000_cost"] is not None and second["retained_per_1000_cost"] is not None:
        difference = first["retained_per_1000_cost"] - second["retained_per_1000_cost"]
        per_1000_se = math.hypot(spread[first["arm"]][1], spread[second["arm"]][1])
        comparison.update(per_1000_difference=difference, per_1000_difference_low=difference - Z95 * per_1000_se,
                          per_1000_difference_high=difference + Z95 * per_1000_se)
    return {"arms": arms, "comparison": comparison}


# --- key rotation ------------------------------------------------------------------------------


def pseudonym_owners(con: duckdb.DuckDBPyConnection) -> pa.Table | None:
    """(customer_id, old_pseudonym) of every customer in a table of ``OUTLIVE_BUILDS``, read before a
    key rotation rebuilds ``raw.customer_keys``; None when there is nothing to carry over."""
    existing = warehouse.relations(con)
    tables = [table for table in OUTLIVE_BUILDS if table in existing]
    if not tables or f"{warehouse.RAW_SCHEMA}.customer_keys" not in existing:
        return None
    union = " UNION ".join(f"SELECT customer_pseudonym FROM {table}" for table in tables)
    return con.sql(
        f"SELECT customer_id, customer_pseudonym AS old_pseudonym FROM {warehouse.RAW_SCHEMA}.customer_keys "
        f"WHERE customer_pseudonym IN ({union})").to_arrow_table()


def rekey(con: duckdb.DuckDBPyConnection, owners: pa.Table | None) -> int:
    """After a key rotation's build: replace the old pseudonyms in ``OUTLIVE_BUILDS`` by the customers'
    new ones (run it inside the caller's transaction). Rows of customers without a new pseudonym
    (erased) are left for ``erasure.purge_orphans``. Returns the number of rows re-keyed."""
    existing = warehouse.relations(con)
    tables = [table for table in OUTLIVE_BUILDS if table in existing]
    if owners is None or owners.num_rows == 0 or not tables:
        return 0
    con.register("_rekey_owners", owners)
    try:
        return sum(con.execute(
            f"""UPDATE {table} AS t SET customer_pseudonym = k.customer_pseudonym
                FROM _rekey_owners o JOIN {warehouse.RAW_SCHEMA}.customer_keys k USING (customer_id)
                WHERE t.customer_pseudonym = o.old_pseudonym""").fetchall()[0][0] for table in tables)
    finally:
        con.unregister("_rekey_owners")
