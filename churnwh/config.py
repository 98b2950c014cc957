"""churnwh.toml: load, validate, and resolve paths against the project folder.

Every error names the key, the bad value and what is allowed, in one line.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from churnwh.errors import ConfigError

CONFIG_FILE = "churnwh.toml"


@dataclass(frozen=True)
class WarehouseConfig:
    private: Path
    published: Path
    models: Path
    memory_limit: str | None = None
    temp_directory: Path | None = None
    """Where DuckDB spills above memory_limit (default: ``<private file>.tmp`` beside it)."""
    threads: int | None = None


@dataclass(frozen=True)
class DemoConfig:
    customers: int
    seed: int
    start: dt.date
    end: dt.date
    truth: Path

    @property
    def state(self) -> Path:
        """The simulator's continuation state (hidden variables: never in a warehouse), beside the truth."""
        return self.truth.parent / "demo_state"

    @property
    def uplift_truth(self) -> Path:
        """The true per-customer effect of the played-out demo campaigns (never in a warehouse), beside the truth."""
        return self.truth.parent / "uplift_truth.parquet"


def demo_parameters(demo: DemoConfig) -> str:
    """The parameters that decide the simulated history (the warehouse's 'demo_parameters' meta)."""
    return json.dumps({"customers": demo.customers, "seed": demo.seed, "start": str(demo.start),
                       "end": str(demo.end)}, sort_keys=True)


def demo_data_end(demo: DemoConfig) -> dt.date:
    """The last day the demo's raw data cover: ``demo.end``, or later once `churnwh demo-advance` moved the
    business on (read from the state beside the truth, when it belongs to these parameters)."""
    path = demo.state / "state.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return demo.end
    if not isinstance(info, dict) or json.dumps(info.get("parameters"), sort_keys=True) != demo_parameters(demo):
        return demo.end
    try:
        return dt.date(1970, 1, 1) + dt.timedelta(days=int(info["released_through"]))
    except (KeyError, TypeError, ValueError, OverflowError):
        return demo.end


@dataclass(frozen=True)
class TrainingConfig:
    model: str
    scoring_model: str
    id_column: str
    label_column: str
    date_column: str
    seed: int
    promote_tolerance: float = 0.005
    keep_versions: int = 10
    """Model artifacts kept under warehouse/models: the current one and the newest N (0 = all)."""
    max_train_rows: int = 1_000_000
    """With a time split: the training part's rows (dates before validation) are a uniform, key-independent
    sample of at most this many (churnwh.stages.train.read_training_frame); validation and test rows are all
    kept. 0: every row."""
    retrain_after_days: int = 7
    """With observation dates: a model is reused while the training data changed but its as-of date is
    fewer than this many days behind the build's (settings, code, schema, erasures and objections still
    retrain at once). 0: retrain whenever the training data change."""
    objection_retrain_days: int = 0
    """A profiling objection withdraws the model versions trained on the objector at the first build whose
    as-of date is at least this many days after it (churnwh.privacy.withdrawal.withdraw_for_objections);
    the objector leaves every feature, score and published table at once either way. 0: at the first build."""
    network: dict[str, Any] = field(default_factory=dict)
    """Overrides of churnwh.ml.train.TrainConfig (epochs, hidden, k, ...)."""
    withhold_quasi_identifiers: bool = False
    """Leave quasi-identifier and sensitive columns out of the model's inputs, so no published score
    depends on them (otherwise the score itself carries some of their information)."""
    time_split: bool = True
    """False when the config says ``date_column = ""``: a stratified random split. ``date_column`` then
    keeps its default name: the sets' date column still dates each score (as_of) and is never a feature."""
    exclude: tuple[str, ...] = ()
    """Training-set columns dropped before training (the SQL models are not edited)."""
    allow_leakage: tuple[str, ...] = ()
    """Columns the leakage check lets through (the user vouches for them; recorded with the model)."""
    split_column: str = ""
    """A training-set column giving each row's part: ``train``/``test`` (``valid`` too), or a date with
    ``split_date``; "" = no declared split (a time split, or a random one without dates)."""
    split_date: dt.date | None = None
    """With a date ``split_column``: rows on or after this date are the test part."""


@dataclass(frozen=True)
class TierConfig:
    high: float
    medium: float
    mode: str = "probability"
    """'probability': high/medium are probability thresholds; 'top_fraction': they are the
    fractions of customers (ranked by probability) put in the high tier and in high+medium."""
    actions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoringConfig:
    value_column: str
    horizon_months: int
    batch_rows: int
    segments: tuple[str, ...] = ()
    """Scoring-set columns copied into churn_scores for slicing (never an identifying column)."""
    currency: str | None = None
    """The currency of value_column (and so of value_at_risk), stated in the published `about` table."""


@dataclass(frozen=True)
class KeyConfig:
    env: str
    file: Path
    create: bool = False
    """Create the key file on first use (default for the demo and the worked examples only)."""
    audit_file: Path | None = None
    """The audit-chain key file (churnwh.privacy.keys.audit_key_file); None: beside ``file``. Fixed
    when the config is read, so a key rotation's temporary key file does not move it."""


def audit_key_beside(key_file: Path) -> Path:
    """The audit-chain key file beside the pseudonym key: ``.churnwh.key`` -> ``.churnwh.audit.key``
    (a ``*.key`` ignore rule keeps both out of git)."""
    try:
        return key_file.with_suffix(".audit.key")
    except ValueError:  # a name with no stem ("/", ".."): the key file itself is refused when read
        return key_file.parent / ".churnwh.audit.key"


@dataclass(frozen=True)
class PublishConfig:
    k_anonymity: int = 5
    """Smallest group of customers a published segment (or quasi-identifier combination) may have."""


@dataclass(frozen=True)
class SourceColumn:
    name: str
    type: str
    privacy: str


