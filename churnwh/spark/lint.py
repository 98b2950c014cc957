"""`churnwh lint --engine spark`: every construct that would not give identical results on Spark.

Each model is parsed, qualified against the types of the tables it reads and walked by the
rewrites of :mod:`churnwh.spark.dialect`; what no rewrite can make identical is reported as
``file:line: construct `sql`: why and what to write instead``. ``churnwh build --engine spark`` runs
the same walk and stops on the first finding before any Spark job starts.

Lint needs no build: the raw tables' types come from the declaration (``[sources.NAME]`` columns, as
``churnwh.sources.declared`` loads them) or, for the demo, from the simulator's own tables (a ten-customer
run in memory), plus ``raw.customer_keys`` as the pseudonymize stage creates it.
"""

from __future__ import annotations

import duckdb

from churnwh.config import Config
from churnwh.spark.engine import compile_project, refusal_lines, source_schema
from churnwh.sqlmodels.project import load_project
from churnwh.store import warehouse

CUSTOMER_KEYS = {warehouse.CUSTOMER_ID: "VARCHAR", "customer_pseudonym": "VARCHAR"}
"""``raw.customer_keys`` (churnwh.privacy.pseudonyms)."""

DEMO_SCHEMA_CUSTOMERS = 10


def declared_raw_schema(config: Config) -> dict[str, dict[str, str]]:
    """``{table: {column: DuckDB type}}`` of the raw schema a build of ``config`` creates, without building."""
    if config.source == "demo":
        tables = _demo_raw_schema(config)
    else:
        tables = {source.name: _declared_columns(source) for source in config.sources}
    tables["customer_keys"] = dict(CUSTOMER_KEYS)
    return tables


def _declared_columns(source) -> dict[str, str]:
    from churnwh.sources.declared import ROW_ID, raw_name

    columns: dict[str, str] = {}
    if source.id_column == ROW_ID:
        columns[warehouse.CUSTOMER_ID] = "VARCHAR"
    if source.parts:
        columns[source.part_column] = "VARCHAR"
    for column in source.columns:
        if column.name == source.label:
            kind = "INTEGER"
        elif column.name == source.id_column:
            kind = "VARCHAR"  # warehouse.normalised_id_sql
        else:
            kind = column.type.upper()
        columns[raw_name(source, column.name)] = kind
    return columns


def _demo_raw_schema(config: Config) -> dict[str, dict[str, str]]:
    from churnwh.sources import demo

    data = demo.simulate(DEMO_SCHEMA_CUSTOMERS, config.demo.seed, config.demo.start, config.demo.end)
    with duckdb.connect() as con:
        demo.write_raw(con, data, schema=warehouse.RAW_SCHEMA)
        return source_schema(con).get(warehouse.RAW_SCHEMA, {})


def lint(config: Config) -> tuple[list[str], int]:
    """(one line per refused construct, number of models checked)."""
    sources = {warehouse.RAW_SCHEMA: declared_raw_schema(config)}
    raw = {f"{warehouse.RAW_SCHEMA}.{table}" for table in sources[warehouse.RAW_SCHEMA]}
    project = load_project(config.sql, known_sources=raw)
    compiled = compile_project(project, sources, config.variables)
    return refusal_lines(project, compiled), len(compiled)
