"""Library entry points behind `churnwh plan / pilot-report / demo-campaign / demo-advance / backtest / query /
report`.

Each function opens the warehouse itself (through ``churnwh.store.warehouse``) and returns plain data for
the CLI to print.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl

from churnwh.config import Config
from churnwh.errors import ChurnwhError
from churnwh.store import warehouse


def parse_costs(items: list[str] | None, option: str) -> dict[str, float]:
    """``["high=40", "medium=5"]`` -> {"high": 40.0, "medium": 5.0}."""
    values = {}
    for item in items or []:
        tier, sep, amount = item.partition("=")
        tier = tier.strip()
        try:
            number = float(amount)
        except ValueError:
            number = None
        if not sep or tier not in ("high", "medium", "low") or number is None:
            raise ChurnwhError(f"{option} {item!r} is not allowed: write TIER=NUMBER with TIER high, medium or low, "
                               f"e.g. {option} high=40")
        values[tier] = number
    return values


def plan(config: Config, campaign_id: str, budget: float | None, costs: list[str] | None,
         success_rates: list[str] | None, control_fraction: float | None, by: str = "risk",
         compare: str | None = None) -> dict:
    from churnwh.action.pilot import make_plan
    from churnwh.action.retention import check_inputs

    retention = config.retention
    cost = parse_costs(costs, "--cost") or dict(retention.cost)
    rates = {**retention.success_rate, **parse_costs(success_rates, "--success-rate")}
    budget = retention.budget if budget is None else budget
    check_inputs(budget, cost)
    for tier, rate in rates.items():
        if not 0 <= rate <= 1:
            raise ChurnwhError(f"success rate {rate} for tier {tier} is not allowed: give a share from 0 to 1")
    fraction = retention.control_fraction if control_fraction is None else control_fraction
    with warehouse.open_private(config) as con:
        return make_plan(con, config, campaign_id, budget=budget, cost=cost, success_rate=rates,
                         control_fraction=fraction, by=by, compare=compare)


def pilot_report(config: Config, campaign_id: str) -> dict:
    from churnwh.action.pilot import pilot_report as report

    with warehouse.open_private(config) as con:
        return report(con, config, campaign_id)


def demo_campaign(config: Config, campaign_id: str, days: int, effect: float,
                  effect_model: str = "heterogeneous", truth_for_everyone: bool = False) -> dict:
    from churnwh.action.campaign import simulate_campaign

    if config.source != "demo":
        raise ChurnwhError("demo-campaign changes simulated raw data: it works only with source.kind = 'demo'")
    with warehouse.open_private(config) as con:
        return simulate_campaign(con, config, campaign_id, days=days, effect=effect, effect_model=effect_model,
                                 truth_for_everyone=truth_for_everyone)


def demo_advance(config: Config, days: int) -> dict:
    from churnwh.action.campaign import advance_demo

    if config.source != "demo":
        raise ChurnwhError("demo-advance moves the simulated business on: it works only with source.kind = 'demo'")
    if days < 1:
        raise ChurnwhError(f"--days {days} is not allowed: give at least 1")
    with warehouse.open_private(config) as con:
        return advance_demo(config, con, days)


def backtest(config: Config) -> pl.DataFrame:
    from churnwh.stages.monitor import backtest as run

    with warehouse.open_private(config) as con:
        return run(con, config)


def data_end(config: Config):
    """The last day with data in any dated source, as the last build measured it (None before one)."""
    from churnwh.store import freshness

    with warehouse.open_private(config, read_only=True) as con:
        return freshness.data_end(con)


FORMATS = ("table", "csv", "json")


def query(config: Config, sql: str, fmt: str) -> tuple[list[str], list[tuple]]:
    """Run read-only SQL against the published file; returns (column names, rows)."""
    if fmt not in FORMATS:
        raise ChurnwhError(f"--format {fmt!r} is not allowed: use one of {', '.join(FORMATS)}")
    path = config.warehouse.published
    if not path.exists():
        raise ChurnwhError(f"the published file {path} does not exist: run `churnwh build` first")
    con = duckdb.connect(str(path), read_only=True)
    try:
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        try:
            result = con.execute(sql)
            names = [d[0] for d in result.description or []]
            rows = result.fetchall() if names else []
        except duckdb.Error as error:
            raise ChurnwhError(f"query failed: {warehouse.first_line(error)}; the published file is read-only, "
                               "only SELECT-style queries work") from None
    finally:
        con.close()
    return names, rows


def format_rows(names: list[str], rows: list[tuple], fmt: str) -> str:
    frame = pl.DataFrame([list(r) for r in rows], schema=names, orient="row") if rows else pl.DataFrame(
        {n: [] for n in names})
    if fmt == "csv":
        return frame.write_csv()
    if fmt == "json":
        return json.dumps([dict(zip(names, r)) for r in rows], default=str, indent=1)
    raise AssertionError(fmt)


def report(config: Config, output: Path, customers: int = 25) -> Path:
    from churnwh.action.report import write_report

    with warehouse.open_private(config, read_only=True) as con:
        return write_report(con, config, output, customers=customers)
