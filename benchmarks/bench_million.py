"""A full first build of the demo at N customers, with per-stage time and peak memory.

    python benchmarks/bench_million.py --customers 1000000 --memory-limit 4GB --threads 2
    python benchmarks/bench_million.py --customers 100000 --keep /tmp/bench100k   # keep the project

Makes a demo project (the default network, the repository's SQL models and churnwh.toml with
``[warehouse] memory_limit`` / ``threads`` set), then runs ``churnwh build`` in a child process
(``python -m churnwh build``, as a user runs it) and watches it from outside: every 0.5 s the resident
memory of the child's whole process tree (psutil) and the size of DuckDB's spill folder, attributed to
the stage the child last announced (the CLI's ``[stage]`` progress lines on stderr). Prints per stage
the seconds, the peak RSS of the process tree and the peak spill, then the totals and ``uptime``.
"""

from __future__ import annotations

import argparse
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
    """User + system CPU seconds of the process and its live children so far."""
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
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
    args = parser.parse_args()

    folder = pathlib.Path(args.keep) if args.keep else pathlib.Path(tempfile.mkdtemp(prefix="churnwh-million-"))
    project = make_project(folder / "project", args.customers, args.memory_limit, args.threads,
                           args.extra.replace("\\n", "\n"))
    spill = project / "warehouse" / "private.duckdb.tmp"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-m", "churnwh", "--project", str(project), "build"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=project)
    watched = psutil.Process(child.pid)
    state = {"stage": "start", "since": started, "cpu": 0.0}
    stages: dict[str, dict] = {}
    lines: list[str] = []
    lock = threading.Lock()

    def enter(name: str) -> None:
        with lock:
            now = time.perf_counter()
            # CPU seconds: on a shared machine wall-clock time measures the neighbours too
            if child.poll() is not None:  # reaped: its whole CPU time is the children's rusage
                usage = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = usage.ru_utime + usage.ru_stime
            else:
                try:
                    cpu = tree_cpu(watched)
                except psutil.Error:
                    cpu = state["cpu"]
            if state["stage"] in stages:
                stages[state["stage"]]["seconds"] += now - state["since"]
                stages[state["stage"]]["cpu"] += cpu - state["cpu"]
            state["stage"], state["since"], state["cpu"] = name, now, cpu
            stages.setdefault(name, {"seconds": 0.0, "rss": 0, "spill": 0, "cpu": 0.0})

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
    # SIGTERM (a deadline, `timeout`) or Ctrl-C: stop the build and print how far it got
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        while child.poll() is None:
            rss, spilled = tree_rss(watched), folder_bytes(spill)
            with lock:
                entry = stages[state["stage"]]
                entry["rss"], entry["spill"] = max(entry["rss"], rss), max(entry["spill"], spilled)
            peak_rss, peak_spill = max(peak_rss, rss), max(peak_spill, spilled)
            time.sleep(0.5)
    except KeyboardInterrupt:
        print(f"interrupted in stage {state['stage']}: stopping the build", flush=True)
        child.terminate()
        child.wait()
    reader.join(timeout=5)
    enter("end")
    total = time.perf_counter() - started
    print(f"\nbuild of {args.customers:,} demo customers, memory_limit {args.memory_limit}, threads {args.threads}: "
          f"exit {child.returncode}")
    print(f"{'stage':<14}{'seconds':>10}{'CPU s':>10}{'peak RSS GiB':>14}{'peak spill GiB':>16}")
    for name, entry in stages.items():
        if name in ("end",):
            continue
        print(f"{name:<14}{entry['seconds']:>10.1f}{entry['cpu']:>10.1f}{entry['rss'] / GIB:>14.2f}"
              f"{entry['spill'] / GIB:>16.2f}")
    cpu_total = sum(entry["cpu"] for entry in stages.values())
    print(f"{'total':<14}{total:>10.1f}{cpu_total:>10.1f}{peak_rss / GIB:>14.2f}{peak_spill / GIB:>16.2f}")
    files = {path.name: path.stat().st_size / GIB for path in (project / "warehouse").glob("*.duckdb")}
    print("files: " + ", ".join(f"{name} {size:.2f} GiB" for name, size in sorted(files.items())))
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip())
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    sys.exit(child.returncode)


if __name__ == "__main__":
    main()
