"""How large a pilot must be for the product's uplift network to target better than churn risk: a learning curve.

No campaign simulation through the CLI: like ``bench_uplift_learnable.py``, the demo simulator follows every
at-risk customer's two potential outcomes over one 90-day window with the planted heterogeneous effect
(several simulated populations of ``--customers`` each, seeds ``--seed``, ``--seed + 1``, ..., stacked until
there are enough at-risk customers). A fixed ``--test`` of them is held out; pilots of each size are drawn at
random from the rest, half treated, each member churning with the probability of their arm. Features: the
record the simulator's hazard reads (activity, web visits, tickets, ratings, price rise, e-mail, tenure, usage
trend, plan, channel), a stand-in for the warehouse's feature table. "Churn risk": a churn model's score
(gradient boosting fitted out of fold on every pool customer's drawn no-contact outcome: a model trained on
the warehouse's history, which is far larger than a pilot).

Per pilot size and draw: true customers saved per 1,000 contacts when the top ``--share`` of the held-out
customers is contacted, ranked by: the uplift network (``fit_uplift``, no offset), the network with the churn
model's logit as the control head's offset (``risk_column``), the risk-offset model (``fit_offset_uplift``: the
churn model's logit plus a regularized linear effect, the build's default), a two-model L2 logistic baseline,
churn risk; next to the truth-fit (gradient boosting on the true uplift: the best a model of these features can
do), a perfect risk model and the oracle. ``--value-weighted`` also ranks by each score times the customer's
monthly price (the plans' selection: expected uplift x value; true uplift is lower for the cheaper plans) and
reports customers saved and value saved per 1,000 contacts.

``--cache DIR`` keeps the simulated populations and the churn model's scores as parquet there, so that a
repeated run (other sizes, draws or estimators) does not simulate again.

    PYTHONPATH=$PWD python benchmarks/bench_uplift_learning_curve.py --sizes 2000 5000 10000 20000 --draws 2
    PYTHONPATH=$PWD python benchmarks/bench_uplift_learning_curve.py --sizes 6000 13000 20000 --draws 3 \
        --variants risk_offset --cache /tmp/uplift-curve --value-weighted
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from churnwh.sources.demo import advance, simulate, simulation  # noqa: E402
from churnwh.sources.demo.uplift import RESPONSES, usage_trend  # noqa: E402


def population(customers: int, seed: int, effect: float, days: int) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """At-risk customers of one simulated demo: features, true no-contact churn, true uplift."""
    cont = simulate(customers, seed=seed).continuation
    n = cont.state.status.size
    everyone = np.arange(n)
    month = cont.info["simulated_through"] + 1
    rec = simulation._record(cont.state, everyone, month, cont.tickets, advance._prices(cont))
    start = advance.day_to_date(month)
    advance.register_campaign(cont, "all", everyone + 1, np.zeros(n, bool), effect, start,
                              start + dt.timedelta(days=days), "heterogeneous")
    advance.advance(cont, days)
    campaign = advance.campaign_of(cont, "all")
    not_contacted, contacted = advance.potential_outcomes(campaign)
    kind = np.asarray(RESPONSES)[campaign.response[:n]]
    at_risk = np.flatnonzero(kind != "not_at_risk")
    satisfaction = rec.mean_satisfaction.astype(np.float64)
    frame = pl.DataFrame({
        "active_days_30d": rec.active_days_30d, "active_days_90d": rec.active_days_90d,
        "web_visits_30d": rec.web_visits_30d, "web_visits_90d": rec.web_visits_90d,
        "open_tickets": rec.unresolved, "mean_satisfaction": pl.Series(satisfaction, nan_to_null=True),
        "price_rise": rec.price_rise.astype(np.int8), "opened_email": rec.opened_email.astype(np.int8),
        "clicked_email": rec.clicked_email.astype(np.int8), "tenure_months": rec.period_months,
        "usage_trend": usage_trend(rec.active_days_30d, rec.active_days_90d),
        "plan": [f"p{v}" for v in cont.state.plan[:n]], "channel": [f"c{v}" for v in cont.attrs["channel"][:n]],
    }, strict=False)[at_risk]
    return frame, not_contacted[:n][at_risk], (not_contacted - contacted)[:n][at_risk]


MONTHLY_PRICES = (9.99, 15.99, 24.99, 29.99)
"""The demo plans' launch prices (``vocabulary.LAUNCH_PRICES``): the value weight of ``--value-weighted``."""