@dataclass(frozen=True)
class SourceConfig:
    """One declared source, loaded by ``churnwh load`` into ``raw.<name>`` (churnwh.sources.declared)."""

    name: str
    path: str
    """As written in the config: relative to the project folder; may be a glob."""
    format: str
    columns: tuple[SourceColumn, ...]
    table: str | None = None
    delimiter: str = ","
    header: bool = True
    date_format: str | None = None
    id_column: str | None = None
    """Loaded as ``customer_id`` (what pseudonymization keys on)."""
    unique_id: bool = False
    label: str | None = None
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    allow_empty: bool = False
    """A header-only file loads as zero rows instead of being an error (e.g. consent: nobody objected)."""
    event_time: str | None = None
    """The column dating each row (its freshness is checked before scoring); None: not set, inferred
    (churnwh.sources.event_times); "": a static table (customers, plans) whose freshness is not checked."""
    max_lag_days: int | None = None
    """Days this source's data may end before the window the features read; None: [freshness] max_lag_days."""
    parts: tuple[tuple[str, str], ...] = ()
    """(part, path or glob) pairs: a source made of several files, each row's part (e.g. train, test) loaded
    into the column ``part_column``; ``path`` then defaults to the first part's."""
    part_column: str = "part"


@dataclass(frozen=True)
class RetentionConfig:
    """[retention]: the budgeted plan (churnwh.action.retention) and its controlled pilot (churnwh.action.pilot)."""

    budget: float | None = None
    cost: dict[str, float] = field(default_factory=dict)
    """Cost of one action per risk tier; a tier without a cost is never contacted."""
    success_rate: dict[str, float] = field(default_factory=lambda: {"high": 0.3, "medium": 0.15, "low": 0.0})
    """Assumed share of contacted customers of a tier who stay because of the action."""
    control_fraction: float = 0.1
    """Share of selected customers held out as the control group of a campaign."""
    pilot_days: int = 90
    """Days after its campaign date that a campaign's pilot runs: its control group is not contacted (nor
    selected by another plan) while the scores' as_of is within them."""
    uplift_min_gain: float = 0.04
    """The pilot-size rule (churnwh.ml.pilot_size): the gain over risk targeting, churn prevented per contacted
    customer, that finished pilots must be large enough to detect before the build fits an uplift model."""
    uplift_target_share: float = 0.2
    """The pilot-size rule: the share of customers a campaign contacts."""


@dataclass(frozen=True)
class MonitoringConfig:
    psi_warning: float = 0.2
    """Population stability index above which a feature's drift is a warning."""
    reference_days: int = 0
    """Training observation dates the scoring set is compared with: those within this many days before the
    latest one (0: the latest observation date only)."""
    psi_severe: float = 1.0
    """Population stability index at or above which drift is severe."""
    severe_features: int = 8
    """The build stops before publishing when the score's drift is severe or at least this many features'
    drift is (0: features alone never stop it)."""
    score_history_days: int = 180
    """Score snapshots whose as_of is within this many days before the newest are kept (0: all, forever)."""
    score_history_months: int = 24
    """Of older snapshots, the first of each calendar month within this many months is kept (0: none)."""


@dataclass(frozen=True)
class FreshnessConfig:
    """[freshness]: how far before the features' window (up to the day before as_of) a source may end."""

    max_lag_days: int = 7
    source_max_lag_days: dict[str, int] = field(default_factory=dict)
    """Per-source tolerances by source name (demo tables included); a declared source's own max_lag_days wins."""


@dataclass(frozen=True)
class ExplainConfig:
    actionable: tuple[str, ...] = ()
    """Features (names or glob patterns) the per-customer reasons may list, whatever their name says."""
    not_actionable: tuple[str, ...] = ()
    """Features (names or glob patterns) summed into the customer profile instead of listed as reasons."""
    sample_customers: int = 20_000
    """Scored customers outside the acted-on tiers and campaigns explained too: a uniform, key-independent
    sample of this many scored customers (churnwh.stages.explain.explained_rows_sql), over which the global
    importance is averaged. Everyone is explained when there are no more scored customers than this."""
    reuse_days: int = 0
    """An acted-on customer outside the sample keeps reasons from an earlier build at most this many days old
    when the model version is the same and their churn probability moved by at most
    ``churnwh.stages.explain.REUSE_TOLERANCE`` since (churnwh.stages.explain.reuse_reasons). 0: never."""


@dataclass(frozen=True)
class SparkConfig:
    """[spark]: the engine of ``churnwh build --engine spark`` (churnwh.spark.engine)."""

    master: str = "local[2]"
    """The master when ``--master`` is not given."""
    storage: str | None = None
    """Where Spark reads and writes its Parquet: a folder every node sees at the same path, or a URI
    (``hdfs://``, ``s3a://``, ``file://``...); None: ``spark/`` beside the private file (local masters)."""
    connect_timeout_s: int = 30
    """Seconds a session may take to start and register with its master before the build stops."""
    shuffle_partitions: int | None = None
    """``spark.sql.shuffle.partitions``; None: 4 on a local master, Spark's default elsewhere."""
    training_rows: int = 5_000_000
    """The most training-set rows brought to the driver (the network trains on one machine); above it, a
    sample of whole customers of about this many rows."""
    conf: dict[str, str] = field(default_factory=dict)
    """Any Spark configuration, passed to the session as it is (it wins over churnwh's defaults)."""


