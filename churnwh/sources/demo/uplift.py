"""The planted campaign effect per customer, and the true uplift of a played-out campaign.

A contact changes a treated member's monthly churn hazard by a relative effect ``tau`` that depends on
the member's state at the month start (``relative_effect``): ``p x (1 - tau x w)`` inside the window,
``w`` the share of the month inside it. ``--effect E`` sets the strength; ``--effect 0`` means no
effect for anyone, in both models:

* ``uniform``: ``tau = E`` for everyone (the model before issue 21).
* ``heterogeneous`` (the default), first match wins. The kinds follow what the customer's own record
  shows (the observed, actionable reasons to leave), plus one hidden state, so that a model of the pilot's
  members can learn much of who responds:

  - unsaveable, ``tau = 0``: customers in the hidden disengaging state (they have already decided to
    leave), customers who have stopped using the product (fewer than 8 active days in the last 90) and
    customers with a support ticket still unresolved (they leave over the problem, which an offer does
    not fix). Most of the highest-risk customers (see ``benchmarks/bench_uplift_learnable.py`` for the
    share of the riskiest tenth of the at-risk customers).
  - annoyed, ``tau = -E``: long-tenured customers (current active period 24 months or more) with a low
    e-mail affinity (below -1.3, about the lowest sixth): they pay without thinking about it and a
    retention contact reminds them to reconsider ("sleeping dogs"); their hazard rises to ``p x (1 + E x w)``.
    About 6% of the at-risk customers, mostly low-risk.
  - strong responders, ``tau = 1 - (1 - E)^4`` (0.76 for E = 0.3, 0.94 for E = 0.5): customers with a reason
    to leave that an offer addresses: price-sensitive (on the basic plan, or their plan's list price rose
    in the last 90 days while they used the product on fewer than 4 of the last 30 days), poor support
    (mean rating of their resolved tickets below 2.5: the offer makes amends), falling use (usage trend
    -0.5 or below, not yet stopped: the offer gives a reason to come back; the hidden disengaging state
    also makes use fall, and those are unsaveable, the noise a model cannot see through) and customers
    still settling in (current active period under 6 months). About 30% of the at-risk customers,
    medium risk on average.
  - everyone else, ``tau = E / 3``: a customer with no particular reason to leave is changed little by
    an offer.

  Why these: with the earlier model (``tau = E`` for everyone not in a special group, strong responders
  few and at low risk) the true uplift was churn risk times a near-constant, so even an oracle that knew
  every customer's true uplift saved only about 20% more per contact than targeting by risk (budget of a
  fifth of the customers, 20,000 customers), and a model fitted on the observed features saved less than
  risk targeting: there was nothing learnable to find. ``benchmarks/bench_uplift_learnable.py`` measures
  both for the current model.

The truth of a campaign (``truth_table``, written by `churnwh demo-campaign` and `churnwh demo-advance` to
``uplift_truth.parquet`` beside the churn truth, never into a warehouse) holds for every member, treated or
control, both potential outcomes: the probability that the member's churn is counted by the end of the
window (as the pilot report counts it then) if contacted and if not, and their difference, the true
uplift (churn prevented by the contact; negative when the contact drives the customer away). The
simulator accumulates them month by month from the same state: for every month of the window in which
the member is at risk, ``1 - p x s`` (not contacted) and ``1 - p x s x (1 - tau)`` (contacted), ``s`` the share
of the month inside the window; a cancellation followed by a re-signup within 3-29 days before the
window end is not counted (``Q_SHORT_RETURN``). The mean uplift over the members is the planted effect
that `churnwh demo-campaign` prints and `churnwh pilot-report` estimates (control rate - treated rate).
Months after a member's cancellation are not in the product (the simulator does not compute the hazard
of a customer who is not at risk), which undercounts a multi-month window's churn by a second-order
amount, the same for both potential outcomes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

EFFECT_MODELS = ("heterogeneous", "uniform")
"""``--effect-model`` values; the first is the default."""
RESPONSES = ("baseline", "unsaveable", "annoyed", "strong", "not_at_risk")
"""The heterogeneous model's kinds of response (``truth_table``'s ``response``: the kind in the member's
first month at risk in the window; ``not_at_risk``: never at risk inside the window)."""
LONG_TENURE_MONTHS = 24
LOW_AFFINITY = -1.3
DORMANT_DAYS = 8            # active days in the last 90 below which a customer has stopped using the product
LOW_USAGE_DAYS = 4          # active days in the last 30: a low user (the hazard's price-rise term)
POOR_RATING = 2.5           # mean rating of the resolved tickets below which support went badly
USAGE_FALL = -0.5           # usage trend (the features' usage_trend) at or below which use is falling
NEW_MONTHS = 6              # current active period shorter than this: still settling in
STRONG_POWER = 4            # a strong responder keeps (1 - E)^4 of the hazard (0.24 for E = 0.3)
BASELINE_SHARE = 1 / 3      # everyone else: tau = E / 3
SALEABLE_PLANS = (0,)       # plan index (vocabulary.PLAN_IDS) whose customers a discount wins back: basic


def usage_trend(active_days_30d: np.ndarray, active_days_90d: np.ndarray) -> np.ndarray:
    """The last 30 days' active days against the monthly average of the 60 before, from -1 to +1 (the
    features' ``usage_trend``)."""
    last_30, last_90 = np.asarray(active_days_30d, float), np.asarray(active_days_90d, float)
    before = (last_90 - last_30) / 2.0
    total = last_30 + before
    return np.where(total > 0, (last_30 - before) / np.maximum(total, 1e-9), 0.0)


