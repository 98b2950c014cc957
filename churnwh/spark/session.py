"""The Spark session of ``--engine spark``: checks before it starts, its settings, its errors.

churnwh's own defaults suit a local master only (driver on 127.0.0.1, executors on this Python, 4
shuffle partitions, UI off); on a cluster Spark's defaults apply, and ``[spark] conf`` wins over both.
The session starts with a bounded wait (``[spark] connect_timeout_s``) so that a master that accepts
the connection but never answers as Spark stops the build with one line, and the JVM's own output
goes to a log file beside the private file instead of the terminal (``--verbose`` shows it).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import urlparse

from churnwh.config import SPARK_MASTERS, SparkConfig
from churnwh.errors import ChurnwhError

log = logging.getLogger("churnwh.spark")

MASTER_HELP = "use local[2], spark://host:7077, yarn, k8s://https://host:443 or sc://host:15002"
JAVA_INSTALL = "install Java 17 or 21 (e.g. `apt-get install openjdk-17-jre-headless`)"
MIN_JAVA = 17

_SESSIONS: dict[str, Any] = {}


class SparkUnavailable(ChurnwhError):
    """pyspark, Java or the Spark master cannot be used."""


def is_local(master: str) -> bool:
    return master.startswith("local")


def verbose() -> bool:
    """--verbose: churnwh's logger shows INFO lines (the CLI sets it), so Spark's output is shown too."""
    return logging.getLogger("churnwh").isEnabledFor(logging.INFO)


# --- checks before anything starts -------------------------------------------------------------------


def _endpoints(master: str) -> list[tuple[str, int]]:
    """The host:port pairs a master URL names (a standalone HA master lists several)."""
    if master.startswith("k8s://"):
        url = urlparse(master[len("k8s://"):] if "://" in master[len("k8s://"):] else "https://" + master[6:])
        return [(url.hostname, url.port or 443)] if url.hostname else []
    scheme, _, hosts = master.partition("://")
    if scheme not in ("spark", "sc") or not hosts:
        return []
    default = 15002 if scheme == "sc" else 7077
    pairs = []
    for host in hosts.split("/")[0].split(","):
        name, _, port = host.rpartition(":") if ":" in host else (host, "", "")
        try:
            pairs.append((name or host, int(port) if port else default))
        except ValueError:
            raise SparkUnavailable(f"--master {master!r}: {port!r} is not a port number: {MASTER_HELP}") from None
    return pairs


def check_reachable(master: str, timeout_s: float = 5) -> None:
    endpoints = _endpoints(master)
    failures = []
    for host, port in endpoints:
        try:
            with socket.create_connection((host, port), timeout=min(timeout_s, 10)):
                return
        except OSError as err:
            failures.append(f"{host}:{port} ({err.strerror or err})")
    if failures:
        scheme = master.split("://")[0]
        raise SparkUnavailable(
            f"Spark master {scheme}://{', '.join(failures)} cannot be reached: start the cluster or fix --master"
        )


def java_version(java: str) -> int | None:
    """The major version ``java -version`` reports (8 for 1.8), None when it does not run."""
    try:
        done = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if done.returncode != 0 or not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def check_java() -> None:
    """Spark runs ``$JAVA_HOME/bin/java`` when JAVA_HOME is set, else the java on PATH: check that one."""
    home = os.environ.get("JAVA_HOME")
    on_path = shutil.which("java")
    other = f"unset JAVA_HOME to use {on_path}" if on_path else JAVA_INSTALL
    if home:
        java = Path(home) / "bin" / "java"
        if not (java.is_file() and os.access(java, os.X_OK)):
            raise SparkUnavailable(
                f"JAVA_HOME={home} has no bin/java, and Spark runs the java of JAVA_HOME: point JAVA_HOME at a "
                f"Java 17 or 21 installation, or {other}"
            )
        where = f"JAVA_HOME={home}"
    elif on_path is None:
        raise SparkUnavailable(f"no Java runtime found (Spark needs Java 17 or 21): {JAVA_INSTALL}, or set JAVA_HOME")
    else:
        java, where, other = Path(on_path), f"the java on PATH ({on_path})", f"set JAVA_HOME to one, or {JAVA_INSTALL}"
    version = java_version(str(java))
    if version is None:
        raise SparkUnavailable(f"{where}: `{java} -version` fails, so Spark cannot start: point JAVA_HOME at a "
                               f"working Java 17 or 21, or {other}")
    if version < MIN_JAVA:
        raise SparkUnavailable(f"{where} is Java {version}; Spark 4 needs Java 17 or 21: point JAVA_HOME at one, "
                               f"or {JAVA_INSTALL}")


def check_master(master: str) -> None:
    if not master.startswith(SPARK_MASTERS):
        raise SparkUnavailable(f"--master {master!r} is not a Spark master: {MASTER_HELP}")
    if master.startswith("yarn") and not (os.environ.get("HADOOP_CONF_DIR") or os.environ.get("YARN_CONF_DIR")):
        raise SparkUnavailable("--master yarn needs HADOOP_CONF_DIR or YARN_CONF_DIR set to the folder of the "
                                   "cluster's yarn-site.xml and core-site.xml")


def _require_pyspark() -> None:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkUnavailable("pyspark is not installed: pip install 'pyspark>=4' 'pandas<3' (the spark extra of "
                               "churnwh)") from None


def preflight(master: str) -> None:
    """Fail fast, before any stage runs: pyspark, Java and the master must be usable."""
    _require_pyspark()
    check_master(master)
    check_reachable(master)
    if not master.startswith("sc://"):
        check_java()


# --- settings ------------------------------------------------------------------------------------------


DRIVER_JAVA_OPTIONS = "-XX:-SegmentedCodeCache -XX:ReservedCodeCacheSize=512m -Duser.timezone=UTC"
"""One code cache large enough for a long-lived driver that compiles many distinct queries (the default
segments ran out after the differential fuzz test's queries, and the next build failed)."""


def spark_conf(master: str, settings: SparkConfig) -> dict[str, str]:
    """The session's settings: churnwh's (cluster-neutral), local-only defaults, then [spark] conf over all."""
    conf = {
        "spark.app.name": "churnwh",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.session.timeZone": "UTC",
        "spark.driver.extraJavaOptions": DRIVER_JAVA_OPTIONS,
        "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.python.worker.reuse": "true",
    }
    if is_local(master):
        conf.update({
            "spark.ui.enabled": "false",
            # executors run in this process's JVM: nothing outside this machine needs to reach the driver
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            # fast start: C1 only, serial GC
            "spark.driver.extraJavaOptions": f"-XX:TieredStopAtLevel=1 -XX:+UseSerialGC {DRIVER_JAVA_OPTIONS}",
            "spark.sql.shuffle.partitions": "4",
        })
        if not os.environ.get("PYSPARK_PYTHON"):
            conf["spark.pyspark.python"] = sys.executable
    if settings.shuffle_partitions is not None:
        conf["spark.sql.shuffle.partitions"] = str(settings.shuffle_partitions)
    if verbose():
        conf["spark.sql.pyspark.jvmStacktrace.enabled"] = "true"  # --verbose: the JVM's side of an error too
    conf.update(settings.conf)
    return conf


# --- start ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _output_to(log_file: Path | None) -> Iterator[None]:
    """Send what the JVM (started now) prints to ``log_file``: stdout and stderr file descriptors are
    pointed at it while the session starts, so the JVM keeps writing there; Python's are restored."""
    if log_file is None:
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    # one run's output (its Spark errors may quote values: the file is as private as the private file)
    target = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, target):
            os.close(fd)


