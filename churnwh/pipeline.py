"""`churnwh build` as an explicit, ordered tuple of stages over one private-warehouse connection."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import duckdb

from churnwh.config import Config
from churnwh.config import demo_parameters as _demo_parameters
from churnwh.errors import ChurnwhError
from churnwh.privacy import keys, pseudonyms
from churnwh.privacy.proofs import classify_stage, lineage_stage, publish_stage
from churnwh.progress import Count, Reporter, ignore
from churnwh.sqlmodels.project import Project, load_project
from churnwh.sqlmodels.run_models import ModelResult, run_models
from churnwh.stages import registry
from churnwh.stages.score import reuse_scores, score_stage
from churnwh.stages.train import TrainOutcome, train_stage
from churnwh.store import faults, lock, warehouse


@dataclass(frozen=True)
class BuildOptions:
    select: str | None = None
    full_refresh: bool = False
    force_train: bool = False
    engine: str = "duckdb"
    """"duckdb" (default) or "spark" (churnwh.spark.engine: models and scoring on Apache Spark)."""
    master: str = "local[2]"
    """Spark master for engine "spark": local[N], spark://host:port or sc://host:port (Spark Connect)."""
    wait_seconds: float = 0.0
    """How long to wait for another build's write lock before giving up (churnwh.store.lock)."""
    allow_stale: bool = False
    """Score even when a source ends before the features' window (recorded in the audit log and `about`)."""
    allow_drift: str | None = None
    """Who lets the build score and publish even when drift is severe (churnwh.stages.monitor.drift_gate):
    "--allow-drift" or "rotate-key"; recorded in the audit log and ``about``. None: severe drift stops it."""


@dataclass
class StageResult:
    name: str
    seconds: float
    detail: str


@dataclass
class BuildContext:
    config: Config
    options: BuildOptions
    con: duckdb.DuckDBPyConnection
    on_stage: Callable[[str], None] = lambda name: None
    on_model: Callable[[ModelResult], None] = lambda result: None
    on_progress: Reporter = ignore
    """Receives the progress reports of long stages (churnwh.progress)."""
    key: bytes | None = None
    project: Project | None = None
    models: list[ModelResult] = field(default_factory=list)
    trained: TrainOutcome | None = None
    privacy: dict = field(default_factory=dict)
    """run id, lineage figures and the like for the audit entry (churnwh.privacy.proofs)."""
    _reopened: list = field(default_factory=list, repr=False)

    def reopen(self) -> duckdb.DuckDBPyConnection:
        """A new connection to the private file (closed by ``build`` at the end)."""
        stack = contextlib.ExitStack()
        con = stack.enter_context(warehouse.open_private(self.config))
        self._reopened.append(stack)
        return con


@dataclass
class BuildReport:
    stages: list[StageResult]
    models: list[ModelResult]


def load_sources(ctx: BuildContext) -> str:
    """Bring raw data into the private warehouse (the demo simulator for now)."""
    if ctx.config.source == "demo":
        return ensure_demo(ctx.config, ctx.con, on_progress=ctx.on_progress)
    if ctx.config.sources:  # declared CSV / Parquet / DuckDB sources (churnwh.sources.declared)
        from churnwh.sources import declared as sources

        return sources.load_sources(ctx.config, ctx.con, on_progress=ctx.on_progress)
    raise AssertionError(f"unknown source kind {ctx.config.source}")


def check_freshness(ctx: BuildContext) -> str:
    """Refuse to build features and scores on sources that end before the window the features read
    (churnwh.store.freshness), unless --allow-stale, which the audit entry and `about` record."""
    from churnwh.sources import event_times
    from churnwh.store import freshness

    as_of = ctx.config.variables.get("as_of")
    if not isinstance(as_of, dt.date):
        return "no as_of date: not checked"
    raw = {name for name in warehouse.relations(ctx.con) if name.startswith(f"{warehouse.RAW_SCHEMA}.")}
    declared = [d for d in event_times.declarations(ctx.config) if f"{warehouse.RAW_SCHEMA}.{d.source}" in raw]
    results = freshness.measure(ctx.con, declared, as_of)
    allowed = freshness.enforce(ctx.con, results, as_of, allow_stale=ctx.options.allow_stale)
    if allowed:
        ctx.privacy["stale_override"] = freshness.override_of(allowed, as_of)
    return freshness.summary(results, as_of, allowed)


