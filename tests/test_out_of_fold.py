"""Issue 15, item 4: in a flat (one-table) project the scoring set is the training set's customers who
stayed. Their scores come from models that never saw them (cross-fitting), not from the model that
trained on them, and drift compares them with the training rows like them (churned = 0)."""

from __future__ import annotations

import numpy as np
import polars as pl

from tests.helpers import churnwh, private
from tests.test_init import canary_csv, init, tiny


def test_a_flat_project_scores_its_training_customers_out_of_fold_without_spurious_drift(tmp_path):
    from churnwh.config import load_config
    from churnwh.ml.train import _stratified_parts, cross_fit_proba, predict_proba
    from churnwh.stages import registry
    from churnwh.stages.train import read_relation, train_config

    data = canary_csv(tmp_path / "shop.csv", rows=300)
    project = init(tmp_path, "--flat", "--from", str(data), "--id-column", "Client Nr", "--label", "Churned?")
    tiny(project)
    config_file = project / "churnwh.toml"
    config_file.write_text(config_file.read_text().replace("\n[network]\n", "\n[network]\ncross_fit_folds = 3\n", 1))
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr

    config = load_config(project)
    with private(project) as con:
        scores = pl.from_arrow(con.sql(
            "SELECT customer_pseudonym, churn_probability, scored_in_sample FROM ml.churn_scores").to_arrow_table())
        frame = read_relation(con, config.training.model, config)
        scoring = read_relation(con, config.training.scoring_model)
        drift = pl.from_arrow(con.sql("SELECT * FROM ml.drift").to_arrow_table())
        version = registry.current(con).version
    assert scores.height == scoring.height > 0
    assert not scores["scored_in_sample"].any()

    # each training customer's score is what a model that did not train on them gives it (the final
    # model for the customers it held out, models trained on the other folds for the rest) ...
    model = registry.load(config.warehouse.models, version)
    out_of_fold = cross_fit_proba(frame, id_column="customer_pseudonym", label_column="churned",
                                  exclude=("observation_date",), config=train_config(config), final_model=model)
    expected = dict(zip(frame["customer_pseudonym"].to_list(), out_of_fold.tolist()))
    published = dict(zip(scores["customer_pseudonym"].to_list(), scores["churn_probability"].to_list()))
    assert set(published) <= set(expected)
    np.testing.assert_allclose([published[c] for c in sorted(published)], [expected[c] for c in sorted(published)],
                               rtol=1e-6)
    # ... and, for the customers the final model trained on, not what it says (the in-sample scores of before)
    in_sample = dict(zip(scoring["customer_pseudonym"].to_list(), predict_proba(model, scoring).tolist()))
    trained_on = _stratified_parts(frame["churned"].to_numpy().astype(float), train_config(config))[0]
    final_saw = set(frame["customer_pseudonym"].gather(trained_on).to_list()) & set(published)
    differing = sum(abs(published[c] - in_sample[c]) > 1e-6 for c in final_saw)
    assert len(final_saw) > 0.5 * len(published) and differing > 0.9 * len(final_saw)
    assert all(abs(published[c] - in_sample[c]) <= 1e-6 for c in set(published) - final_saw)

    # drift compares like with like: the scoring set against the training rows that did not churn
    assert drift["reference"].unique().to_list() == [
        "the training rows with churned = 0 (no observation dates: customers who stayed)"]
    assert (drift["status"] == "ok").all(), drift.filter(pl.col("status") == "warning")
    assert drift.filter(pl.col("feature") == "__score__")["psi"].item() < 0.01
