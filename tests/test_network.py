"""The churn network end to end: learning, determinism, artifacts, labels and splits."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest

from churnwh.errors import DataError
from churnwh.ml import artifact, metrics, network, splits, train

TINY = train.TrainConfig(
    epochs=40, batch_size=128, learning_rate=3e-3, hidden=32, depth=2, k=4, n_bins=8, d_embed=4,
    dropout=0.0, patience=8, seed=3,
)


def planted_interaction_frame(rows: int, seed: int) -> pl.DataFrame:
    """Churn driven by the sign of x1 * x2 (invisible to a linear model) plus a categorical."""
    rng = np.random.default_rng(seed)
    x1, x2, noise = rng.normal(size=(3, rows))
    plan = rng.choice(["basic", "standard", "premium"], rows)
    logit = 2.5 * np.sign(x1 * x2) + 0.5 * (plan == "basic") - 1.0
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int8)
    months = [dt.date(2025, month, 1) for month in range(1, 7)]
    dates = pl.Series([months[i % 6] for i in range(rows)], dtype=pl.Date)
    return pl.DataFrame({
        "customer_pseudonym": [f"{i:032x}" for i in range(rows)],
        "observation_date": dates,
        "x1": x1, "x2": x2, "noise": noise, "plan": plan, "churned": churned,
    })


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return planted_interaction_frame(1800, seed=0)


@pytest.fixture(scope="module")
def trained(frame):
    model, results = train.train_and_evaluate(
        frame, id_column="customer_pseudonym", label_column="churned", exclude=("observation_date",),
        config=TINY)
    return model, results


def test_network_learns_a_planted_interaction(trained):
    _, results = trained
    network_auc = results["network"]["roc_auc"]
    logistic_auc = results["logistic_regression"]["roc_auc"]
    assert network_auc > 0.8
    assert network_auc > logistic_auc + 0.15
    assert results["base_rate"]["roc_auc"] == 0.5


def test_model_records_features_history_and_best_epoch(trained):
    model, results = trained
    assert model.features == {"x1": "numeric", "x2": "numeric", "noise": "numeric",
                              "plan": "categorical"}
    assert 1 <= model.best_epoch <= len(model.history)
    best = min(model.history, key=lambda h: h["valid_log_loss"])
    assert best["epoch"] == model.best_epoch
    assert results["split"] == "stratified_random"
    assert set(results["network"]) >= {"roc_auc", "pr_auc", "log_loss", "brier", "ece",
                                       "top_decile_lift"}


def test_predictions_are_probabilities_and_logits_agree(trained, frame):
    model, _ = trained
    probabilities = train.predict_proba(model, frame)
    logits = train.predict_logit(model, frame)
    assert probabilities.shape == (frame.height,)
    assert np.all((probabilities > 0) & (probabilities < 1))
    # calibration is monotone: the order of rows is the logit's order
    assert metrics.roc_auc(frame["churned"].to_numpy(), probabilities) == pytest.approx(
        metrics.roc_auc(frame["churned"].to_numpy(), logits))


def test_prediction_reuses_the_compiled_function_across_sizes(trained, frame):
    model, _ = trained
    train.predict_proba(model, frame.head(10))
    compiled_before = network.score_batch_jit._cache_size()
    for rows in (1, 7, 100, 255):
        train.predict_proba(model, frame.head(rows))
    assert network.score_batch_jit._cache_size() == compiled_before
    row_by_row = np.concatenate([train.predict_proba(model, frame[i : i + 1]) for i in range(5)])
    np.testing.assert_allclose(row_by_row, train.predict_proba(model, frame.head(5)), rtol=1e-6)


def test_same_data_config_and_seed_give_bit_identical_probabilities(trained, frame):
    model, _ = trained
    again, _ = train.train_and_evaluate(
        frame, id_column="customer_pseudonym", label_column="churned",
        exclude=("observation_date",), config=TINY)
    np.testing.assert_array_equal(train.predict_proba(model, frame), train.predict_proba(again, frame))
    assert model.history == again.history


def test_artifact_round_trip_predicts_identically(trained, frame, tmp_path):
    model, _ = trained
    artifact.save_model(model, tmp_path / "model")
    loaded = artifact.load_model(tmp_path / "model")
    np.testing.assert_array_equal(train.predict_proba(model, frame), train.predict_proba(loaded, frame))
    assert loaded.features == model.features and loaded.config == model.config
    stored_text = (tmp_path / "model" / "model.json").read_text()
    json.loads(stored_text)
    assert frame["customer_pseudonym"][0] not in stored_text
    with np.load(tmp_path / "model" / "arrays.npz", allow_pickle=False) as arrays:
        assert all(arrays[name].dtype != object for name in arrays.files)


def test_changed_feature_type_at_scoring_raises(trained, frame):
    model, _ = trained
    with pytest.raises(DataError, match="x1"):
        train.predict_proba(model, frame.with_columns(pl.col("x1").cast(pl.String)))


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (pl.Series(["yes", "no"] * 100), "0/1"),
        (pl.Series([0, 2] * 100), "other than 0 and 1"),
        (pl.Series([0.0, float("nan")] * 100), "NULL/NaN"),
        (pl.Series([0, None] * 100), "NULL/NaN"),
        (pl.Series([0] * 200), "only the value 0"),
    ],
)
def test_bad_labels_raise_data_error(frame, labels, message):
    bad = frame.head(200).with_columns(labels.alias("churned"))
    with pytest.raises(DataError, match=message):
        train.train_model(bad, frame.tail(100), id_column="customer_pseudonym",
                          label_column="churned", exclude=("observation_date",), config=TINY)


def test_too_few_rows_raise_data_error(frame):
    with pytest.raises(DataError, match="rows"):
        train.train_model(frame.head(20), frame.tail(100), id_column="customer_pseudonym",
                          label_column="churned", exclude=("observation_date",), config=TINY)


def test_time_split_puts_the_latest_dates_in_test(frame):
    train_part, valid, test = splits.time_split(frame, "observation_date", valid_dates=1, test_dates=1)
    assert test["observation_date"].unique().to_list() == [dt.date(2025, 6, 1)]
    assert valid["observation_date"].unique().to_list() == [dt.date(2025, 5, 1)]
    assert train_part["observation_date"].max() < dt.date(2025, 5, 1)
    assert train_part.height + valid.height + test.height == frame.height
    with pytest.raises(DataError, match="distinct dates"):
        splits.time_split(frame, "observation_date", valid_dates=3, test_dates=3)


def monthly_frame(months: int) -> pl.DataFrame:
    dates = [dt.date(2023 + (m // 12), m % 12 + 1, 1) for m in range(months)]
    return pl.DataFrame({"observation_date": pl.Series(dates * 2, dtype=pl.Date),
                         "churned": [0, 1] * months})


def test_purged_time_split_drops_the_dates_whose_label_windows_overlap():
    frame = monthly_frame(12)  # 2023-01-01 .. 2023-12-01
    train_part, valid, test = splits.time_split(frame, "observation_date", purge_days=134)
    assert test["observation_date"].unique().to_list() == [dt.date(2023, 12, 1)]
    # the latest date at least 134 days before 2023-12-01 (= 2023-07-20)
    assert valid["observation_date"].unique().to_list() == [dt.date(2023, 7, 1)]
    # training rows at least 134 days before 2023-07-01 (= 2023-02-17)
    assert train_part["observation_date"].unique().sort().to_list() == [dt.date(2023, 1, 1),
                                                                      dt.date(2023, 2, 1)]
    assert (valid["observation_date"].min() - train_part["observation_date"].max()).days >= 134
    assert (test["observation_date"].min() - valid["observation_date"].max()).days >= 134
    # purge_days=0 keeps the adjacent split
    unpurged = splits.time_split(frame, "observation_date", purge_days=0)
    assert [part.height for part in unpurged] == [20, 2, 2]


def test_purged_time_split_with_too_few_dates_raises_a_clear_error():
    with pytest.raises(DataError, match="purge gap of 134 days"):
        splits.time_split(monthly_frame(6), "observation_date", purge_days=134)
    with pytest.raises(DataError, match="nothing is left to train on"):
        splits.time_split(monthly_frame(9), "observation_date", purge_days=134)


def test_purge_days_on_a_numeric_time_column_uses_its_unit():
    frame = pl.DataFrame({"day": list(range(10)), "churned": [0, 1] * 5})
    train_part, valid, test = splits.time_split(frame, "day", purge_days=3)
    assert test["day"].to_list() == [9]
    assert valid["day"].to_list() == [6]
    assert train_part["day"].to_list() == [0, 1, 2, 3]


def test_train_and_evaluate_passes_purge_days_to_the_split(frame):
    config = train.TrainConfig(**{**TINY.to_dict(), "epochs": 1, "purge_days": 31})
    _, results = train.train_and_evaluate(
        frame, id_column="customer_pseudonym", label_column="churned",
        time_column="observation_date", config=config)
    # dates 2025-01..06: test 06-01, valid 04-01 (05-01 is within 31 days), train up to 03-01
    assert results["rows"]["valid"] == frame.filter(pl.col("observation_date") == dt.date(2025, 4, 1)).height
    assert results["rows"]["train"] == frame.filter(pl.col("observation_date") <= dt.date(2025, 3, 1)).height


def test_train_and_evaluate_by_time_excludes_the_time_column(frame):
    config = train.TrainConfig(**{**TINY.to_dict(), "epochs": 2})
    model, results = train.train_and_evaluate(
        frame, id_column="customer_pseudonym", label_column="churned",
        time_column="observation_date", config=config)
    assert results["split"] == "time"
    assert "observation_date" not in model.features
    assert results["rows"]["test"] == frame.filter(pl.col("observation_date") == dt.date(2025, 6, 1)).height


def test_stratified_kfold_is_deterministic_and_stratified():
    labels = np.array([1] * 30 + [0] * 70)
    folds = splits.stratified_kfold(labels, n_splits=5, seed=4)
    assert [f[1].tolist() for f in folds] == [f[1].tolist() for f in splits.stratified_kfold(labels, 5, 4)]
    assert sorted(np.concatenate([f[1] for f in folds]).tolist()) == list(range(100))
    assert all(labels[test].sum() == 6 for _, test in folds)


def test_auto_batch_size_grows_with_the_data_and_scales_the_learning_rate():
    config = train.TrainConfig(batch_size=0, learning_rate=1e-3)
    assert config.batch_and_learning_rate(8_000) == (256, 1e-3)
    batch, learning_rate = config.batch_and_learning_rate(1_000_000)
    assert batch == train.AUTO_BATCH_MAX and learning_rate == pytest.approx(1e-3 * 4)
    assert train.TrainConfig(batch_size=512, learning_rate=1e-3).batch_and_learning_rate(10**6) == (512, 1e-3)


def test_auto_cost_settings_follow_the_data_size():
    config = train.TrainConfig()
    assert config.shared_layers_for(8_000) == 0
    assert config.shared_layers_for(train.SHARED_LAYER_MIN_ROWS) == 1
    assert train.TrainConfig(shared_layers=0).shared_layers_for(10**7) == 0
    assert config.patience_for(7_000) == config.patience  # small data: patience in epochs
    assert config.patience_for(262_144) == 4  # large data: at most patience_rows rows without a gain
    assert train.TrainConfig(patience_rows=0).patience_for(262_144) == config.patience


def test_shared_first_layer_network_learns_and_is_deterministic(frame):
    config = train.TrainConfig(**{**TINY.to_dict(), "shared_layers": 1, "max_epoch_rows": 512})
    first = train.train_model(frame.head(1400), frame.tail(400), id_column="customer_pseudonym",
                              label_column="churned", exclude=("observation_date",), config=config)
    again = train.train_model(frame.head(1400), frame.tail(400), id_column="customer_pseudonym",
                              label_column="churned", exclude=("observation_date",), config=config)
    probabilities = train.predict_proba(first, frame.tail(400))
    assert np.array_equal(probabilities, train.predict_proba(again, frame.tail(400)))
    assert metrics.roc_auc(frame.tail(400)["churned"].to_numpy(), probabilities) > 0.75
    assert "shared_backbone" in str(jax_paths(first.params))


def jax_paths(params) -> list[str]:
    import jax

    return [jax.tree_util.keystr(path) for path, _ in jax.tree_util.tree_flatten_with_path(params)[0]]


def test_models_trained_on_slightly_different_row_counts_share_one_compiled_epoch(frame):
    """The final model and the cross-fit folds of a build differ by a few rows: padded to one bucket,
    they compile the epoch once, and the padding rows are never trained on."""
    config = train.TrainConfig(**{**TINY.to_dict(), "epochs": 2, "batch_size": 64})
    kwargs = {"id_column": "customer_pseudonym", "label_column": "churned", "exclude": ("observation_date",),
              "config": config}
    train.train_model(frame.head(900), frame.tail(300), **kwargs)
    compiled = train._train_epoch._cache_size()
    for rows in (880, 940):
        train.train_model(frame.head(rows), frame.tail(290), **kwargs)
    assert train._train_epoch._cache_size() == compiled
    assert train._row_bucket(900) == train._row_bucket(940) == 1024
    assert train._row_bucket(5_525) == train._row_bucket(7_000) == 8192  # a build's cross-fit and final model
    assert train._row_bucket(1025) == 2048 and train._row_bucket(1_000_000) == 1_048_576


def test_an_epoch_trains_on_every_real_row_once_before_repeating_and_never_on_padding():
    """The padded epoch's order: a permutation of the real rows (wrapping around to fill the last
    batch), only as many batches as the real rows need; padding rows are never drawn."""
    import jax
    import jax.numpy as jnp

    settings = train._EpochSettings(batch_size=64, learning_rate=1e-3, weight_decay=0.0, grad_clip_norm=1.0)
    shape = network.NetworkShape(n_numeric=1, n_bins=2, cardinalities=(), d_embed=2, hidden=4, depth=1, k=1,
                                 dropout=0.0)
    graphdef, params = network.build_network(shape, seed=0)
    rows, padded = 300, train._row_bucket(300)
    numeric = np.zeros((padded, 1), np.float32)
    numeric[rows:] = np.nan  # a padding row in a batch would make the loss NaN
    labels = np.zeros(padded, np.float32)
    labels[: rows // 2] = 1.0
    data = (jnp.asarray(numeric), jnp.zeros((padded, 0), jnp.int32), jnp.asarray(labels),
            jnp.asarray([[0.0, 0.5, 1.0]]), jnp.ones((1, 2)), jnp.asarray(rows, jnp.int32))
    opt_state = train.make_optimizer(1e-3, 0.0, 1.0).init(params)
    new_params, _, train_loss = train._train_epoch(graphdef, settings, params, opt_state, jax.random.key(0), data)
    assert np.isfinite(float(train_loss))
    assert train._epoch_steps(settings, padded) == 16  # compiled for 1024 rows; 5 of them run for 300
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(params),
                                                        jax.tree_util.tree_leaves(new_params), strict=True))


def test_cross_fit_reuses_the_final_model_for_the_rows_it_held_out(trained, frame):
    """With the final model, its validation and test rows get its own probabilities; every row it
    trained on is scored by one of ``cross_fit_folds`` models that did not see it."""
    model, _ = trained
    config = train.TrainConfig(**{**TINY.to_dict(), "cross_fit_folds": 2, "epochs": 6})
    kwargs = {"id_column": "customer_pseudonym", "label_column": "churned", "exclude": ("observation_date",),
              "config": config}
    probabilities = train.cross_fit_proba(frame, final_model=model, **kwargs)
    trained_on, valid_rows, test_rows = train._stratified_parts(frame["churned"].to_numpy(), config)
    held_out = np.concatenate([valid_rows, test_rows])
    np.testing.assert_array_equal(probabilities[held_out], train.predict_proba(model, frame[held_out]))
    in_sample = train.predict_proba(model, frame[trained_on])
    assert np.all(np.isfinite(probabilities)) and np.all((probabilities > 0) & (probabilities < 1))
    assert np.mean(np.abs(probabilities[trained_on] - in_sample) > 1e-6) > 0.9
    np.testing.assert_array_equal(probabilities, train.cross_fit_proba(frame, final_model=model, **kwargs))
    assert metrics.roc_auc(frame["churned"].to_numpy(), probabilities) > 0.7
