"""A full first build of the demo at N customers, with per-stage time and peak memory.

    python benchmarks/bench_million.py --customers 1000000 --memory-limit 4GB --threads 2
    python benchmarks/bench_million.py --customers 100000 --keep /tmp/bench100k   # keep the project

Makes a demo project (the default network, the repository's SQL models and churnwh.toml with
``[warehouse] memory_limit`` / ``threads`` set), then runs ``churnwh build`` in a child process
(``python -m churnwh build``, as a user runs it) and watches it from outside: every 0.5 s the resident
memory of the child's whole process tree (psutil) and the size of DuckDB's spill folder, attributed to
the stage the child last announced (the CLI's ``[stage]`` progress lines on stderr). Prints per stage
the seconds, the peak RSS of the process tree and the peak spill, then the totals and ``uptime``.

With ``--engine spark`` the build runs on Spark (``churnwh build --engine spark --master M``) and the peak
RSS is split by process: the churnwh Python process, the driver's JVM (in ``local[N]`` it is also the
executor), the Python workers under it, and the executors of a standalone cluster (their JVMs and Python
workers, found by their command line: they are no children of the build). ``--standalone`` starts a
standalone master and worker on 127.0.0.1 (tests/spark_cluster.py) and builds on it; the model tables'
rows (``_churnwh.model_state``) and the sizes of Spark storage and the private file are printed after.
CPU seconds are the child's process tree's (its driver JVM included); a standalone cluster's executors
are no part of it, so on Spark the column undercounts what the build used:

    python benchmarks/bench_million.py --customers 20000 --engine spark --master 'local[2]'
    python benchmarks/bench_million.py --customers 20000 --engine spark --standalone --worker-memory 3g
    python benchmarks/bench_million.py --customers 1000000 --engine spark --standalone --worker-cores 2 \\
        --worker-memory 8g --executor-memory 6g --driver-memory 2g
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pathlib
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import psutil

REPO = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GIB = 1024**3


def make_project(root: pathlib.Path, customers: int, memory_limit: str, threads: int, extra: str) -> pathlib.Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO / "sql", root / "sql")
    text = (REPO / "churnwh.toml").read_text().replace("customers = 5000", f"customers = {customers}")
    text = text.replace('# memory_limit = "4GB"', f'memory_limit = "{memory_limit}"')
    text = text.replace("# threads = 2", f"threads = {threads}")
    (root / "churnwh.toml").write_text(text + extra)
    return root


def tree_cpu(process: psutil.Process) -> float:
    """User + system CPU seconds of the process and its live children so far, with the children each of
    them has reaped (Spark's short-lived Python workers)."""
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.Error:
            pass
    return total


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for proc in [process, *process.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


EXECUTOR_MAIN = "CoarseGrainedExecutorBackend"


def process_tree(process: psutil.Process) -> list[psutil.Process]:
    try:
        return [process, *process.children(recursive=True)]
    except psutil.Error:
        return [process]


def is_java(proc: psutil.Process) -> bool:
    try:
        return proc.name() == "java"
    except psutil.Error:
        return False


def rss(processes: list[psutil.Process]) -> int:
    total = 0
    for proc in processes:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            pass
    return total


def spark_rss(build: psutil.Process) -> dict[str, int]:
    """RSS by role: the churnwh process, the driver JVM, the Python workers under the driver JVM (local
    executors), and a standalone cluster's executors (JVM and Python workers) on this machine."""
    driver_jvms = [proc for proc in process_tree(build)[1:] if is_java(proc)]
    workers = [child for jvm in driver_jvms for child in process_tree(jvm)[1:]]
    executors = []
    for proc in psutil.process_iter(["cmdline"]):
        if EXECUTOR_MAIN in " ".join(proc.info.get("cmdline") or []):
            executors.extend(process_tree(proc))
    return {"churnwh": rss([build]), "driver JVM": rss(driver_jvms), "driver's workers": rss(workers),
            "executors": rss(executors)}


def storage_bytes(folder: pathlib.Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else 0


def folder_bytes(folder: pathlib.Path) -> int:
    total = 0
    if folder.is_dir():
        for path in folder.iterdir():
            try:
                total += path.stat().st_size
            except OSError:
                pass
    return total


STAGE_LINE = re.compile(r"^\S+ \S+ (load|freshness|pseudonymize|classify|lineage|models|train|drift|score|explain|"
                        r"monitor|uplift|publish) +started")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--memory-limit", default="4GB", help="[warehouse] memory_limit")
    parser.add_argument("--threads", type=int, default=2, help="[warehouse] threads")
    parser.add_argument("--extra", default="", help="TOML text appended to churnwh.toml")
    parser.add_argument("--keep", help="build the project in this folder and keep it (default: a temporary one)")
    parser.add_argument("--engine", choices=("duckdb", "spark"), default="duckdb")
    parser.add_argument("--master", default="local[2]", help="Spark master for --engine spark")
    parser.add_argument("--standalone", action="store_true",
                        help="--engine spark on a standalone master and worker started on 127.0.0.1")
    parser.add_argument("--worker-cores", type=int, default=2, help="--standalone: the worker's cores")
    parser.add_argument("--worker-memory", default="3g", help="--standalone: the worker's memory")
    parser.add_argument("--executor-memory", default=None, help="spark.executor.memory (default: Spark's, 1g)")
    parser.add_argument("--driver-memory", default=None, help="spark.driver.memory (default: Spark's, 1g)")
    args = parser.parse_args()
    if args.standalone:
        args.engine = "spark"

    folder = pathlib.Path(args.keep) if args.keep else pathlib.Path(tempfile.mkdtemp(prefix="churnwh-million-"))
    extra = args.extra.replace("\\n", "\n")
    if args.engine == "spark":
        conf = {"spark.pyspark.python": sys.executable}  # executors on this machine: this Python has churnwh
        if args.executor_memory:
            conf["spark.executor.memory"] = args.executor_memory
        if args.driver_memory:
            conf["spark.driver.memory"] = args.driver_memory
        extra += "\n[spark]\nconnect_timeout_s = 600\n[spark.conf]\n" + "".join(
            f'"{name}" = "{value}"\n' for name, value in conf.items())
    project = make_project(folder / "project", args.customers, args.memory_limit, args.threads, extra)
    with contextlib.ExitStack() as stack:
        if args.standalone:
            from tests.spark_cluster import standalone_cluster

            args.master = stack.enter_context(standalone_cluster(folder / "cluster", cores=args.worker_cores,
                                                                 memory=args.worker_memory))
            print(f"standalone cluster: {args.master}, one worker with {args.worker_cores} cores and "
                  f"{args.worker_memory}", flush=True)
        code = run_build(args, folder, project)
    sys.exit(code)


def run_build(args, folder: pathlib.Path, project: pathlib.Path) -> int:
    spill = project / "warehouse" / "private.duckdb.tmp"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    command = [sys.executable, "-m", "churnwh", "--project", str(project), "build"]
    if args.engine == "spark":
        command += ["--engine", "spark", "--master", args.master]
    child = subprocess.Popen(command,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=project)
    watched = psutil.Process(child.pid)
    state = {"stage": "start", "since": started, "cpu": 0.0, "sampled_cpu": 0.0}
    stages: dict[str, dict] = {}
    lines: list[str] = []
    lock = threading.Lock()

    def enter(name: str) -> None:
        with lock:
            now = time.perf_counter()
            # CPU seconds: on a shared machine wall-clock time measures the neighbours too
            if child.poll() is not None:  # reaped: its whole CPU time is the children's rusage
                usage = resource.getrusage(resource.RUSAGE_CHILDREN)
                # the tree's last sample counts processes the child started but never reaped (Spark's JVM)
                cpu = max(usage.ru_utime + usage.ru_stime, state["sampled_cpu"])
            else:
                try:
                    cpu = tree_cpu(watched)
                except psutil.Error:
                    cpu = state["cpu"]
            if state["stage"] in stages:
                stages[state["stage"]]["seconds"] += now - state["since"]
                stages[state["stage"]]["cpu"] += cpu - state["cpu"]
            state["stage"], state["since"], state["cpu"] = name, now, cpu
            stages.setdefault(name, {"seconds": 0.0, "rss": 0, "spill": 0, "cpu": 0.0, "roles": {}})

    def read_output() -> None:
        for line in child.stdout:
            lines.append(line.rstrip())
            print("    | " + line.rstrip(), flush=True)
            match = STAGE_LINE.match(line)
            if match and match.group(1) != state["stage"]:
                enter(match.group(1))
                print(f"{time.perf_counter() - started:8.1f} s  {match.group(1)}", flush=True)

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    enter("start")
    peak_rss = peak_spill = 0
    peak_roles: dict[str, int] = {}
    # SIGTERM (a deadline, `timeout`) or Ctrl-C: stop the build and print how far it got
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while child.poll() is None:
            rss, spilled = tree_rss(watched), folder_bytes(spill)
            with contextlib.suppress(psutil.Error):
                state["sampled_cpu"] = tree_cpu(watched)
            roles = spark_rss(watched) if args.engine == "spark" else {}
            with lock:
                entry = stages[state["stage"]]
                entry["rss"], entry["spill"] = max(entry["rss"], rss), max(entry["spill"], spilled)
                for role, value in roles.items():
                    entry["roles"][role] = max(entry["roles"].get(role, 0), value)
                    peak_roles[role] = max(peak_roles.get(role, 0), value)
            peak_rss, peak_spill = max(peak_rss, rss), max(peak_spill, spilled)
            time.sleep(0.5)
    except KeyboardInterrupt:
        print(f"interrupted in stage {state['stage']}: stopping the build", flush=True)
        child.terminate()
        child.wait()
    reader.join(timeout=5)
    enter("end")
    total = time.perf_counter() - started
    engine = f", engine spark on {args.master}" if args.engine == "spark" else ""
    print(f"\nbuild of {args.customers:,} demo customers, memory_limit {args.memory_limit}, threads {args.threads}"
          f"{engine}: exit {child.returncode}")
    print(f"{'stage':<14}{'seconds':>10}{'CPU s':>10}{'peak RSS GiB':>14}{'peak spill GiB':>16}")
    for name, entry in stages.items():
        if name in ("end",):
            continue
        print(f"{name:<14}{entry['seconds']:>10.1f}{entry['cpu']:>10.1f}{entry['rss'] / GIB:>14.2f}"
              f"{entry['spill'] / GIB:>16.2f}")
    cpu_total = sum(entry["cpu"] for entry in stages.values())
    print(f"{'total':<14}{total:>10.1f}{cpu_total:>10.1f}{peak_rss / GIB:>14.2f}{peak_spill / GIB:>16.2f}")
    if peak_roles:
        roles = list(peak_roles)
        print("\npeak RSS GiB by process (Spark)")
        print(f"{'stage':<14}" + "".join(f"{role:>18}" for role in roles))
        for name, entry in stages.items():
            if name != "end":
                print(f"{name:<14}" + "".join(f"{entry['roles'].get(role, 0) / GIB:>18.2f}" for role in roles))
        print(f"{'peak':<14}" + "".join(f"{peak_roles[role] / GIB:>18.2f}" for role in roles))
    files = {path.name: path.stat().st_size / GIB for path in (project / "warehouse").glob("*.duckdb")}
    if args.engine == "spark":
        files["Spark storage (warehouse/spark/tables)"] = storage_bytes(project / "warehouse" / "spark" / "tables") / GIB
    print("files: " + ", ".join(f"{name} {size:.2f} GiB" for name, size in sorted(files.items())))
    print_model_rows(project)
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip())
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    return child.returncode


def print_model_rows(project: pathlib.Path) -> None:
    """Rows and seconds of every model, and where its table is (the private file, or Spark storage only)."""
    import duckdb

    private = project / "warehouse" / "private.duckdb"
    if not private.exists():
        return
    try:
        with duckdb.connect(str(private), read_only=True) as con:
            rows = con.execute("SELECT model, kind, rows, seconds FROM _churnwh.model_state ORDER BY rows DESC").fetchall()
    except duckdb.Error as err:
        print(f"model rows: cannot read {private.name}: {str(err).splitlines()[0]}")
        return
    print(f"\n{'model':<34}{'kind':>9}{'rows':>14}{'seconds':>10}")
    for model, kind, count, seconds in rows:
        print(f"{model:<34}{kind:>9}{count:>14,}{seconds:>10.1f}")


if __name__ == "__main__":
    main()