def pseudonymize(ctx: BuildContext) -> str:
    ctx.key = ensure_key(ctx.config)
    computed = pseudonyms.refresh_customer_keys(ctx.con, ctx.key)
    return f"{computed} new pseudonyms"


def build_models(ctx: BuildContext) -> str:
    sources = {name for name in warehouse.relations(ctx.con) if name.startswith(f"{warehouse.RAW_SCHEMA}.")}
    ctx.project = load_project(ctx.config.sql, known_sources=sources)
    selected = ctx.project.select(ctx.options.select) if ctx.options.select else None
    if ctx.options.engine == "spark":
        from churnwh.spark import engine as spark_engine

        ctx.models = spark_engine.build_models_stage(ctx, selected)
        return f"{len(ctx.models)} built on Spark ({ctx.options.master})"
    # User SQL runs on its own sandboxed instance (no file or network access, configuration locked):
    # the build's connection is closed for it and reopened after (DuckDB cannot re-enable access).
    ctx.con.close()
    with warehouse.open_private(ctx.config, sandboxed=True) as sandbox:
        ctx.models = run_models(
            sandbox,
            ctx.project,
            ctx.config.variables,
            selected=selected,
            full_refresh=ctx.options.full_refresh,
            on_model=ctx.on_model,
        )
    ctx.con = ctx.reopen()
    warehouse.set_variables(ctx.con, ctx.config.variables)  # as run_models left them on the old connection
    built = sum(result.status == "built" for result in ctx.models)
    from churnwh.stages.monitor import dropped_customers, dropped_summary

    dropped = dropped_summary(dropped_customers(ctx.con, ctx.project))
    increments = sum(result.mode == "incremental" for result in ctx.models)
    incremental = f" ({increments} incremental: only their new days)" if increments else ""
    return f"{built} built{incremental}, {len(ctx.models) - built} unchanged" + (f"; {dropped}" if dropped else "")


def train(ctx: BuildContext) -> str:
    ctx.trained = train_stage(ctx.con, ctx.config, force=ctx.options.force_train, on_progress=ctx.on_progress)
    return f"{ctx.trained.version}: {ctx.trained.decision}"


def score(ctx: BuildContext) -> str:
    record = registry.current(ctx.con) if registry.exists(ctx.con) else None
    if record is None:
        raise ChurnwhError("no trained model yet: run `churnwh train` or `churnwh build` first")
    if ctx.options.engine == "spark":
        from churnwh.spark import engine as spark_engine

        rows = spark_engine.score_stage(ctx, record)
        return f"{rows} customers scored on Spark with {record.version}"
    kept = reuse_scores(ctx.con, ctx.config, record.version, record.run_id)
    if kept is not None:
        return f"{kept} customers: probabilities of {record.version} kept (model and scoring set unchanged)"
    model = ctx.trained.model if ctx.trained else registry.load(ctx.config.warehouse.models, record.version)
    rows = score_stage(ctx.con, ctx.config, model, record.version, record.run_id, on_progress=ctx.on_progress)
    return f"{rows} customers scored with {record.version}"


def explain(ctx: BuildContext) -> str:
    from churnwh.stages.explain import explain_stage

    return explain_stage(ctx)


def drift(ctx: BuildContext) -> str:
    from churnwh.stages.monitor import drift_gate

    return drift_gate(ctx)


def monitor(ctx: BuildContext) -> str:
    from churnwh.stages.monitor import monitor_stage

    return monitor_stage(ctx)


def uplift(ctx: BuildContext) -> str:
    """Learn who a contact saves from the finished pilots and estimate it per scored customer
    (churnwh.action.uplift); too few pilot members: no model, one warning line, the build goes on."""
    from churnwh.action.uplift import uplift_stage

    return uplift_stage(ctx.con, ctx.config)


STAGES: tuple[tuple[str, Callable[[BuildContext], str]], ...] = (
    ("load", load_sources),
    ("freshness", check_freshness),
    ("pseudonymize", pseudonymize),
    ("classify", classify_stage),
    ("lineage", lineage_stage),
    ("models", build_models),
    ("train", train),
    ("drift", drift),
    ("score", score),
    ("explain", explain),
    ("monitor", monitor),
    ("uplift", uplift),
    ("publish", publish_stage),
)


