"""A real Spark standalone cluster for tests: one master and one worker, separate processes on 127.0.0.1.

pyspark ships ``bin/spark-class``, which runs Spark's own Master and Worker; nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pyspark


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spark_class() -> Path:
    return Path(pyspark.__file__).parent / "bin" / "spark-class"


def _wait_for(log: Path, text: str, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            break
        time.sleep(0.5)
    raise RuntimeError(f"the Spark {log.stem} did not start (no {text!r} in {log}):\n"
                       + log.read_text(errors="replace")[-3000:])


@contextlib.contextmanager
def standalone_cluster(folder: Path, *, cores: int = 1, memory: str = "1g") -> Iterator[str]:
    """Start a master and one worker; yield the master URL; stop both (their process groups) after."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_NO_DAEMONIZE": "1",
           "SPARK_LOG_DIR": str(folder), "SPARK_WORKER_DIR": str(folder / "work")}
    port = free_port()
    master = f"spark://127.0.0.1:{port}"
    processes: list[subprocess.Popen] = []
    try:
        for name, args, ready in (
            ("master", ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                        "--webui-port", str(free_port())], "I have been elected leader"),
            ("worker", ["org.apache.spark.deploy.worker.Worker", master, "--host", "127.0.0.1", "--cores",
                        str(cores), "--memory", memory, "--webui-port", str(free_port()),
                        "--work-dir", str(folder / "work")], "Successfully registered with master"),
        ):
            log = folder / f"{name}.log"
            with log.open("w") as out:
                processes.append(subprocess.Popen([str(spark_class()), *args], stdout=out, stderr=subprocess.STDOUT,
                                                  env=env, start_new_session=True))
            _wait_for(log, ready, processes[-1], 120)
        yield master
    finally:
        for process in reversed(processes):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
