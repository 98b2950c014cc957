"""How large a randomized pilot must be to learn who responds to a contact (no JAX here).

The rule. Targeting by uplift contacts the ``target_share`` of customers with the highest estimated
uplift; targeting by risk contacts the same share with the highest churn risk. Uplift targeting is worth
its name when the customers it picks are saved more often than those risk targeting picks, by at least
``min_gain`` (churn prevented per contacted customer; 0.04 = 40 more customers saved per 1,000 contacts).
For a pilot to show that (and so, at the least, for a model to learn it from the pilot), the difference
between the effect in the two picked segments must be detectable: each segment holds about
``target_share x N`` of the pilot's ``N`` members, its effect (control churn rate - treated churn rate)
has variance ``p (1 - p) / (target_share N s (1 - s))`` at the pilot's churn rate ``p`` and treated share
``s``, the difference of two such (largely disjoint) segments twice that, so, two-sided at ``alpha`` with
``power``::

    N >= (2 / target_share) * (z(1 - alpha/2) + z(power))^2 * p (1 - p) / (min_gain^2 * s (1 - s))

and each arm needs ``min_outcomes_per_arm`` churners and as many non-churners.

The formula gives how the size scales (with the churn rate, the treated share, the share contacted); its
level, the default ``min_gain = 0.04``, is calibrated on the learning curve
(``benchmarks/bench_uplift_learning_curve.py``: the demo's planted effect, pilots drawn at random from the
at-risk customers with 6.4% churn, half treated, the top fifth of 10,000 held-out customers contacted,
true customers saved per 1,000 contacts, two draws per size): a churn model trained on every customer
(ROC-AUC 0.85) saves 46.0; the uplift network 46.9 / 43.9 / 51.7 / 57.5 and a two-model logistic
baseline 47.3 / 46.7 / 54.7 / 57.2 from 2,000 / 5,000 / 10,000 / 20,000 members (a fit on the truth
itself 67.6, the oracle 77.8). Below 10,000 members no learner beat the churn model; from 10,000 both
did in every draw. ``min_gain = 0.04`` asks for 11,755 members at 6.4% churn (12,267 at the demo's
risk-targeted pilot, 6.7%); the learners' measured gain there is smaller than 0.04 (6-9 per 1,000 at
10,000 members): a model learns from every member's features at once and needs fewer members than a test
of the two segments would, so read the default as a calibrated level, not as a promise of 40 per 1,000.
The former rule (a 5-point change within each of 2 halves) asked for 1,609 members, far below where
anything was learned.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from churnwh.errors import DataError


class PilotTooSmall(DataError):
    """The pilot has too few members or churners per arm to learn who responds."""


# --- Pilot size ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PilotSizeRule:
    """The smallest pilot to learn uplift from (see the module docstring for the formula)."""

    min_gain: float = 0.04
    """Gain over risk targeting to detect: churn prevented per contacted customer (absolute, 0.04 = 40 more
    customers saved per 1,000 contacts); the default is calibrated on the learning curve (module docstring)."""
    alpha: float = 0.05
    power: float = 0.8
    target_share: float = 0.2
    """Share of the customers a campaign contacts (the segment whose effect must be told apart)."""
    min_outcomes_per_arm: int = 30


@dataclass(frozen=True)
class PilotSize:
    """The pilot's counts next to what the rule requires."""

    treated: int
    control: int
    treated_churners: int
    control_churners: int
    churn_rate: float
    treated_share: float
    required_members: int
    min_outcomes_per_arm: int
    rule: PilotSizeRule

    @property
    def members(self) -> int:
        return self.treated + self.control

    @property
    def large_enough(self) -> bool:
        outcomes = (self.treated_churners, self.control_churners,
                    self.treated - self.treated_churners, self.control - self.control_churners)
        return self.members >= self.required_members and min(outcomes) >= self.min_outcomes_per_arm

    def message(self) -> str:
        """One line: what the pilot has and how large it must be."""
        return (
            f"the pilot is too small to learn who responds to contact: {self.treated} treated members "
            f"({self.treated_churners} churned) and {self.control} control members ({self.control_churners} "
            f"churned); at its churn rate {self.churn_rate:.1%} and treated share {self.treated_share:.0%} it "
            f"needs at least {self.required_members} members with {self.min_outcomes_per_arm} churners and "
            f"{self.min_outcomes_per_arm} non-churners in each group (to tell targeting by uplift from targeting by "
            f"risk when it saves {self.rule.min_gain * 1000:g} more customers per 1,000 contacts at the top "
            f"{self.rule.target_share:.0%}, at {self.rule.alpha:.0%} significance and {self.rule.power:.0%} power): "
            "run a larger pilot or wait for more outcomes"
        )

    def to_dict(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "rule"}
        return {**values, "rule": dataclasses.asdict(self.rule), "large_enough": self.large_enough}


def required_members(churn_rate: float, treated_share: float, rule: PilotSizeRule = PilotSizeRule(),
                     ) -> int:
    """Members needed by the rule at a churn rate and treated share (outcome counts included)."""
    if not 0 < churn_rate < 1 or not 0 < treated_share < 1:
        return 0
    z = NormalDist().inv_cdf(1 - rule.alpha / 2) + NormalDist().inv_cdf(rule.power)
    by_effect = (2 / rule.target_share) * z**2 * churn_rate * (1 - churn_rate) / (
        rule.min_gain**2 * treated_share * (1 - treated_share))
    smaller_arm = min(treated_share, 1 - treated_share)
    by_outcomes = rule.min_outcomes_per_arm / (min(churn_rate, 1 - churn_rate) * smaller_arm)
    return int(np.ceil(max(by_effect, by_outcomes)))


def pilot_size(treated, churned, rule: PilotSizeRule = PilotSizeRule()) -> PilotSize:
    """Counts of a pilot (0/1 treated and churned per member) and the size the rule requires."""
    treated = np.asarray(treated, dtype=np.float64).reshape(-1)
    churned = np.asarray(churned, dtype=np.float64).reshape(-1)
    n_t, n_c = int(treated.sum()), int((1 - treated).sum())
    churn_rate = float(churned.mean()) if churned.size else 0.0
    share = n_t / churned.size if churned.size else 0.0
    required = required_members(churn_rate, share, rule)
    if required == 0:  # no churners, no stayers or a missing arm: nothing can be learned
        required = max(churned.size + 1, rule.min_outcomes_per_arm * 4)
    return PilotSize(
        treated=n_t, control=n_c, treated_churners=int((treated * churned).sum()),
        control_churners=int(((1 - treated) * churned).sum()), churn_rate=churn_rate, treated_share=share,
        required_members=required, min_outcomes_per_arm=rule.min_outcomes_per_arm, rule=rule,
    )


def require_learnable_pilot(treated, churned, rule: PilotSizeRule = PilotSizeRule()) -> PilotSize:
    """``pilot_size``, or ``PilotTooSmall`` with its one-line message when the pilot is too small."""
    size = pilot_size(treated, churned, rule)
    if not size.large_enough:
        raise PilotTooSmall(size.message())
    return size
