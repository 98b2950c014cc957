"""Where Spark reads and writes the models' Parquet: ``[spark] storage``.

Two kinds: a folder (the default ``spark/`` beside the private file, or a shared mount every node
sees at the same path), handled with the file system here; or a URI (``hdfs://``, ``s3a://``,
``file://``...), handled through Hadoop's FileSystem in the session's JVM, so any connector Spark has
works. Spark is always given URIs: a plain path would be resolved against the cluster's default file
system (HDFS on YARN). DuckDB on the driver reads and writes local files only, so with a URI the raw
export is uploaded from a temporary local file, and the few tables the driver needs (the training and
scoring sets, the published marts, consent, the scored rows) are copied down as files by Hadoop's
``copyToLocalFile`` (streamed from storage to disk, never held in memory) for DuckDB to read.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from churnwh.errors import ChurnwhError

SPARK_DIR = "spark"
"""The default storage, under the private file's folder: ``spark/tables/<schema>/<table>``."""


class Storage:
    """A folder on this machine (shared or not): every operation is a local one."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def __str__(self) -> str:
        return str(self.root)

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def uri(self, *parts: str) -> str:
        return self.path(*parts).resolve().as_uri()

    def exists(self, *parts: str) -> bool:
        return self.path(*parts).exists()

    def remove(self, *parts: str) -> None:
        shutil.rmtree(self.path(*parts), ignore_errors=True)

    def children(self, *parts: str) -> list[str]:
        """The names in the folder at ``parts`` (none when it does not exist)."""
        folder = self.path(*parts)
        return sorted(child.name for child in folder.iterdir()) if folder.is_dir() else []

    def replace(self, source: tuple[str, ...], target: tuple[str, ...]) -> None:
        """``source`` takes ``target``'s place (whatever was there is removed first)."""
        self.remove(*target)
        self.path(*target).parent.mkdir(parents=True, exist_ok=True)
        self.path(*source).rename(self.path(*target))

    @contextlib.contextmanager
    def writable(self, *parts: str) -> Iterator[Path]:
        """A local folder whose files end up at ``parts`` (here: that folder itself)."""
        folder = self.path(*parts)
        folder.mkdir(parents=True, exist_ok=True)
        yield folder

    @contextlib.contextmanager
    def readable(self, *parts: str) -> Iterator[Path]:
        """A local folder holding the files at ``parts`` (here: that folder itself)."""
        yield self.path(*parts).resolve()


class HadoopStorage(Storage):
    """A URI, reached through Hadoop's FileSystem of the Spark session's JVM."""

    def __init__(self, uri: str, spark):
        self.base = uri.rstrip("/")
        try:
            jvm = spark._jvm
            self._hadoop = spark._jsc.hadoopConfiguration()
        except Exception:  # noqa: BLE001 - Spark Connect has no JVM in this process
            raise ChurnwhError(
                f"[spark] storage = {uri!r} needs a session with a JVM in this process: with Spark Connect "
                "(sc://) set storage to a folder that this machine and the cluster both see at the same path"
            ) from None
        self._jvm = jvm
        self._fs = self._jpath().getFileSystem(self._hadoop)

    def __str__(self) -> str:
        return self.base

    def _jpath(self, *parts: str):
        return self._jvm.org.apache.hadoop.fs.Path("/".join((self.base, *parts)))

    def path(self, *parts: str) -> Path:
        raise ChurnwhError("a storage URI has no local path")  # pragma: no cover - a programming error

    def uri(self, *parts: str) -> str:
        return "/".join((self.base, *parts))

    def exists(self, *parts: str) -> bool:
        return bool(self._fs.exists(self._jpath(*parts)))

    def remove(self, *parts: str) -> None:
        if self.exists(*parts):
            self._fs.delete(self._jpath(*parts), True)

    def children(self, *parts: str) -> list[str]:
        if not self.exists(*parts):
            return []
        return sorted(status.getPath().getName() for status in self._fs.listStatus(self._jpath(*parts)))

    def replace(self, source: tuple[str, ...], target: tuple[str, ...]) -> None:
        self.remove(*target)
        self._fs.mkdirs(self._jpath(*target[:-1]))
        if not self._fs.rename(self._jpath(*source), self._jpath(*target)):
            raise ChurnwhError(f"{self.uri(*source)} could not be renamed to {self.uri(*target)}: check the "
                               "storage's permissions")

    @contextlib.contextmanager
    def writable(self, *parts: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="churnwh-spark-") as folder:
            yield Path(folder)
            self._fs.mkdirs(self._jpath(*parts))
            for file in sorted(Path(folder).iterdir()):
                self._fs.copyFromLocalFile(True, True, self._jvm.org.apache.hadoop.fs.Path(file.as_uri()),
                                           self._jpath(*parts, file.name))

    @contextlib.contextmanager
    def readable(self, *parts: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="churnwh-spark-") as folder:
            local = Path(folder) / parts[-1]
            # useRawLocalFileSystem: no .crc files beside the copies
            self._fs.copyToLocalFile(False, self._jpath(*parts), self._jvm.org.apache.hadoop.fs.Path(local.as_uri()),
                                     True)
            yield local


def duckdb_select(folder: Path, columns: dict[str, str] | None = None, partition_by: tuple[str, ...] = ()) -> str:
    """DuckDB SQL reading a table Spark wrote to the local ``folder`` (streamed by ``read_parquet``).

    A table partitioned by ``partition_by`` has its files in ``column=value`` folders and those columns in
    no file: they are read from the folder names (``hive_partitioning``, typed by ``columns``, the model's
    output types) and the columns are put back in the model's order (``columns``' order)."""
    if not partition_by:
        return f"SELECT * FROM read_parquet('{folder}/*.parquet')"
    assert columns is not None, "a partitioned table needs its columns"
    from churnwh.store.warehouse import quote_identifier

    types = ", ".join(f"'{column}': '{columns[column]}'" for column in partition_by)
    selected = ", ".join(quote_identifier(column) for column in columns)
    return (f"SELECT {selected} FROM read_parquet('{folder}/**/*.parquet', hive_partitioning = true, "
            f"hive_types = {{{types}}})")


def open_storage(configured: str | None, private_path: Path, spark) -> Storage:
    """``[spark] storage``: None is ``spark/`` beside the private file; a path is a folder; a URI goes
    through Hadoop (``file://`` included, which is how the tests exercise that path)."""
    if configured is None:
        return Storage(private_path.parent / SPARK_DIR)
    if "://" not in configured:
        return Storage(Path(configured))
    return HadoopStorage(configured, spark)
