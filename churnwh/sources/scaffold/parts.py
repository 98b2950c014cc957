"""A flat file that comes with its own split: `init --flat --from train.csv --from test.csv` (each file a
part, named by its file name or as ``PART=FILE``), or one file with a split column (``train``/``test``
values, found by name or given with ``--split-column``). The declaration lists the files under
``[sources.customers.parts]``, the loader writes each row's part into a column, and ``[training]
split_column`` makes training honour it: test metrics on the declared test part only, no invented
observation dates."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import replace
from pathlib import Path

from churnwh.errors import ChurnwhError
from churnwh.sources.scaffold.from_file import FlatSource, sniff_flat
from churnwh.sources.scaffold.naming import (
    _ident,
    _listed,
    _relative_or_absolute,
    snake,
    toml_string,
    words,
)

PART_WORDS = {"train": "train", "training": "train", "test": "test", "testing": "test", "holdout": "test",
              "valid": "valid", "validation": "valid", "val": "valid", "dev": "valid"}
SPLIT_NAMES = ("split", "part", "partition", "set", "subset", "sample", "dataset", "fold")
PART_VALUES = {"train", "training", "valid", "validation", "val", "test", "testing", "holdout"}


def part_of(path: Path) -> str:
    """The part a file holds, from its name (``churn_train.csv`` -> train)."""
    found = {PART_WORDS[w] for w in words(path.stem) if w in PART_WORDS}
    if len(found) != 1:
        raise ChurnwhError(f"--from {path.name}: cannot tell from the file name whether it is the train or the test "
                           "part: write --from train=FILE or --from test=FILE")
    return found.pop()


def parse_from(values: list[str]) -> list[tuple[str | None, Path]]:
    """``--from FILE`` or ``--from PART=FILE`` items: (part or None, path)."""
    items = []
    for value in values:
        part, sep, rest = value.partition("=")
        if sep and re.fullmatch(r"[A-Za-z_]\w*", part) and not Path(value).exists():
            if part.lower() not in PART_WORDS:
                raise ChurnwhError(f"--from {part}=FILE: the part must be train, valid or test")
            items.append((PART_WORDS[part.lower()], Path(rest)))
        else:
            items.append((None, Path(value)))
    return items


def _widened(first: str, other: str) -> str:
    if first == other:
        return first
    if {first, other} <= {"BIGINT", "DOUBLE"}:
        return "DOUBLE"
    return "VARCHAR"


def sniff_parts(items: list[tuple[str | None, Path]], **options) -> FlatSource:
    """One flat source made of several files, each a part: the declaration of the first file, checked
    against every other (the same columns; a type two files disagree on is widened)."""
    named = [(part or part_of(path), path) for part, path in items]
    parts = [part for part, _ in named]
    if "test" not in parts or "train" not in parts:
        raise ChurnwhError(f"--from: {len(named)} files but no {'test' if 'test' not in parts else 'train'} part: "
                           "give a train and a test file (named so, or as --from train=FILE --from test=FILE)")
    first = sniff_flat(named[0][1], **options)
    keep = {"id_column": first.id_column, "label": first.label, "positive": first.positive}
    rows = first.rows
    for _, path in named[1:]:
        other = sniff_flat(path, **keep)
        mine, theirs = [c.name for c in first.columns], [c.name for c in other.columns]
        if mine != theirs:
            missing = [c for c in mine if c not in theirs] or [c for c in theirs if c not in mine]
            raise ChurnwhError(f"--from {path.name}: its columns differ from {named[0][1].name}'s "
                               f"({_listed(missing) or 'another order'}): the parts of one table need the same "
                               "columns")
        for column, twin in zip(first.columns, other.columns):
            column.type = _widened(column.type, twin.type)
        rows += other.rows
    taken = {c.name for c in first.columns} | {c.alias for c in first.columns}
    part_column = next(name for name in ("part", "file_part", "data_part", "split_part") if name not in taken)
    return replace(first, rows=rows, parts=[(part, path.expanduser().resolve()) for part, path in named],
                   part_column=part_column)


def find_split_column(flat: FlatSource, wanted: str | None, split_date: dt.date | None = None) -> FlatSource:
    """A single file's own split column: ``wanted`` (``--split-column``), else a column named like a split
    (split, part, set, fold...) holding only train/valid/test values. It stays out of the features.

    A date column given with ``split_date`` splits by date: rows on or after it are the test part."""
    import duckdb

    from churnwh.config import SourceConfig
    from churnwh.sources import declared as sources

    names = [c.name for c in flat.columns]
    if wanted is not None and wanted not in names:
        raise ChurnwhError(f"--split-column {wanted!r}: the file has no such column: its columns are {_listed(names)}")
    if wanted is not None:
        column = next(c for c in flat.columns if c.name == wanted)
        if column.type in ("DATE", "TIMESTAMP") or split_date is not None:
            return _date_split(flat, column, split_date)
    candidates = [wanted] if wanted else [c.name for c in flat.columns if snake(c.name) in SPLIT_NAMES]
    source = SourceConfig(name="customers", path=str(flat.path), format=flat.format, columns=(),
                          delimiter=flat.delimiter)
    with duckdb.connect() as con:
        sql = sources.read_sql(source, [flat.path])
        for name in candidates:
            values = {v for (v,) in con.execute(
                f"SELECT DISTINCT lower(trim(CAST({sources._ident(name)} AS VARCHAR))) FROM ({sql}) LIMIT 10"
            ).fetchall()}
            if values <= PART_VALUES and "test" in {PART_WORDS.get(v) for v in values}:
                column = next(c for c in flat.columns if c.name == name)
                column.why = "the data's own split (train/test): [training] split_column, not a feature"
                column.type = "VARCHAR"
                if not column.alias:
                    column.alias = snake(name)
                return replace(flat, split_alias=column.alias)
            if wanted:
                raise ChurnwhError(f"--split-column {wanted}: the column holds values other than train, valid and "
                                   "test (or no test rows): give every row its part")
    return flat


def _date_split(flat: FlatSource, column, split_date: dt.date | None) -> FlatSource:
    """The file's own split by a date column: rows dated on or after ``split_date`` are the test part."""
    if column.type not in ("DATE", "TIMESTAMP"):
        raise ChurnwhError(f"--split-date needs --split-column to name a date column; {column.name} does not hold "
                           "dates in every row")
    if split_date is None:
        raise ChurnwhError(f"--split-column {column.name} holds dates: add --split-date YYYY-MM-DD (rows on or "
                           "after it are the test part)")
    if column.name in (flat.id_column, flat.label):
        raise ChurnwhError(f"--split-column {column.name} is the customer id or the label: name the date column")
    column.why = "the data's own split by date ([training] split_column and split_date), not a feature"
    column.left_out = ""
    taken = {c.alias for c in flat.columns if c is not column}
    column.alias = snake(column.name)  # not the "_days" of a date feature: the split reads the date itself
    while column.alias in taken:
        column.alias += "_"
    return replace(flat, split_alias=column.alias, split_date=split_date)


