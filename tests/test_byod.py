"""Bring your own data (issue 16): leakage found before training, columns excluded at init or in the
config, the documented random-split switch in every shape, and the small frictions of a real export."""

from __future__ import annotations

import json
import random
from pathlib import Path

from tests.helpers import churnwh, make_project, private
from tests.test_init import init, tiny
from tests.test_sources import HEADER, customer_rows, write_csv


def model_features(project: Path) -> list[str]:
    from churnwh.config import load_config
    from churnwh.stages import registry

    config = load_config(project)
    with private(project) as con:
        version = registry.current(con).version
    return list(registry.load(config.warehouse.models, version).features)


def run_record(project: Path) -> dict:
    (current,) = sorted(p for p in (project / "warehouse" / "models").iterdir() if (p / "run.json").exists())[-1:]
    return json.loads((current / "run.json").read_text())


def set_training(project: Path, lines: str) -> None:
    """Uncomment/replace the scaffold's [training] section head with ``lines``."""
    config = project / "churnwh.toml"
    text = config.read_text()
    assert "\n[training]\n" in text
    config.write_text(text.replace("\n[training]\n", f"\n[training]\n{lines}\n", 1))


# --- item 7: `[training] date_column = ""` is a stratified random split in every shape -----------------------

def test_random_split_switch_in_a_flat_project(tmp_path):
    project = init(tmp_path, "--flat")
    tiny(project)
    set_training(project, 'date_column = ""')
    write_csv(project / "data" / "customers.csv", customer_rows(300))
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    assert "observation_date" not in model_features(project)
    assert run_record(project)["training"]["time_split"] is False
    assert churnwh(project, "evaluate").returncode == 0


def test_random_split_switch_in_the_demo_project(tmp_path):
    project = make_project(tmp_path / "demo", customers=300)
    config = project / "churnwh.toml"
    config.write_text(config.read_text().replace('date_column = "observation_date"', 'date_column = ""'))
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    assert "observation_date" not in model_features(project)
    assert run_record(project)["training"]["time_split"] is False
    with private(project) as con:  # the scores are still dated by the scoring set's observation date
        assert con.execute("SELECT count(*) FROM ml.churn_scores WHERE as_of IS NULL").fetchone()[0] == 0


# --- items 1 and 2: leakage found at init and refused at build; columns excluded at init or in the config ----

def leaking_csv(path: Path, rows: int = 300) -> Path:
    """customer_rows plus two columns computed from the label by 'an earlier classifier': one named after
    the label (churn_probability), one not (risk_score)."""
    rng = random.Random(11)
    data = customer_rows(rows)
    header = [*HEADER, "churn_probability", "risk_score"]
    body = [[*row, f"{(0.8 if row[-1] == 'Yes' else 0.1) + rng.uniform(0, 0.1):.3f}",
             f"{(70 if row[-1] == 'Yes' else 20) + rng.randint(0, 9)}"] for row in data]
    return write_csv(path, body, header=header)


def test_leaking_columns_are_named_at_init_refused_at_build_and_excluded_in_the_config(tmp_path):
    data = leaking_csv(tmp_path / "leaky.csv")
    project = tmp_path / "proj"
    made = churnwh(Path("."), "init", str(project), "--flat", "--from", str(data), "--id-column", "customer_id",
                   "--label", "churned")
    assert made.returncode == 0, made.stderr
    assert "likely label leakage" in made.stderr, made.stderr
    assert "churn_probability (named after the label" in made.stderr and "risk_score (separates" in made.stderr
    assert "--exclude churn_probability --exclude risk_score" in made.stderr
    assert "monthly_fee" not in made.stderr and "K0000" not in made.stderr and "Ada Quill" not in made.stderr
    tiny(project)
    refused = churnwh(project, "build")
    message = refused.stderr.strip()
    assert refused.returncode == 1 and len(message.splitlines()) == 1, message
    assert "training refused, likely label leakage" in message and "churn_probability" in message
    assert 'exclude = ["churn_probability", "risk_score"]' in message and "allow_leakage" in message
    assert not (project / "warehouse" / "churn.duckdb").exists()

    set_training(project, 'exclude = ["churn_probability", "risk_score"]')  # no SQL edited
    built = churnwh(project, "build")
    assert built.returncode == 0, built.stderr
    features = model_features(project)
    assert "churn_probability" not in features and "risk_score" not in features and "support_calls" in features
    assert run_record(project)["training"]["exclude"] == ["churn_probability", "risk_score"]

    config = project / "churnwh.toml"  # a misspelt exclusion stops the build rather than keep the column in
    config.write_text(config.read_text().replace('"risk_score"]', '"risk_scor"]'))
    typo = churnwh(project, "build")
    assert typo.returncode == 1 and "did you mean 'risk_score'" in typo.stderr, typo.stderr


