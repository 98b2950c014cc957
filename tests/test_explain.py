"""Integrated Gradients: completeness, aggregation to source features, recovery of the simulator's drivers."""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import polars as pl
import pytest

from churnwh.ml import explain
from churnwh.stages import registry
from tests.helpers import REPO, churnwh, private

# The simulator's churn drivers (churnwh/sources/demo/__init__.py docstring, TRUE_DRIVERS) and the feature columns
# that measure them.
TRUE_DRIVER_FEATURES = {
    "engagement level": {"active_days_30d", "active_days_90d", "usage_minutes_30d", "usage_minutes_90d",
                         "days_since_last_use", "days_since_last_activity", "web_sessions_30d"},
    "falling engagement": {"usage_trend", "web_sessions_trend"},
    "tenure": {"tenure_days", "current_period_days", "previous_active_periods"},
    "support tickets": {"tickets_unresolved", "tickets_opened_90d", "mean_satisfaction",
                        "mean_hours_to_resolve_90d", "mean_hours_to_resolve_180d"},
    "price increase": {"price_change_90d_pct"},
    "e-mail engagement": {"email_open_rate_90d", "email_click_rate_90d", "emails_sent_90d"},
    "plan": {"current_plan", "current_plan_tier", "monthly_price"},
    "channel": {"acquisition_channel"},
}
TRUE_FEATURES = set().union(*TRUE_DRIVER_FEATURES.values())


def _model_and_frames(project):
    with private(project) as con:
        record = registry.current(con)
        model = registry.load(project / "warehouse" / "models", record.version)
        retained = pl.from_arrow(con.sql("SELECT * FROM marts.training_set WHERE churned = 0").to_arrow_table())
        scoring = pl.from_arrow(
            con.sql("SELECT * FROM marts.scoring_set ORDER BY customer_pseudonym").to_arrow_table())
    return model, retained, scoring


def test_attributions_sum_to_logit_difference(built_project):
    project, _ = built_project
    model, retained, scoring = _model_and_frames(project)
    baseline = explain.typical_retained_baseline(model, retained)
    attributions = explain.integrated_gradients(model, scoring, baseline)
    assert attributions.values.shape == (scoring.height, len(model.features))
    assert list(attributions.features) == list(model.features)
    gap = attributions.values.sum(axis=1) - (attributions.logits - attributions.baseline_logit)
    assert np.abs(gap).max() <= 1e-2
    # The logits explained are the model's own (uncalibrated ensemble) logits.
    from churnwh.ml.train import predict_logit

    np.testing.assert_allclose(attributions.logits, predict_logit(model, scoring), atol=1e-5)
    # An input equal to the baseline has zero attributions: a baseline made from one row is that
    # row's own encoding, so explaining the row against it leaves nothing to attribute.
    row = retained.head(1)
    itself = explain.integrated_gradients(model, row, explain.typical_retained_baseline(model, row))
    assert itself.logits[0] == pytest.approx(itself.baseline_logit, abs=1e-6)
    np.testing.assert_allclose(itself.values, 0.0, atol=1e-6)
    # and the row against the typical baseline has some (the control that this row is not the baseline)
    against_typical = explain.integrated_gradients(model, row, baseline)
    assert np.abs(against_typical.values).max() > 1e-4


def test_shapley_plan_is_exact_and_complete():
    rng = np.random.default_rng(0)
    for c in (1, 3, 5, explain.EXACT_SHAPLEY_MAX + 2):
        masks, weights = explain._shapley_plan(c)
        values = rng.normal(size=len(masks))
        full = values[masks.all(axis=1)][0]
        empty = values[~masks.any(axis=1)][0]
        assert (weights.T @ values).sum() == pytest.approx(full - empty)
    # An additive game: each player's Shapley value is its own effect.
    masks, weights = explain._shapley_plan(4)
    effects = np.array([0.5, -1.0, 2.0, 0.25])
    np.testing.assert_allclose(weights.T @ (masks @ effects), effects)


def test_missing_indicators_are_summed_into_their_feature(built_project):
    project, _ = built_project
    model, _, _ = _model_and_frames(project)
    features, matrix = explain.source_groups(model.preprocessor)
    assert matrix.sum(axis=1).tolist() == [1.0] * matrix.shape[0]
    inputs = model.preprocessor.numeric_input_names + [f.name for f in model.preprocessor.categorical]
    for i, name in enumerate(inputs):
        assert features[int(matrix[i].argmax())] == name.removesuffix("__missing")


