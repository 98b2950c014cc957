"""How much of the demo's planted uplift targeting could find: the oracle, a fit on the observed features, risk.

Simulates a demo, follows every at-risk customer's two potential outcomes over one campaign window with the
planted effect (a shadow campaign: nobody treated, ``advance.register_shadow``), and reports per kind of
response its share, churn and true uplift, then true customers saved per 1,000 contacts when a budget of
contacts goes to the customers ranked by: their true uplift (the oracle); a gradient-boosted regression of
the true uplift on the record the hazard reads (an upper bound for any model of the observed features,
fitted out of fold on the truth itself); the true churn probability over the window (a perfect risk model);
this month's true hazard; at random. R^2 says how much of the true uplift the observed record explains.
Then what a pilot of ``--pilot`` members teaches: random members, half treated, each churning with the
probability of their arm; two-model (T-learner) estimators fitted on them (gradient boosting, L2 logistic
regression; the record without the hazard) rank the other at-risk customers, scored by their true uplift
against a risk model fitted on the same pilot's controls (the top fifth, three draws).

    PYTHONPATH=$PWD python benchmarks/bench_uplift_learnable.py --customers 20000 --effect 0.3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from churnwh.sources.demo import advance, simulate, simulation  # noqa: E402
from churnwh.sources.demo.uplift import RESPONSES  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--effect", type=float, default=0.3)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pilot", type=int, default=6236, help="members of the simulated pilot")
    args = parser.parse_args()
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.model_selection import cross_val_predict

    cont = simulate(args.customers, seed=args.seed).continuation
    n = cont.state.status.size
    everyone = np.arange(n)
    month = cont.info["simulated_through"] + 1
    rec = simulation._record(cont.state, everyone, month, cont.tickets, advance._prices(cont))
    hazard = 0.8 / (1 + np.exp(-simulation._cancel_logit(cont.state, cont.attrs, everyone, rec)))
    start = advance.day_to_date(month)
    advance.register_campaign(cont, "all", everyone + 1, np.zeros(n, bool), args.effect, start,
                              start + dt.timedelta(days=args.days), "heterogeneous")
    advance.advance(cont, args.days)
    campaign = advance.campaign_of(cont, "all")
    not_contacted, contacted = advance.potential_outcomes(campaign)
    uplift, churn = (not_contacted - contacted)[:n], not_contacted[:n]
    kind = np.asarray(RESPONSES)[campaign.response[:n]]
    at_risk = np.flatnonzero(kind != "not_at_risk")
    kinds = {k: {"share": round(float(np.mean(kind[at_risk] == k)), 3),
                 "window_churn": round(float(churn[kind == k].mean()), 4),
                 "mean_uplift": round(float(uplift[kind == k].mean()), 4),
                 "p90_uplift": round(float(np.percentile(uplift[kind == k], 90)), 4)}
             for k in RESPONSES if k != "not_at_risk" and np.any(kind == k)}
    features = np.column_stack([
        rec.active_days_30d, rec.active_days_90d, rec.web_visits_30d, rec.web_visits_90d, rec.unresolved,
        np.nan_to_num(rec.mean_satisfaction, nan=-1), rec.price_rise, rec.opened_email, rec.clicked_email,
        rec.period_months, cont.state.plan[:n], cont.attrs["channel"][:n], hazard])[at_risk]
    y = uplift[at_risk]
    fitted = cross_val_predict(HistGradientBoostingRegressor(max_iter=100, random_state=0), features, y, cv=3)
    r2 = 1 - np.sum((y - fitted) ** 2) / np.sum((y - y.mean()) ** 2)
    riskiest = at_risk[np.argsort(-churn[at_risk])][: at_risk.size // 10]
    scores = {"oracle": y, "feature_fit": fitted, "true_window_risk": churn[at_risk], "true_hazard": hazard[at_risk]}
    per_1000 = {}
    for share in (0.05, 0.1, 0.2, 0.4):
        k = int(share * at_risk.size)
        per_1000[f"top {share:.0%}"] = {name: round(1000 * float(y[np.argsort(-s, kind="stable")[:k]].mean()), 1)
                                        for name, s in scores.items()} | {"random": round(1000 * float(y.mean()), 1)}
    pilot = pilot_estimators(features[:, :-1], y, churn[at_risk], args.pilot)
    print(json.dumps({"pilot_estimators_true_saved_per_1000_top_fifth": pilot,"customers": args.customers, "effect": args.effect, "days": args.days,
                      "at_risk": int(at_risk.size), "kinds": kinds,
                      "riskiest_tenth_kinds": {k: round(float(np.mean(kind[riskiest] == k)), 3) for k in kinds},
                      "r2_true_uplift_from_observed": round(float(r2), 3),
                      "true_saved_per_1000_contacts": per_1000}, indent=1))


def pilot_estimators(features: np.ndarray, uplift: np.ndarray, churn: np.ndarray, members: int) -> dict:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    models = {"gbm": lambda: HistGradientBoostingClassifier(max_iter=100, learning_rate=0.05, max_depth=3,
                                                            min_samples_leaf=50, random_state=0),
              "logistic": lambda: LogisticRegression(max_iter=2000, C=0.1)}
    rng = np.random.default_rng(0)
    out: dict[str, list[float]] = {}
    for _ in range(3):
        order = rng.permutation(uplift.size)
        learn, rest = order[:members], order[members:]
        treated = rng.random(learn.size) < 0.5
        churned = rng.random(learn.size) < np.clip(churn[learn] - treated * uplift[learn], 0, 1)
        k = rest.size // 5

        def saved(score: np.ndarray) -> float:
            return round(1000 * float(uplift[rest][np.argsort(-score, kind="stable")[:k]].mean()), 1)

        found = {"oracle": saved(uplift[rest]), "true_window_risk": saved(churn[rest])}
        for name, make in models.items():
            on_treated = make().fit(features[learn][treated], churned[treated])
            on_control = make().fit(features[learn][~treated], churned[~treated])
            risk = on_control.predict_proba(features[rest])[:, 1]
            found[f"{name}_two_model"] = saved(risk - on_treated.predict_proba(features[rest])[:, 1])
            found[f"{name}_risk"] = saved(risk)
        for name, value in found.items():
            out.setdefault(name, []).append(value)
    return out


if __name__ == "__main__":
    main()