@dataclass(frozen=True)
class Config:
    root: Path
    warehouse: WarehouseConfig
    sql: Path
    source: str
    demo: DemoConfig
    training: TrainingConfig
    tiers: TierConfig
    scoring: ScoringConfig
    key: KeyConfig
    variables: dict[str, Any] = field(default_factory=dict)
    publish: PublishConfig = field(default_factory=PublishConfig)
    sources: tuple[SourceConfig, ...] = ()
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    monitoring: MonitoringConfig = field(default_factory=MonitoringConfig)
    freshness: FreshnessConfig = field(default_factory=FreshnessConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    spark: SparkConfig = field(default_factory=SparkConfig)


DEFAULT_VARIABLES: dict[str, Any] = {
    "as_of": dt.date(2026, 1, 1),
    "history_start": dt.date(2023, 1, 1),
    "observation_months": 1,
    "min_history_days": 180,
    "lead_days": 14,
    "label_window_days": 90,
    "churn_gap_days": 30,
}

SOURCES = ("demo", "events", "flat")
SOURCE_FORMATS = ("csv", "parquet", "duckdb")
SOURCE_TYPES = ("VARCHAR", "BIGINT", "INTEGER", "DOUBLE", "BOOLEAN", "DATE", "TIMESTAMP")
SOURCE_CLASSES = ("direct_identifier", "quasi_identifier", "sensitive", "pseudonym", "plain")
SOURCE_KEYS = {"path", "format", "table", "delimiter", "header", "date_format", "id_column", "unique_id", "label",
               "positive", "negative", "columns", "allow_empty", "event_time", "max_lag_days", "parts",
               "part_column"}
SOURCE_COLUMN_KEYS = {"type", "class"}
TIER_MODES = ("probability", "top_fraction")
SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "warehouse": ("private", "published", "models", "memory_limit", "temp_directory", "threads"),
    "sql": ("path",),
    "source": ("kind",),
    "demo": ("customers", "seed", "start", "end", "truth"),
    "training": ("model", "scoring_model", "id_column", "label_column", "date_column", "seed", "promote_tolerance",
                 "keep_versions", "max_train_rows", "retrain_after_days", "objection_retrain_days",
                 "withhold_quasi_identifiers", "exclude",
                 "allow_leakage", "split_column", "split_date"),
    "tiers": ("high", "medium", "mode", "actions"),
    "scoring": ("value_column", "horizon_months", "batch_rows", "segments", "currency"),
    "key": ("env", "file", "create"),
    "publish": ("k_anonymity",),
    "retention": ("budget", "cost", "success_rate", "control_fraction", "pilot_days", "uplift_min_gain",
                  "uplift_target_share"),
    "monitoring": ("psi_warning", "reference_days", "psi_severe", "severe_features", "score_history_days",
                   "score_history_months"),
    "freshness": ("max_lag_days", "source_max_lag_days"),
    "explain": ("actionable", "not_actionable", "sample_customers", "reuse_days"),
    "spark": ("master", "storage", "connect_timeout_s", "shuffle_partitions", "training_rows", "conf"),
}
"""The keys each fixed section accepts (docs/configuration.md is generated from this: churnwh.config_reference)."""
OPEN_SECTIONS = ("sources", "network", "vars")
"""Sections whose keys are names: [sources.NAME] (SOURCE_KEYS), [network] (TrainConfig fields), [vars]."""
DEMO_SEGMENTS = ("current_plan", "acquisition_channel", "tenure_band")
SCORE_COLUMNS = ("customer_pseudonym", "as_of", "churn_probability", "risk_tier", "action", "value_at_risk",
                 "priority_rank", "model_version", "run_id", "scored_in_sample", "contactable", "campaign_group")
"""The columns churn_scores always has (a segment may not take one of these names)."""
DEFAULT_ACTIONS = {
    "high": "retain now: personal retention offer",
    "medium": "enhanced care: proactive check-in",
    "low": "normal service: no contact",
}


