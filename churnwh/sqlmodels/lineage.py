"""Column lineage across models with sqlglot: which source columns a model column is computed from."""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.lineage import Node, lineage

from churnwh.errors import ModelError
from churnwh.sqlmodels.project import DIALECT, Project

Schema = dict[str, dict[str, dict[str, str]]]


@dataclass(frozen=True)
class SourceColumn:
    table: str
    column: str

    def __str__(self) -> str:
        return f"{self.table}.{self.column}"


def catalog_schema(columns_by_relation: dict[str, dict[str, str]]) -> Schema:
    """``{'schema.table': {col: type}}`` -> sqlglot's nested ``{schema: {table: {col: type}}}``."""
    nested: Schema = {}
    for relation, columns in columns_by_relation.items():
        schema, table = relation.split(".")
        nested.setdefault(schema, {})[table] = columns
    return nested


def column_lineage(project: Project, schema: Schema, model_name: str, column: str) -> Node:
    """The sqlglot lineage tree of ``model_name.column``, expanded through upstream models."""
    model = project.models[project.resolve(model_name)]
    upstream = {name: project.models[name].text for name in project.upstream(model.name) if name != model.name}
    try:
        return lineage(column, model.text, schema=schema, sources=upstream, dialect=DIALECT)
    except sqlglot.errors.SqlglotError as err:
        raise ModelError(
            f"{model.path}: cannot trace column {column!r} of {model.name}: {str(err).splitlines()[0]}"
        ) from None


def source_columns(root: Node) -> set[SourceColumn]:
    """The source-table columns at the leaves of a lineage tree."""
    found = set()
    for node in root.walk():
        if node.downstream or not isinstance(node.source, exp.Table):
            continue
        table = node.source
        found.add(SourceColumn(f"{table.db}.{table.name}".lower(), node.name.split(".")[-1].lower()))
    return found


def render_tree(root: Node) -> list[str]:
    """One line per node, indented by depth, naming the relation each step reads."""
    lines: list[str] = []

    def visit(node: Node, depth: int) -> None:
        where = ""
        if isinstance(node.source, exp.Table):
            where = f"  <- {node.source.db}.{node.source.name}"
        lines.append(f"{'  ' * depth}{node.name}{where}")
        for child in node.downstream:
            visit(child, depth + 1)

    visit(root, 0)
    return lines