def build(
    config: Config,
    options: BuildOptions = BuildOptions(),
    *,
    only: tuple[str, ...] | None = None,
    on_stage: Callable[[str], None] = lambda name: None,
    on_model: Callable[[ModelResult], None] = lambda result: None,
    on_progress: Reporter = ignore,
) -> BuildReport:
    """Run every stage of STAGES in order, or just the ones named in ``only``."""
    unknown = set(only or ()) - {name for name, _ in STAGES}
    if unknown:
        raise AssertionError(f"unknown stages {sorted(unknown)}")
    stages: list[StageResult] = []
    with lock.write_lock(config.warehouse.private, wait_seconds=options.wait_seconds):
        recover(config)
        with warehouse.open_private(config) as con, contextlib.ExitStack() as reopened:
            ctx = BuildContext(config=config, options=options, con=con, on_stage=on_stage, on_model=on_model,
                               on_progress=on_progress)
            reopened.callback(lambda: [stack.close() for stack in reversed(ctx._reopened)])
            for name, stage in STAGES:
                if only is not None and name not in only:
                    continue
                on_stage(name)
                started = time.perf_counter()
                try:
                    detail = stage(ctx)
                except (OSError, duckdb.IOException) as err:
                    if not warehouse.disk_full(err):
                        raise
                    raise ChurnwhError(
                        f"stage {name} failed: no space left on device: free some space (or set warehouse."
                        "temp_directory to a larger disk) and rerun; the published file was kept"
                    ) from None
                stages.append(StageResult(name, time.perf_counter() - started, detail))
                faults.point(f"after.{name}")
    return BuildReport(stages=stages, models=ctx.models)


def forget(config: Config, ids: list[str]):
    """`churnwh forget`: erase customers (churnwh.privacy.erasure), rebuilding with this pipeline's stages
    what they contributed to before the republish."""
    from churnwh.privacy import erasure

    def rebuild(stages: tuple[str, ...]) -> None:
        options = rebuild_options(config)
        from churnwh.spark import engine as spark_engine

        # Spark storage holds the models' rows too: deleted before the rebuild, which writes them again
        spark_engine.erase_tables(config, options.master if options.engine == "spark" else None)
        build(config, options, only=stages)

    return erasure.forget(config, ids, rebuild=rebuild)


def rebuild_options(config: Config) -> BuildOptions:
    """A rebuild's engine is the last build's: Spark (on its master) when its models ran there."""
    from churnwh.spark import engine as spark_engine

    with warehouse.open_private(config) as con:
        master = spark_engine.last_master(con, config.training.model)
    return BuildOptions(engine="spark", master=master) if master else BuildOptions()


def rotate_key(config: Config, *, on_stage: Callable[[str], None] = lambda name: None) -> tuple[str, str]:
    """`churnwh rotate-key`: a new key, a full rebuild with it, then the key in force (churnwh.privacy.rotation).

    Campaign and pilot rows outlive builds: their pseudonyms' owners are noted before the rebuild and the
    rows carried over to the new pseudonyms after it (churnwh.action.pilot). Returns (old key version,
    new key version).
    """
    from churnwh.action import pilot
    from churnwh.privacy import rotation
    from churnwh.store import freshness

    rotation.refuse_key_from_environment(config)
    with lock.write_lock(config.warehouse.private):
        pending = rotation.begin_rotation(config)
        with warehouse.open_private(config) as con:  # campaigns and score history outlive the rebuild
            owners = pilot.pseudonym_owners(con)
            # the rebuild republishes what the last build published: stale sources it was allowed to score
            # with stay allowed (and recorded again); newly stale ones stop the rotation like a build
            allow_stale = freshness.override(con) is not None
        try:
            # the same data under new pseudonyms: whether its drift may be published was decided by the builds
            engine = rebuild_options(config)  # a Spark build rewrites its storage's tables under the new key
            build(pending.new_config, BuildOptions(full_refresh=True, allow_stale=allow_stale, allow_drift="rotate-key",
                                                   engine=engine.engine, master=engine.master), on_stage=on_stage)
            rotation.mark_rebuilt(pending)
        except BaseException:
            rotation.abandon_rotation(pending)
            raise
        new_version = rotation.finish_rotation(pending, carry_over=lambda con: pilot.rekey(con, owners),
                                               on_stage=on_stage)
    return pending.old_version, new_version


