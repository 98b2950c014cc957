"""`churnwh lint --engine spark`: every construct that would not give identical results on Spark.

Each model is parsed, qualified against the types of the tables it reads and walked by the
rewrites of :mod:`churnwh.spark.dialect`; what no rewrite can make identical is reported as
``file:line: construct `sql`: why and what to write instead``. ``churnwh build --engine spark`` runs
the same walk and stops on the first finding before any Spark job starts.
"""

from __future__ import annotations

from churnwh.config import Config
from churnwh.errors import ChurnwhError
from churnwh.spark.engine import compile_project, refusal_lines, source_schema
from churnwh.sqlmodels.project import load_project
from churnwh.store import warehouse


def lint(config: Config) -> tuple[list[str], int]:
    """(one line per refused construct, number of models checked)."""
    if not config.warehouse.private.exists():
        raise ChurnwhError(
            f"{config.warehouse.private} does not exist: run `churnwh build` once, lint reads the raw tables' types"
        )
    with warehouse.open_private(config, read_only=True) as con:
        sources = source_schema(con)
    raw = {f"{warehouse.RAW_SCHEMA}.{table}" for table in sources.get(warehouse.RAW_SCHEMA, {})}
    project = load_project(config.sql, known_sources=raw)
    compiled = compile_project(project, sources, config.variables)
    return refusal_lines(project, compiled), len(compiled)