def test_churn_drivers_table(built_project):
    project, _ = built_project
    with private(project) as con:
        scored = con.execute("SELECT count(*) FROM ml.churn_scores").fetchall()[0][0]
        drivers = pl.from_arrow(con.sql("SELECT * FROM ml.churn_drivers").to_arrow_table())
        importance = pl.from_arrow(con.sql("SELECT * FROM ml.feature_importance ORDER BY rank").to_arrow_table())
        comments = dict(con.execute(
            "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = 'ml' AND table_name = 'churn_drivers'"
        ).fetchall())
    assert drivers["customer_pseudonym"].n_unique() == scored
    assert drivers.group_by("customer_pseudonym").agg(pl.col("rank").sort())["rank"].to_list()[0] == [1, 2, 3, 4, 5]
    assert ((drivers["contribution"] >= 0) == (drivers["direction"] == "raises risk")).all()
    assert drivers["label"].str.len_chars().min() > 3
    # Quasi-identifier values never appear in the bucket column.
    assert set(drivers.filter(pl.col("feature").is_in(["age_band", "gender", "region"]))["value_bucket"]) <= {"withheld"}
    assert all(comments[c] for c in drivers.columns)
    assert importance["rank"].to_list() == list(range(1, importance.height + 1))
    assert importance["mean_abs_contribution"].is_sorted(descending=True)


def _drivers(project):
    with private(project) as con:
        drivers = pl.from_arrow(con.sql(
            "SELECT * FROM ml.churn_drivers ORDER BY customer_pseudonym, rank").to_arrow_table())
        importance = pl.from_arrow(con.sql("SELECT * FROM ml.feature_importance ORDER BY rank").to_arrow_table())
        mark = con.execute("SELECT value FROM _churnwh.meta WHERE name IN ('explain_fingerprint', "
                           "'drift_fingerprint') ORDER BY name").fetchall()
    return drivers, importance, mark


def test_explain_reruns_only_when_what_it_explains_changed(built_project, tmp_path):
    source, _ = built_project
    project = tmp_path / "p"
    shutil.copytree(source, project)
    drivers, importance, mark = _drivers(project)
    assert len(mark) == 2  # ml.drift (churnwh.stages.monitor) is kept the same way
    wide = {"COLUMNS": "200"}
    again = churnwh(project, "build", env=wide)
    assert again.returncode == 0, again.stderr
    assert f"scores unchanged: {drivers.height} driver rows kept" in again.stdout
    kept_drivers, kept_importance, kept_mark = _drivers(project)
    assert kept_drivers.equals(drivers) and kept_importance.equals(importance) and kept_mark == mark
    # A new description of a feature column changes the labels but no data: explain runs again.
    features = project / "sql" / "features" / "customer_features.sql"
    old = 'description = "Money spent in the last 30 days, net of refunds."'
    assert old in features.read_text()
    features.write_text(features.read_text().replace(old, 'description = "Net spend over the last 30 days."'))
    relabelled = churnwh(project, "build", env=wide)
    assert relabelled.returncode == 0, relabelled.stderr
    assert "scores unchanged" not in relabelled.stdout
    assert "data unchanged: current model reused" in relabelled.stdout
    new_drivers, new_importance, new_mark = _drivers(project)
    assert new_mark[1] != mark[1] and new_mark[0] == mark[0]  # labels changed, drift inputs did not
    assert new_importance.filter(pl.col("feature") == "spend_30d")["label"].item() == "Net spend over the last 30 days"
    assert new_drivers.drop("label", "reason").equals(drivers.drop("label", "reason"))


MODERATE_NETWORK = """
[network]
epochs = 40
batch_size = 512
learning_rate = 0.001
hidden = 64
k = 4
n_bins = 12
d_embed = 8
patience = 5
"""


def test_true_drivers_rank_at_the_top(tmp_path):
    """On 3,000 demo customers with a moderately trained network, the top of the global importance
    consists of features that measure the simulator's true churn drivers."""
    project = tmp_path / "p"
    project.mkdir()
    shutil.copytree(REPO / "sql", project / "sql")
    config = (REPO / "churnwh.toml").read_text().replace("customers = 5000", "customers = 3000")
    (project / "churnwh.toml").write_text(config + MODERATE_NETWORK)
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    with private(project) as con:
        ranked = [row[0] for row in con.execute("SELECT feature FROM ml.feature_importance ORDER BY rank").fetchall()]
    # The top three are true drivers, engagement first; at most one of the top five is not (a
    # demographic band the network picked up from the noise).
    assert set(ranked[:3]) <= TRUE_FEATURES, ranked[:10]
    assert ranked[0] in TRUE_DRIVER_FEATURES["engagement level"], ranked[:10]
    assert len(set(ranked[:5]) & TRUE_FEATURES) >= 4, ranked[:10]
    assert len(set(ranked[:10]) & TRUE_FEATURES) >= 7, ranked[:10]


