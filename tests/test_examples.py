"""The worked examples end to end on small samples: telco and bank (flat tables from the public data)
and the event-log example (CSV files from the demo simulator)."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import duckdb
import polars as pl
import pytest

from tests.helpers import REPO, TINY_NETWORK, churnwh, private

DATASETS = REPO.parent / "shared" / "datasets"
TELCO = DATASETS / "telco_ibm" / "Telco-Customer-Churn.csv"
BANK = DATASETS / "bank_churn_modelling" / "Churn_Modelling.csv"


def example(name: str, tmp_path: Path) -> Path:
    project = tmp_path / name
    shutil.copytree(REPO / "examples" / name, project, ignore=shutil.ignore_patterns("warehouse", "*.key"))
    config = project / "churnwh.toml"
    text = config.read_text().replace('path = "../../sql"', f'path = "{REPO / "sql"}"')
    text = text.replace("[network]\nepochs = 30\n", "")
    config.write_text(text + TINY_NETWORK)
    return project


def sample(source: Path, rows: int, target: Path) -> Path:
    lines = source.read_text().splitlines(keepends=True)
    target.write_text("".join(lines[: rows + 1]))
    return target


def published_text(project: Path) -> str:
    con = duckdb.connect(str(project / "warehouse" / "churn.duckdb"), read_only=True)
    try:
        tables = [row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        return "\n".join(str(con.execute(f'SELECT * FROM "{table}"').fetchall()) for table in tables)
    finally:
        con.close()


@pytest.mark.skipif(not TELCO.exists(), reason="the public Telco data is not in ../shared/datasets")
def test_telco_example_end_to_end(tmp_path):
    project = example("telco", tmp_path)
    data = sample(TELCO, 800, tmp_path / "telco.csv")
    result = churnwh(project, "build", "--source", f"customers={data}")
    assert result.returncode == 0, result.stderr
    with data.open(newline="") as file:
        blank = sum(1 for row in csv.DictReader(file) if not row["TotalCharges"].strip())
    assert blank > 0  # the sample holds new customers whose TotalCharges is blank
    with private(project) as con:
        current = con.execute("SELECT count(*) FROM raw.customers WHERE Churn = 0").fetchone()[0]
        assert con.execute("SELECT count(*) FROM ml.churn_scores").fetchone()[0] == current
        # blank TotalCharges load as NULL, nothing else does
        assert con.execute("SELECT count(*) FROM raw.customers WHERE TotalCharges IS NULL").fetchone()[0] == blank
    ids = pl.read_csv(data)["customerID"].to_list()
    text = published_text(project)
    assert not any(customer_id in text for customer_id in ids)


@pytest.mark.skipif(not BANK.exists(), reason="the public bank churn data is not in ../shared/datasets")
def test_bank_example_end_to_end_surname_never_published(tmp_path, monkeypatch):
    project = example("bank", tmp_path)
    data = sample(BANK, 800, tmp_path / "bank.csv")
    result = churnwh(project, "build", "--source", f"customers={data}")
    assert result.returncode == 0, result.stderr
    frame = pl.read_csv(data)
    surnames = {s for s in frame["Surname"].to_list() if len(s) > 3}
    published = (project / "warehouse" / "churn.duckdb").read_bytes()
    text = published_text(project)
    # as a word: the about table's prose says 'Smallest group', and 'Small' is a surname in the data
    assert not [s for s in surnames if re.search(rf"\b{re.escape(s)}\b", text)]
    assert not [s for s in surnames if re.search(rb"\b" + re.escape(s.encode()) + rb"\b", published)]
    with private(project) as con:
        assert con.execute("SELECT count(*) FROM raw.customers WHERE Surname IS NOT NULL").fetchone()[0] == 800
        for relation in ("staging.customers", "marts.training_set", "marts.scoring_set"):
            columns = [r[0] for r in con.execute(f"DESCRIBE {relation}").fetchall()]
            assert "Surname" not in columns and "customer_id" not in columns
    monkeypatch.syspath_prepend(str(REPO))
    from examples.run import compare

    results = compare(project)
    with private(project) as con:
        stored = con.execute("SELECT test_roc_auc, baseline_roc_auc FROM ml.model_runs WHERE status = 'current'"
                             ).fetchone()
    assert 110 <= results["rows"]["test"] <= 130
    assert set(results["network"]) >= {"roc_auc", "accuracy"}
    # The comparison evaluates the model the build registered, on the build's own test rows: it gives
    # the figures the build recorded.
    assert (results["network"]["roc_auc"], results["logistic_regression"]["roc_auc"]) == pytest.approx(stored)


def test_event_log_example_end_to_end(tmp_path):
    project = example("events", tmp_path)
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    with private(project) as con:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'raw'").fetchall()}
        assert {"subscriptions", "transactions", "consent_events", "customer_keys"} <= tables
        assert con.execute("SELECT count(*) FROM ml.churn_scores").fetchone()[0] > 0
    emails = pl.read_csv(project / "data" / "customers.csv")["email"].drop_nulls().to_list()
    text = published_text(project)
    assert not any(email in text for email in emails)
