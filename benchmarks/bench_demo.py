"""Time the demo simulator: simulate and write the raw tables into a temporary DuckDB file.

    python benchmarks/bench_demo.py --customers 100000
    python benchmarks/bench_demo.py --customers 1000000     # the streamed million, peak-memory figure
    python benchmarks/bench_demo.py --customers 100000 --in-memory   # simulate, then write_raw

By default the demo is written as `churnwh demo` writes it (``write_demo``: block by block into DuckDB
and the truth Parquet file, one block of customers in memory at a time); ``--in-memory`` simulates every
table first and writes them after (``simulate`` + ``write_raw``: memory grows with the customers).
Prints rows per table, total event rows, seconds and peak RSS of the process (after every block when
streaming).
"""

from __future__ import annotations

import argparse
import pathlib
import resource
import sys
import tempfile
import time

import duckdb

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from churnwh.sources.demo import BLOCK_CUSTOMERS, simulate, write_demo, write_raw

EVENT_TABLES = ("transactions", "product_usage", "support_tickets", "web_sessions", "email_events",
                "consent_events", "subscriptions")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is KiB on Linux


def streamed(customers: int, seed: int, block_customers: int, folder: pathlib.Path) -> tuple[dict[str, int], int]:
    started = time.perf_counter()

    def report(done: int, written) -> None:
        print(f"  {done:>10,d} customers  {time.perf_counter() - started:7.1f} s  peak {peak_rss_gib():.2f} GiB",
              flush=True)

    with duckdb.connect(str(folder / "bench.duckdb")) as con:
        written = write_demo(con, customers, seed, folder / "truth.parquet", block_customers=block_customers,
                             on_block=report)
        con.execute("CHECKPOINT")
    return written.rows, written.truth_rows


def in_memory(customers: int, seed: int, block_customers: int, folder: pathlib.Path) -> tuple[dict[str, int], int]:
    started = time.perf_counter()
    data = simulate(customers, seed=seed, block_customers=block_customers)
    print(f"  simulate_s={time.perf_counter() - started:.1f} peak_rss_gib_after_simulate={peak_rss_gib():.2f}")
    with duckdb.connect(str(folder / "bench.duckdb")) as con:
        write_raw(con, data)
        con.execute("CHECKPOINT")
    return {name: table.num_rows for name, table in data.tables.items()}, data.truth.num_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--block-customers", type=int, default=BLOCK_CUSTOMERS,
                        help="customers per block (changes the draw; the default is the demo's)")
    parser.add_argument("--in-memory", action="store_true", help="simulate every table first, then write them")
    args = parser.parse_args()

    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        run = in_memory if args.in_memory else streamed
        rows, truth_rows = run(args.customers, args.seed, args.block_customers, pathlib.Path(tmp))
        total = time.perf_counter() - started
        file_mib = (pathlib.Path(tmp) / "bench.duckdb").stat().st_size / 1024**2

    for name, count in rows.items():
        print(f"{name:18s} {count:>13,d}")
    print(f"{'truth':18s} {truth_rows:>13,d}")
    events = sum(rows[name] for name in EVENT_TABLES)
    print(f"customers={args.customers:,d} total_events={events:,d} mode={'in-memory' if args.in_memory else 'streamed'}")
    print(f"total_s={total:.1f} duckdb_file_mib={file_mib:.0f} peak_rss_gib={peak_rss_gib():.2f}")


if __name__ == "__main__":
    main()