def test_init_exclude_keeps_the_columns_out_of_the_sql_and_the_build_trains(tmp_path):
    data = leaking_csv(tmp_path / "leaky.csv")
    project = tmp_path / "proj"
    made = churnwh(Path("."), "init", str(project), "--flat", "--from", str(data), "--id-column", "customer_id",
                   "--label", "churned", "--exclude", "churn_probability", "--exclude", "risk_score")
    assert made.returncode == 0 and "leakage" not in made.stderr, made.stderr
    for model in ("staging/customers.sql", "marts/training_set.sql", "marts/scoring_set.sql"):
        selected = (project / "sql" / model).read_text().split("\nSELECT\n", 1)[1]
        assert "churn_probability" not in selected and "risk_score" not in selected, model
    assert "excluded with --exclude" in (project / "churnwh.toml").read_text()
    tiny(project)
    built = churnwh(project, "build")
    assert built.returncode == 0, built.stderr
    assert "risk_score" not in model_features(project)
    wrong = churnwh(Path("."), "init", str(tmp_path / "p2"), "--flat", "--from", str(data), "--id-column",
                    "customer_id", "--label", "churned", "--exclude", "risk_scor")
    assert wrong.returncode == 1 and "did you mean 'risk_score'" in wrong.stderr, wrong.stderr


def test_an_implausibly_perfect_model_is_not_promoted_without_force(tmp_path):
    data = leaking_csv(tmp_path / "leaky.csv")
    project = init(tmp_path, "--flat", "--from", str(data), "--id-column", "customer_id", "--label", "churned",
                   "--exclude", "churn_probability")
    tiny(project)
    config = project / "churnwh.toml"  # enough steps for a tiny network to learn one perfect column
    text = config.read_text()
    for tiny_value, learning in (("epochs = 4", "epochs = 40"), ("batch_size = 256", "batch_size = 16"),
                                 ("patience = 2", "patience = 40")):
        text = text.replace(f"{tiny_value}\n", f"{learning}\n", 1)
    config.write_text(text)
    set_training(project, 'allow_leakage = ["risk_score"]')  # vouched for: the check lets it through
    refused = churnwh(project, "build")
    assert refused.returncode == 1 and "implausibly perfect" in refused.stderr and "--force" in refused.stderr, \
        refused.stderr
    forced = churnwh(project, "build", "--force-train")
    assert forced.returncode == 0, forced.stderr
    assert run_record(project)["training"]["allow_leakage"] == ["risk_score"]
    with private(project) as con:
        (decision,) = con.execute("SELECT decision FROM ml.model_runs").fetchone()
    assert "forced" in decision and "leakage check waived for risk_score" in decision


# --- item 8: small frictions, one test each -------------------------------------------------------------------

NO_ID_HEADER = ["region", "plan", "monthly_fee", "support_calls", "churned"]


def no_id_rows(n: int = 200) -> list[list[str]]:
    return [[row[2], row[4], row[5], row[6], row[7]] for row in customer_rows(n)]