def recover(config: Config) -> list[str]:
    """Undo or finish what a killed churnwh process left behind; call under the write lock.

    Removes our own temporary files beside the private and published files and half-written
    model folders, spill files of dead DuckDB processes in the temp directory, and the new key
    of a rotation that did not take effect; finishes a pending rewrite of the private file.
    Returns what was done (names only).
    """
    from churnwh.privacy import erasure, publish, rotation

    done = []
    wh = config.warehouse
    for path in publish.stale_temp_files(wh.published) + erasure.stale_rewrites(wh.private):
        path.unlink(missing_ok=True)
        done.append(path.name)
    for path in registry.stale_staging_dirs(wh.models):
        shutil.rmtree(path, ignore_errors=True)
        done.append(path.name)
    default_spill = Path(str(wh.private) + ".tmp")  # DuckDB's temp_directory unless configured
    for path in dead_spill_files(wh.temp_directory or default_spill):
        path.unlink(missing_ok=True)
        done.append(path.name)
    if default_spill.is_dir() and not any(default_spill.iterdir()):
        default_spill.rmdir()
    if config.spark.storage is None or "://" not in config.spark.storage:  # a URI: the next Spark build
        from churnwh.spark import engine as spark_engine
        from churnwh.spark.storage import open_storage

        storage = open_storage(config.spark.storage, wh.private, None)
        done += [f"Spark run folder {name}" for name in spark_engine.remove_stale_runs(storage)]
    if rotation.discard_aborted_rotation(config):
        done.append("the new key of an interrupted key rotation")
    if wh.private.exists() and erasure.finish_pending_rewrite(config):
        done.append("the pending rewrite of the private file")
    return done


_SPILL_FILE = re.compile(r"duckdb_temp_(\d+)_.*")


def dead_spill_files(folder: Path) -> list[Path]:
    """DuckDB spill files (``duckdb_temp_<pid>_...``) of processes that no longer run."""
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir()
                  if (match := _SPILL_FILE.fullmatch(path.name)) and not _alive(int(match.group(1))))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ensure_key(config: Config) -> bytes:
    """Load the pseudonym key; a demo project (or one with key.create = true) creates its key file on first use."""
    if config.key.create and config.key.env not in os.environ and not config.key.file.exists():
        keys.generate_key_file(config.key.file)
    return keys.load_key(config.key)


def demo_parameters(config: Config) -> str:
    return _demo_parameters(config.demo)


def ensure_demo(config: Config, con: duckdb.DuckDBPyConnection, *, force: bool = False,
                on_progress: Reporter = ignore) -> str:
    """Simulate the demo warehouse unless the raw tables already hold it with the same parameters;
    ``on_progress`` gets a ``Count`` of customers written (``demo.write_demo``: block by block, one block in
    memory at a time). Data that `churnwh demo-advance` moved
    on are kept (the parameters are those of the first history); a new simulation also writes the
    simulator's continuation state beside the truth and records the data end ('demo_end')."""
    parameters = demo_parameters(config)
    if not force and warehouse.get_meta(con, "demo_parameters") == parameters:
        return "demo data unchanged"
    from churnwh.sources import demo

    def report(customers: int, written) -> None:
        on_progress(Count("load", customers, config.demo.customers, "customers", "raw tables"))

    written = demo.write_demo(con, config.demo.customers, config.demo.seed, config.demo.truth,
                              start=config.demo.start, end=config.demo.end,
                              memory_limit=config.warehouse.memory_limit, on_block=report)
    faults.point("load.after_raw")
    demo.save_continuation(written.continuation, config.demo.state)
    config.demo.uplift_truth.unlink(missing_ok=True)  # a new history has no campaigns played out
    warehouse.set_meta(con, "demo_end", str(config.demo.end))
    warehouse.set_meta(con, "demo_parameters", parameters)
    return f"{config.demo.customers} demo customers, {sum(written.rows.values())} raw rows"