def cached_populations(args) -> tuple[pl.DataFrame, np.ndarray, np.ndarray, int]:
    """Stacked at-risk customers (features, true no-contact churn, true uplift) of enough populations."""
    needed = max(args.sizes) + args.test
    frames, churn, effect = [], [], []
    seed = args.seed
    while sum(f.height for f in frames) < needed:
        path = (args.cache / f"population-{args.customers}-{seed}-{args.effect}-{args.days}.parquet"
                if args.cache else None)
        if path is not None and path.exists():
            stored = pl.read_parquet(path)
            f, c, u = stored.drop("true_churn", "true_uplift"), stored["true_churn"].to_numpy(), \
                stored["true_uplift"].to_numpy()
        else:
            f, c, u = population(args.customers, seed, args.effect, args.days)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                f.with_columns(pl.Series("true_churn", c), pl.Series("true_uplift", u)).write_parquet(path)
        frames.append(f), churn.append(c), effect.append(u)
        seed += 1
    return pl.concat(frames), np.concatenate(churn), np.concatenate(effect), len(frames)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000, help="per simulated population")
    parser.add_argument("--effect", type=float, default=0.5)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 5000, 10000, 20000])
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--test", type=int, default=10_000, help="held-out at-risk customers")
    parser.add_argument("--share", type=float, default=0.2, help="share of the held-out customers contacted")
    parser.add_argument("--variants", nargs="+", default=["network", "network_risk_offset"],
                        help="network, network_risk_offset, risk_offset")
    parser.add_argument("--cache", type=Path, help="folder keeping the populations and churn scores")
    parser.add_argument("--value-weighted", action="store_true")
    args = parser.parse_args()
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.model_selection import cross_val_predict

    from churnwh.ml import metrics, preprocess, uplift

    started = time.perf_counter()
    frame, churn, effect, populations = cached_populations(args)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(frame.height)
    test, pool = order[: args.test], order[args.test:]
    drawn_churn = (rng.random(frame.height) < churn).astype(int)
    matrix = frame.with_columns(pl.col("plan").str.slice(1).cast(pl.Int32), pl.col("channel").str.slice(1).cast(pl.Int32),
                                pl.col("mean_satisfaction").fill_null(-1.0)).to_numpy()
    risk_path = args.cache / f"risk-{frame.height}-{args.seed}.npy" if args.cache else None
    if risk_path is not None and risk_path.exists():
        risk = np.load(risk_path)
    else:
        risk = cross_val_predict(HistGradientBoostingClassifier(max_iter=200, random_state=0), matrix, drawn_churn,
                                 cv=3, method="predict_proba")[:, 1]
        if risk_path is not None:
            np.save(risk_path, risk)
    truth_fit = np.zeros(frame.height)
    truth_fit[test] = HistGradientBoostingRegressor(max_iter=200, random_state=0).fit(
        matrix[pool], effect[pool]).predict(matrix[test])
    k = int(args.share * args.test)

    price = np.asarray(MONTHLY_PRICES)[frame["plan"].str.slice(1).cast(pl.Int32).to_numpy()]

    def saved(score: np.ndarray):
        """True customers saved per 1,000 contacts; with ``--value-weighted``, also when ranking by score x
        price: (customers, value) saved per 1,000 contacts."""
        top = np.argsort(-score, kind="stable")[:k]
        customers = round(1000 * float(effect[test][top].mean()), 1)
        if not args.value_weighted:
            return customers
        weighted = np.argsort(-score * price[test], kind="stable")[:k]
        return {"customers": customers, "value": round(1000 * float((effect * price)[test][top].mean()), 1),
                "by_value_customers": round(1000 * float(effect[test][weighted].mean()), 1),
                "by_value_value": round(1000 * float((effect * price)[test][weighted].mean()), 1)}

    test_frame = frame[test].with_columns(pl.Series("risk", risk[test]))
    result = {"at_risk_customers": frame.height, "populations": populations, "test": args.test, "share": args.share,
              "effect": args.effect, "mean_true_uplift": round(float(effect.mean()), 4),
              "churn_model_auc": round(float(metrics.roc_auc(drawn_churn[test], risk[test])), 4),
              "fixed": {"oracle": saved(effect[test]), "truth_fit": saved(truth_fit[test]),
                        "perfect_risk": saved(churn[test]), "churn_risk": saved(risk[test]),
                        "random": round(1000 * float(effect[test].mean()), 1)},
              "spearman_price_true_uplift": round(float(pl.DataFrame({"a": price[test], "b": effect[test]}).select(
                  pl.corr("a", "b", method="spearman")).item()), 3),
              "by_size": {}}
    for size in args.sizes:
        rows: dict[str, list[float]] = {}
        for draw in range(args.draws):
            draw_rng = np.random.default_rng([args.seed, size, draw])
            members = pool[draw_rng.permutation(pool.size)[:size]]
            treated = draw_rng.random(size) < 0.5
            churned = (draw_rng.random(size) < np.clip(churn[members] - treated * effect[members], 0, 1)).astype(int)
            pilot = frame[members].with_columns(pl.Series("risk", risk[members]), pl.Series("group", treated.astype(int)),
                                                pl.Series("churned", churned))
            for variant in args.variants:
                t0 = time.perf_counter()
                if variant == "risk_offset":
                    model = uplift.fit_offset_uplift(pilot, treatment_column="group", label_column="churned",
                                                     risk_column="risk", rule=None)
                    rows.setdefault(variant, []).append(saved(uplift.predict_uplift(model, test_frame).prevented))
                    rows.setdefault(f"{variant}_seconds", []).append(round(time.perf_counter() - t0, 1))
                    continue
                model = uplift.fit_uplift(pilot, treatment_column="group", label_column="churned",
                                          exclude=("risk",) if variant == "network" else (),
                                          risk_column="risk" if variant == "network_risk_offset" else None,
                                          config=dataclasses.replace(uplift.UPLIFT_DEFAULTS, seed=draw), rule=None)
                rows.setdefault(variant, []).append(saved(uplift.predict_uplift(model, test_frame).prevented))
                rows.setdefault(f"{variant}_seconds", []).append(round(time.perf_counter() - t0, 1))
            pre = preprocess.fit_preprocessor(pilot, exclude=("risk", "group", "churned"))
            design = preprocess.one_hot_design_matrix(pre, preprocess.transform(pre, pilot))
            test_design = preprocess.one_hot_design_matrix(pre, preprocess.transform(pre, test_frame))
            arms = [metrics.predict_logistic_regression(
                metrics.fit_logistic_regression(design[arm], churned[arm], l2=1.0), test_design)
                for arm in (treated, ~treated)]
            rows.setdefault("two_model_logistic", []).append(saved(arms[1] - arms[0]))
        result["by_size"][size] = rows
        print(json.dumps({size: rows}), file=sys.stderr, flush=True)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