def test_a_file_without_an_id_uses_row_numbers_stable_across_loads(tmp_path):
    data = write_csv(tmp_path / "noid.csv", no_id_rows(200), header=NO_ID_HEADER)
    refused = churnwh(Path("."), "init", str(tmp_path / "p0"), "--flat", "--from", str(data))
    assert refused.returncode == 1 and "--id-column @row" in refused.stderr, refused.stderr
    project = init(tmp_path, "--flat", "--from", str(data), "--id-column", "@row")
    assert 'id_column = "@row"' in (project / "churnwh.toml").read_text()
    loaded = churnwh(project, "load")
    assert loaded.returncode == 0, loaded.stderr
    fees = [row[2] for row in no_id_rows(200)]

    def by_row() -> list[tuple[str, float]]:
        with private(project) as con:
            return con.execute("SELECT customer_id, monthly_fee FROM raw.customers ORDER BY CAST(customer_id AS INT)"
                               ).fetchall()

    first = by_row()
    assert [i for i, _ in first] == [str(n) for n in range(1, 201)]
    assert [f for _, f in first] == [float(f) for f in fees]  # row n of the file is customer n
    assert churnwh(project, "load", "--force").returncode == 0
    assert by_row() == first
    tiny(project)
    built = churnwh(project, "build")
    assert built.returncode == 0, built.stderr


def test_init_from_accepts_a_glob(tmp_path):
    rows = customer_rows(120)
    write_csv(tmp_path / "exports" / "customers_1.csv", rows[:70])
    write_csv(tmp_path / "exports" / "customers_2.csv", rows[70:])
    project = init(tmp_path, "--flat", "--from", str(tmp_path / "exports" / "customers_*.csv"),
                   "--id-column", "customer_id", "--label", "churned")
    assert "customers_*.csv" in (project / "churnwh.toml").read_text()
    check = churnwh(project, "load", "--check")
    assert check.returncode == 0 and "120 rows" in check.stdout, check.stderr
    nothing = churnwh(Path("."), "init", str(tmp_path / "p1"), "--flat", "--from", str(tmp_path / "none_*.csv"))
    assert nothing.returncode == 1 and "no file matches" in nothing.stderr


def test_a_label_without_positive_lists_its_values_counted(tmp_path):
    rows = [[*row[:-1], "gone" if row[-1] == "Yes" else "stayed"] for row in customer_rows(100)]
    data = write_csv(tmp_path / "labels.csv", rows)
    result = churnwh(Path("."), "init", str(tmp_path / "p"), "--flat", "--from", str(data), "--id-column",
                     "customer_id", "--label", "churned")
    message = result.stderr.strip()
    gone = sum(1 for row in rows if row[-1] == "gone")
    assert result.returncode == 1 and len(message.splitlines()) == 1, message
    assert f"'stayed' ({100 - gone} rows)" in message and f"'gone' ({gone} rows)" in message, message
    assert "--positive VALUE" in message and "K000" not in message and "Ada" not in message


def test_numeric_codes_are_categories_and_region_like_columns_quasi_identifiers(tmp_path):
    from tests.test_init import declared

    rng = random.Random(2)
    header = ["customer_id", "area_code", "plan_code", "state", "county", "calls", "churned"]
    rows = [[f"K{i}", rng.choice(["408", "415", "510"]), str(rng.randint(1, 3)), rng.choice(["KS", "OH", "NJ"]),
             rng.choice(["Ada", "Bell", "Cole"]), str(rng.randint(0, 6)), rng.choice(["Yes", "No"])]
            for i in range(120)]
    data = write_csv(tmp_path / "codes.csv", rows, header=header)
    project = init(tmp_path, "--flat", "--from", str(data))
    columns = declared(project)
    assert columns["area_code"] == ("VARCHAR", "quasi_identifier")
    assert columns["plan_code"][0] == "VARCHAR" and columns["calls"] == ("BIGINT", "plain")
    assert columns["state"][1] == columns["county"][1] == "quasi_identifier"
    codes = write_csv(tmp_path / "sparse.csv", [[r[0], r[1], r[5], r[6]] for r in rows],
                      header=["customer_id", "exchange", "calls", "churned"])
    sparse = init(tmp_path / "s", "--flat", "--from", str(codes))  # three integers far apart: codes by value
    assert declared(sparse)["exchange"][0] == "VARCHAR"


def test_init_events_creates_the_consent_file_it_declares(tmp_path):
    project = init(tmp_path, "--events")
    consent = project / "data" / "consent_events.csv"
    assert consent.read_text().strip() == "event_id,customer_id,purpose,action,event_ts,source,regulation"
    with (project / "data" / "events.csv").open("w") as handle:
        handle.write("customer_id,event_ts,amount\n")
        handle.writelines(f"C{i},2025-0{1 + i % 9}-1{i % 9} 10:00:00,{i % 7}.5\n" for i in range(50))
    check = churnwh(project, "load", "--check")
    assert check.returncode == 0 and "consent_events: 0 rows" in check.stdout, check.stderr


