"""Training, the model registry and `ml.churn_scores`, through the real CLI on a tiny demo."""

from __future__ import annotations

import duckdb
import pytest

from churnwh.stages import registry
from tests.helpers import churnwh, copy_project, make_project, private

KEY = {"CHURNWH_KEY": "5a" * 32}


def copy_of(built_project, tmp_path):
    return copy_project(built_project[0], tmp_path / "copy")


def test_churn_scores_follow_tiers_actions_and_value(built_project):
    project, _ = built_project
    with private(project) as con:
        scoring_rows = con.execute("SELECT count(*) FROM marts.scoring_set").fetchall()[0][0]
        rows = con.execute(
            "SELECT s.churn_probability, s.risk_tier, s.action, s.value_at_risk, s.priority_rank, f.monthly_price, "
            "s.model_version, s.as_of = f.observation_date "
            "FROM ml.churn_scores s JOIN marts.scoring_set f USING (customer_pseudonym) ORDER BY s.priority_rank"
        ).fetchall()
        comment = con.execute(
            "SELECT comment FROM duckdb_columns() WHERE table_name = 'churn_scores' AND column_name = 'risk_tier'"
        ).fetchall()[0][0]
    assert len(rows) == scoring_rows > 50
    assert [row[4] for row in rows] == list(range(1, len(rows) + 1))
    values = [row[3] for row in rows]
    assert values == sorted(values, reverse=True)
    for probability, tier, action, value, _, price, version, same_date in rows:
        assert 0.0 < probability < 1.0 and version == "v0001" and same_date
        expected = "high" if probability >= 0.5 else "medium" if probability >= 0.2 else "low"
        assert tier == expected
        assert action.startswith({"high": "retain now", "medium": "enhanced care", "low": "normal service"}[tier])
        assert value == pytest.approx(probability * (price or 0.0) * 12)
    assert "retain now" in comment


def test_registry_tables_hold_metrics_next_to_baselines(built_project):
    project, _ = built_project
    with private(project) as con:
        runs = con.execute("SELECT version, status, test_roc_auc, baseline_roc_auc FROM ml.model_runs").fetchall()
        values = {(model, metric): value for model, metric, value in con.execute(
            "SELECT model, metric, value FROM ml.model_metrics WHERE version = 'v0001'").fetchall()}
        deciles = con.execute("SELECT count(*) FROM ml.lift WHERE version = 'v0001'").fetchall()[0][0]
        bins = con.execute("SELECT count(*) FROM ml.calibration WHERE version = 'v0001'").fetchall()[0][0]
    assert [run[:2] for run in runs] == [("v0001", "current")]
    models = {"network", "logistic_regression", "base_rate"}
    metrics = {"roc_auc", "pr_auc", "log_loss", "brier", "ece", "top_decile_lift"}
    assert {model for model, _ in values} == models
    assert {(model, metric) for model in models for metric in metrics} <= set(values)
    # The run row quotes the network's test ROC-AUC and the logistic regression's beside it.
    assert runs[0][2] == values["network", "roc_auc"] and runs[0][3] == values["logistic_regression", "roc_auc"]
    # The base rate predicts one probability for every row: it cannot rank (ROC-AUC 0.5) and its
    # PR-AUC is the test churn rate, which its Brier score then fixes as rate x (1 - rate).
    rate = values["base_rate", "pr_auc"]
    assert values["base_rate", "roc_auc"] == pytest.approx(0.5)
    assert 0 < rate < 1 and values["base_rate", "brier"] >= rate * (1 - rate) - 1e-12
    assert deciles == 10 and bins >= 1
    saved = project / "warehouse" / "models" / "v0001"
    assert (saved / "model.json").is_file() and (saved / "arrays.npz").is_file() and (saved / "run.json").is_file()


def test_unchanged_data_reuses_the_model(built_project, tmp_path):
    project = copy_of(built_project, tmp_path)
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    assert "current model reused" in result.stdout


