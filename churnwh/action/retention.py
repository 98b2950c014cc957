"""The retention plan: whom to contact within a budget, to maximize the expected saved value.

Each scored customer of a tier with a cost per action is a candidate with

    expected_saved_value = churn_probability x value (value_at_risk / probability, i.e. the value
                           over the horizon) x success_rate[tier]
                         = value_at_risk x success_rate[tier]

and cost ``cost[tier]``. Choosing customers under ``sum(cost) <= budget`` is a 0/1 knapsack whose
items come in a few cost classes (one per tier). Within one class an optimal plan always takes the
most valuable customers first (swap argument), so the optimum is found exactly by enumerating how
many customers each tier gets (prefix sums per tier); with one costed tier that is the greedy
prefix. ``optimize`` is a pure function of a frame; ``make_plan`` reads and writes the warehouse.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import polars as pl

from churnwh.errors import ChurnwhError

MAX_ENUMERATION = 5_000_000


class PlanError(ChurnwhError):
    """A budget or cost that does not allow a plan."""


def check_inputs(budget: float | None, cost: dict[str, float]) -> None:
    if budget is None:
        raise PlanError("no budget: pass --budget AMOUNT or set retention.budget in churnwh.toml")
    if not budget > 0:
        raise PlanError(f"budget {budget} is not allowed: give a budget above 0")
    if not cost:
        raise PlanError("no cost per action: pass --cost TIER=AMOUNT (e.g. --cost high=40) or set "
                        "retention.cost.high (and medium, low) in churnwh.toml")
    for tier, amount in cost.items():
        if tier not in ("high", "medium", "low"):
            raise PlanError(f"cost for unknown tier {tier!r}: use high, medium or low")
        if amount < 0 or not math.isfinite(amount):
            raise PlanError(f"cost {amount} for tier {tier} is not allowed: give a number of 0 or more")


def optimize(candidates: pl.DataFrame, budget: float, cost: dict[str, float],
             success_rate: dict[str, float]) -> pl.DataFrame:
    """Select customers maximizing the total expected saved value within ``budget``.

    Parameters
    ----------
    candidates : frame with ``risk_tier`` and ``value_at_risk`` (plus any other columns)
    budget : total amount available (> 0)
    cost : cost of one action per tier; tiers without a cost are not contacted
    success_rate : assumed share of contacted customers who stay, per tier

    Returns
    -------
    The selected rows with ``cost``, ``success_rate`` and ``expected_saved_value`` columns, most
    valuable first.
    """
    check_inputs(budget, cost)
    scored = candidates.filter(pl.col("risk_tier").is_in(list(cost))).with_columns(
        cost=pl.col("risk_tier").replace_strict(cost, return_dtype=pl.Float64),
        success_rate=pl.col("risk_tier").replace_strict(success_rate, default=0.0, return_dtype=pl.Float64),
    ).with_columns(
        expected_saved_value=pl.col("value_at_risk").fill_null(0.0) * pl.col("success_rate"),
    ).filter(pl.col("expected_saved_value") > 0)
    return _knapsack(scored, budget, cost, "expected_saved_value")


def optimize_net(candidates: pl.DataFrame, budget: float, cost: dict[str, float]) -> pl.DataFrame:
    """Select customers maximizing the total net gain ``expected_saved_value - cost`` within ``budget``
    (targeting by uplift: the frame's own per-customer ``expected_saved_value``).

    Customers whose net gain is not positive are never selected, whatever the budget left: a contact
    expected to save less than it costs (or to drive the customer away) is not worth making. Tiers
    without a cost are not contacted, as in ``optimize``. Returns the selected rows with ``cost``,
    ``success_rate`` (null: the uplift replaces the assumed tier rate) and ``net_gain``, best first.
    """
    check_inputs(budget, cost)
    scored = candidates.filter(pl.col("risk_tier").is_in(list(cost))).with_columns(
        cost=pl.col("risk_tier").replace_strict(cost, return_dtype=pl.Float64),
        success_rate=pl.lit(None, dtype=pl.Float64),
    ).with_columns(
        net_gain=pl.col("expected_saved_value").fill_null(0.0) - pl.col("cost"),
    ).filter(pl.col("net_gain") > 0)
    return _knapsack(scored, budget, cost, "net_gain")


def _knapsack(scored: pl.DataFrame, budget: float, cost: dict[str, float], value: str) -> pl.DataFrame:
    """The rows of ``scored`` (each worth ``value`` > 0, costing its tier's cost) that maximize the total
    value within ``budget``: per tier the most valuable first, the counts per tier enumerated."""
    tiers = [t for t in ("high", "medium", "low") if t in cost]
    per_tier = {t: scored.filter(pl.col("risk_tier") == t).sort(value, descending=True)
                for t in tiers}
    free = [t for t in tiers if cost[t] == 0]
    paid = [t for t in tiers if cost[t] > 0]
    counts = {t: per_tier[t].height for t in free}
    prefix = {t: np.concatenate([[0.0], np.cumsum(per_tier[t][value].to_numpy())]) for t in paid}
    limits = {t: min(per_tier[t].height, int(math.floor(budget / cost[t] + 1e-9))) for t in paid}
    best_value, best_counts = -1.0, {t: 0 for t in paid}
    if paid:
        enumerated, last = paid[:-1], paid[-1]
        size = math.prod(limits[t] + 1 for t in enumerated)
        if size <= MAX_ENUMERATION:
            for combo in itertools.product(*(range(limits[t] + 1) for t in enumerated)):
                spent = sum(n * cost[t] for n, t in zip(combo, enumerated))
                if spent > budget + 1e-9:
                    continue
                n_last = min(limits[last], int(math.floor((budget - spent) / cost[last] + 1e-9)))
                total = sum(prefix[t][n] for n, t in zip(combo, enumerated)) + prefix[last][n_last]
                if total > best_value + 1e-12:
                    best_value, best_counts = total, {**dict(zip(enumerated, combo)), last: n_last}
        else:  # very large plans: greedy by value per cost (within 1 item of the optimum per tier)
            merged = pl.concat([per_tier[t] for t in paid]).with_columns(
                ratio=pl.col(value) / pl.col("cost")).sort("ratio", descending=True)
            within = merged.filter(pl.col("cost").cum_sum() <= budget + 1e-9)
            best_counts = {t: int((within["risk_tier"] == t).sum()) for t in paid}
    counts.update(best_counts)
    selected = [per_tier[t].head(counts[t]) for t in tiers if counts.get(t)]
    if not selected:
        return scored.head(0)
    return pl.concat(selected).sort([value], descending=True)


def brute_force(candidates: pl.DataFrame, budget: float, cost: dict[str, float],
                success_rate: dict[str, float]) -> float:
    """The optimum by trying every subset (tests only; at most ~20 candidates)."""
    rows = candidates.filter(pl.col("risk_tier").is_in(list(cost))).to_dicts()
    best = 0.0
    for mask in itertools.product((0, 1), repeat=len(rows)):
        spent = sum(cost[r["risk_tier"]] for r, m in zip(rows, mask) if m)
        if spent <= budget + 1e-9:
            best = max(best, sum(r["value_at_risk"] * success_rate.get(r["risk_tier"], 0.0)
                                 for r, m in zip(rows, mask) if m))
    return best
