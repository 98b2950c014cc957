"""An unchanged rebuild reuses the model and its probabilities without starting JAX (or importing
pandas); any change to what they depend on (training or scoring data, their columns, the network
settings, scoring batches, the rows of churn_scores) makes the build train or score again."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import subprocess
import sys

import duckdb

from churnwh.config import load_config
from churnwh.stages import registry, train
from churnwh.stages.score import PROBABILITIES_MARK, SCORES, probabilities_fingerprint, reuse_scores
from churnwh.store import warehouse
from tests.helpers import REPO, churnwh, copy_project, private

BUILD_REPORTING_JAX = """
import runpy, sys
sys.argv = ["churnwh", "--project", sys.argv[1], "build"]
try:
    runpy.run_module("churnwh", run_name="__main__")
except SystemExit as done:
    assert not done.code, done.code
print("jax imported:", "jax" in sys.modules)
print("pandas imported:", "pandas" in sys.modules)
"""


def scores(project):
    with private(project) as con:
        return con.execute(f"SELECT * FROM {SCORES} ORDER BY customer_pseudonym").fetchall()


@contextlib.contextmanager
def writable(project):
    con = duckdb.connect(str(project / "warehouse" / "private.duckdb"))
    try:
        yield con
    finally:
        con.close()


def test_unchanged_rebuild_reuses_model_and_probabilities_without_jax(built_project, tmp_path):
    project = copy_project(built_project[0], tmp_path / "copy")
    before = scores(project)
    result = subprocess.run([sys.executable, "-c", BUILD_REPORTING_JAX, str(project)], capture_output=True,
                            text=True, cwd=REPO, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "data unchanged: current model reused" in result.stdout
    assert "probabilities of v0001 kept" in result.stdout
    assert "jax imported: False" in result.stdout
    assert "pandas imported: False" in result.stdout  # pyarrow's constructors import it: seconds on a busy machine
    assert scores(project) == before  # every column, every customer


def test_a_changed_scoring_setting_scores_again_with_the_same_model(built_project, tmp_path):
    project = copy_project(built_project[0], tmp_path / "copy")
    before = scores(project)
    config = project / "churnwh.toml"
    config.write_text(config.read_text().replace("[scoring]\n", "[scoring]\nbatch_rows = 256\n", 1))
    result = churnwh(project, "build")
    assert result.returncode == 0, result.stderr
    assert "current model reused" in result.stdout and "customers scored with v0001" in result.stdout
    after = scores(project)
    assert [row[0] for row in after] == [row[0] for row in before]


def test_fingerprints_follow_data_columns_and_settings(built_project, tmp_path):
    project = copy_project(built_project[0], tmp_path / "copy")
    config = load_config(project)
    tr = config.training
    with writable(project) as con:
        record = registry.current(con)
        trained = train.data_fingerprint(con, config)
        scored = probabilities_fingerprint(con, config, record.version, record.run_id)
        assert registry.trained_on(con, trained)  # the build recorded what it trained on
        assert warehouse.get_meta(con, PROBABILITIES_MARK) == scored
        assert train.data_fingerprint(con, config) == trained  # nothing changed, nothing differs

        wider = dataclasses.replace(config, training=dataclasses.replace(
            tr, network={**tr.network, "hidden": tr.network.get("hidden", 32) + 1}))
        assert train.data_fingerprint(con, wider) != trained
        other_seed = dataclasses.replace(config, training=dataclasses.replace(tr, seed=tr.seed + 1))
        assert train.data_fingerprint(con, other_seed) != trained
        batches = dataclasses.replace(
            config, scoring=dataclasses.replace(config.scoring, batch_rows=config.scoring.batch_rows + 1))
        assert probabilities_fingerprint(con, batches, record.version, record.run_id) != scored
        assert probabilities_fingerprint(con, config, "v0002", record.run_id) != scored

        numeric = next(name for name, kind in warehouse.columns(con, tr.model).items()
                       if kind in ("DOUBLE", "BIGINT", "INTEGER") and name != tr.label_column)
        con.execute(f'UPDATE {tr.model} SET "{numeric}" = "{numeric}" + 1 WHERE "{tr.id_column}" = '
                    f'(SELECT min("{tr.id_column}") FROM {tr.model})')
        assert train.data_fingerprint(con, config) != trained
        con.execute(f'UPDATE {tr.scoring_model} SET "{numeric}" = "{numeric}" + 1 WHERE "{tr.id_column}" = '
                    f'(SELECT min("{tr.id_column}") FROM {tr.scoring_model})')
        assert probabilities_fingerprint(con, config, record.version, record.run_id) != scored


def test_renamed_column_changes_the_fingerprints(built_project, tmp_path):
    project = copy_project(built_project[0], tmp_path / "copy")
    config = load_config(project)
    tr = config.training
    with writable(project) as con:
        record = registry.current(con)
        trained = train.data_fingerprint(con, config)
        scored = probabilities_fingerprint(con, config, record.version, record.run_id)
        feature = next(name for name in warehouse.columns(con, tr.model)
                       if name not in (tr.id_column, tr.label_column, tr.date_column))
        for relation in (tr.model, tr.scoring_model):
            con.execute(f'ALTER TABLE {relation} RENAME COLUMN "{feature}" TO "{feature}_renamed"')
        assert train.data_fingerprint(con, config) != trained
        assert probabilities_fingerprint(con, config, record.version, record.run_id) != scored


def test_scores_are_not_taken_over_when_rows_went_missing(built_project, tmp_path):
    project = copy_project(built_project[0], tmp_path / "copy")
    config = load_config(project)
    with writable(project) as con:
        record = registry.current(con)
        warehouse.set_variables(con, config.variables)
        count = con.execute(f"SELECT count(*) FROM {SCORES}").fetchall()[0][0]
        con.execute(f"DELETE FROM {SCORES} WHERE priority_rank = 1")
        assert reuse_scores(con, config, record.version, record.run_id) is None
        assert con.execute(f"SELECT count(*) FROM {SCORES}").fetchall()[0][0] == count - 1  # left as it was
        con.execute(f"DELETE FROM {warehouse.META_SCHEMA}.meta WHERE name = ?", [PROBABILITIES_MARK])
        assert reuse_scores(con, config, record.version, record.run_id) is None


def test_changed_training_data_reuse_the_model_until_retrain_after_days(built_project, tmp_path):
    project = copy_project(built_project[0], tmp_path / "copy")
    config = load_config(project)
    trained_as_of = config.variables["as_of"]
    with writable(project) as con:  # the training data change (a label of a past observation, say)
        con.execute(f"DELETE FROM {config.training.model} WHERE rowid = (SELECT min(rowid) FROM {config.training.model})")

    def later(days: int, **training):
        return dataclasses.replace(config, variables={**config.variables, "as_of": trained_as_of + dt.timedelta(days)},
                                   training=dataclasses.replace(config.training, **training))

    with writable(project) as con:
        current = registry.current(con)
        assert not registry.trained_on(con, train.data_fingerprint(con, config))  # the control: data changed
        outcome = train.train_stage(con, later(1))
        assert (outcome.version, outcome.reused) == (current.version, True)
        assert "model reused (retrained after 7 days" in outcome.decision
        assert train.days_behind(con, later(7), current) == 7  # the stage trains from then on
        # a setting (not only data) changed: no grace
        assert train.days_behind(con, later(1, seed=config.training.seed + 1), current) is None