def test_force_train_rollback_and_models(built_project, tmp_path):
    project = copy_of(built_project, tmp_path)
    forced = churnwh(project, "train", "--force")
    assert forced.returncode == 0, forced.stderr
    listed = churnwh(project, "models")
    assert "v0002" in listed.stdout and "current" in listed.stdout
    back = churnwh(project, "rollback", "v0001")
    assert back.returncode == 0, back.stderr
    rescored = churnwh(project, "score")
    assert rescored.returncode == 0, rescored.stderr
    with private(project) as con:
        status = dict(con.execute("SELECT version, status FROM ml.model_runs").fetchall())
        versions = {row[0] for row in con.execute("SELECT DISTINCT model_version FROM ml.churn_scores").fetchall()}
    assert status == {"v0001": "current", "v0002": "retired"} and versions == {"v0001"}
    unknown = churnwh(project, "rollback", "v0099")
    assert unknown.returncode == 1 and "known versions are v0001, v0002" in unknown.stderr


def test_keep_versions_prunes_old_artifacts(built_project, tmp_path):
    project = copy_of(built_project, tmp_path)
    config = project / "churnwh.toml"
    config.write_text(config.read_text().replace("[training]\n", "[training]\nkeep_versions = 1\n", 1))
    for _ in range(2):
        forced = churnwh(project, "train", "--force")
        assert forced.returncode == 0, forced.stderr
    assert sorted(path.name for path in (project / "warehouse" / "models").iterdir()) == ["v0003"]
    with private(project) as con:
        assert con.execute("SELECT count(*) FROM ml.model_runs").fetchall()[0][0] == 3  # history stays
    pruned = churnwh(project, "rollback", "v0001")
    assert pruned.returncode == 1 and "keep_versions" in pruned.stderr


def test_pruning_never_removes_the_current_model(tmp_path):
    models = tmp_path / "models"
    statuses = {"v0001": "current", "v0002": "retired", "v0003": "rejected", "v0004": "rejected"}
    for version in statuses:
        (models / version).mkdir(parents=True)
        (models / version / "model.json").write_text("{}")
    with duckdb.connect(str(tmp_path / "private.duckdb")) as con:
        registry.ensure_tables(con)
        for version, status in statuses.items():
            con.execute(
                f"INSERT INTO {registry.RUNS} (version, run_id, trained_at, data_fingerprint, features, status, "
                "decision) VALUES (?, 'r', now(), 'f', 1, ?, 'd')", [version, status])
        assert registry.prune_artifacts(con, models, keep=2) == ["v0002"]
        assert registry.prune_artifacts(con, models, keep=0) == []
    assert sorted(path.name for path in models.iterdir()) == ["v0001", "v0003", "v0004"]



def test_evaluate_prints_metrics_with_baselines(built_project):
    project, _ = built_project
    result = churnwh(project, "evaluate")
    assert result.returncode == 0, result.stderr
    assert "roc_auc" in result.stdout and "logistic_regression" in result.stdout and "base_rate" in result.stdout


def test_changed_feature_type_is_a_clear_error_at_scoring(built_project, tmp_path):
    project = copy_of(built_project, tmp_path)
    (project / "sql" / "marts" / "scoring_set.sql").write_text(
        "SELECT * REPLACE (CAST(tenure_days AS VARCHAR) AS tenure_days) FROM ("
        "SELECT customer_pseudonym, observation_date, * EXCLUDE (customer_pseudonym, observation_date, purpose) "
        "FROM features.customer_features WHERE purpose = 'score') AS scoring"
    )
    result = churnwh(project, "build", "--select", "marts.scoring_set")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    # the drift stage reads the scoring set first: either stage's error names the column and the fix
    assert last.startswith("error: ") and "column 'tenure_days'" in last and "retrain" in last
    assert result.stderr.count("error") == 1


def test_same_data_config_seed_and_key_give_bit_identical_scores(tmp_path):
    scores = []
    for name in ("one", "two"):
        project = make_project(tmp_path / name, customers=300)
        result = churnwh(project, "build", env=KEY)
        assert result.returncode == 0, result.stderr
        with private(project) as con:
            scores.append(
                con.execute("SELECT customer_pseudonym, churn_probability FROM ml.churn_scores ORDER BY 1").fetchall()
            )
    assert scores[0] == scores[1] and len(scores[0]) > 20