def _log_cause(log_file: Path | None) -> str:
    """The line of the JVM's output that says why it did not start (Java too old, a bad setting, ...)."""
    if log_file is None or not log_file.exists():
        return ""
    for line in log_file.read_text(errors="replace").splitlines():  # the first complaint is the cause
        text = line.strip()
        if re.search(r"(Error|Exception)\b|error:|Invalid|Unrecognized|No such file|not found|must be set",
                     text) and not text.startswith("at "):
            from churnwh.store import warehouse

            return warehouse.first_line(Exception(re.sub(r"^\S+ \S+ (ERROR|WARN) \S+: ", "", text)))[:300]
    return ""


def _kill_gateway() -> None:
    """After a timed-out start: end the JVM that is still waiting for the master (the blocked call
    returns with an error in its thread) so that nothing keeps running."""
    try:
        from pyspark import SparkContext

        gateway = SparkContext._gateway
        if gateway is not None and getattr(gateway, "proc", None) is not None:
            gateway.proc.kill()
        SparkContext._gateway = None
        SparkContext._jvm = None
    except Exception:  # noqa: BLE001 - best effort: the process exits right after
        pass


def _launch_jvm(conf: dict[str, str] | None) -> None:
    """Start the driver's JVM with the session's settings (no time limit: a JVM that cannot start exits),
    so that the limit of ``_start`` counts the master's answer only, not a slow JVM start."""
    if conf is None:
        return
    from pyspark import SparkConf, SparkContext

    SparkContext._ensure_initialized(conf=SparkConf(loadDefaults=False).setAll(list(conf.items())))


