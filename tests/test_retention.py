"""The budget optimizer: exact on small cases with a known optimum, and its bad-input errors."""

from __future__ import annotations

import polars as pl
import pytest

from churnwh.action.retention import PlanError, brute_force, optimize


def _candidates(values_by_tier: dict[str, list[float]]) -> pl.DataFrame:
    rows = [{"customer_pseudonym": f"p{tier}{i}", "risk_tier": tier, "value_at_risk": v}
            for tier, values in values_by_tier.items() for i, v in enumerate(values)]
    return pl.DataFrame(rows)


def test_equal_costs_take_the_most_valuable_customers():
    candidates = _candidates({"high": [100, 50, 300, 10, 200], "medium": [], "low": [1000]})
    plan = optimize(candidates, budget=30, cost={"high": 10}, success_rate={"high": 0.5})
    # 3 actions fit; the three largest values x 0.5; low has no cost, so it is never contacted.
    assert sorted(plan["value_at_risk"].to_list()) == [100, 200, 300]
    assert plan["expected_saved_value"].sum() == pytest.approx(300.0)
    assert plan["cost"].sum() <= 30


def test_known_optimum_with_tier_costs_beats_greedy():
    # Budget 10: greedy by value per cost takes high(9, ratio 1.0 -> 9) first... the optimum is
    # two medium customers (5 + 5 cost, 4.6 + 4.6 = 9.2 saved) over one high (9 cost, 9 saved).
    candidates = _candidates({"high": [18.0], "medium": [9.2, 9.2]})
    rates = {"high": 0.5, "medium": 0.5}
    plan = optimize(candidates, budget=10, cost={"high": 9, "medium": 5}, success_rate=rates)
    assert plan["expected_saved_value"].sum() == pytest.approx(9.2)
    assert plan["risk_tier"].to_list() == ["medium", "medium"]


@pytest.mark.parametrize("seed", range(12))
def test_matches_brute_force_on_random_small_cases(seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    candidates = _candidates({tier: rng.uniform(0, 100, rng.integers(0, 6)).round(2).tolist()
                              for tier in ("high", "medium", "low")})
    cost = {"high": float(rng.integers(5, 30)), "medium": float(rng.integers(1, 15)), "low": float(rng.integers(1, 5))}
    rates = {"high": 0.4, "medium": 0.2, "low": 0.05}
    budget = float(rng.integers(5, 80))
    plan = optimize(candidates, budget, cost, rates)
    assert plan["cost"].sum() <= budget + 1e-9
    assert plan["expected_saved_value"].sum() == pytest.approx(brute_force(candidates, budget, cost, rates))


@pytest.mark.parametrize("budget,cost,message", [
    (0, {"high": 1.0}, "above 0"),
    (-5, {"high": 1.0}, "above 0"),
    (None, {"high": 1.0}, "no budget"),
    (100, {}, "no cost per action"),
    (100, {"vip": 1.0}, "unknown tier"),
])
def test_bad_inputs(budget, cost, message):
    with pytest.raises(PlanError, match=message):
        optimize(_candidates({"high": [1.0]}), budget, cost, {"high": 0.5})
