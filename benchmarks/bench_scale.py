"""Scale on one machine: scoring N customers three ways, and the models' orchestration overhead.

    # scoring: the scorer alone, DuckDB read + score + write, Spark mapInArrow (each in its own
    # process, so each peak RSS is its own), over N rows made from a built project's scoring set
    python benchmarks/bench_scale.py scoring --project PATH --rows 10000000

    # the SQL models through `churnwh` vs the same SQL files run directly in DuckDB (each run in its
    # own process from a copy of the same file); two rounds, the second in the other order
    python benchmarks/bench_scale.py overhead --customers 100000 --rounds 2

The scoring rows are the project's ``marts.scoring_set`` rows repeated with new pseudonyms (the
model's input distribution, N distinct customers). The model is the project's current model, and
DuckDB runs with the project's ``[warehouse]`` memory_limit, temp_directory and threads: set a
memory_limit there to see the DuckDB path's peak memory held under it (DuckDB spills the sort
and the staging table above it).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def peak_rss_gib(children: bool = False) -> float:
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_maxrss / 1024**2


# --- scoring ------------------------------------------------------------------------------------


def make_rows(project: pathlib.Path, rows: int, folder: pathlib.Path) -> pathlib.Path:
    """A DuckDB file with ``marts.scoring_set`` of ``rows`` rows (and a Parquet copy for Spark)."""
    import duckdb

    source = project / "warehouse" / "private.duckdb"
    target = folder / "scale.duckdb"
    con = duckdb.connect(str(target))
    con.execute(f"ATTACH '{source}' AS src (READ_ONLY)")
    base = con.execute("SELECT count(*) FROM src.marts.scoring_set").fetchall()[0][0]
    con.execute("CREATE SCHEMA marts")
    con.execute(
        f"""CREATE TABLE marts.scoring_set AS
        WITH base AS (SELECT *, row_number() OVER (ORDER BY customer_pseudonym) - 1 AS _n FROM src.marts.scoring_set)
        SELECT md5(CAST(r.range AS VARCHAR)) AS customer_pseudonym, b.* EXCLUDE (customer_pseudonym, _n)
        FROM range({rows}) AS r JOIN base AS b ON b._n = r.range % {base}"""
    )
    con.execute(f"COPY marts.scoring_set TO '{folder / 'scoring_set.parquet'}' (FORMAT parquet, ROW_GROUP_SIZE 100000)")
    con.close()
    return target


def run_mode(mode: str, project: pathlib.Path, folder: pathlib.Path) -> dict:
    from churnwh.config import load_config
    from churnwh.stages import registry
    from churnwh.store import warehouse

    config = load_config(project)
    with warehouse.connect(config.warehouse.private, read_only=True) as con:
        record = registry.current(con)
    model = registry.load(config.warehouse.models, record.version)
    # the project's [warehouse] memory_limit, temp_directory and threads, as a build applies them
    with warehouse.connect(folder / "scale.duckdb", **warehouse.limits(config.warehouse)) as con:
        return _timed_mode(mode, con, config, model, record, folder)


def _timed_mode(mode, con, config, model, record, folder: pathlib.Path) -> dict:
    rows = con.execute("SELECT count(*) FROM marts.scoring_set").fetchall()[0][0]
    if mode == "scorer":
        import polars as pl

        from churnwh.ml.train import predict_proba

        reader = con.sql("SELECT * FROM marts.scoring_set").to_arrow_reader(config.scoring.batch_rows)
        frames = [pl.from_arrow(batch) for batch in reader]
        predict_proba(model, frames[0])  # compile outside the timing, as a long job would
        started = time.perf_counter()
        for frame in frames:
            predict_proba(model, frame)
        seconds = time.perf_counter() - started
    elif mode == "duckdb":
        from churnwh.stages.score import score_stage

        scored_config = config
        object.__setattr__(scored_config.training, "scoring_model", "marts.scoring_set")
        started = time.perf_counter()
        count = score_stage(con, scored_config, model, record.version, record.run_id)
        seconds = time.perf_counter() - started
        assert count == rows
    elif mode == "spark":
        import functools

        from churnwh.spark import engine as spark_engine
        from churnwh.spark import score as spark_score
        from churnwh.stages import registry

        spark = spark_engine.session("local[2]")
        frame = spark.read.parquet(str(folder / "scoring_set.parquet"))
        function = functools.partial(
            spark_score.score_batches,
            version=record.version,
            payload=spark_score.model_payload(registry.model_dir(config.warehouse.models, record.version)),
            id_column=config.training.id_column,
            date_column=config.training.date_column,
            value_column=config.scoring.value_column,
            batch_rows=config.scoring.batch_rows,
        )
        started = time.perf_counter()
        scored = frame.mapInArrow(function, spark_score.scored_schema_ddl())
        scored.write.mode("overwrite").parquet(str(folder / "scored.parquet"))
        seconds = time.perf_counter() - started
        spark_engine.stop_sessions()
    else:
        raise SystemExit(f"unknown mode {mode}")
    return {
        "mode": mode,
        "rows": rows,
        "seconds": round(seconds, 2),
        "rows_per_second": round(rows / seconds),
        "peak_rss_gib": round(peak_rss_gib(), 2),
        "peak_rss_children_gib": round(peak_rss_gib(children=True), 2),
    }


def scoring(args) -> None:
    project = pathlib.Path(args.project).resolve()
    folder = pathlib.Path(tempfile.mkdtemp(prefix="churnwh-scale-"))
    try:
        started = time.perf_counter()
        make_rows(project, args.rows, folder)
        print(f"made {args.rows:,} scoring rows in {time.perf_counter() - started:.1f} s", flush=True)
        results = []
        for mode in args.modes.split(","):
            output = subprocess.run(
                [sys.executable, __file__, "_mode", mode, str(project), str(folder)],
                capture_output=True, text=True, check=False,
            )
            if output.returncode != 0:
                print(f"{mode}: failed\n{output.stderr[-3000:]}", flush=True)
                continue
            result = json.loads(output.stdout.strip().splitlines()[-1])
            results.append(result)
            print(json.dumps(result), flush=True)
        by_mode = {result["mode"]: result["rows_per_second"] for result in results}
        if "scorer" in by_mode:
            for mode, rate in by_mode.items():
                print(f"{mode}: {rate:,} rows/s = {rate / by_mode['scorer']:.2f} x the scorer alone")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --- orchestration overhead ---------------------------------------------------------------------
#
# Fair in both directions: both runs start from a copy of the same file (raw tables loaded and
# pseudonymized, no model yet), each in a fresh process with the project's DuckDB settings
# (memory_limit, threads, temp_directory), the direct run also creating every model as a table in
# churnwh's order and closing the file (its final checkpoint) inside its timing, as churnwh does.


def overhead_child(role: str, project: pathlib.Path, base: pathlib.Path) -> dict:
    import duckdb

    from churnwh import pipeline
    from churnwh.config import load_config
    from churnwh.sqlmodels import incremental
    from churnwh.sqlmodels.project import load_project
    from churnwh.store import warehouse

    config = load_config(project)
    if role == "simulate":
        started = time.perf_counter()
        pipeline.build(config, only=("load", "pseudonymize"))
        return {"seconds": time.perf_counter() - started}
    if role == "churnwh":
        shutil.copy(base, config.warehouse.private)
        models: dict[str, dict] = {}

        def record(result) -> None:
            models[result.name] = {"seconds": result.seconds, "sql": result.sql_seconds,
                                   "checks": result.check_seconds}

        started = time.perf_counter()
        pipeline.build(config, pipeline.BuildOptions(full_refresh=True), only=("models",), on_model=record)
        total = time.perf_counter() - started
    elif role == "direct":
        target = base.parent / "direct.duckdb"
        shutil.copy(base, target)
        project_models = load_project(config.sql)
        models = {}
        started = time.perf_counter()
        con = duckdb.connect(str(target), config={name: str(value) for name, value in
                                                  warehouse.limits(config.warehouse).items() if value is not None})
        warehouse.set_variables(con, {**config.variables, incremental.START_VARIABLE: incremental.FULL_START})
        for name in project_models.order:
            model = project_models.models[name]
            kind = "VIEW" if model.materialized == "view" else "TABLE"
            t0 = time.perf_counter()
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {model.schema}")
            con.execute(f"CREATE OR REPLACE {kind} {name} AS\n{model.text}")
            seconds = time.perf_counter() - t0
            models[name] = {"seconds": seconds, "sql": seconds, "checks": 0.0}
        con.close()
        total = time.perf_counter() - started
        target.unlink()
    else:
        raise SystemExit(f"unknown role {role}")
    return {"role": role, "total": total, "models": models, "peak_rss_gib": peak_rss_gib()}


def overhead(args) -> None:
    from churnwh.config import load_config
    from churnwh.sqlmodels.project import load_project
    from tests.helpers import make_project

    def child(role: str) -> dict:
        output = subprocess.run([sys.executable, __file__, "_overhead", role, str(project), str(base)],
                                capture_output=True, text=True, check=False)
        if output.returncode != 0:
            raise SystemExit(f"{role} run failed:\n{output.stderr[-3000:]}")
        return json.loads(output.stdout.strip().splitlines()[-1])

    folder = pathlib.Path(tempfile.mkdtemp(prefix="churnwh-overhead-"))
    try:
        project = make_project(folder / "project", customers=args.customers)
        config = load_config(project)
        base = folder / "base.duckdb"
        print(f"simulated and pseudonymized {args.customers:,} customers in {child('simulate')['seconds']:.1f} s",
              flush=True)
        shutil.copy(config.warehouse.private, base)
        runs: dict[str, list[dict]] = {"churnwh": [], "direct": []}
        for round_number in range(args.rounds):
            for role in ("churnwh", "direct") if round_number % 2 == 0 else ("direct", "churnwh"):
                runs[role].append(child(role))
                print(f"round {round_number + 1}: {role} {runs[role][-1]['total']:.1f} s", flush=True)
        order = load_project(config.sql).order

        def summed(role: str, name: str, key: str) -> float:
            return sum(run["models"][name][key] for run in runs[role])

        print(f"{'model':<32} {'churnwh s':>10} {'its SQL s':>10} {'checks s':>9} {'direct s':>9} {'SQL/direct':>10}")
        print("(its SQL: the CREATE statement and the COMMIT, as the direct run does them)")
        for name in order:
            direct = summed("direct", name, "seconds")
            print(f"{name:<32} {summed('churnwh', name, 'seconds'):>10.2f} {summed('churnwh', name, 'sql'):>10.2f} "
                  f"{summed('churnwh', name, 'checks'):>9.2f} {direct:>9.2f} "
                  f"{summed('churnwh', name, 'sql') / direct:>10.2f}")
        churnwh_total = sum(run["total"] for run in runs["churnwh"])
        direct_total = sum(run["total"] for run in runs["direct"])
        sql = sum(summed("churnwh", name, "sql") for name in order)
        direct_sql = sum(summed("direct", name, "sql") for name in order)
        checks = sum(summed("churnwh", name, "checks") for name in order)
        rest, direct_rest = churnwh_total - sql - checks, direct_total - direct_sql

        def share(seconds: float) -> str:
            return f"{100 * seconds / direct_total:+.1f} % of the direct total"

        print(f"rounds: {args.rounds} (times summed over rounds)")
        print(f"models stage through churnwh: {churnwh_total:.1f} s; same SQL directly: {direct_total:.1f} s; "
              f"overhead {100 * (churnwh_total / direct_total - 1):.1f} %, made of:")
        print(f"  the models' SQL (CREATE + COMMIT): {sql:.1f} s vs {direct_sql:.1f} s ({share(sql - direct_sql)})")
        print(f"  header checks and audits (the direct run has none): {checks:.1f} s ({share(checks)})")
        print(f"  the rest (parse, fingerprints, columns, comments, state; open/close in both): {rest:.1f} s vs "
              f"{direct_rest:.1f} s ({share(rest - direct_rest)})")
        print(f"peak RSS: churnwh {max(r['peak_rss_gib'] for r in runs['churnwh']):.2f} GiB, "
              f"direct {max(r['peak_rss_gib'] for r in runs['direct']):.2f} GiB")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_mode":
        print(json.dumps(run_mode(sys.argv[2], pathlib.Path(sys.argv[3]), pathlib.Path(sys.argv[4]))))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_overhead":
        print(json.dumps(overhead_child(sys.argv[2], pathlib.Path(sys.argv[3]), pathlib.Path(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    score_parser = commands.add_parser("scoring")
    score_parser.add_argument("--project", required=True, help="a built churnwh project (its model and scoring set)")
    score_parser.add_argument("--rows", type=int, default=10_000_000)
    score_parser.add_argument("--modes", default="scorer,duckdb,spark")
    over_parser = commands.add_parser("overhead")
    over_parser.add_argument("--customers", type=int, default=100_000)
    over_parser.add_argument("--rounds", type=int, default=1,
                             help="churnwh then direct, then direct then churnwh, ...; times are summed")
    args = parser.parse_args()
    scoring(args) if args.command == "scoring" else overhead(args)


if __name__ == "__main__":
    main()