def _start(builder, master: str, timeout_s: float | None, log_file: Path | None, conf: dict[str, str] | None = None):
    """``builder.getOrCreate()``, given at most ``timeout_s`` seconds after the JVM started (None: no limit)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            if conf is not None:
                # the SparkContext is what registers with the master: only its start is timed
                from pyspark import SparkConf, SparkContext

                SparkContext.getOrCreate(SparkConf().setAll(list(conf.items())))
            else:
                outcome["spark"] = builder.getOrCreate()
        except BaseException as err:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = err

    with _output_to(log_file):
        try:
            _launch_jvm(conf)
        except BaseException as err:  # noqa: BLE001 - reported below like a failed start
            outcome["error"] = err
        worker = threading.Thread(target=run, name="churnwh-spark-start", daemon=True)
        if "error" not in outcome:
            worker.start()
            worker.join(timeout_s)
    if worker.is_alive():
        _kill_gateway()
        raise SparkUnavailable(
            f"Spark master {master} accepted the connection but did not start a session within {timeout_s:g} s: "
            "check that --master names a Spark master of a compatible version (Spark 4) with free workers, or "
            "raise [spark] connect_timeout_s"
        )
    if "error" in outcome:
        err = outcome["error"]
        cause = _log_cause(log_file)
        where = f" (Spark's output: {log_file})" if log_file else ""
        reason = cause or first_lines(err)[0]
        raise SparkUnavailable(f"Spark could not start on {master}: {reason}{where}") from None
    return outcome.get("spark") or builder.getOrCreate()


def session(master: str = "local[2]", settings: SparkConfig | None = None, log_dir: Path | None = None):
    """A Spark session for ``master``; one per master per process.

    Raises SparkUnavailable, with one line saying what to do, when pyspark, Java or the master is
    missing or does not answer within ``settings.connect_timeout_s``. ``log_dir``: where the JVM's
    output goes (``driver.log``), unless --verbose shows it.
    """
    if master in _SESSIONS:
        return _SESSIONS[master]
    settings = settings or SparkConfig()
    _require_pyspark()
    from pyspark.sql import SparkSession

    check_master(master)
    check_reachable(master)
    log_file = None if verbose() or log_dir is None else log_dir / "driver.log"
    if master.startswith("sc://"):
        spark = _start(SparkSession.builder.remote(master), master, settings.connect_timeout_s, log_file)
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    else:
        check_java()
        if is_local(master):
            os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        conf = spark_conf(master, settings)
        if "spark.pyspark.python" in conf:
            # pyspark gives executors the driver's PYSPARK_PYTHON (spark-submit alone reads the setting)
            os.environ["PYSPARK_PYTHON"] = conf["spark.pyspark.python"]
        builder = SparkSession.builder.master(master)
        for name, value in conf.items():
            builder = builder.config(name, value)
        timeout = None if is_local(master) else settings.connect_timeout_s
        spark = _start(builder, master, timeout, log_file, {**conf, "spark.master": master})
        spark.sparkContext.setLogLevel("WARN" if verbose() else "ERROR" if log_file else "OFF")
    # pyspark logs every failed query as a long JSON record; the error we raise is enough
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    _SESSIONS[master] = spark
    return spark


def stop_sessions() -> None:
    while _SESSIONS:
        _, spark = _SESSIONS.popitem()
        try:
            spark.stop()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


# --- errors of jobs ------------------------------------------------------------------------------------

_MISSING_MODULE = re.compile(r"^ModuleNotFoundError: No module named '[\w.]+'$")
_EXCEPTION_LINE = re.compile(r"^(?:Caused by: )?([A-Za-z_][\w.$]*(?:Error|Exception|Exit)\b)(?::\s*(.*))?$")


def first_lines(err: BaseException) -> list[str]:
    """Spark's error as a headline and its root cause (the last ``Caused by:`` or the Python exception a
    worker raised), quoted data values removed so that no identifier leaks."""
    from churnwh.store import warehouse

    text = str(err).strip() or type(err).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    head = warehouse.first_line(err)
    cause = ""
    for line in lines:
        found = _EXCEPTION_LINE.match(line)
        if found and found.group(1).split(".")[-1] not in ("Py4JJavaError", "SparkException"):
            cause = line.removeprefix("Caused by: ")
    missing = _MISSING_MODULE.match(cause)
    # a module name is code, not data: the one thing an operator needs when an executor lacks a package
    cause = cause if missing else warehouse.first_line(Exception(cause)) if cause else ""
    head = head.rstrip(" :.")
    return [head] if not cause or cause in head else [head, cause]


def error_line(err: BaseException) -> str:
    """One line for the user: headline and root cause; with --verbose the whole trace goes to the log."""
    from churnwh.store import warehouse

    if verbose():
        for line in str(err).splitlines():
            if line.strip():
                log.info("spark: %s", warehouse.first_line(Exception(line)))
    head, *cause = first_lines(err)
    return head[:500] + (f" (root cause: {cause[0][:500]})" if cause else "")