def parts_config(config: str, flat: FlatSource, root: Path) -> str:
    """The flat churnwh.toml with the source's parts and training.split_column."""
    if flat.parts:
        shown = ", ".join(f"{part} = {toml_string(_relative_or_absolute(path, root))}" for part, path in flat.parts)
        lines = config.split("\n")
        index = next(i for i, line in enumerate(lines) if line.startswith("path = "))
        lines[index:index + 1] = [
            f"parts = {{ {shown} }}   # the data's own split: each file and its part",
            f"part_column = {toml_string(flat.part_column)}".ljust(40)
            + " # each row's part (loaded from its file); [training] split_column"]
        config = "\n".join(lines)
    split = flat.part_column if flat.parts else flat.split_alias
    if split:
        marker = "[training]\n"
        dated = (f'split_date = "{flat.split_date}"'.ljust(40) + " # rows on or after it are the test part\n"
                 if flat.split_date else "")
        config = config.replace(marker, marker + f"split_column = {toml_string(split)}".ljust(40)
                                + " # the data's own split: test metrics on the test part only\n" + dated, 1)
    return config


def parts_sql(sql: dict[str, str], flat: FlatSource) -> dict[str, str]:
    """The flat models carrying the part column from raw to the training set (never a feature)."""
    if not flat.parts:
        return sql
    part = _ident(flat.part_column)
    staging = sql["staging/customers.sql"].replace(
        "SELECT\n    k.customer_pseudonym,\n", f"SELECT\n    k.customer_pseudonym,\n    c.{part} AS {part},"
        "  -- the data's own split (train/test): training.split_column\n", 1)
    training = sql["marts/training_set.sql"].replace(
        "observation_date is NULL (no time), so training splits stratified at random.",
        "observation_date is NULL (no time); part is the data's own split (training.split_column).", 1).replace(
        "CAST(NULL AS DATE) AS observation_date,\n", f"CAST(NULL AS DATE) AS observation_date,\n    {part},\n", 1)
    return {**sql, "staging/customers.sql": staging, "marts/training_set.sql": training}