def test_reuse_days_keeps_reasons_whose_score_barely_moved(built_project, tmp_path):
    """[explain] reuse_days: the day after, an acted-on customer keeps yesterday's reasons (dated yesterday) when
    the model is the same and their probability moved by at most 0.01; everyone whose score moved more is
    explained again."""
    from churnwh.stages.explain import REUSE_TOLERANCE

    source, _ = built_project
    project = tmp_path / "p"
    shutil.copytree(source, project)
    config = project / "churnwh.toml"
    text = config.read_text().replace("high = 0.5 ", "high = 0.12").replace("medium = 0.2 ", "medium = 0.09")
    config.write_text(text + "\n[explain]\nsample_customers = 20\nreuse_days = 7\n")  # the tiny model's scores
    assert churnwh(project, "build").returncode == 0
    before, _, _ = _drivers(project)
    with duckdb.connect(str(project / "warehouse" / "private.duckdb")) as con:  # explained before it was kept
        con.execute("DROP TABLE _churnwh.sample_attributions")
    assert churnwh(project, "demo-advance", "--days", "1").returncode == 0
    after_build = churnwh(project, "build", env={"COLUMNS": "300"})
    assert after_build.returncode == 0, after_build.stderr
    assert "current model reused" in after_build.stdout  # retrain_after_days: the same model explains
    after, _, _ = _drivers(project)
    with private(project) as con:
        today = con.execute("SELECT max(as_of) FROM ml.churn_scores").fetchone()[0]
        moved = dict(con.execute(
            "SELECT s.customer_pseudonym, abs(s.churn_probability - h.churn_probability) FROM ml.churn_scores AS s "
            "JOIN ml.score_history AS h USING (customer_pseudonym) WHERE h.as_of < s.as_of").fetchall())
    kept = after.filter(pl.col("as_of") < today)
    fresh = after.filter(pl.col("as_of") == today)
    assert kept.height > 0 and fresh.height > 0
    assert f"{kept['customer_pseudonym'].n_unique()} customers' reasons kept from an earlier day" in after_build.stdout
    kept_ids = set(kept["customer_pseudonym"])
    assert all(moved[c] <= REUSE_TOLERANCE for c in kept_ids)
    assert kept.equals(before.filter(pl.col("customer_pseudonym").is_in(list(kept_ids))))
    explained_again = set(fresh["customer_pseudonym"]) & set(before["customer_pseudonym"])
    assert any(moved.get(c, 1.0) > REUSE_TOLERANCE for c in explained_again)
    # without yesterday's sample vectors the whole sample is explained again
    assert "0 of the 20 sample members' attributions" in after_build.stdout


def _sample_vectors(project) -> dict[str, tuple]:
    with private(project) as con:
        return {p: (as_of, tuple(values)) for p, as_of, values in con.execute(
            "SELECT customer_pseudonym, as_of, attributions FROM _churnwh.sample_attributions").fetchall()}


