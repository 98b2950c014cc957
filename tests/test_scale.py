"""Memory stays bounded with the data: the explain stage holds one batch of customers, the training stage a
bounded sample of the training dates (benchmarks/bench_million.py measures the million-customer build)."""

from __future__ import annotations

import dataclasses

import duckdb
import numpy as np
import polars as pl

from churnwh.config import load_config
from churnwh.stages import explain, registry
from churnwh.stages.train import data_fingerprint, read_relation, read_training_frame, table_rows, training_cutoff
from tests.helpers import copy_project


def _config(project, **changes):
    config = load_config(project)
    for section, values in changes.items():
        config = dataclasses.replace(config, **{section: dataclasses.replace(getattr(config, section), **values)})
    return config


def test_explain_streams_bounded_batches_and_explains_everyone_acted_on(built_project, tmp_path):
    project = copy_project(built_project[0], tmp_path / "p")
    config = _config(project, explain={"sample_customers": 50})
    batches: list[int] = []
    with duckdb.connect(str(project / "warehouse" / "private.duckdb")) as con:
        record = registry.current(con)
        model = registry.load(config.warehouse.models, record.version)
        scored = con.execute("SELECT count(*) FROM ml.churn_scores").fetchall()[0][0]
        # the tiny network ranks but rarely reaches the medium threshold: the 40 riskiest as if it had
        con.execute("UPDATE ml.churn_scores SET risk_tier = 'medium' WHERE customer_pseudonym IN (SELECT "
                    "customer_pseudonym FROM ml.churn_scores ORDER BY churn_probability DESC LIMIT 40)")
        acted_on = {row[0] for row in con.execute(
            "SELECT customer_pseudonym FROM ml.churn_scores WHERE risk_tier IN ('high', 'medium')").fetchall()}
        explain.explain_scoring_set(con, config, model, record.version, batch_rows=64, on_batch=batches.append)
        explained = {row[0] for row in con.execute("SELECT DISTINCT customer_pseudonym FROM ml.churn_drivers")
                     .fetchall()}
        importance_rows = con.execute("SELECT DISTINCT customers FROM ml.feature_importance").fetchall()
        leftovers = con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = '_churnwh' "
                                "AND table_name IN ('explained_rows', 'churn_drivers_new')").fetchall()[0][0]
    assert 0 < len(acted_on) < scored - 50  # the control: the sample and the tiers leave some customers out
    assert max(batches) <= 64 and len(batches) > 1
    assert sum(batches) == len(explained)
    assert acted_on <= explained  # everyone acted on gets reasons
    assert len(explained) <= len(acted_on) + 50 and len(explained) < scored
    assert importance_rows == [(50,)]  # the global importance averages over the uniform sample alone
    assert leftovers == 0


def test_a_contact_list_beyond_the_explained_customers_is_explained_on_demand(built_project, tmp_path):
    project = copy_project(built_project[0], tmp_path / "p")
    small = _config(project, explain={"sample_customers": 20})
    with duckdb.connect(str(project / "warehouse" / "private.duckdb")) as con:
        record = registry.current(con)
        model = registry.load(small.warehouse.models, record.version)
        explain.explain_scoring_set(con, small, model, record.version)
        before = con.execute("SELECT count(*) FROM ml.churn_drivers").fetchall()[0][0]
        asked = [row[0] for row in con.execute(
            "SELECT customer_pseudonym FROM ml.churn_scores WHERE customer_pseudonym NOT IN "
            "(SELECT customer_pseudonym FROM ml.churn_drivers) ORDER BY customer_pseudonym LIMIT 7").fetchall()]
        known = con.execute("SELECT customer_pseudonym FROM ml.churn_drivers LIMIT 1").fetchall()[0][0]
        assert len(asked) == 7
        assert explain.explain_customers(con, small, asked + [known]) == 7
        assert explain.explain_customers(con, small, asked) == 0  # explained once
        on_demand = pl.from_arrow(con.sql(
            "SELECT * FROM ml.churn_drivers WHERE customer_pseudonym IN (SELECT unnest(?::VARCHAR[])) "
            "ORDER BY customer_pseudonym, rank", params=[asked]).to_arrow_table())
        after = con.execute("SELECT count(*) FROM ml.churn_drivers").fetchall()[0][0]
        # the same rows as when the build explains every customer
        explain.explain_scoring_set(con, _config(project, explain={"sample_customers": 10_000}), model,
                                    record.version)
        whole = pl.from_arrow(con.sql(
            "SELECT * FROM ml.churn_drivers WHERE customer_pseudonym IN (SELECT unnest(?::VARCHAR[])) "
            "ORDER BY customer_pseudonym, rank", params=[asked]).to_arrow_table())
    assert after == before + on_demand.height and on_demand["customer_pseudonym"].n_unique() == 7
    assert on_demand.drop("contribution", "other_contribution", "profile_contribution").equals(
        whole.drop("contribution", "other_contribution", "profile_contribution"))
    np.testing.assert_allclose(on_demand["contribution"].to_numpy(), whole["contribution"].to_numpy(), atol=1e-6)


