"""`plan --by uplift` targets by uplift only where the uplift model beat churn risk on held-out pilot members."""

from __future__ import annotations

import duckdb
import pytest

from churnwh.action import pilot, uplift


def validation_file(path, risk_qini: float, low: float, high: float) -> duckdb.DuckDBPyConnection:
    """A warehouse file whose ml.uplift_validation holds a network Qini of 0.010 and churn risk's."""
    con = duckdb.connect(str(path))
    con.execute("CREATE SCHEMA ml")
    con.execute(f"""CREATE TABLE {uplift.VALIDATION} (rule VARCHAR, qini DOUBLE, qini_gain_low DOUBLE,
                    qini_gain_high DOUBLE)""")
    con.execute(f"INSERT INTO {uplift.VALIDATION} VALUES ('uplift model', 0.010, NULL, NULL), "
                "('churn risk', ?, ?, ?), ('two-model baseline', 0.009, -0.001, 0.003)", [risk_qini, low, high])
    return con


@pytest.mark.parametrize(("risk_qini", "low", "high", "compare", "by", "warned"), [
    (0.004, 0.002, 0.010, None, "uplift", None),                       # measurably better: no warning
    (0.008, -0.003, 0.007, None, "uplift", "targeting by uplift"),      # better, not measurably: warned
    (0.012, -0.008, 0.004, None, "risk", "targeting by churn risk instead"),  # no better: falls back
    (0.012, -0.008, 0.004, "risk", "uplift", "the uplift arm is planned all the same"),  # a comparison keeps it
])
def test_guard_follows_the_held_out_qini_gain(tmp_path, caplog, risk_qini, low, high, compare, by, warned):
    con = validation_file(tmp_path / "w.duckdb", risk_qini, low, high)
    rules = ["uplift"] if compare is None else ["uplift", compare]
    with caplog.at_level("WARNING", logger="churnwh.action.pilot"):
        chosen, chosen_rules, warning = pilot.guard_uplift(con, "uplift", compare, rules)
    assert chosen == by and chosen_rules == ([by] if compare is None else rules)
    if warned is None:
        assert warning is None and not caplog.records
    else:
        assert warned in warning and "\n" not in warning
        assert f"Qini {0.010 - risk_qini:+.5f} against churn risk, 95% CI {low:+.5f} to {high:+.5f}" in warning
        assert [record.getMessage() for record in caplog.records] == [warning]


def test_no_validation_no_guard(tmp_path):
    con = duckdb.connect(str(tmp_path / "empty.duckdb"))
    assert uplift.versus_risk(con) is None
    assert pilot.guard_uplift(con, "uplift", None, ["uplift"]) == ("uplift", ["uplift"], None)