def relative_effect(effect: float, model: str, *, disengaging: np.ndarray, unresolved: np.ndarray,
                    price_rise: np.ndarray, active_days_30d: np.ndarray, active_days_90d: np.ndarray,
                    email_affinity: np.ndarray, period_months: np.ndarray, mean_satisfaction: np.ndarray,
                    plan: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The relative hazard change ``tau`` a contact causes, and the kind of response (index in ``RESPONSES``)."""
    n = np.asarray(disengaging).size
    if model == "uniform":
        return np.full(n, float(effect)), np.zeros(n, np.int8)
    if model != "heterogeneous":
        raise ValueError(f"effect model {model!r} is not one of {', '.join(EFFECT_MODELS)}")
    days_30, days_90 = np.asarray(active_days_30d), np.asarray(active_days_90d)
    unsaveable = np.asarray(disengaging, bool) | (days_90 < DORMANT_DAYS) | (np.asarray(unresolved) > 0)
    annoyed = ~unsaveable & (np.asarray(period_months) >= LONG_TENURE_MONTHS) & (email_affinity < LOW_AFFINITY)
    price_sensitive = (np.asarray(price_rise, bool) & (days_30 < LOW_USAGE_DAYS)) | np.isin(plan, SALEABLE_PLANS)
    poor_support = np.nan_to_num(np.asarray(mean_satisfaction, float), nan=5.0) < POOR_RATING
    falling = usage_trend(days_30, days_90) <= USAGE_FALL
    settling_in = np.asarray(period_months) < NEW_MONTHS
    strong = ~unsaveable & ~annoyed & (price_sensitive | poor_support | falling | settling_in)
    kind = np.select([unsaveable, annoyed, strong], [1, 2, 3], 0).astype(np.int8)
    tau = np.select([unsaveable, annoyed, strong], [0.0, -effect, 1 - (1 - effect) ** STRONG_POWER],
                    effect * BASELINE_SHARE)
    return tau.astype(np.float64), kind


def counted_share(first_day: int, end_day: int, outcome_day: int, q_short_return: float) -> float:
    """The share of the window's cancellations the pilot report counts as churn on ``outcome_day``: a
    cancellation followed by a re-signup within 3-29 days before then continues the active period."""
    days = np.arange(first_day, min(end_day, outcome_day))
    gaps = np.arange(3, 30)
    returned = float(np.mean(days[:, None] + gaps[None, :] < outcome_day)) if days.size else 0.0
    return 1 - q_short_return * returned


def read_uplift_truth(path: Path, campaign_id: str | None = None) -> pa.Table:
    """The true uplift of the played-out demo campaigns (one campaign's members when ``campaign_id`` is given)."""
    table = pq.read_table(path)
    if campaign_id is not None:
        table = table.filter(pc.equal(table.column("campaign_id"), campaign_id))
        if table.num_rows == 0:
            raise ValueError(f"{path} holds no members of campaign {campaign_id}: play it out with "
                             "`churnwh demo-campaign` first")
    return table


def expected_saved(truth: pa.Table, customer_ids) -> float:
    """Expected customers saved (churns prevented, by the window end) by contacting ``customer_ids``, all
    members of the one campaign ``truth`` holds: the sum of their true uplift. A targeting rule applied to
    the campaign's members is scored by the customers it would contact."""
    if len(set(truth.column("campaign_id").to_pylist())) > 1:
        raise ValueError("the truth holds several campaigns: read one with read_uplift_truth(path, campaign_id)")
    uplift = dict(zip(truth.column("customer_id").to_pylist(), truth.column("uplift").to_pylist()))
    chosen = set(customer_ids)
    unknown = chosen - uplift.keys()
    if unknown:
        raise ValueError(f"{len(unknown)} of the {len(chosen)} customers are not members of the campaign: its "
                         "truth covers its members only")
    return float(sum(uplift[c] for c in chosen))


__all__ = ["EFFECT_MODELS", "RESPONSES", "counted_share", "expected_saved", "read_uplift_truth", "relative_effect"]
