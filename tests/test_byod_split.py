"""Bring your own data that comes with its own split (issue 16, item 3): two files of one table (train
and test) or one file with a split column become one source whose parts the training honours: the test
metrics are computed on the declared test part only, with no invented observation dates."""

from __future__ import annotations

import csv
import datetime as dt
import random
from pathlib import Path

import polars as pl
import pytest

from churnwh.errors import DataError
from churnwh.ml import splits
from tests.helpers import TINY_NETWORK, churnwh, private


def customer_file(path: Path, first: int, rows: int, *, split: str | None = None, seed: int = 3) -> None:
    """Customers whose churn rises with support calls and falls with tenure."""
    rng = random.Random(seed + first)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "plan", "monthly_fee", "support_calls", "tenure_months", "churned"]
                        + (["set"] if split else []))
        for number in range(first, first + rows):
            calls, tenure = rng.randint(0, 8), rng.randint(1, 60)
            churned = rng.random() < 0.1 + 0.08 * calls - 0.004 * tenure
            writer.writerow([f"K{number:05d}", rng.choice(["basic", "plus", "pro"]), round(rng.uniform(10, 90), 2),
                             calls, tenure, "Yes" if churned else "No"]
                            + ([split if number % 4 else "test"] if split else []))


def test_train_and_test_files_are_one_source_and_the_test_file_is_the_test_part(tmp_path):
    customer_file(tmp_path / "shop_train.csv", 0, 300)
    customer_file(tmp_path / "shop_test.csv", 300, 100)
    project = tmp_path / "shop"
    init = churnwh(Path("."), "init", str(project), "--flat", "--from", str(tmp_path / "shop_train.csv"),
                   "--from", str(tmp_path / "shop_test.csv"))
    assert init.returncode == 0, init.stderr
    assert "shop_train.csv as train and shop_test.csv as test" in init.stdout
    config = (project / "churnwh.toml").read_text()
    assert "parts = { train = " in config and 'split_column = "part"' in config
    (project / "churnwh.toml").write_text(config.replace("\n[network]\n", TINY_NETWORK, 1))
    build = churnwh(project, "build")
    assert build.returncode == 0, build.stderr
    evaluate = churnwh(project, "evaluate")
    assert evaluate.returncode == 0, evaluate.stderr
    assert "test rows 100" in evaluate.stdout  # exactly the test file
    with private(project) as db:
        parts = dict(db.execute("SELECT part, count(*) FROM raw.customers GROUP BY part").fetchall())
        assert parts == {"train": 300, "test": 100}
        assert db.execute("SELECT count(*) FROM marts.training_set WHERE observation_date IS NOT NULL"
                          ).fetchone()[0] == 0  # no invented dates
        features = db.execute("SELECT features FROM ml.model_runs").fetchone()[0]
        assert features == 4  # plan, monthly_fee, support_calls, tenure_months: not the part


def test_a_split_column_in_one_file_is_found_and_declared(tmp_path):
    customer_file(tmp_path / "customers.csv", 0, 200, split="train")
    project = tmp_path / "shop"
    init = churnwh(Path("."), "init", str(project), "--flat", "--from", str(tmp_path / "customers.csv"))
    assert init.returncode == 0, init.stderr
    assert 'split_column = "set"' in (project / "churnwh.toml").read_text()
    bad = churnwh(Path("."), "init", str(tmp_path / "other"), "--flat", "--from", str(tmp_path / "customers.csv"),
                  "--split-column", "plan")
    assert bad.returncode == 1 and "values other than train, valid and test" in bad.stderr


def test_a_file_whose_part_cannot_be_told_is_refused(tmp_path):
    customer_file(tmp_path / "a.csv", 0, 60)
    customer_file(tmp_path / "b.csv", 60, 60)
    result = churnwh(Path("."), "init", str(tmp_path / "shop"), "--flat", "--from", str(tmp_path / "a.csv"),
                     "--from", str(tmp_path / "b.csv"))
    assert result.returncode == 1 and "--from train=FILE" in result.stderr
    named = churnwh(Path("."), "init", str(tmp_path / "shop"), "--flat", "--from", f"train={tmp_path / 'a.csv'}",
                    "--from", f"test={tmp_path / 'b.csv'}")
    assert named.returncode == 0, named.stderr


def test_declared_split_by_value_and_by_date():
    frame = pl.DataFrame({"part": [" Train", "test", "TRAIN", "train"] * 25, "churned": [0, 1] * 50,
                          "day": [dt.date(2025, 1, 1) + dt.timedelta(days=i) for i in range(100)]})
    train, valid, test = splits.declared_split(frame, "part", "churned", valid_fraction=0.2)
    assert test.height == 25 and train.height + valid.height == 75 and valid.height == 15
    train, valid, test = splits.declared_split(frame, "day", "churned", test_from=dt.date(2025, 3, 2))
    assert test.height == 40 and test["day"].min() == dt.date(2025, 3, 2)
    with pytest.raises(DataError, match="set \\[training\\] split_date"):
        splits.declared_split(frame, "day", "churned")
    with pytest.raises(DataError, match="2 rows hold a value that is not train, valid or test"):
        splits.declared_split(frame.with_columns(pl.Series("part", ["x", "y"] + ["test"] * 98)), "part", "churned")
    with pytest.raises(DataError, match="0 test rows"):
        splits.declared_split(frame.with_columns(pl.lit("train").alias("part")), "part", "churned")


def test_a_date_split_column_is_declared_at_init_and_its_later_rows_are_the_test_part(tmp_path):
    """A file whose rows are dated snapshots: `--split-column snapshot_date --split-date D` splits by date
    (rows on or after D are test) with no SQL to edit; the date is the split, not a feature."""
    customer_file(tmp_path / "snapshots.csv", 0, 400)
    lines = (tmp_path / "snapshots.csv").read_text().splitlines()
    dated = [lines[0] + ",snapshot_date"] + [f"{line},{'2025-07-31' if n % 4 == 0 else '2025-01-31'}"
                                             for n, line in enumerate(lines[1:])]
    (tmp_path / "snapshots.csv").write_text("\n".join(dated) + "\n")
    project = tmp_path / "shop"
    base = ["init", str(project), "--flat", "--from", str(tmp_path / "snapshots.csv"), "--split-column",
            "snapshot_date"]
    no_date = churnwh(Path("."), *base)
    assert no_date.returncode == 1 and "--split-date" in no_date.stderr and not project.exists()
    init = churnwh(Path("."), *base, "--split-date", "2025-07-01")
    assert init.returncode == 0, init.stderr
    config = (project / "churnwh.toml").read_text()
    assert 'split_column = "snapshot_date"' in config and 'split_date = "2025-07-01"' in config
    (project / "churnwh.toml").write_text(config.replace("\n[network]\n", TINY_NETWORK, 1))
    build = churnwh(project, "build")
    assert build.returncode == 0, build.stderr
    evaluate = churnwh(project, "evaluate")
    assert evaluate.returncode == 0, evaluate.stderr
    assert "test rows 100" in evaluate.stdout  # exactly the rows dated on or after the split date
    with private(project) as db:
        assert db.execute("SELECT features FROM ml.model_runs").fetchone()[0] == 4  # not the snapshot date
