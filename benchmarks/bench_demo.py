"""Time the demo simulator: simulate + write_raw into a temporary DuckDB file.

    python benchmarks/bench_demo.py --customers 100000
    python benchmarks/bench_demo.py --customers 1000000     # peak-memory figure

Prints rows per table, total event rows, seconds per stage and peak RSS of the process.
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

from churnwh.sources.demo import simulate, write_raw  # noqa: E402

EVENT_TABLES = ("transactions", "product_usage", "support_tickets", "web_sessions", "email_events",
                "consent_events", "subscriptions")


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2  # ru_maxrss is KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()

    started = time.perf_counter()
    data = simulate(args.customers, seed=args.seed)
    simulated = time.perf_counter()
    simulate_peak = peak_rss_gib()
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "bench.duckdb"
        with duckdb.connect(str(path)) as con:
            write_raw(con, data)
            con.execute("CHECKPOINT")
        written = time.perf_counter()
        file_mib = path.stat().st_size / 1024**2

    for name, table in data.tables.items():
        print(f"{name:18s} {table.num_rows:>13,d}")
    print(f"{'truth':18s} {data.truth.num_rows:>13,d}")
    events = sum(data.tables[name].num_rows for name in EVENT_TABLES)
    print(f"customers={args.customers:,d} total_events={events:,d}")
    print(f"simulate_s={simulated - started:.1f} write_raw_s={written - simulated:.1f} "
          f"total_s={written - started:.1f} duckdb_file_mib={file_mib:.0f}")
    print(f"peak_rss_gib_after_simulate={simulate_peak:.2f} peak_rss_gib={peak_rss_gib():.2f}")


if __name__ == "__main__":
    main()
