"""The demo simulated in blocks of customers with their own random streams, and written block by block."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from churnwh.sources.demo import simulate, write_demo
from churnwh.sources.demo.advance import _state_arrays

REPO = pathlib.Path(__file__).resolve().parents[1]
CUSTOMER_TABLES = ("customers", "subscriptions", "transactions", "product_usage", "support_tickets", "web_sessions",
                   "email_events", "consent_events")
ID_COLUMNS = {"customers": "customer_id", "subscriptions": "subscription_id", "transactions": "transaction_id",
              "support_tickets": "ticket_id", "web_sessions": "session_id", "email_events": "event_id",
              "consent_events": "event_id"}


def table(con, name: str):
    return con.sql(f"SELECT * FROM raw.{name}").to_arrow_table()


def test_streamed_demo_is_the_simulated_demo(tmp_path):
    """Written block by block, the raw tables, the truth and the continuation state are those of `simulate`;
    ids go on from block to block (unique, numbered 1 to n)."""
    data = simulate(450, seed=4, block_customers=200)
    blocks = []
    with duckdb.connect(str(tmp_path / "streamed.duckdb")) as con:
        written = write_demo(con, 450, 4, tmp_path / "truth.parquet", block_customers=200,
                             on_block=lambda done, _: blocks.append(done))
        assert blocks == [200, 400, 450]
        for name, expected in data.tables.items():
            assert table(con, name).equals(expected.combine_chunks()), name
            assert written.rows[name] == expected.num_rows
        for name, column in ID_COLUMNS.items():
            distinct, largest = con.execute(
                f"SELECT count(DISTINCT {column}), max(CAST(regexp_extract({column}, '[0-9]+') AS BIGINT)) "
                f"FROM raw.{name}").fetchall()[0]
            assert distinct == largest, name
    assert pq.read_table(tmp_path / "truth.parquet").equals(data.truth.combine_chunks())
    assert not (tmp_path / "truth.parquet.new").exists()
    streamed, simulated = _state_arrays(written.continuation), _state_arrays(data.continuation)
    assert streamed.keys() == simulated.keys()
    assert all(np.array_equal(streamed[k], simulated[k]) for k in streamed)
    assert written.continuation.info == data.continuation.info


def test_a_block_does_not_depend_on_the_customers_after_it():
    """Each block draws from its own streams: the first 200 customers of a 450-customer demo are the
    200-customer demo, row for row; the next blocks are new customers (other draws)."""
    small = simulate(200, seed=4, block_customers=200)
    large = simulate(450, seed=4, block_customers=200)
    for name in CUSTOMER_TABLES:
        rows = small.tables[name].num_rows
        assert large.tables[name].slice(0, rows).combine_chunks().equals(small.tables[name].combine_chunks()), name
    assert large.truth.slice(0, small.truth.num_rows).equals(small.truth)
    later = large.tables["customers"].slice(200, 200)
    assert later.column("customer_id")[0].as_py() == "C00000201"
    assert later.column("full_name").to_pylist() != small.tables["customers"].column("full_name").to_pylist()


def test_a_failed_write_leaves_the_previous_demo(tmp_path):
    """The blocks are written in one transaction: a failure after some blocks leaves the raw tables and
    the truth as they were, and no staged truth file."""
    path, truth = tmp_path / "warehouse.duckdb", tmp_path / "truth.parquet"
    with duckdb.connect(str(path)) as con:
        write_demo(con, 300, 1, truth, block_customers=100)
        before = {name: table(con, name) for name in CUSTOMER_TABLES}
    truth_before = truth.read_bytes()

    def fail(done, _):
        if done == 200:
            raise RuntimeError("stopped after two blocks")

    with duckdb.connect(str(path)) as con:
        with pytest.raises(RuntimeError, match="two blocks"):
            write_demo(con, 300, 2, truth, block_customers=100, on_block=fail)
        assert all(table(con, name).equals(before[name]) for name in CUSTOMER_TABLES)
    assert truth.read_bytes() == truth_before
    assert not truth.with_name("truth.parquet.new").exists()


PER_CUSTOMER = """
WITH rows_of AS (
    SELECT customer_id, 'usage' AS kind, count(*) AS n FROM raw.product_usage GROUP BY ALL
    UNION ALL SELECT customer_id, 'web', count(*) FROM raw.web_sessions GROUP BY ALL
    UNION ALL SELECT customer_id, 'email', count(*) FROM raw.email_events GROUP BY ALL
    UNION ALL SELECT customer_id, 'ticket', count(*) FROM raw.support_tickets GROUP BY ALL
    UNION ALL SELECT customer_id, 'subscription', count(*) FROM raw.subscriptions GROUP BY ALL),
counts AS (PIVOT rows_of ON kind IN ('usage', 'web', 'email', 'ticket', 'subscription') USING sum(n)
           GROUP BY customer_id),
spend AS (SELECT customer_id, sum(amount) AS spend FROM raw.transactions WHERE amount BETWEEN 0 AND 1000
          GROUP BY ALL),
subs AS (SELECT customer_id, bool_or(cancel_reason IS NOT NULL) AS cancelled,
                max(coalesce(end_date, DATE '2026-01-01')) - min(start_date) AS tenure_days
         FROM raw.subscriptions GROUP BY ALL),
