from __future__ import annotations

import pytest

from churnwh.errors import ModelError
from churnwh.sqlmodels.project import load_project


def test_dependencies_come_from_sql_and_skip_ctes(write_models):
    sql = write_models(
        {
            "staging/a.sql": "SELECT * FROM raw.events",
            "features/b.sql": """
                WITH a AS (SELECT * FROM staging.a), recent AS (SELECT * FROM a)
                SELECT * FROM recent JOIN raw.customers USING (id)
                WHERE id IN (SELECT id FROM staging.a)
            """,
            "marts/c.sql": "SELECT * FROM features.b UNION ALL SELECT * FROM staging.a",
        }
    )
    project = load_project(sql, known_sources={"raw.events", "raw.customers"})
    assert project.dependencies["features.b"] == {"staging.a"}
    assert set(project.models["features.b"].references) == {"staging.a", "raw.customers"}
    assert project.dependencies["marts.c"] == {"features.b", "staging.a"}
    assert project.order == ("staging.a", "features.b", "marts.c")
    assert project.sources() == {"raw.events", "raw.customers"}


def test_selectors(write_models):
    sql = write_models(
        {
            "s/a.sql": "SELECT 1 AS x FROM raw.t",
            "s/b.sql": "SELECT * FROM s.a",
            "s/c.sql": "SELECT * FROM s.b",
            "s/d.sql": "SELECT * FROM raw.t",
        }
    )
    project = load_project(sql)
    assert project.select("s.b+") == ["s.b", "s.c"]
    assert project.select("+b") == ["s.a", "s.b"]
    assert project.select("d") == ["s.d"]
    with pytest.raises(ModelError, match="no model named 'zz'"):
        project.select("zz+")


def test_cycle_names_every_model(write_models):
    sql = write_models(
        {
            "s/a.sql": "SELECT * FROM s.c",
            "s/b.sql": "SELECT * FROM s.a",
            "s/c.sql": "SELECT * FROM s.b",
            "s/ok.sql": "SELECT 1 AS x",
        }
    )
    with pytest.raises(ModelError, match="dependency cycle") as err:
        load_project(sql)
    for name in ("s.a", "s.b", "s.c"):
        assert name in str(err.value)
    assert "s.ok" not in str(err.value)


def test_missing_reference_names_file_line_and_table(write_models):
    sql = write_models({"s/a.sql": "SELECT *\nFROM raw.t\nJOIN s.nowhere USING (id)"})
    with pytest.raises(ModelError) as err:
        load_project(sql, known_sources={"raw.t"})
    message = str(err.value)
    assert "a.sql:3" in message and "s.nowhere" in message and "\n" not in message


def test_syntax_error_names_file_line_and_column(write_models):
    sql = write_models({"s/bad.sql": "/*\nmaterialized = 'table'\n*/\nSELECT a,\nFROM raw.t WHERE (("})
    with pytest.raises(ModelError, match=r"bad\.sql:\d+:\d+: SQL syntax error"):
        load_project(sql)


def test_model_must_be_one_select(write_models):
    sql = write_models({"s/drop.sql": "DROP TABLE raw.t"})
    with pytest.raises(ModelError, match="exactly one SELECT"):
        load_project(sql)
    sql = write_models({"s/drop.sql": "SELECT 1; SELECT 2"})
    with pytest.raises(ModelError, match="2 statements"):
        load_project(sql)


def test_unqualified_table_is_refused(write_models):
    sql = write_models({"s/a.sql": "SELECT * FROM events"})
    with pytest.raises(ModelError, match="has no schema"):
        load_project(sql)


def test_header_is_parsed(write_models):
    sql = write_models(
        {
            "s/a.sql": """
                /*
                materialized = "view"
                grain = ["customer_pseudonym"]
                description = "One row per customer."
                [columns.customer_pseudonym]
                description = "Keyed pseudonym."
                privacy = "pseudonym"
                checks = ["not_null", "unique"]
                [columns.band]
                accepted_values = ["a", "b"]
                range = [0, 10]
                [[audits]]
                name = "no_negative"
                sql = "SELECT * FROM this WHERE x < 0"
                */
                SELECT 'p' AS customer_pseudonym, 'a' AS band, 1 AS x
            """
        }
    )
    model = load_project(sql).models["s.a"]
    assert model.materialized == "view"
    assert model.grain == ("customer_pseudonym",)
    column = model.columns["customer_pseudonym"]
    assert column.not_null and column.unique and column.privacy == "pseudonym"
    assert model.columns["band"].accepted_values == ("a", "b")
    assert model.columns["band"].range == (0, 10)
    assert model.audits[0].name == "no_negative"
    assert model.partition_by == ()
    partitioned = write_models({"s/b.sql": '/*\npartition_by = "band"\n*/\nSELECT 1 AS band, 2 AS x'})
    assert load_project(partitioned).models["s.b"].partition_by == ("band",)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ('materialized = "incremental"', "materialized = 'incremental' is not allowed"),
        ('colour = "red"', "unknown header key 'colour'"),
        ('[columns.x]\nprivacy = "secret"', "columns.x.privacy = 'secret' is not allowed"),
        ('[columns.x]\nchecks = ["positive"]', "built-in checks are"),
        ('[columns.x]\nrange = [5, 1]', "low <= high"),
        ("materialized = ", r"a\.sql:2: header is not valid TOML"),
        ("partition_by = [1]", "partition_by must be a list of column names"),
    ],
)
def test_bad_headers(write_models, header, message):
    sql = write_models({"s/a.sql": f"/*\n{header}\n*/\nSELECT 1 AS x"})
    with pytest.raises(ModelError, match=message):
        load_project(sql)


def test_model_path_must_be_schema_and_name(write_models):
    sql = write_models({"toplevel.sql": "SELECT 1 AS x"})
    with pytest.raises(ModelError, match="sql/<schema>/<name>.sql"):
        load_project(sql)