def column_list(reader: "_Reader", section: dict[str, Any], key: str) -> tuple[str, ...]:
    """A list of training-set column names (``training.exclude``, ``training.allow_leakage``)."""
    value = section.get(key.split(".")[-1], [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise reader.fail(key, value, 'a list of training-set column names, e.g. ["churn_score"]')
    return tuple(dict.fromkeys(value))


def network_overrides(section: dict[str, Any], origin: str) -> dict[str, Any]:
    """[network] keys must be TrainConfig fields with a value of the field's type."""
    if not section:
        return {}
    from dataclasses import fields

    from churnwh.ml.settings import TrainConfig

    types = {f.name: type(getattr(TrainConfig(), f.name)) for f in fields(TrainConfig)}
    for name, value in section.items():
        if name not in types:
            raise ConfigError(f"{origin}: unknown key 'network.{name}': allowed are {', '.join(sorted(types))}")
        expected = types[name]
        ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise ConfigError(
                f"{origin}: network.{name} = {value!r} is not allowed: a {expected.__name__} like the default"
            )
    return dict(section)


def load_config(root: Path) -> Config:
    """Read and validate ``churnwh.toml`` in ``root``; a missing file means all defaults."""
    root = root.resolve()
    if not root.is_dir():
        raise ConfigError(f"project folder {root} does not exist: pass an existing folder to --project")
    path = root / CONFIG_FILE
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: {err}: fix the TOML syntax") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: not UTF-8 text: save the file as UTF-8") from None
    return parse_config(raw, root, str(path))


def parse_config(raw: dict[str, Any], root: Path, origin: str = CONFIG_FILE) -> Config:
    reader = _Reader(raw, origin)
    reader.reject_unknown("", raw, {*SECTION_KEYS, *OPEN_SECTIONS})

    wh = reader.section("warehouse", set(SECTION_KEYS["warehouse"]))
    memory_limit = reader.optional_string(wh, "warehouse.memory_limit")
    if memory_limit is not None and not re.fullmatch(r"\s*\d+(\.\d+)?\s*([KMGT]i?B|B)\s*", memory_limit, re.I):
        raise reader.fail("warehouse.memory_limit", memory_limit, "a size such as '4GB' or '512MB'")
    temp_directory = reader.optional_string(wh, "warehouse.temp_directory")
    warehouse = WarehouseConfig(
        private=root / reader.string(wh, "warehouse.private", "warehouse/private.duckdb"),
        published=root / reader.string(wh, "warehouse.published", "warehouse/churn.duckdb"),
        models=root / reader.string(wh, "warehouse.models", "warehouse/models"),
        memory_limit=memory_limit,
        temp_directory=root / temp_directory if temp_directory else None,
        threads=reader.integer(wh, "warehouse.threads", 0, 1) if "threads" in wh else None,
    )
    for key, path, example in (("warehouse.private", warehouse.private, "warehouse/private.duckdb"),
                               ("warehouse.published", warehouse.published, "warehouse/churn.duckdb")):
        if path.resolve().name in ("", "..") or path.resolve().is_dir():
            raise reader.fail(key, wh.get(key.split(".")[1]), f"a file path such as '{example}' (this is a folder)")
    if warehouse.private.resolve() == warehouse.published.resolve():
        raise ConfigError(
            f"{origin}: warehouse.private and warehouse.published are the same file: "
            "the published file must be a separate file"
        )

    sql = reader.section("sql", set(SECTION_KEYS["sql"]))
    source = reader.section("source", set(SECTION_KEYS["source"]))
    kind = reader.string(source, "source.kind", "demo")
    if kind not in SOURCES:
        raise ConfigError(f"{origin}: source.kind = {kind!r} is not allowed: use one of {', '.join(SOURCES)}")
    declared = parse_sources(reader, reader.section("sources", None), kind)

    demo = reader.section("demo", set(SECTION_KEYS["demo"]))
    demo_config = DemoConfig(
        customers=reader.integer(demo, "demo.customers", 5000, minimum=10, maximum=50_000_000),
        seed=reader.integer(demo, "demo.seed", 7, minimum=0),
        start=reader.date(demo, "demo.start", dt.date(2023, 1, 1)),
        end=reader.date(demo, "demo.end", dt.date(2025, 12, 31)),
        truth=root / reader.string(demo, "demo.truth", "warehouse/demo_truth.parquet"),
    )
    if demo_config.end <= demo_config.start:
        raise ConfigError(f"{origin}: demo.end = {demo_config.end} is not after demo.start = {demo_config.start}")

    tr = reader.section("training", set(SECTION_KEYS["training"]))
    if not isinstance(tr.get("withhold_quasi_identifiers", False), bool):
        raise reader.fail("training.withhold_quasi_identifiers", tr["withhold_quasi_identifiers"], "true or false")
    training = TrainingConfig(
        model=reader.string(tr, "training.model", "marts.training_set"),
        scoring_model=reader.string(tr, "training.scoring_model", "marts.scoring_set"),
        id_column=reader.string(tr, "training.id_column", "customer_pseudonym"),
        label_column=reader.string(tr, "training.label_column", "churned"),
        # "": no time, a stratified random split; the column keeps its default name (it dates the scores)
        date_column="observation_date" if tr.get("date_column") == "" else
        reader.string(tr, "training.date_column", "observation_date"),
        time_split=tr.get("date_column") != "",
        exclude=column_list(reader, tr, "training.exclude"),
        allow_leakage=column_list(reader, tr, "training.allow_leakage"),
        seed=reader.integer(tr, "training.seed", 0, minimum=0),
        promote_tolerance=reader.number(tr, "training.promote_tolerance", 0.005, minimum=0.0, maximum=1.0),
        keep_versions=reader.integer(tr, "training.keep_versions", 10, minimum=0),
        max_train_rows=reader.integer(tr, "training.max_train_rows", 1_000_000, minimum=0),
        retrain_after_days=reader.integer(tr, "training.retrain_after_days", 7, minimum=0),
        objection_retrain_days=reader.integer(tr, "training.objection_retrain_days", 0, minimum=0),
        network=network_overrides(reader.section("network", None), origin),
        withhold_quasi_identifiers=tr.get("withhold_quasi_identifiers", False),
        split_column=reader.string(tr, "training.split_column", "-") if tr.get("split_column", "") != "" else "",
        split_date=reader.date(tr, "training.split_date", dt.date.min) if "split_date" in tr else None,
    )
    for key, name in (("training.model", training.model), ("training.scoring_model", training.scoring_model)):
        if name.count(".") != 1:
            raise ConfigError(f"{origin}: {key} = {name!r} is not allowed: name a model as schema.table")

    tiers_section = reader.section("tiers", set(SECTION_KEYS["tiers"]))
    mode = reader.string(tiers_section, "tiers.mode", "probability")
    if mode not in TIER_MODES:
        raise reader.fail("tiers.mode", mode, f"one of {', '.join(TIER_MODES)}")
    actions = {**DEFAULT_ACTIONS, **reader.section_of(tiers_section, "tiers.actions", set(DEFAULT_ACTIONS))}
    for tier, action in actions.items():
        reader.string(actions, f"tiers.actions.{tier}", "")
    tiers = TierConfig(
        high=reader.fraction(tiers_section, "tiers.high", 0.5),
        medium=reader.fraction(tiers_section, "tiers.medium", 0.2),
        mode=mode,
        actions=actions,
    )
    if mode == "probability" and tiers.medium >= tiers.high:
        raise ConfigError(f"{origin}: tiers.medium = {tiers.medium} must be below tiers.high = {tiers.high}")
    if mode == "top_fraction" and tiers.medium <= tiers.high:
        raise ConfigError(
            f"{origin}: with tiers.mode = 'top_fraction', tiers.medium = {tiers.medium} (the share in high or "
            f"medium) must be above tiers.high = {tiers.high}"
        )

    sc = reader.section("scoring", set(SECTION_KEYS["scoring"]))
    currency = reader.optional_string(sc, "scoring.currency")
    if currency is not None and (len(currency) > 20 or not currency.isprintable()):
        raise reader.fail("scoring.currency", currency, "a currency code such as 'EUR' (at most 20 characters)")
    scoring = ScoringConfig(
        value_column=reader.string(sc, "scoring.value_column", "monthly_price"),
        horizon_months=reader.integer(sc, "scoring.horizon_months", 12, minimum=1, maximum=120),
        batch_rows=reader.integer(sc, "scoring.batch_rows", 65536, minimum=256, maximum=10_000_000),
        segments=parse_segments(reader, sc, kind, declared),
        currency=currency,
    )

    key = reader.section("key", set(SECTION_KEYS["key"]))
    pub = reader.section("publish", set(SECTION_KEYS["publish"]))
    publish_config = PublishConfig(k_anonymity=reader.integer(pub, "publish.k_anonymity", 5, minimum=1, maximum=1_000_000))

    key_config = KeyConfig(
        env=reader.string(key, "key.env", "CHURNWH_KEY"),
        file=root / reader.string(key, "key.file", ".churnwh.key"),
        create=key.get("create", kind == "demo"),
        audit_file=audit_key_beside(root / reader.string(key, "key.file", ".churnwh.key")),
    )
    if not isinstance(key_config.create, bool):
        raise reader.fail("key.create", key_config.create, "true or false")

    variables = dict(DEFAULT_VARIABLES)
    for name, value in reader.section("vars", None).items():
        variables[name] = reader.variable(name, value)
    if kind == "demo" and "as_of" not in raw.get("vars", {}):
        # the day after the data end: demo.end, or the end `churnwh demo-advance` moved the data to
        variables["as_of"] = demo_data_end(demo_config) + dt.timedelta(days=1)
    if kind == "demo" and "history_start" not in raw.get("vars", {}):
        variables["history_start"] = demo_config.start
    # One k everywhere: the SQL models suppress with the same value the publish check enforces.
    if "k_anonymity" in raw.get("vars", {}):
        raise reader.fail("vars.k_anonymity", raw["vars"]["k_anonymity"],
                          "set [publish] k_anonymity instead (the SQL models read that value)")
    variables["k_anonymity"] = publish_config.k_anonymity

    ret = reader.section("retention", set(SECTION_KEYS["retention"]))
    tiers_known = {"high", "medium", "low"}
    costs = reader.section_of(ret, "retention.cost", tiers_known)
    rates = {**RetentionConfig().success_rate, **reader.section_of(ret, "retention.success_rate", tiers_known)}
    retention = RetentionConfig(
        budget=reader.number(ret, "retention.budget", 0.0, minimum=1e-9, maximum=1e15) if "budget" in ret else None,
        cost={tier: reader.number(costs, f"retention.cost.{tier}", 0.0, minimum=0.0, maximum=1e12) for tier in costs},
        success_rate={tier: reader.number(rates, f"retention.success_rate.{tier}", 0.0, minimum=0.0, maximum=1.0)
                      for tier in rates},
        control_fraction=reader.fraction(ret, "retention.control_fraction", 0.1),
        pilot_days=reader.integer(ret, "retention.pilot_days", 90, minimum=1, maximum=3660),
        uplift_min_gain=reader.number(ret, "retention.uplift_min_gain", 0.04, minimum=0.001, maximum=1.0),
        uplift_target_share=reader.fraction(ret, "retention.uplift_target_share", 0.2),
    )
    mon = reader.section("monitoring", set(SECTION_KEYS["monitoring"]))
    monitoring = MonitoringConfig(
        psi_warning=reader.number(mon, "monitoring.psi_warning", 0.2, minimum=0.0, maximum=100.0),
        reference_days=reader.integer(mon, "monitoring.reference_days", 0, minimum=0, maximum=36600),
        psi_severe=reader.number(mon, "monitoring.psi_severe", 1.0, minimum=0.0, maximum=100.0),
        severe_features=reader.integer(mon, "monitoring.severe_features", 8, minimum=0, maximum=100000),
        score_history_days=reader.integer(mon, "monitoring.score_history_days", 180, minimum=0, maximum=36600),
        score_history_months=reader.integer(mon, "monitoring.score_history_months", 24, minimum=0, maximum=1200),
    )
    fresh = reader.section("freshness", set(SECTION_KEYS["freshness"]))
    per_source = fresh.get("source_max_lag_days", {})
    if not isinstance(per_source, dict):
        raise reader.fail("freshness.source_max_lag_days", per_source, "a table of source name = days, "
                          "e.g. { email_events = 31 }")
    freshness = FreshnessConfig(
        max_lag_days=reader.integer(fresh, "freshness.max_lag_days", 7, minimum=0, maximum=36600),
        source_max_lag_days={name: _days(reader, f"freshness.source_max_lag_days.{name}", days)
                             for name, days in per_source.items()},
    )
    unknown = sorted(set(freshness.source_max_lag_days) - {source.name for source in declared}) if declared else []
    if unknown:
        raise ConfigError(f"{origin}: freshness.source_max_lag_days names {unknown[0]!r}, which is no declared source: "
                          f"use one of {', '.join(source.name for source in declared)}")

    explain = parse_explain(reader, reader.section("explain", set(SECTION_KEYS["explain"])))
    spark = parse_spark(reader, reader.section("spark", set(SECTION_KEYS["spark"])), root)

    return Config(
        root=root,
        warehouse=warehouse,
        sql=root / reader.string(sql, "sql.path", "sql"),
        source=kind,
        demo=demo_config,
        training=training,
        tiers=tiers,
        scoring=scoring,
        publish=publish_config,
        key=key_config,
        variables=variables,
        sources=declared,
        retention=retention,
        monitoring=monitoring,
        freshness=freshness,
        explain=explain,
        spark=spark,
    )


SPARK_MASTERS = ("local", "spark://", "sc://", "yarn", "k8s://")


def parse_spark(reader: "_Reader", section: dict[str, Any], root: Path) -> SparkConfig:
    """[spark]: master, storage, connect timeout, shuffle partitions and any Spark conf as strings."""
    master = reader.string(section, "spark.master", SparkConfig.master)
    if not master.startswith(SPARK_MASTERS):
        raise reader.fail("spark.master", master, "local[N], spark://host:7077, yarn, k8s://https://host:443 or "
                          "sc://host:15002")
    storage = reader.optional_string(section, "spark.storage")
    if storage is not None and "://" not in storage:
        # a plain path: relative ones are the project's, so every node must mount it at the same place
        storage = str((root / storage).resolve())
    conf = section.get("conf", {})
    if not isinstance(conf, dict):
        raise reader.fail("spark.conf", conf, 'a table of Spark settings, e.g. { "spark.executor.memory" = "4g" }')
    conf = _dotted(conf)  # an unquoted spark.executor.memory = "4g" is a nested table in TOML
    for name, value in conf.items():
        if not name.startswith("spark.") or isinstance(value, (dict, list)):
            raise reader.fail(f"spark.conf.{name}", value, 'a Spark setting whose name starts with "spark." and '
                              'whose value is a string, number or boolean, e.g. "spark.executor.memory" = "4g"')
    return SparkConfig(
        master=master,
        storage=storage,
        connect_timeout_s=reader.integer(section, "spark.connect_timeout_s", 30, minimum=1, maximum=3600),
        shuffle_partitions=reader.integer(section, "spark.shuffle_partitions", 0, minimum=1, maximum=1_000_000)
        if "shuffle_partitions" in section else None,
        training_rows=reader.integer(section, "spark.training_rows", SparkConfig.training_rows, minimum=1000,
                                     maximum=10_000_000_000),
        conf={name: str(value).lower() if isinstance(value, bool) else str(value) for name, value in conf.items()},
    )


def _dotted(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, value in table.items():
        if isinstance(value, dict):
            flat.update(_dotted(value, f"{prefix}{name}."))
        else:
            flat[f"{prefix}{name}"] = value
    return flat


def parse_segments(reader: "_Reader", section: dict[str, Any], kind: str,
                   declared: tuple["SourceConfig", ...]) -> tuple[str, ...]:
    """[scoring] segments: scoring-set column names, none of them identifying (refused in one line)."""
    if "segments" not in section:
        return DEMO_SEGMENTS if kind == "demo" else ()
    value = section["segments"]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise reader.fail("scoring.segments", value, 'a list of scoring-set column names, e.g. ["current_plan"]')
    classes = {column.name: column.privacy for source in declared for column in source.columns}
    for name in value:
        if not name.isidentifier():
            raise reader.fail("scoring.segments", name, "column names of letters, digits and _")
        if name in SCORE_COLUMNS:
            raise ConfigError(f"{reader.origin}: scoring.segments names {name!r}, a column churn_scores always has: "
                              "remove it from scoring.segments")
        if classes.get(name) in IDENTIFYING_CLASSES:
            raise ConfigError(f"{reader.origin}: scoring.segments names {name!r}, classified {classes[name]}: "
                              "segments are published per customer, so use a non-identifying column")
    if len(set(value)) != len(value):
        raise reader.fail("scoring.segments", value, "each column once")
    return tuple(value)


def parse_explain(reader: "_Reader", section: dict[str, Any]) -> ExplainConfig:
    """[explain] actionable / not_actionable: lists of feature names or glob patterns, none in both;
    sample_customers: a whole number of 1 or more; reuse_days: 0 or more."""
    lists = {}
    for key in ("actionable", "not_actionable"):
        value = section.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise reader.fail(f"explain.{key}", value, 'a list of feature names or glob patterns, e.g. ["tenure_days"]')
        lists[key] = tuple(dict.fromkeys(value))
    both = sorted(set(lists["actionable"]) & set(lists["not_actionable"]))
    if both:
        raise ConfigError(f"{reader.origin}: explain.actionable and explain.not_actionable both list {both[0]!r}: "
                          "keep it in one of them")
    sample = reader.integer(section, "explain.sample_customers", ExplainConfig.sample_customers, 1)
    reuse = reader.integer(section, "explain.reuse_days", ExplainConfig.reuse_days, 0)
    return ExplainConfig(**lists, sample_customers=sample, reuse_days=reuse)


IDENTIFYING_CLASSES = ("direct_identifier", "quasi_identifier", "sensitive")


def parse_sources(reader: "_Reader", table: dict[str, Any], kind: str) -> tuple[SourceConfig, ...]:
    """[sources.NAME] tables: where each source is, its format, and every column's type and class."""
    if kind == "demo":
        if table:
            raise ConfigError(f"{reader.origin}: [sources] are declared but source.kind = 'demo': "
                              "set source.kind = 'flat' or 'events' to load them")
        return ()
    if not table:
        raise ConfigError(f"{reader.origin}: source.kind = {kind!r} needs at least one [sources.NAME] table: "
                          "declare where your data is (see `churnwh init`)")
    result = []
    for name, body in table.items():
        key = f"sources.{name}"
        if not isinstance(body, dict):
            raise reader.fail(key, body, f"[{key}] must be a table")
        if not name.isidentifier() or name.lower() != name:
            raise ConfigError(f"{reader.origin}: source name {name!r} is not allowed: use lower-case letters, "
                              "digits and _ (it becomes the table raw.NAME)")
        if name == "customer_keys":
            raise ConfigError(f"{reader.origin}: source name 'customer_keys' is reserved for pseudonyms: rename it")
        reader.reject_unknown(key, body, SOURCE_KEYS)
        parts = _parts(reader, body, key)
        path = reader.string(body, f"{key}.path", parts[0][1] if parts else "")
        default_format = "parquet" if path.lower().endswith(".parquet") else (
            "duckdb" if path.lower().endswith((".duckdb", ".db")) else "csv")
        fmt = reader.string(body, f"{key}.format", default_format)
        if fmt not in SOURCE_FORMATS:
            raise reader.fail(f"{key}.format", fmt, f"one of {', '.join(SOURCE_FORMATS)}")
        columns_table = body.get("columns")
        if not isinstance(columns_table, dict) or not columns_table:
            raise ConfigError(f"{reader.origin}: {key}.columns is missing: declare every column as "
                              "NAME = { type = \"VARCHAR\", class = \"plain\" }")
        columns = []
        for column, spec in columns_table.items():
            ckey = f"{key}.columns.{column}"
            if isinstance(spec, str):
                spec = {"type": spec}
            if not isinstance(spec, dict):
                raise reader.fail(ckey, spec, '{ type = "VARCHAR", class = "plain" }')
            reader.reject_unknown(ckey, spec, SOURCE_COLUMN_KEYS)
            ctype = reader.string(spec, f"{ckey}.type", "VARCHAR").upper()
            if ctype not in SOURCE_TYPES:
                raise reader.fail(f"{ckey}.type", spec.get("type"), f"one of {', '.join(SOURCE_TYPES)}")
            if "class" not in spec:
                raise ConfigError(f"{reader.origin}: {ckey}.class is missing: classify the column as one of "
                                  f"{', '.join(SOURCE_CLASSES)}")
            cclass = reader.string(spec, f"{ckey}.class", "plain")
            if cclass not in SOURCE_CLASSES:
                raise reader.fail(f"{ckey}.class", cclass, f"one of {', '.join(SOURCE_CLASSES)}")
            columns.append(SourceColumn(column, ctype, cclass))
        names = [column.name for column in columns]

        def declared_column(option: str) -> str | None:
            value = reader.optional_string(body, f"{key}.{option}")
            if option == "id_column" and value == "@row":  # no id in the file: the row's number (sources.declared)
                return value
            if value is not None and value not in names:
                raise ConfigError(f"{reader.origin}: {key}.{option} = {value!r} is not a declared column: "
                                  f"declare it in [{key}.columns]")
            return value

        def values(option: str) -> tuple[str, ...]:
            value = body.get(option, [])
            if not isinstance(value, list) or not all(isinstance(v, (str, int, bool)) for v in value):
                raise reader.fail(f"{key}.{option}", value, "a list of values, e.g. [\"Yes\"] or [1]")
            return tuple(str(int(v)) if isinstance(v, bool) else str(v) for v in value)

        id_column = declared_column("id_column")
        if id_column is None and "customer_id" in names:
            id_column = "customer_id"
        label = declared_column("label")
        positive, negative = values("positive"), values("negative")
        if label and (not positive or not negative):
            raise ConfigError(f"{reader.origin}: {key}.label = {label!r} needs both {key}.positive and "
                              f"{key}.negative: the values meaning churned and not churned")
        unique = body.get("unique_id", label is not None)
        if not isinstance(unique, bool):
            raise reader.fail(f"{key}.unique_id", unique, "true or false")
        allow_empty = body.get("allow_empty", False)
        if not isinstance(allow_empty, bool):
            raise reader.fail(f"{key}.allow_empty", allow_empty, "true or false")
        if allow_empty and label is not None:
            raise ConfigError(f"{reader.origin}: {key}.allow_empty = true but {key} is the labelled customer table: "
                              "it needs customers; remove allow_empty")
        event_time = body.get("event_time")
        if event_time is not None:
            if not isinstance(event_time, str):
                raise reader.fail(f"{key}.event_time", event_time, 'a declared DATE or TIMESTAMP column, or "" for a '
                                  "static table")
            types = {column.name: column.type for column in columns}
            if event_time and event_time not in types:
                raise ConfigError(f"{reader.origin}: {key}.event_time = {event_time!r} is not a declared column of "
                                  f"source {name}: name one of its DATE or TIMESTAMP columns (declared in "
                                  f"[{key}.columns]), or set event_time = \"\" for a static table")
            if event_time and types[event_time] not in ("DATE", "TIMESTAMP"):
                raise ConfigError(f"{reader.origin}: {key}.event_time = {event_time!r} names a column of type "
                                  f"{types[event_time]} in source {name}: the event time must be a DATE or TIMESTAMP "
                                  "column")
        max_lag = reader.integer(body, f"{key}.max_lag_days", 0, minimum=0, maximum=36600) \
            if "max_lag_days" in body else None
        header = body.get("header", True)
        if not isinstance(header, bool):
            raise reader.fail(f"{key}.header", header, "true or false")
        delimiter = body.get("delimiter", ",")
        if not isinstance(delimiter, str) or len(delimiter) != 1:
            raise reader.fail(f"{key}.delimiter", delimiter, "one character, e.g. \",\" or \";\" (\"\\t\" for tab)")
        if fmt == "duckdb" and "table" not in body:
            raise ConfigError(f"{reader.origin}: {key}.table is missing: name the table in the DuckDB file, "
                              "e.g. table = \"main.customers\"")
        part_column = reader.string(body, f"{key}.part_column", "part")
        if parts and part_column in names:
            raise ConfigError(f"{reader.origin}: {key}.part_column = {part_column!r} is also a column of the files: "
                              "name the part column differently (part_column = \"file_part\")")
        result.append(SourceConfig(
            parts=parts, part_column=part_column,
            name=name, path=path, format=fmt, columns=tuple(columns),
            table=reader.optional_string(body, f"{key}.table"), delimiter=delimiter, header=header,
            date_format=_date_format(reader, body, f"{key}.date_format"), id_column=id_column,
            unique_id=unique, label=label, positive=positive, negative=negative, allow_empty=allow_empty,
            event_time=event_time, max_lag_days=max_lag,
        ))
    if kind == "flat":
        labelled = [source.name for source in result if source.label]
        if len(labelled) != 1:
            raise ConfigError(f"{reader.origin}: source.kind = 'flat' needs exactly one source with a label "
                              f"(found {len(labelled)}): set label, positive and negative on the customer table")
    return tuple(result)


def _days(reader: "_Reader", key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 36600:
        raise reader.fail(key, value, "a whole number of days from 0 to 36600")
    return value


def _parts(reader: "_Reader", body: dict[str, Any], key: str) -> tuple[tuple[str, str], ...]:
    """``parts = { train = "data/train.csv", test = "data/test.csv" }``: part names and their files."""
    value = body.get("parts", {})
    if not isinstance(value, dict) or not all(isinstance(v, str) and v for v in value.values()):
        raise reader.fail(f"{key}.parts", value, '{ train = "data/train.csv", test = "data/test.csv" }')
    for part in value:
        if not part.isidentifier():
            raise ConfigError(f"{reader.origin}: {key}.parts: the part name {part!r} is not allowed: use letters, "
                              "digits and _ (e.g. train, test)")
    if value and "path" in body:
        raise ConfigError(f"{reader.origin}: {key} has both path and parts: list every file under parts "
                          "and remove path")
    return tuple(value.items())


def _date_format(reader: "_Reader", body: dict[str, Any], key: str) -> str | None:
    """A strptime format DuckDB accepts (checked here, so a bad one is a config error naming the key)."""
    value = reader.optional_string(body, key)
    if value is not None:
        import duckdb

        try:
            with duckdb.connect() as con:
                con.execute("SELECT try_strptime('2024-01-31', ?)", [value])
        except duckdb.Error as err:
            reason = str(err).split("Error: ", 1)[-1].splitlines()[0]
            raise reader.fail(key, value, f"a strptime format such as '%d/%m/%Y' ({reason})") from None
    return value


def _reserved_words() -> frozenset[str]:
    """DuckDB's reserved words: a variable of that name cannot be SET without quoting."""
    global _RESERVED
    if _RESERVED is None:
        import duckdb

        with duckdb.connect() as con:
            _RESERVED = frozenset(row[0].lower() for row in con.execute(
                "SELECT keyword_name FROM duckdb_keywords() WHERE keyword_category IN ('reserved', 'type_function')"
            ).fetchall())
    return _RESERVED


_RESERVED: frozenset[str] | None = None


class _Reader:
    """Typed access to a parsed TOML dict, raising ConfigError with the key's dotted name."""

    def __init__(self, raw: dict[str, Any], origin: str):
        self.raw = raw
        self.origin = origin

    def fail(self, key: str, value: Any, allowed: str) -> ConfigError:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return ConfigError(f"{self.origin}: {key} = {shown} is not allowed: {allowed}")

    def reject_unknown(self, prefix: str, table: dict[str, Any], known: set[str]) -> None:
        for name in table:
            if name not in known:
                where = f"{prefix}.{name}" if prefix else name
                close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ConfigError(
                    f"{self.origin}: unknown key {where!r}: {hint}allowed here are {', '.join(sorted(known))}"
                )

    def section(self, name: str, known: set[str] | None) -> dict[str, Any]:
        value = self.raw.get(name, {})
        if not isinstance(value, dict):
            raise self.fail(name, value, f"[{name}] must be a table (a [{name}] section)")
        if known is not None:
            self.reject_unknown(name, value, known)
        return value

    def string(self, table: dict[str, Any], key: str, default: str) -> str:
        value = table.get(key.split(".")[-1], default)
        if not isinstance(value, str) or not value.strip() or "\x00" in value:
            raise self.fail(key, value, "a non-empty string without NUL characters")
        return value

    def optional_string(self, table: dict[str, Any], key: str) -> str | None:
        if key.split(".")[-1] not in table:
            return None
        return self.string(table, key, "")

    def integer(self, table: dict[str, Any], key: str, default: int, minimum: int, maximum: int | None = None) -> int:
        value = table.get(key.split(".")[-1], default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
            maximum is not None and value > maximum
        ):
            upper = f" and at most {maximum}" if maximum is not None else ""
            raise self.fail(key, value, f"an integer of at least {minimum}{upper}")
        return value

    def number(self, table: dict[str, Any], key: str, default: float, minimum: float, maximum: float) -> float:
        value = table.get(key.split(".")[-1], default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not minimum <= value <= maximum:
            raise self.fail(key, value, f"a number from {minimum} to {maximum}")
        return float(value)

    def section_of(self, table: dict[str, Any], key: str, known: set[str]) -> dict[str, Any]:
        value = table.get(key.split(".")[-1], {})
        if not isinstance(value, dict):
            raise self.fail(key, value, "a table of tier = action text")
        self.reject_unknown(key, value, known)
        return value

    def fraction(self, table: dict[str, Any], key: str, default: float) -> float:
        value = table.get(key.split(".")[-1], default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
            raise self.fail(key, value, "a number between 0 and 1 (exclusive)")
        return float(value)

    def date(self, table: dict[str, Any], key: str, default: dt.date) -> dt.date:
        value = table.get(key.split(".")[-1], default)
        if isinstance(value, dt.datetime):
            value = value.date()
        if isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value)
            except ValueError:
                raise self.fail(key, value, "a date as YYYY-MM-DD") from None
        if not isinstance(value, dt.date):
            raise self.fail(key, value, "a date as YYYY-MM-DD")
        return value

    def variable(self, name: str, value: Any) -> Any:
        """A [vars] entry; the whole name (a quoted TOML key may hold dots, spaces, SQL) must be a plain
        ASCII identifier, because it becomes SQL text in ``SET VARIABLE name = ?``."""
        key = f"vars.{name}"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError(f"{self.origin}: [vars] name {name[:40]!r} is not allowed: use ASCII letters, digits "
                              "and _, starting with a letter or _")
        if name.lower() in _reserved_words():
            raise ConfigError(f"{self.origin}: variable name {name!r} is a reserved SQL word: rename it, "
                              f"e.g. {name}_value")
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, str) and name in ("as_of", "history_start"):
            return self.date({name: value}, key, dt.date.today())
        if isinstance(value, (bool, int, float, str, dt.date)):
            return value
        raise self.fail(key, value, "a string, number, boolean or date")