def test_reuse_days_reuses_the_sample_attributions_whose_score_barely_moved(built_project, tmp_path):
    """[explain] reuse_days also spares the uniform sample: a member whose probability moved by at most 0.01 keeps
    yesterday's attribution vector (private, never published), which enters feature_importance in their place;
    the importance is the same for the same data, and close to a full re-explanation's."""
    from churnwh.stages.explain import REUSE_TOLERANCE

    source, _ = built_project
    project = tmp_path / "p"
    shutil.copytree(source, project)
    config = project / "churnwh.toml"
    config.write_text(config.read_text() + "\n[explain]\nsample_customers = 60\nreuse_days = 7\n")
    assert churnwh(project, "build").returncode == 0
    yesterday = _sample_vectors(project)
    assert len(yesterday) == 60 and len({v[0] for v in yesterday.values()}) == 1
    with duckdb.connect(str(project / "warehouse" / "churn.duckdb"), read_only=True) as con:
        published_tables = {row[0] for row in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    assert "feature_importance" in published_tables and "sample_attributions" not in published_tables
    assert churnwh(project, "demo-advance", "--days", "1").returncode == 0
    full = tmp_path / "full"  # the same day explained in full (reuse_days 0), and the same reuse build twice
    again = tmp_path / "again"
    shutil.copytree(project, full)
    shutil.copytree(project, again)
    (full / "churnwh.toml").write_text(config.read_text().replace("reuse_days = 7", "reuse_days = 0"))
    wide = {"COLUMNS": "300"}
    runs = {name: churnwh(path, "build", env=wide) for name, path in
            (("reuse", project), ("full", full), ("again", again))}
    assert all(run.returncode == 0 for run in runs.values()), [run.stderr for run in runs.values()]
    today_vectors = _sample_vectors(project)
    assert today_vectors.keys() == yesterday.keys()  # the same 60 members, whichever way each was explained
    with private(project) as con:
        today = con.execute("SELECT max(as_of) FROM ml.churn_scores").fetchone()[0]
        moved = dict(con.execute(
            "SELECT s.customer_pseudonym, abs(s.churn_probability - h.churn_probability) FROM ml.churn_scores AS s "
            "JOIN ml.score_history AS h USING (customer_pseudonym) WHERE h.as_of < s.as_of").fetchall())
    reused = {p for p, (as_of, _) in today_vectors.items() if as_of < today}
    fresh = today_vectors.keys() - reused
    assert reused and fresh
    assert all(moved[p] <= REUSE_TOLERANCE for p in reused)
    assert all(today_vectors[p] == yesterday[p] for p in reused)  # the stored vector, as it was
    assert any(moved[p] > REUSE_TOLERANCE for p in fresh)  # moved more: explained again
    assert all(today_vectors[p][1] != yesterday[p][1] for p in fresh)
    assert f"{len(reused)} of the 60 sample members' attributions" in runs["reuse"].stdout
    # deterministic: the same data and config give the same importance and the same kept vectors
    _, importance, _ = _drivers(project)
    _, importance_again, _ = _drivers(again)
    assert importance.equals(importance_again) and _sample_vectors(again) == today_vectors
    # feature_importance is the mean over the stored vectors, fresh and reused alike
    with private(project) as con:
        features = list(registry.load(project / "warehouse" / "models", registry.current(con).version).features)
    full_vectors = _sample_vectors(full)
    _, importance_full, _ = _drivers(full)
    for vectors, table in ((today_vectors, importance), (full_vectors, importance_full)):
        means = dict(zip(features, np.abs(np.array([v for _, v in vectors.values()])).mean(axis=0)))
        assert table["mean_abs_contribution"].to_list() == pytest.approx([means[f] for f in table["feature"]],
                                                                         rel=1e-12, abs=1e-15)
    # against a full re-explanation of the same day: a re-explained member's vector is the same, exactly; a reused
    # one is yesterday's. The reuse rule bounds how far the sum of a member's attributions (the logit) moved, not
    # how a day of data shifts attribution between features (days_since_last_activity one day older, a 90-day
    # window one day on): reused members' single features moved by up to 0.33 log-odds here, and the importance
    # by 7-10% of the largest mean |attribution| (tiny model, 400 customers, one day, two runs; 0.4% with the
    # default network at 20,000 customers, 89% of the sample reused); 15% allowed
    assert all(full_vectors[p] == today_vectors[p] for p in fresh)
    joined = importance.join(importance_full, on="feature", suffix="_full")
    difference = (joined["mean_abs_contribution"] - joined["mean_abs_contribution_full"]).abs().max()
    assert 0 < difference <= 0.15 * importance_full["mean_abs_contribution"].max(), difference


def test_forget_deletes_the_customers_stored_sample_attributions(built_project, tmp_path):
    """The sample's attribution vectors live in the bookkeeping schema, which erasure otherwise leaves alone:
    `churnwh forget` deletes the customer's row (and the file rewrite its bytes)."""
    source, _ = built_project
    project = tmp_path / "p"
    shutil.copytree(source, project)
    with private(project) as con:
        customer, pseudonym = con.execute(
            "SELECT k.customer_id, k.customer_pseudonym FROM _churnwh.sample_attributions AS a "
            "JOIN raw.customer_keys AS k USING (customer_pseudonym) ORDER BY k.customer_id LIMIT 1").fetchone()
        members = con.execute("SELECT count(*) FROM _churnwh.sample_attributions").fetchone()[0]
    forgotten = churnwh(project, "forget", customer)
    assert forgotten.returncode == 0, forgotten.stderr
    with private(project) as con:
        left = con.execute("SELECT count(*), count(*) FILTER (WHERE customer_pseudonym = ?) "
                           "FROM _churnwh.sample_attributions", [pseudonym]).fetchone()
    assert left == (members - 1, 0)
    assert pseudonym.encode() not in (project / "warehouse" / "private.duckdb").read_bytes()
