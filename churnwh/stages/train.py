"""The `train` stage: read the training-set model as a Polars frame, train, evaluate, register.

The model is retrained only when the training data, the network settings or the seed changed
since the current model was trained (or an erasure since then asks for it); otherwise the current
model is reused.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from churnwh.config import Config
from churnwh.errors import ChurnwhError, DataError
from churnwh.ml import metrics, splits
from churnwh.privacy import withdrawal
from churnwh.progress import Reporter, ignore
from churnwh.stages import registry
from churnwh.store import faults, warehouse

logger = logging.getLogger(__name__)

ERASURE_MARK = "erasure_since_model"
OUT_OF_FOLD = f"{registry.SCHEMA}.out_of_fold_scores"


@dataclass
class TrainOutcome:
    version: str
    promoted: bool
    reused: bool
    decision: str
    loaded: object | None
    """The model of ``version`` when this build has it in memory, else None (then ``model`` reads it)."""
    results: dict | None = None
    models_root: Path | None = None

    @property
    def model(self):
        """The churnwh.ml.train.TrainedModel of ``version``, read from its artifact on first use only: a
        reused model that no later stage needs (scores and drivers unchanged) never starts JAX."""
        if self.loaded is None:
            self.loaded = registry.load(self.models_root, self.version)
        return self.loaded


def read_relation(con: duckdb.DuckDBPyConnection, relation: str, config: Config | None = None) -> pl.DataFrame:
    """A whole table as a Polars frame (DuckDB -> Arrow -> Polars, no row loops).

    With ``config``, rows come in the training order (``training_order_sql``), which DuckDB's
    parallel scans do not keep on their own, so training is repeatable.
    """
    if relation not in warehouse.relations(con):
        raise ChurnwhError(f"table {relation} does not exist: run `churnwh build` to build the SQL models first")
    query = f"SELECT * FROM {relation}"
    if config is not None:
        query += f" ORDER BY {training_order_sql(con, relation, config)}"
    return pl.from_arrow(con.sql(query).to_arrow_table())


def training_cutoff(con: duckdb.DuckDBPyConnection, config: Config):
    """The last observation date of the training part of the time split, or None when the training set
    is not split by time (no date column, only NULL dates, a declared split, too few dates: then the
    frame is read whole and the split's own checks speak)."""
    tr = config.training
    relation = tr.model
    columns = warehouse.columns(con, relation)
    if (not tr.time_split or not tr.date_column or tr.date_column not in columns or tr.split_column):
        return None
    dates = pl.from_arrow(con.sql(f'SELECT "{tr.date_column}" FROM {relation} WHERE "{tr.date_column}" IS NOT NULL')
                          .to_arrow_table())
    if dates.height == 0:
        return None
    settings = train_config(config)
    try:
        train, _, _ = splits.time_split(dates, tr.date_column, valid_dates=settings.valid_dates,
                                        test_dates=settings.test_dates, purge_days=settings.purge_days)
    except DataError:
        return None
    return train[tr.date_column].max() if train.height else None


def read_training_frame(con: duckdb.DuckDBPyConnection, config: Config) -> pl.DataFrame:
    """The training set in training order; with a time split and more than ``[training] max_train_rows``
    rows on the training dates, those are a uniform sample of that many (the first rows by a hash of
    their content: the same whatever the pseudonymization key), every validation and test row kept.

    The network sees at most ``max_epoch_rows`` rows an epoch anyway; the whole table in memory is what
    grows (5.6 million rows at 1,000,000 demo customers)."""
    tr = config.training
    relation = tr.model
    limit = tr.max_train_rows
    cutoff = training_cutoff(con, config) if limit and relation in warehouse.relations(con) else None
    if cutoff is None:
        return read_relation(con, relation, config)
    date = f'"{tr.date_column}"'
    on_training_dates = con.execute(f"SELECT count(*) FROM {relation} WHERE {date} <= ?", [cutoff]).fetchall()[0][0]
    if on_training_dates <= limit:
        return read_relation(con, relation, config)
    sample_order = warehouse.content_sample_order(con, relation, "1", tr.id_column)
    query = (f"WITH sampled AS (SELECT * FROM {relation} WHERE {date} <= $cutoff ORDER BY {sample_order} "
             f"LIMIT {int(limit)}) "
             f"SELECT * FROM (SELECT * FROM sampled UNION ALL SELECT * FROM {relation} WHERE {date} > $cutoff) "
             f"ORDER BY {training_order_sql(con, relation, config)}")
    frame = pl.from_arrow(con.sql(query, params={"cutoff": cutoff}).to_arrow_table())
    logger.info("training on a sample of %d of the %d rows on the training dates ([training] max_train_rows)",
                limit, on_training_dates)
    return frame


def training_order_sql(con: duckdb.DuckDBPyConnection, relation: str, config: Config) -> str:
    """Observation date first, then the row's content, the pseudonym last: the same order (and so the
    same seeded shuffle and the same model) whatever the pseudonymization key."""
    tr = config.training
    columns = warehouse.columns(con, relation)
    leading = (tr.date_column,) if tr.date_column in columns else ()
    return warehouse.content_order(con, relation, leading, tr.id_column)


def label_window_parts(config: Config) -> list[tuple[str, int]]:
    """The [vars] that make up how far a training row's label looks past its observation date.

    An event-log project (`init --events --from`) labels with ``holdout_days``; the older event-log
    sample with ``inactivity_days``; every other shape with ``lead_days + label_window_days +
    churn_gap_days`` (the canonical models)."""
    variables = config.variables
    for name in ("holdout_days", "inactivity_days"):
        if name in variables:
            return [(name, int(variables[name]))]
    return [(name, int(variables.get(name, 0))) for name in ("lead_days", "label_window_days", "churn_gap_days")]


def purge_gap(config: Config) -> tuple[int, str]:
    """The time split's purge gap in days, and how it was made (for messages): the label window's
    parts from [vars], or ``[network] purge_days``, which may widen the gap but never shorten it below
    the label window (training labels would overlap the validation and test period)."""
    parts = label_window_parts(config)
    window = sum(days for _, days in parts)
    made = " + ".join(f"{name} {days}" for name, days in parts)
    explained = f"purge gap {window} days = {made}"
    override = config.training.network.get("purge_days")
    if override is None:
        return window, explained
    if override < window:
        raise ChurnwhError(
            f"[network] purge_days = {override} is shorter than the label window ({made} = {window} days): "
            f"training labels would overlap the validation and test period; remove purge_days or set it to "
            f"{window} or more")
    return int(override), f"purge gap {override} days = [network] purge_days (label window {made} = {window} days)"


def train_config(config: Config):
    """TrainConfig from [network], the seed, and a purge gap that keeps every label window of the
    training rows before the first validation date (and of validation rows before the test date)."""
    from churnwh.ml.settings import TrainConfig

    purge_days, _ = purge_gap(config)
    return TrainConfig.from_dict({**config.training.network, "purge_days": purge_days, "seed": config.training.seed})


def check_time_split(frame: pl.DataFrame, config: Config, column: str) -> None:
    """The training set's observation dates can hold a purged time split; else one line that names the
    parameters behind the purge gap, what the data span, and what to change."""
    train_cfg = train_config(config)
    try:
        splits.time_split(frame.select(column), column, valid_dates=train_cfg.valid_dates,
                          test_dates=train_cfg.test_dates, purge_days=train_cfg.purge_days)
    except DataError as err:
        _, explained = purge_gap(config)
        dates = frame[column].drop_nulls().unique().sort()
        span = 0
        if dates.len() > 1:
            first, last = dates[0], dates[-1]
            span = (last - first).days if hasattr(last - first, "days") else int(last - first)
        parts = " or ".join(name for name, _ in label_window_parts(config))
        raise DataError(
            f"{config.training.model}: {explained}; the training set's {dates.len()} observation dates span "
            f"{span} days, and a time split needs its validation date a purge gap after the training dates and "
            f"its test date a purge gap after that ({2 * train_cfg.purge_days} days or more with "
            f"valid_dates {train_cfg.valid_dates}, test_dates {train_cfg.test_dates}): lower {parts} in [vars], "
            f"add history (an earlier history_start), or set [training] date_column = \"\" for a random split "
            f"({err})") from None


def withheld_inputs(config: Config) -> list[str]:
    """Columns left out of the model's inputs: quasi-identifiers and sensitive columns, when
    ``training.withhold_quasi_identifiers`` asks for it (else none)."""
    if not config.training.withhold_quasi_identifiers:
        return []
    from churnwh.stages.explain import WITHHELD_CLASSES, privacy_classes

    classes = privacy_classes(config, config.training.model)
    return sorted(name for name, privacy in classes.items() if privacy in WITHHELD_CLASSES)


def uses_withheld_inputs(config: Config, current: registry.RunRecord | None) -> bool:
    """Whether the current model reads a column that training.withhold_quasi_identifiers now keeps out
    (then it is replaced whatever its test score: the setting is a privacy decision)."""
    withheld = set(withheld_inputs(config))
    if not withheld or current is None:
        return False
    try:
        return bool(withheld & set(registry.features(config.warehouse.models, current.version)))
    except (OSError, ValueError, KeyError):
        return True


MODEL_CODE = ("settings.py", "train.py", "network.py", "preprocess.py", "calibrate.py", "splits.py")
"""The churnwh.ml modules whose code decides what a training run gives."""


@functools.cache
def model_code_fingerprint() -> str:
    """A hash of ``MODEL_CODE``'s source: a churnwh whose training code or defaults changed retrains
    instead of reusing a model the old code made (read once per process; the churnwh version where
    the sources cannot be read)."""
    from churnwh import ml

    digest = hashlib.sha256()
    try:
        for name in MODEL_CODE:
            digest.update(name.encode() + b"\0" + (Path(ml.__file__).parent / name).read_bytes())
    except OSError:
        from importlib import metadata

        try:
            return "version " + metadata.version("churnwh")
        except metadata.PackageNotFoundError:
            return "unknown"
    return digest.hexdigest()[:32]


def table_rows(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    return con.execute(f"SELECT count(*) FROM {relation}").fetchall()[0][0]


def data_fingerprint(con: duckdb.DuckDBPyConnection, config: Config) -> str:
    """What the model depends on: the training table's columns and content, the network settings, the
    seed and the training code (and the sample bound, where the table is large enough for one to be drawn).
    Computed in SQL over the table (no row is read into Python) and compared with the fingerprint recorded
    with each run: equal means the run's model is reused."""
    return _fingerprint(con, config, content=True)


def settings_fingerprint(con: duckdb.DuckDBPyConnection, config: Config) -> str:
    """``data_fingerprint`` without the table's content: equal means only the data changed since."""
    return _fingerprint(con, config, content=False)


def _fingerprint(con: duckdb.DuckDBPyConnection, config: Config, *, content: bool) -> str:
    payload = json.dumps(
        {
            "table": config.training.model,
            **({"content": warehouse.content_fingerprint(con, config.training.model)} if content else {}),
            "schema": warehouse.columns(con, config.training.model),
            "network": train_config(config).to_dict(),
            "code": model_code_fingerprint(),
            "columns": [config.training.id_column, config.training.label_column, config.training.date_column],
            **({"withheld_inputs": withheld} if (withheld := withheld_inputs(config)) else {}),
            **({} if config.training.time_split else {"time_split": False}),
            **({"exclude": sorted(config.training.exclude)} if config.training.exclude else {}),
            **({"max_train_rows": limit} if (limit := config.training.max_train_rows)
               and table_rows(con, config.training.model) > limit else {}),
            **({"allow_leakage": sorted(config.training.allow_leakage)} if config.training.allow_leakage else {}),
            **({"split": [config.training.split_column, str(config.training.split_date)]}
               if config.training.split_column else {}),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def days_behind(con: duckdb.DuckDBPyConnection, config: Config, current: registry.RunRecord) -> int | None:
    """How many days the current model's as-of date is behind this build's, when only the training data
    changed since it was trained (same settings, code and columns); None otherwise or without dates."""
    as_of = config.variables.get("as_of")
    try:
        run = json.loads((registry.model_dir(config.warehouse.models, current.version) / "run.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(as_of, dt.date) or run.get("settings_fingerprint") != settings_fingerprint(con, config):
        return None
    try:
        trained_as_of = dt.date.fromisoformat(run.get("variables", {}).get("as_of", ""))
    except ValueError:
        return None
    return (as_of - trained_as_of).days


def train_stage(con: duckdb.DuckDBPyConnection, config: Config, *, force: bool = False,
                on_progress: Reporter = ignore) -> TrainOutcome:
    """Train, evaluate and register a model (or reuse the current one); ``on_progress`` gets an
    ``EpochReport`` per epoch."""
    registry.ensure_tables(con)
    withdrawal.ensure_table(con)
    # A new objection withdraws the versions trained on the objector (after [training]
    # objection_retrain_days): the current one is then replaced by this build (it no longer counts as current).
    as_of = config.variables.get("as_of")
    withdrawal.withdraw_for_objections(con, as_of if isinstance(as_of, dt.date) else None,
                                       config.training.objection_retrain_days)
    fingerprint = data_fingerprint(con, config)
    current = registry.current(con)
    # A model trained before an erasure holds the erased customers: it must be replaced, not kept.
    erased = warehouse.get_meta(con, ERASURE_MARK) is not None
    force = force or erased or uses_withheld_inputs(config, current)
    if current and not force and registry.trained_on(con, fingerprint):
        return TrainOutcome(current.version, False, True, "data unchanged: current model reused", None,
                            models_root=config.warehouse.models)
    every = config.training.retrain_after_days
    if current and not force and (behind := days_behind(con, config, current)) is not None and 0 <= behind < every:
        return TrainOutcome(current.version, False, True,
                            f"training data changed {behind} days after {current.version}'s as-of date: model reused "
                            f"(retrained after {every} days: [training] retrain_after_days)", None,
                            models_root=config.warehouse.models)

    frame = read_training_frame(con, config)
    check_training_frame(frame, config)
    check_not_empty(frame, config)
    from churnwh.ml import artifact
    from churnwh.ml.train import train_and_evaluate

    declared = declared_split_column(frame, config)
    split_column = time_column(frame, config) if declared is None else None
    if split_column is not None:
        check_time_split(frame, config, split_column)
    # Without a time split (a flat table, date_column = "" or a declared split), the date column is
    # still not a feature.
    date_column = config.training.date_column
    excluded = (date_column,) if split_column is None and date_column in frame.columns else ()
    excluded += tuple(name for name in withheld_inputs(config) if name in frame.columns)
    excluded += excluded_columns(frame, config)
    not_features = excluded + ((declared,) if declared else ())  # the split column splits, it is no feature
    check_leakage(frame, config, not_features)
    model, results = train_and_evaluate(
        frame,
        id_column=config.training.id_column,
        label_column=config.training.label_column,
        time_column=split_column,
        exclude=excluded,
        config=train_config(config),
        on_epoch=on_progress,
        split_column=declared,
        test_from=config.training.split_date,
    )
    version = registry.next_version(con)
    if date_column not in frame.columns or frame[date_column].null_count() == frame.height:
        # no dates: the scoring set is made of training customers (as churnwh.stages.score.apply_out_of_fold)
        write_out_of_fold(con, config, frame, version, not_features, on_progress, final_model=model)
    promote, decision = promotion_decision(con, config, frame, results, current, force)
    faults.point("train.after_fit")
    staging = registry.staging_dir(config.warehouse.models, version)
    artifact.save_model(model, staging)
    (staging / "run.json").write_text(
        json.dumps(
            {
                "version": version,
                "data_fingerprint": fingerprint,
                "settings_fingerprint": settings_fingerprint(con, config),
                "training": {
                    "model": config.training.model,
                    "id_column": config.training.id_column,
                    "label_column": config.training.label_column,
                    "date_column": config.training.date_column,
                    "time_split": split_column is not None,
                    "exclude": list(config.training.exclude),
                    "allow_leakage": list(config.training.allow_leakage),
                },
                "variables": {name: str(value) for name, value in config.variables.items()},
            },
            indent=1,
            sort_keys=True,
        )
    )
    # The artifact is whole before its row exists, and the erasure mark goes with the row: a kill
    # in between leaves an unregistered folder that the retrain replaces, never a row without a model.
    registry.install_artifact(config.warehouse.models, version, staging)
    faults.point("train.after_artifact")
    clear_mark = ((f"DELETE FROM {warehouse.META_SCHEMA}.meta WHERE name = ?", [ERASURE_MARK]),) if erased else ()
    clear_mark += (withdrawal.subjects_sql(version, config.training.model, config.training.id_column),)
    registry.record_run(
        con,
        version=version,
        run_id=uuid.uuid4().hex[:16],
        data_fingerprint=fingerprint,
        results=results,
        feature_count=len(model.features),
        promote=promote,
        decision=decision,
        also=clear_mark,
    )
    faults.point("train.after_record")
    withdrawal.remove_artifacts(withdrawal.withdrawn_artifacts(con, config.warehouse.models))
    registry.prune_artifacts(con, config.warehouse.models, config.training.keep_versions)
    withdrawal.drop_unrestorable_subjects(con, config.warehouse.models)
    if not promote:
        return TrainOutcome(current.version, False, False, decision, None, results, config.warehouse.models)
    return TrainOutcome(version, True, False, decision, model, results, config.warehouse.models)


def write_out_of_fold(con: duckdb.DuckDBPyConnection, config: Config, frame: pl.DataFrame, version: str,
                      excluded: tuple[str, ...], on_progress: Reporter = ignore, final_model=None) -> int:
    """Out-of-fold probabilities of every training customer into ``OUT_OF_FOLD`` for ``version``.

    Without observation dates (a flat table) the scoring set is made of training customers: scored by
    the model that trained on them, their probabilities would be over-confident (in-sample). The score
    stage uses these instead (churnwh.stages.score.apply_out_of_fold); ``final_model`` (the model just
    trained on ``frame``) scores the rows it held out (``cross_fit_proba``). Returns the rows written
    (0 when ``network.cross_fit_folds`` is below 2: then such scores are flagged in-sample)."""
    from churnwh.ml.train import cross_fit_proba

    settings = train_config(config)
    if settings.cross_fit_folds < 2:
        return 0
    tr = config.training
    probabilities = cross_fit_proba(frame, id_column=tr.id_column, label_column=tr.label_column, exclude=excluded,
                                    config=settings, on_epoch=on_progress, final_model=final_model)
    table = pl.DataFrame({"customer_pseudonym": frame[tr.id_column].cast(pl.String),
                          "churn_probability": probabilities, "model_version": version}).to_arrow()
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {registry.SCHEMA}")
    con.execute(f"CREATE TABLE IF NOT EXISTS {OUT_OF_FOLD} (customer_pseudonym VARCHAR, churn_probability DOUBLE, "
                "model_version VARCHAR)")
    con.register("_out_of_fold", table)
    try:
        con.execute("BEGIN TRANSACTION")
        con.execute(f"DELETE FROM {OUT_OF_FOLD} WHERE model_version = ?", [version])
        con.execute(f"INSERT INTO {OUT_OF_FOLD} SELECT * FROM _out_of_fold")
        con.execute(f"COMMENT ON TABLE {OUT_OF_FOLD} IS 'Cross-fitted churn probability of every training customer "
                    "of a model version trained without dates: from a model trained on the other folds.'")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.unregister("_out_of_fold")
    logger.info("%d training customers scored out-of-fold (%d folds)", frame.height, settings.cross_fit_folds)
    return frame.height


def excluded_columns(frame: pl.DataFrame, config: Config) -> tuple[str, ...]:
    """``training.exclude``: columns of the training set dropped before training (one that the set
    lacks, or the id or the label, stops the build: a misspelt exclusion would keep the column in)."""
    tr = config.training
    for name in tr.exclude:
        if name in (tr.id_column, tr.label_column):
            raise DataError(f"training.exclude names {name!r}, the {'id' if name == tr.id_column else 'label'} "
                            "column: it is never a feature; remove it from training.exclude")
        if name not in frame.columns:
            import difflib

            close = difflib.get_close_matches(name, frame.columns, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise DataError(f"training.exclude names {name!r}, which {tr.model} does not have: {hint}"
                            "list training-set column names (the SQL models' output names)")
    return tr.exclude


def label_names(config: Config) -> list[str]:
    """The label's names: the training set's label column and each declared source's own label column."""
    return [config.training.label_column, *(s.label for s in config.sources if getattr(s, "label", None))]


def check_leakage(frame: pl.DataFrame, config: Config, excluded: tuple[str, ...]) -> None:
    """Refuse to train on columns that likely leak the label (churnwh.ml.leakage), in one line naming
    them and both ways out: leave them out (training.exclude) or vouch for them (training.allow_leakage)."""
    from churnwh.ml import leakage

    tr = config.training
    not_features = {tr.id_column, tr.label_column, tr.date_column, *excluded, *tr.allow_leakage}
    features = [c for c in frame.columns if c not in not_features]
    date_column = tr.date_column if tr.date_column in frame.columns else None
    suspects = leakage.find_leaks(frame, tr.label_column, features, label_names=label_names(config),
                                  date_column=date_column)
    if suspects:
        names = ", ".join(f'"{s.column}"' for s in suspects)
        raise DataError(
            f"{tr.model}: training refused, likely label leakage: {leakage.described(suspects)}: leave them out "
            f"with [training] exclude = [{names}] in churnwh.toml, or, if they are known before the churn they "
            f"predict, allow them with [training] allow_leakage = [{names}]")


def declared_split_column(frame: pl.DataFrame, config: Config) -> str | None:
    """training.split_column when set (the data's own train/test split), else None; a missing column is
    an error naming the key."""
    column = config.training.split_column
    if not column:
        return None
    if column not in frame.columns:
        raise DataError(f"{config.training.model} has no column {column!r} (training.split_column): select the "
                        "part column in the training set, or remove training.split_column")
    return column


def time_column(frame: pl.DataFrame, config: Config) -> str | None:
    """The observation-date column, or None (a stratified random split) when training.date_column is
    empty, or the training set has no such column or only NULLs in it: a flat customer table has no time."""
    column = config.training.date_column
    if not config.training.time_split or not column or column not in frame.columns:
        return None
    if frame[column].null_count() == frame.height:
        return None
    return column


def split_for_evaluation(frame: pl.DataFrame, config: Config) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(train, valid, test) as train_and_evaluate splits them: by time, or stratified without a date."""
    train_cfg = train_config(config)
    declared = declared_split_column(frame, config)
    if declared is not None:
        return splits.declared_split(frame, declared, config.training.label_column,
                                     valid_fraction=train_cfg.valid_fraction, test_from=config.training.split_date,
                                     seed=train_cfg.seed)
    column = time_column(frame, config)
    if column is None:  # the same parts as churnwh.ml.train.train_and_evaluate without a time column
        labels = frame[config.training.label_column].to_numpy()
        train_fraction = 1.0 - train_cfg.valid_fraction - train_cfg.test_fraction
        parts = splits.stratified_split_indices(
            labels, (train_fraction, train_cfg.valid_fraction, train_cfg.test_fraction), train_cfg.seed)
        return tuple(frame[indices] for indices in parts)
    return splits.time_split(frame, column, valid_dates=train_cfg.valid_dates, test_dates=train_cfg.test_dates,
                             purge_days=train_cfg.purge_days)


def check_not_empty(frame: pl.DataFrame, config: Config) -> None:
    """A training set without rows: say which parameters decide which observation dates have a label."""
    if frame.height:
        return
    variables = config.variables
    window = " + ".join(f"{name} {days}" for name, days in label_window_parts(config))
    dated = ", ".join(f"{name} {variables[name]}" for name in ("history_start", "as_of") if name in variables)
    raise DataError(f"{config.training.model} has no rows: an observation date trains only when its label window "
                    f"({window} days) has ended by as_of ({dated}): check that the sources hold data before "
                    "as_of, move history_start earlier, or shorten the label window in [vars]")


def check_training_frame(frame: pl.DataFrame, config: Config) -> None:
    """Columns the trainer needs must exist; everything else is a feature (the date is optional)."""
    for key, column in (
        ("training.id_column", config.training.id_column),
        ("training.label_column", config.training.label_column),
    ):
        if column not in frame.columns:
            raise DataError(
                f"{config.training.model} has no column {column!r} ({key}): add it to the model or fix {key}"
            )


def promotion_decision(
    con: duckdb.DuckDBPyConnection,
    config: Config,
    frame: pl.DataFrame,
    results: dict,
    current: registry.RunRecord | None,
    force: bool,
) -> tuple[bool, str]:
    """Promote unless the current model is better on the same test rows by more than the tolerance,
    or the new model is implausibly perfect (a first model then stops the build; ``force`` overrides)."""
    from churnwh.ml.leakage import IMPLAUSIBLE_AUC

    new_auc = results["network"]["roc_auc"]
    waived = (f"; leakage check waived for {', '.join(config.training.allow_leakage)}"
              if config.training.allow_leakage else "")
    if new_auc >= IMPLAUSIBLE_AUC and not force:
        why = (f"test ROC-AUC {new_auc:.4f} is implausibly perfect for churn: a feature probably leaks the label "
               "(list it in [training] exclude)")
        if current is None:
            raise DataError(f"{config.training.model}: model not promoted: {why}, or promote it anyway with "
                            "`churnwh train --force` (`build --force-train`)")
        return False, f"kept {current.version}: the new model's {why}; use --force to replace it"
    if new_auc >= IMPLAUSIBLE_AUC:
        return True, f"forced although implausibly perfect (test ROC-AUC {new_auc:.4f}){waived}"
    if current is None:
        return True, f"first model (test ROC-AUC {new_auc:.4f}){waived}"
    if force:
        return True, f"forced (test ROC-AUC {new_auc:.4f}){waived}"
    from churnwh.ml.train import predict_proba

    incumbent = registry.load(config.warehouse.models, current.version)
    _, _, test = split_for_evaluation(frame, config)
    try:
        incumbent_auc = metrics.roc_auc(
            test[config.training.label_column].to_numpy().astype(np.float64), predict_proba(incumbent, test)
        )
    except DataError:
        return True, f"features changed since {current.version}: the new model replaces it"
    tolerance = config.training.promote_tolerance
    if new_auc >= incumbent_auc - tolerance:
        return True, f"test ROC-AUC {new_auc:.4f} vs {incumbent_auc:.4f} of {current.version}{waived}"
    return False, (
        f"kept {current.version}: its test ROC-AUC {incumbent_auc:.4f} beats {new_auc:.4f} by more than "
        f"{tolerance}; use --force to replace it"
    )


def evaluate_current(con: duckdb.DuckDBPyConnection, config: Config) -> tuple[str, dict]:
    """Evaluate the current model on the latest dates of the current training set, with baselines."""
    record = registry.current(con) if registry.exists(con) else None
    if record is None:
        raise ChurnwhError("no trained model yet: run `churnwh train` or `churnwh build` first")
    from churnwh.ml.train import evaluate_with_baselines

    model = registry.load(config.warehouse.models, record.version)
    frame = read_relation(con, config.training.model, config)
    train, _, test = split_for_evaluation(frame, config)
    return record.version, evaluate_with_baselines(model, train, test)
