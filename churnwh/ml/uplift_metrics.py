"""Uplift curves of a targeting rule on randomized campaign members: Qini curve, uplift curve, AUUC.

A targeting rule is a score per member (contact the highest first). The members were randomly
assigned to treatment (contacted) or control, and the outcome is churn (1) or not (0); the rule is
judged by how much churn contacting its top fraction would prevent, estimated from the two groups.

Rank the held-out members by score (descending; tied scores form one step) and let, among the top
``k`` members, ``n_t(k), n_c(k)`` be the treated and control counts and ``y_t(k), y_c(k)`` their
churners. With churn as the outcome to *prevent*:

- **Qini curve** (Radcliffe, "Using control groups to target on predicted lift", Direct Marketing
  Analytics Journal, 2007): ``Q(k) = y_c(k) * n_t(k) / n_c(k) - y_t(k)``, the churners prevented
  among the treated members of the top ``k`` (control churners scaled to the treated count);
- **uplift curve** (Gutierrez and Gerardy, "Causal Inference and Uplift Modeling: A review of the
  literature", PMLR 67, 2017): ``U(k) = (y_c(k) / n_c(k) - y_t(k) / n_t(k)) * k``, the churners
  prevented if all top ``k`` members were contacted.

Both are 0 where the top ``k`` holds no treated or no control member. Curves are reported on the
unit square: ``x = k / N`` (share of members targeted) and ``y = curve / N`` (churn prevented per
held-out member), so figures from pilots of different sizes compare. Then:

- ``qini_coefficient``: area between the Qini curve and the random-targeting diagonal from (0, 0)
  to (1, Q(N) / N) (Radcliffe's q; 0 for a random rule, negative for a rule worse than random);
- ``auuc``: area under the uplift curve (Gutierrez and Gerardy), next to ``auuc_random``, the area
  of random targeting, ``U(N) / N / 2``.

Areas use the trapezoid rule over every tie-group step. The curve points kept for a report are
interpolated at ``n_points`` evenly spaced shares. ``qini_difference_interval`` compares two rules on
the same members with a paired bootstrap (held-out pilots are small, and their curves are noisy).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class UpliftCurve:
    """One rule's curves and their areas on the held-out members."""

    share: np.ndarray
    """Share of members targeted, 0 .. 1 (``n_points`` evenly spaced values)."""
    qini: np.ndarray
    """Qini curve / members at each share (churners prevented among the treated, per member)."""
    uplift: np.ndarray
    """Uplift curve / members at each share (churn prevented if all targeted were contacted, per member)."""
    qini_coefficient: float
    auuc: float
    auuc_random: float

    def to_dict(self) -> dict:
        return {
            "qini_coefficient": self.qini_coefficient, "auuc": self.auuc, "auuc_random": self.auuc_random,
            "share": self.share.tolist(), "qini": self.qini.tolist(), "uplift": self.uplift.tolist(),
        }


def _as_arrays(scores, treated, churned) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    treated = np.asarray(treated, dtype=np.float64).reshape(-1)
    churned = np.asarray(churned, dtype=np.float64).reshape(-1)
    if not scores.size == treated.size == churned.size:
        raise ValueError(f"scores ({scores.size}), treated ({treated.size}) and churned ({churned.size}) "
                         "differ in length")
    if not (np.isin(treated, (0.0, 1.0)).all() and np.isin(churned, (0.0, 1.0)).all()):
        raise ValueError("treated and churned must be 0/1")
    if scores.size == 0 or treated.min() == treated.max():
        raise ValueError("uplift curves need treated and control members")
    if np.isnan(scores).any():
        raise ValueError("scores hold NaN values")
    return scores, treated, churned


def _cumulative_at_steps(scores, treated, churned) -> tuple[np.ndarray, ...]:
    """k, n_t, n_c, y_t, y_c at the end of every tie group (and k = 0), highest scores first."""
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores = scores[order]
    last_of_tie_group = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    t, y = treated[order], churned[order]

    def cumulative(values):
        return np.r_[0.0, np.cumsum(values)[last_of_tie_group]]

    k = np.r_[0.0, (np.arange(scores.size) + 1.0)[last_of_tie_group]]
    return k, cumulative(t), cumulative(1 - t), cumulative(t * y), cumulative((1 - t) * y)


def _unit_curves(scores, treated, churned) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """share, Qini / N and uplift / N at every tie-group step (checked arrays)."""
    k, n_t, n_c, y_t, y_c = _cumulative_at_steps(scores, treated, churned)
    both = (n_t > 0) & (n_c > 0)
    safe_t, safe_c = np.where(both, n_t, 1.0), np.where(both, n_c, 1.0)
    qini = np.where(both, y_c * n_t / safe_c - y_t, 0.0)
    uplift = np.where(both, (y_c / safe_c - y_t / safe_t) * k, 0.0)
    members = float(scores.size)
    return k / members, qini / members, uplift / members


def _qini_coefficient(share: np.ndarray, qini: np.ndarray) -> float:
    return float(np.trapezoid(qini - share * qini[-1], share))


def uplift_curve(scores, treated, churned, n_points: int = 101) -> UpliftCurve:
    """Qini and uplift curves of ranking members by ``scores`` (higher: contact first).

    Parameters
    ----------
    scores : predicted churn prevented by contact (or any targeting score), per member
    treated : 1 for a treated (contacted) member, 0 for a control member (random assignment)
    churned : 1 when the member churned in the outcome window
    n_points : curve points kept for plotting (the areas use every step)
    """
    scores, treated, churned = _as_arrays(scores, treated, churned)
    share, qini, uplift = _unit_curves(scores, treated, churned)
    grid = np.linspace(0.0, 1.0, n_points)
    return UpliftCurve(
        share=grid, qini=np.interp(grid, share, qini), uplift=np.interp(grid, share, uplift),
        qini_coefficient=_qini_coefficient(share, qini),
        auuc=float(np.trapezoid(uplift, share)), auuc_random=float(uplift[-1] / 2.0),
    )


def qini_difference_interval(scores_a, scores_b, treated, churned, *, resamples: int = 200, level: float = 0.95,
                             seed: int = 0) -> tuple[float, float, float]:
    """Qini coefficient of rule a minus rule b on the same members, with a paired bootstrap interval.

    Members are resampled with replacement ``resamples`` times (seeded, so the interval is
    deterministic); both rules are scored on each resample and the percentile interval of the
    difference is returned: (difference, low, high). An interval above 0 says rule a targets better
    than rule b beyond the held-out sampling noise.
    """
    scores_a, treated, churned = _as_arrays(scores_a, treated, churned)
    scores_b, _, _ = _as_arrays(scores_b, treated, churned)
    difference = _qini_coefficient(*_unit_curves(scores_a, treated, churned)[:2]) - _qini_coefficient(
        *_unit_curves(scores_b, treated, churned)[:2])
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(resamples):
        rows = rng.integers(0, scores_a.size, scores_a.size)
        t, y = treated[rows], churned[rows]
        if t.min() == t.max():
            continue
        differences.append(_qini_coefficient(*_unit_curves(scores_a[rows], t, y)[:2])
                           - _qini_coefficient(*_unit_curves(scores_b[rows], t, y)[:2]))
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(differences, [tail, 100.0 - tail])
    return float(difference), float(low), float(high)