def test_batch_buckets_equal_the_whole_frame_buckets(built_project):
    project, _ = built_project
    config = load_config(project)
    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        record = registry.current(con)
        model = registry.load(config.warehouse.models, record.version)
        relation = config.training.scoring_model
        privacy = explain.privacy_classes(config, relation)
        scoring = read_relation(con, relation)
        edges = explain.bucket_edges(con, relation, model.features, privacy)
    whole = explain.value_buckets(scoring, model.features, privacy)
    in_batches = pl.concat([explain.batch_buckets(scoring.slice(start, 37), tuple(model.features), model.features,
                                                  privacy, edges) for start in range(0, scoring.height, 37)])
    assert in_batches.equals(whole.select(in_batches.columns))
    assert len(set(whole["tenure_days"].to_list())) == 5  # the control: quintiles, not one bucket


def test_training_sample_bounds_the_training_dates_and_keeps_validation_and_test(built_project):
    project, _ = built_project
    config = _config(project, training={"max_train_rows": 300})
    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        whole = read_relation(con, config.training.model, config)
        cutoff = training_cutoff(con, config)
        sampled = read_training_frame(con, config)
        again = read_training_frame(con, config)
        unbounded = read_training_frame(con, _config(project, training={"max_train_rows": 0}))
    date = config.training.date_column
    assert whole.filter(pl.col(date) <= cutoff).height > 300  # the control: the bound bites
    assert sampled.filter(pl.col(date) <= cutoff).height == 300
    assert sampled.filter(pl.col(date) > cutoff).equals(whole.filter(pl.col(date) > cutoff))
    assert sampled.equals(again) and unbounded.equals(whole)
    # a uniform draw over the training dates, not the first dates
    drawn = sampled.filter(pl.col(date) <= cutoff)[date].n_unique()
    assert drawn == whole.filter(pl.col(date) <= cutoff)[date].n_unique()
    assert np.isclose(sampled.filter(pl.col(date) <= cutoff)[config.training.label_column].mean(),
                      whole.filter(pl.col(date) <= cutoff)[config.training.label_column].mean(), atol=0.1)


def test_the_sample_bound_changes_the_fingerprint_only_where_a_sample_can_be_drawn(built_project):
    project, _ = built_project
    with duckdb.connect(str(project / "warehouse" / "private.duckdb"), read_only=True) as con:
        config = _config(project, training={"max_train_rows": 0})
        rows = table_rows(con, config.training.model)
        unbounded = data_fingerprint(con, config)
        above = data_fingerprint(con, _config(project, training={"max_train_rows": rows + 1}))
        far_above = data_fingerprint(con, _config(project, training={"max_train_rows": 10 * rows}))
        below = data_fingerprint(con, _config(project, training={"max_train_rows": rows - 1}))
    # upgrading with the default bound above the table's size keeps the model; a bound that bites retrains
    assert unbounded == above == far_above
    assert below != unbounded
