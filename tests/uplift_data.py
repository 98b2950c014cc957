"""Synthetic randomized pilots with a known heterogeneous effect of contact on churn (tests, benchmarks).

Churn risk rises with ``usage_drop``; the true change in churn probability if contacted,
``true_churn_change`` (tau, negative: contact helps), is:

- 0 for the high-risk customers (``usage_drop > 0.6``, about 27%): they leave whatever is offered;
- +0.10 for premium customers with many support calls (``support_calls > 1``, about 5%): annoyed by
  contact;
- -60% of their churn risk for the price-sensitive ones (``discount_interest > 0``) among the rest;
- -0.02 for everybody else.

So targeting by risk picks the customers a contact cannot save, and the effect depends on features
that a rule must combine. Treatment is a random draw with ``treated_share``; the outcome is drawn from
the arm's own probability.
"""

from __future__ import annotations

import numpy as np
import polars as pl


def synthetic_pilot(rows: int, seed: int, treated_share: float = 0.5) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    usage_drop, discount_interest, support_calls, noise = rng.normal(size=(4, rows))
    plan = rng.choice(["basic", "standard", "premium"], rows, p=[0.4, 0.35, 0.25])
    churn_if_not_contacted = 1 / (1 + np.exp(-(-1.4 + 1.3 * usage_drop + 0.3 * (plan == "basic"))))
    annoyed = (plan == "premium") & (support_calls > 1.0)
    high_risk = usage_drop > 0.6
    price_sensitive = discount_interest > 0.0
    change = np.where(high_risk, 0.0, np.where(annoyed, 0.10, np.where(
        price_sensitive, -0.6 * churn_if_not_contacted, -0.02)))
    churn_if_contacted = np.clip(churn_if_not_contacted + change, 0.0, 1.0)
    treated = (rng.random(rows) < treated_share).astype(np.int8)
    probability = np.where(treated == 1, churn_if_contacted, churn_if_not_contacted)
    churned = (rng.random(rows) < probability).astype(np.int8)
    return pl.DataFrame({
        "member": np.arange(rows),
        "usage_drop": usage_drop, "discount_interest": discount_interest, "support_calls": support_calls,
        "noise": noise, "plan": plan,
        "treated": treated, "churned": churned,
        "risk_score": churn_if_not_contacted + 0.05 * rng.normal(size=rows),
        "true_churn_change": churn_if_contacted - churn_if_not_contacted,
    })


NOT_FEATURES = ("risk_score", "true_churn_change")
"""Columns of ``synthetic_pilot`` a model must not read (the member id is passed as id_column)."""


def multiplicative_pilot(rows: int, seed: int, treated_share: float = 0.5) -> pl.DataFrame:
    """A pilot whose effect is multiplicative, like the demo's: a contact removes the share ``tau`` of the
    customer's churn probability, ``tau`` set by observed traits (0 for the high-risk ones with
    ``usage_drop > 0.8``: they cannot be saved; 0.7 for the price-sensitive, ``discount_interest > 0``; 0.1
    for the rest). ``risk_score`` is a churn model's noisy estimate of the no-contact probability."""
    rng = np.random.default_rng(seed)
    usage_drop, discount_interest, support_calls, noise = rng.normal(size=(4, rows))
    plan = rng.choice(["basic", "standard", "premium"], rows, p=[0.4, 0.35, 0.25])
    logit = -2.2 + 1.2 * usage_drop + 0.4 * (plan == "basic") + 0.3 * support_calls
    churn_if_not_contacted = 1 / (1 + np.exp(-logit))
    tau = np.where(usage_drop > 0.8, 0.0, np.where(discount_interest > 0.0, 0.7, 0.1))
    churn_if_contacted = churn_if_not_contacted * (1 - tau)
    treated = (rng.random(rows) < treated_share).astype(np.int8)
    churned = (rng.random(rows) < np.where(treated == 1, churn_if_contacted, churn_if_not_contacted)).astype(np.int8)
    risk_score = 1 / (1 + np.exp(-(logit + 0.3 * rng.normal(size=rows))))
    return pl.DataFrame({
        "member": np.arange(rows),
        "usage_drop": usage_drop, "discount_interest": discount_interest, "support_calls": support_calls,
        "noise": noise, "plan": plan, "treated": treated, "churned": churned, "risk_score": risk_score,
        "true_churn_change": churn_if_contacted - churn_if_not_contacted,
    })