risk AS (SELECT customer_id, avg(churn_hazard) AS hazard, count(*) AS months_at_risk FROM truth GROUP BY ALL)
SELECT coalesce(k.usage, 0) AS usage_rows, coalesce(k.web, 0) AS web_rows, coalesce(k.email, 0) AS email_rows,
       coalesce(k.ticket, 0) AS ticket_rows, coalesce(k.subscription, 0) AS subscription_rows,
       coalesce(s.spend, 0) AS spend, coalesce(b.cancelled, false) AS cancelled,
       coalesce(b.tenure_days, 0) AS tenure_days, coalesce(r.hazard, -1) AS hazard,
       coalesce(r.months_at_risk, 0) AS months_at_risk
FROM raw.customers c LEFT JOIN counts k USING (customer_id) LEFT JOIN spend s USING (customer_id)
LEFT JOIN subs b USING (customer_id) LEFT JOIN risk r USING (customer_id)
"""


def _per_customer(data) -> dict[str, np.ndarray]:
    with duckdb.connect() as con:
        for name, t in data.tables.items():
            con.execute("CREATE SCHEMA IF NOT EXISTS raw")
            con.register(f"v_{name}", t)
            con.execute(f"CREATE TABLE raw.{name} AS SELECT * FROM v_{name}")
        con.register("truth", data.truth)
        return con.sql(PER_CUSTOMER).fetchnumpy()


def test_blocks_keep_the_distributions_of_the_one_block_draw():
    """5,000 customers drawn in one block (the draw of a demo up to 100,000 customers) and in ten blocks of
    500 with their own streams: churn, hazard, tenure, spend and rows per customer per table agree within
    sampling error (means within 4 standard errors, distributions by a two-sample Kolmogorov-Smirnov test)."""
    from scipy.stats import ks_2samp

    one = _per_customer(simulate(5000, seed=21))
    ten = _per_customer(simulate(5000, seed=21, block_customers=500))
    for column in ("usage_rows", "web_rows", "email_rows", "ticket_rows", "subscription_rows", "spend",
                   "cancelled", "hazard", "months_at_risk", "tenure_days"):
        a, b = one[column].astype(float), ten[column].astype(float)
        error = np.sqrt(a.var() / a.size + b.var() / b.size)
        assert abs(a.mean() - b.mean()) < 4 * error, column
        if column != "cancelled":
            assert ks_2samp(a, b).pvalue > 0.001, column
    # and the quantiles of spend and tenure, the figures a reader would compare
    for column in ("spend", "tenure_days"):
        qa, qb = np.quantile(one[column], [0.25, 0.5, 0.9]), np.quantile(ten[column], [0.25, 0.5, 0.9])
        assert np.allclose(qa, qb, rtol=0.1), (column, qa, qb)


PEAK = """
import pathlib, sys, tempfile
import duckdb
from churnwh.sources.demo import simulate, write_demo, write_raw
mode, customers, block = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with tempfile.TemporaryDirectory() as tmp:
    with duckdb.connect(str(pathlib.Path(tmp) / "demo.duckdb")) as con:
        if mode == "in-memory":  # every table simulated first, then written (the simulator before blocks)
            write_raw(con, simulate(customers, 3, block_customers=block))
        else:
            write_demo(con, customers, 3, pathlib.Path(tmp) / "truth.parquet", block_customers=block)
# this process's own peak (ru_maxrss would carry the parent's over the fork)
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def _peak_kib(mode: str, customers: int, block: int) -> int:
    result = subprocess.run([sys.executable, "-c", PEAK, mode, str(customers), str(block)], cwd=REPO,
                            capture_output=True, text=True, check=True)
    return int(result.stdout.split()[-1])


def test_streamed_memory_is_bounded_by_the_block_not_the_customers():
    """Peak RSS of a process writing 10,000 customers in blocks of 1,000 stays near that of a process writing
    one block of 1,000, far below the same 10,000 customers simulated in memory first, which grows with
    the customers (peaks measured by the kernel: ru_maxrss)."""
    one_block = _peak_kib("streamed", 1_000, 1_000)
    streamed = _peak_kib("streamed", 10_000, 1_000)
    in_memory = _peak_kib("in-memory", 10_000, 10_000)
    assert in_memory - one_block > 100 * 1024  # the in-memory draw grows by more than 100 MiB
    assert streamed - one_block < (in_memory - one_block) / 2


def test_the_oracle_continues_every_block_from_its_own_streams():
    """The oracle re-runs each block from the block's streams: the customers at risk are the simulation's,
    and the first block's probabilities are those of the demo made of that block alone."""
    import datetime

    from churnwh.sources.demo import churn_oracle

    month, end = datetime.date(2023, 7, 1), datetime.date(2023, 12, 31)
    oracle = churn_oracle(450, seed=11, observation_date=month, end=end, replicates=4, block_customers=200)
    truth = simulate(450, seed=11, end=end, block_customers=200).truth
    at_risk = {c for c, m in zip(truth.column("customer_id").to_pylist(), truth.column("month").to_pylist())
               if m == month}
    assert set(oracle.column("customer_id").to_pylist()) == at_risk
    assert max(at_risk) > "C00000400"
    alone = churn_oracle(200, seed=11, observation_date=month, end=end, replicates=4, block_customers=200)
    assert oracle.slice(0, alone.num_rows).equals(alone)
