"""The benchmark suite runner end to end on two tiny CSV datasets, and the committed suite files against their provenance."""

from __future__ import annotations

import tomllib

import numpy as np
import polars as pl
import pytest

pytest.importorskip("lightgbm")
pytest.importorskip("sklearn")

from benchmarks import bench_suite  # noqa: E402
from churnwh.ml.train import TrainConfig  # noqa: E402
from tests.helpers import TINY_NETWORK  # noqa: E402

TINY = TrainConfig(**tomllib.loads(TINY_NETWORK)["network"])


def _tiny_sets(tmp_path) -> tuple[bench_suite.SuiteDataset, bench_suite.SuiteDataset]:
    rng = np.random.default_rng(7)
    rows = 320  # 2 folds: 160 training rows, 24 of them validation (train_model needs 20)
    usage = rng.gamma(2.0, 10.0, rows)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    churned = rng.random(rows) < 1 / (1 + np.exp(0.15 * usage - 1.5 + (plan == "pro")))
    flat = tmp_path / "flat.csv"
    pl.DataFrame({"customer": [f"c{i}" for i in range(rows)], "usage": usage, "plan": plan,
                  "left": np.where(churned, "Yes", "No")}).write_csv(flat)
    numeric = tmp_path / "numeric.csv"
    x = rng.normal(size=(rows, 3))
    pl.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2],
                  "churned": (x[:, 0] + 0.5 * rng.normal(size=rows) > 0.8).astype(int)}).write_csv(numeric)
    return (
        bench_suite.SuiteDataset(name="flat", path=flat, sha256=bench_suite.sha256_of(flat), label="left",
                                 positive="Yes", drop=("customer",), shape="tiny"),
        bench_suite.SuiteDataset(name="numeric", path=numeric, sha256=bench_suite.sha256_of(numeric),
                                 label="churned", positive=1, shape="tiny"),
    )


def test_suite_runner_end_to_end_on_two_tiny_sets(tmp_path):
    datasets = _tiny_sets(tmp_path)
    results = bench_suite.run_suite(datasets, folds=2, config=TINY)
    assert [r["name"] for r in results] == ["flat", "numeric"]
    flat = results[0]
    assert flat["rows"] == 320 and flat["features"] == 2  # the identifier column is dropped
    for result in results:
        assert len(result["folds"]) == 2
        for fold in result["folds"]:
            for model in bench_suite.MODELS:
                assert 0.0 <= fold[model]["roc_auc"] <= 1.0
                assert 0.0 <= fold[model]["ece"] <= 1.0
            assert fold["network_seconds"] > 0 and fold["histgb_seconds"] > 0
        # every row is predicted once, out of fold, by every model
        assert set(result["pooled"]) == set(bench_suite.MODELS)
    # on the numeric set the signal is strong: the peers trained on the same folds find it (the tiny
    # network's 4 epochs are too few to judge it here)
    numeric = results[1]
    assert bench_suite._mean(numeric, "histgb") > 0.7
    assert bench_suite._mean(numeric, "lightgbm") > 0.7
    assert bench_suite._mean(numeric, "logistic_regression") > 0.7
    table = bench_suite.format_table(results)
    assert table.count("\n| flat |") == 1 and "| numeric |" in table and "mean of 2 unseen" in table


def test_altered_or_missing_file_is_refused_with_its_name(tmp_path):
    flat, _ = _tiny_sets(tmp_path)
    flat.path.write_text(flat.path.read_text().replace("Yes", "No", 1))
    with pytest.raises(bench_suite.SuiteDataError, match="flat.csv has sha256"):
        bench_suite.load_dataset(flat)
    flat.path.unlink()
    with pytest.raises(bench_suite.SuiteDataError, match="flat.csv is missing"):
        bench_suite.load_dataset(flat)


@pytest.mark.parametrize("dataset", [d for d in bench_suite.SUITE if not d.tuned_on], ids=lambda d: d.name)
def test_committed_suite_files_match_their_provenance(dataset):
    frame = bench_suite.load_dataset(dataset)  # checks the sha256
    provenance = (dataset.path.parent / "PROVENANCE.md").read_text()
    assert f"sha256 `{dataset.sha256}`" in provenance
    assert f"{frame.height:,} data rows" in provenance
    assert f"positive rate {frame[bench_suite.LABEL].mean():.4f}" in provenance.lower()
