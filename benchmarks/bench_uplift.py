"""Uplift estimator on a synthetic randomized pilot with a known heterogeneous effect (tests/uplift_data.py).

Fits the two-headed uplift network (``churnwh.ml.uplift``, default settings) on a pilot, validates it on
the pilot's held-out members, then scores a fresh set of members from the same population against the
planted truth: Qini coefficient and AUUC of the network, the two-model baseline and risk targeting, the
oracle (ranking by the true effect) and the correlation of the estimated with the true effect.

    PYTHONPATH=$PWD python benchmarks/bench_uplift.py --members 20000 --fresh 100000 --seed 0
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from churnwh.ml import uplift, uplift_metrics
from tests.uplift_data import synthetic_pilot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--fresh", type=int, default=100_000)
    parser.add_argument("--treated-share", type=float, default=0.6)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    pilot = synthetic_pilot(args.members, args.seed, args.treated_share)
    fresh = synthetic_pilot(args.fresh, args.seed + 1000, args.treated_share)
    config = dataclasses.replace(uplift.UPLIFT_DEFAULTS, seed=args.seed)
    started = time.perf_counter()
    model, validation = uplift.validate_uplift(
        pilot, treatment_column="treated", label_column="churned", risk_column="risk_score", id_column="member",
        exclude=("true_churn_change",), treated_share=args.treated_share, config=config)
    fit_seconds = time.perf_counter() - started
    learn, _ = uplift.split_members(pilot, treatment_column="treated", label_column="churned",
                                    test_fraction=config.test_fraction, seed=config.seed + 1)
    comparison = uplift.compare_targeting(model, learn, fresh, risk_column="risk_score")
    truth = fresh["true_churn_change"].to_numpy()
    oracle = uplift_metrics.uplift_curve(-truth, fresh["treated"], fresh["churned"])
    estimates = uplift.predict_uplift(model, fresh)

    def areas(rules):
        return {name: {"qini": round(c.qini_coefficient, 5), "auuc": round(c.auuc, 5)} for name, c in rules.items()}

    print(json.dumps({
        "members": args.members, "fresh": args.fresh, "seed": args.seed, "treated_share": args.treated_share,
        "pilot": {k: v for k, v in validation.pilot.to_dict().items() if k != "rule"},
        "best_epoch": model.best_epoch, "epochs": len(model.history), "fit_and_validate_seconds": round(fit_seconds, 1),
        "held_out": {"members": validation.test_members, "auuc_random": round(validation.rules["network"].auuc_random, 5),
                     **areas(validation.rules),
                     "network_qini_gain_95": {name: [round(x, 5) for x in gain]
                                              for name, gain in validation.network_gain.items()}},
        "fresh_members": {"auuc_random": round(oracle.auuc_random, 5), **areas(comparison.rules),
                          "oracle": {"qini": round(oracle.qini_coefficient, 5), "auuc": round(oracle.auuc, 5)}},
        "correlation_with_true_effect": round(float(np.corrcoef(estimates.churn_change, truth)[0, 1]), 3),
        "mean_estimated_change": round(float(estimates.churn_change.mean()), 4),
        "mean_true_change": round(float(truth.mean()), 4),
    }, indent=1))


if __name__ == "__main__":
    main()
