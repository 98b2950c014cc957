"""churnwh.toml: load, validate, and resolve paths against the project folder.

Every error names the key, the bad value and what is allowed, in one line.
"""

from __future__ import annotations

import datetime as dt
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


@dataclass(frozen=True)
class DemoConfig:
    customers: int
    seed: int
    start: dt.date
    end: dt.date
    truth: Path


@dataclass(frozen=True)
class TrainingConfig:
    model: str
    scoring_model: str
    id_column: str
    label_column: str
    date_column: str
    seed: int
    promote_tolerance: float = 0.005
    network: dict[str, Any] = field(default_factory=dict)
    """Overrides of churnwh.train.TrainConfig (epochs, hidden, k, ...)."""


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


@dataclass(frozen=True)
class KeyConfig:
    env: str
    file: Path


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


DEFAULT_VARIABLES: dict[str, Any] = {
    "as_of": dt.date(2026, 1, 1),
    "history_start": dt.date(2023, 1, 1),
    "observation_months": 1,
    "min_history_days": 180,
    "lead_days": 14,
    "label_window_days": 90,
    "churn_gap_days": 30,
}

SOURCES = ("demo",)
TIER_MODES = ("probability", "top_fraction")
DEFAULT_ACTIONS = {
    "high": "retain now: personal retention offer",
    "medium": "enhanced care: proactive check-in",
    "low": "normal service: no contact",
}


def network_overrides(section: dict[str, Any], origin: str) -> dict[str, Any]:
    """[network] keys must be TrainConfig fields with a value of the field's type."""
    if not section:
        return {}
    from dataclasses import fields

    from churnwh.train import TrainConfig

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
    known_sections = {"warehouse", "sql", "source", "demo", "training", "network", "tiers", "scoring", "key", "vars"}
    reader.reject_unknown("", raw, known_sections)

    wh = reader.section("warehouse", {"private", "published", "models", "memory_limit"})
    warehouse = WarehouseConfig(
        private=root / reader.string(wh, "warehouse.private", "warehouse/private.duckdb"),
        published=root / reader.string(wh, "warehouse.published", "warehouse/churn.duckdb"),
        models=root / reader.string(wh, "warehouse.models", "warehouse/models"),
        memory_limit=reader.optional_string(wh, "warehouse.memory_limit"),
    )
    if warehouse.private.resolve() == warehouse.published.resolve():
        raise ConfigError(
            f"{origin}: warehouse.private and warehouse.published are the same file: "
            "the published file must be a separate file"
        )

    sql = reader.section("sql", {"path"})
    source = reader.section("source", {"kind"})
    kind = reader.string(source, "source.kind", "demo")
    if kind not in SOURCES:
        raise ConfigError(f"{origin}: source.kind = {kind!r} is not allowed: use one of {', '.join(SOURCES)}")

    demo = reader.section("demo", {"customers", "seed", "start", "end", "truth"})
    demo_config = DemoConfig(
        customers=reader.integer(demo, "demo.customers", 5000, minimum=10, maximum=50_000_000),
        seed=reader.integer(demo, "demo.seed", 7, minimum=0),
        start=reader.date(demo, "demo.start", dt.date(2023, 1, 1)),
        end=reader.date(demo, "demo.end", dt.date(2025, 12, 31)),
        truth=root / reader.string(demo, "demo.truth", "warehouse/demo_truth.parquet"),
    )
    if demo_config.end <= demo_config.start:
        raise ConfigError(f"{origin}: demo.end = {demo_config.end} is not after demo.start = {demo_config.start}")

    tr = reader.section(
        "training", {"model", "scoring_model", "id_column", "label_column", "date_column", "seed", "promote_tolerance"}
    )
    training = TrainingConfig(
        model=reader.string(tr, "training.model", "marts.training_set"),
        scoring_model=reader.string(tr, "training.scoring_model", "marts.scoring_set"),
        id_column=reader.string(tr, "training.id_column", "customer_pseudonym"),
        label_column=reader.string(tr, "training.label_column", "churned"),
        date_column=reader.string(tr, "training.date_column", "observation_date"),
        seed=reader.integer(tr, "training.seed", 0, minimum=0),
        promote_tolerance=reader.number(tr, "training.promote_tolerance", 0.005, minimum=0.0, maximum=1.0),
        network=network_overrides(reader.section("network", None), origin),
    )
    for key, name in (("training.model", training.model), ("training.scoring_model", training.scoring_model)):
        if name.count(".") != 1:
            raise ConfigError(f"{origin}: {key} = {name!r} is not allowed: name a model as schema.table")

    tiers_section = reader.section("tiers", {"high", "medium", "mode", "actions"})
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

    sc = reader.section("scoring", {"value_column", "horizon_months", "batch_rows"})
    scoring = ScoringConfig(
        value_column=reader.string(sc, "scoring.value_column", "monthly_price"),
        horizon_months=reader.integer(sc, "scoring.horizon_months", 12, minimum=1, maximum=120),
        batch_rows=reader.integer(sc, "scoring.batch_rows", 65536, minimum=256, maximum=10_000_000),
    )

    key = reader.section("key", {"env", "file"})
    key_config = KeyConfig(
        env=reader.string(key, "key.env", "CHURNWH_KEY"),
        file=root / reader.string(key, "key.file", ".churnwh.key"),
    )

    variables = dict(DEFAULT_VARIABLES)
    for name, value in reader.section("vars", None).items():
        variables[name] = reader.variable(f"vars.{name}", value)
    if kind == "demo" and "as_of" not in raw.get("vars", {}):
        variables["as_of"] = demo_config.end + dt.timedelta(days=1)
    if kind == "demo" and "history_start" not in raw.get("vars", {}):
        variables["history_start"] = demo_config.start

    return Config(
        root=root,
        warehouse=warehouse,
        sql=root / reader.string(sql, "sql.path", "sql"),
        source=kind,
        demo=demo_config,
        training=training,
        tiers=tiers,
        scoring=scoring,
        key=key_config,
        variables=variables,
    )


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
                raise ConfigError(
                    f"{self.origin}: unknown key {where!r}: allowed here are {', '.join(sorted(known))}"
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
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, value, "a non-empty string")
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

    def variable(self, key: str, value: Any) -> Any:
        name = key.split(".")[-1]
        if not name.isidentifier():
            raise ConfigError(f"{self.origin}: variable name {name!r} is not allowed: use letters, digits and _")
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, str) and name in ("as_of", "history_start"):
            return self.date({name: value}, key, dt.date.today())
        if isinstance(value, (bool, int, float, str, dt.date)):
            return value
        raise self.fail(key, value, "a string, number, boolean or date")