def test_a_fixed_width_file_is_refused_with_how_to_convert_it(tmp_path):
    import shutil
    import subprocess

    rows = customer_rows(60)
    lines = ["customer_id  region  plan   monthly_fee  support_calls  churned"]
    lines += [f"{r[0]:<12} {r[2]:<7} {r[4]:<6} {r[5]:<12} {r[6]:<14} {r[7]}" for r in rows]
    data = tmp_path / "aligned.txt"
    data.write_text("\n".join(lines) + "\n")
    result = churnwh(Path("."), "init", str(tmp_path / "p"), "--flat", "--from", str(data))
    message = result.stderr.strip()
    assert result.returncode == 1 and len(message.splitlines()) == 1 and "fixed-width" in message, message
    assert "K0000" not in message and not (tmp_path / "p").exists()
    if shutil.which("awk"):  # the conversion the message gives works
        converted = tmp_path / "aligned.csv"
        with converted.open("w") as out:
            subprocess.run(["awk", "-v", "OFS=,", "{$1=$1}1", str(data)], stdout=out, check=True)
        init(tmp_path, "--flat", "--from", str(converted), "--label", "churned")


def test_leakage_signs_on_a_frame():
    """The three signs, and what is not one: a column of unique values, a weak feature, a category."""
    import datetime as dt

    import numpy as np
    import polars as pl

    from churnwh.ml import leakage

    rng = np.random.default_rng(0)
    n = 400
    churned = (rng.random(n) < 0.3).astype(np.int64)
    observed = [dt.date(2025, 1, 1)] * n
    frame = pl.DataFrame({
        "churned": churned,
        "observation_date": observed,
        "exit_flag_v2": rng.random(n),  # named after 'churn'? no: after nothing; a weak random column
        "churn_risk": rng.random(n),  # named after the label
        "cancel_days": [None if c == 0 else float(rng.integers(1, 90)) for c in churned],  # empty for stayers
        "last_contact": [d + dt.timedelta(days=int(k)) for d, k in zip(observed, rng.integers(-30, 30, n))],
        "ticket_code": [f"T{i}" for i in range(n)],  # unique per row: an identifier, not a predictor
        "plan": rng.choice(["a", "b", "c"], n),
        "calls": rng.poisson(2 + 2 * churned),  # predictive, not perfect
    })
    found = {s.column: s.reason for s in leakage.find_leaks(
        frame, "churned", [c for c in frame.columns if c not in ("churned", "observation_date")],
        date_column="observation_date")}
    assert set(found) == {"churn_risk", "cancel_days", "last_contact"}, found
    assert "named after the label 'churned'" in found["churn_risk"]
    assert "ROC-AUC 1.000" in found["cancel_days"] and "dated after observation_date" in found["last_contact"]
    assert leakage.label_stems("Attrition_Flag") == {"attrition"} and "exit" in leakage.label_stems("Exited")


def test_random_split_switch_in_an_event_log_project(tmp_path):
    """The third shape (`init --events`): a small purchase log, date_column = "" (and the consent file
    init wrote, header only): the build splits at random and the observation date is no feature."""
    import datetime as dt

    project = init(tmp_path, "--events")
    tiny(project)
    set_training(project, 'date_column = ""')
    rng = random.Random(4)
    with (project / "data" / "events.csv").open("w") as handle:
        handle.write("customer_id,event_ts,amount\n")
        for customer in range(120):
            day = dt.date(2024, 1, 1) + dt.timedelta(days=rng.randint(0, 200))
            last = day + dt.timedelta(days=rng.randint(60, 700))
            while day < min(last, dt.date(2025, 12, 31)):
                handle.write(f"E{customer:04d},{day} 12:00:00,{rng.uniform(5, 80):.2f}\n")
                day += dt.timedelta(days=rng.randint(5, 40))
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    assert "observation_date" not in model_features(project)
    assert run_record(project)["training"]["time_split"] is False
