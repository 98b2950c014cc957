from __future__ import annotations

import datetime as dt

import pytest

from churnwh.config import load_config
from churnwh.errors import ConfigError


def write(tmp_path, text):
    (tmp_path / "churnwh.toml").write_text(text, encoding="utf-8")
    return tmp_path


def test_defaults_without_a_file(tmp_path):
    config = load_config(tmp_path)
    assert config.warehouse.private == tmp_path.resolve() / "warehouse/private.duckdb"
    assert config.source == "demo"
    assert config.variables["as_of"] == dt.date(2026, 1, 1)
    assert config.tiers.high > config.tiers.medium


def test_values_are_read_and_paths_resolved(tmp_path):
    config = load_config(
        write(
            tmp_path,
            """
            [warehouse]
            private = "data/p.duckdb"
            [demo]
            customers = 500
            end = 2024-06-30
            [vars]
            lead_days = 7
            region = "north"
            """,
        )
    )
    assert config.warehouse.private == tmp_path.resolve() / "data/p.duckdb"
    assert config.demo.customers == 500
    assert config.variables["as_of"] == dt.date(2024, 7, 1)
    assert config.variables["lead_days"] == 7
    assert config.variables["region"] == "north"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[demo]\ncustomers = -3", "demo.customers = -3 is not allowed: an integer of at least 10"),
        ("[demo]\ncustomers = 'many'", "demo.customers = 'many' is not allowed"),
        ("[tiers]\nhigh = 1.5", "tiers.high = 1.5 is not allowed: a number between 0 and 1"),
        ("[tiers]\nhigh = 0.2\nmedium = 0.4", "tiers.medium = 0.4 must be below tiers.high = 0.2"),
        ("[source]\nkind = 'oracle'", "source.kind = 'oracle' is not allowed: use one of demo"),
        ("[demo]\nstart = 'yesterday'", "demo.start = 'yesterday' is not allowed: a date as YYYY-MM-DD"),
        ("[warehouse]\npublished = 'warehouse/private.duckdb'", "the same file"),
        ("[wherehouse]\nprivate = 'x'", "unknown key 'wherehouse'"),
        ("[training]\nmodel = 'training_set'", "name a model as schema.table"),
        ("[demo\ncustomers = 3", "fix the TOML syntax"),
    ],
)
def test_bad_values_name_key_value_and_allowed(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")) as err:
        load_config(write(tmp_path, text))
    assert "\n" not in str(err.value)


def test_missing_project_folder(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope")
