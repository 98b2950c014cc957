"""`churnwh doctor`: check a project's health and say what to do about each problem.

Checks, in order (each finding is ok, info or a problem with a one-line fix):

- ``config``: churnwh.toml exists, loads and validates;
- ``key``: the pseudonym key is present (environment or file), the file has mode 0600, it decodes
  to enough bytes, and it is the key the warehouse was built with (a public fingerprint is
  compared, never key material); an interrupted ``rotate-key`` is named;
- ``private``: the private warehouse file opens read-only (or a running build holds it); an
  erasure whose rewrite did not finish is named;
- ``published``: the published file opens read-only and passes ``churnwh.privacy.publish.verify`` (the
  same identifier scan, pseudonym and k-anonymity checks a build runs before publishing);
- ``models``: fingerprints in ``_churnwh.model_state`` are consistent with the warehouse (each
  recorded model exists as a table or view; rows for deleted model files and models whose SQL or
  variables changed since are information) and the current registered model has its artifact;
- ``lock``: no stale write lock (``churnwh.store.lock``);
- ``leftovers``: no temporary files of a killed publish, rewrite or spill beside the warehouse files;
- ``modes``: the private file, its WAL, the spill folder and the model artifacts are owner-only
  (files 0600, folders 0700): they hold identifiers, or values derived from them.

``repair`` does only safe things: clear a stale lock, remove our own leftover temporary files
(never while a build runs), chmod 600 the key file, take group and other permissions off the
private files. Nothing here writes to a warehouse file.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

import duckdb

from churnwh import pipeline
from churnwh.config import CONFIG_FILE, Config, load_config
from churnwh.errors import ChurnwhError
from churnwh.privacy import keys
from churnwh.store import lock

OK, INFO, PROBLEM = "ok", "info", "problem"


@dataclass(frozen=True)
class Finding:
    check: str
    status: str
    """ok | info | problem"""
    message: str
    fix: str = ""
    """What to do (problems; sometimes info)."""
    repair: str | None = None
    """The name of the safe repair `--fix` applies (chmod_key, clear_lock, remove_leftovers)."""

    def line(self) -> str:
        fix = f": {self.fix}" if self.fix else ""
        return f"{self.status:<8} {self.check:<10} {self.message}{fix}"


@dataclass
class Diagnosis:
    findings: list[Finding]
    config: Config | None = None
    leftovers: tuple[Path, ...] = ()

    @property
    def problems(self) -> list[Finding]:
        return [finding for finding in self.findings if finding.status == PROBLEM]


def diagnose(root: Path) -> Diagnosis:
    """Run every check on the project in ``root``; never writes anything."""
    findings: list[Finding] = []
    if not (root / CONFIG_FILE).is_file():  # load_config would validate the defaults of a file that is not there
        findings.append(Finding("config", PROBLEM, f"{root} has no {CONFIG_FILE}: it is not a churnwh project",
                                "start one with `churnwh init DIR`, or point --project at a project folder"))
        return Diagnosis(findings)
    try:
        config = load_config(root)
        from churnwh.sources import declared as sources

        sources.register_classification(config)
    except ChurnwhError as err:
        findings.append(Finding("config", PROBLEM, str(err), "fix churnwh.toml as the message says; the other "
                                "checks need a valid config"))
        return Diagnosis(findings)
    findings.append(Finding("config", OK, f"{config.root / 'churnwh.toml'} is valid"))
    lock_state = lock.inspect(config.warehouse.private)
    key = _check_key(config, findings)
    rotating = _pending_rotation(config, findings)
    con = _open_private(config, lock_state, findings)
    try:
        if con is not None and not rotating:
            _check_key_matches(con, key, findings)
            _check_pending(con, findings)
            _check_audit_chain(con, config, findings)
        _check_published(config, con, lock_state, findings)
        if con is not None:
            _check_models(con, config, findings)
    finally:
        if con is not None:
            con.close()
    _check_lock(lock_state, findings)
    leftovers = _check_leftovers(config, lock_state, findings)
    _check_modes(config, findings)
    return Diagnosis(findings, config, tuple(leftovers))


# --- key -----------------------------------------------------------------------------------------


def _check_key(config: Config, findings: list[Finding]) -> bytes | None:
    path = config.key.file
    from_env = os.environ.get(config.key.env)
    if from_env is None and path.is_file():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            findings.append(Finding("key", PROBLEM, f"key file {path} has mode {mode:04o} (others may read it)",
                                    f"run `chmod 600 {path}` or `churnwh doctor --fix`", "chmod_key"))
    if from_env is None and not path.exists():
        if config.key.create and not config.warehouse.private.exists():
            findings.append(Finding("key", INFO, f"no key file {path} yet: the first build creates it"))
        elif config.warehouse.private.exists():
            findings.append(Finding(
                "key", PROBLEM, f"no pseudonym key: {config.key.env} is not set and {path} is missing",
                "restore the key file from your backup (mode 0600); if it is lost, `churnwh keygen` makes a new "
                "one and the next build recomputes every pseudonym (old ones stop matching)"))
        else:
            findings.append(Finding("key", PROBLEM, f"no pseudonym key: {config.key.env} is not set and {path} is "
                                    "missing", "run `churnwh keygen`"))
        return None
    where = f"environment variable {config.key.env}" if from_env is not None else f"key file {path}"
    try:
        if from_env is None and not path.is_file():
            raise ChurnwhError(f"{path} is not a file: put the key file there (`churnwh keygen`)")
        from_file = from_env is None
        key = keys._decode(from_env if not from_file else path.read_text(encoding="ascii", errors="replace"), where)
    except ChurnwhError as err:
        findings.append(Finding("key", PROBLEM, str(err).split(": create")[0],
                                "create a valid key with `churnwh keygen` (only if the warehouse has none yet: "
                                "a new key changes every pseudonym)"))
        return None
    except OSError as err:
        findings.append(Finding("key", PROBLEM, f"{where} cannot be read ({err.strerror})",
                                "check the file's owner and permissions"))
        return None
    findings.append(Finding("key", OK, f"{where} holds a {len(key) * 8}-bit key (version {keys.key_id(key)})"))
    return key


def _pending_rotation(config: Config, findings: list[Finding]) -> bool:
    from churnwh.privacy import rotation

    pending = rotation.pending_key(config)
    if not pending.exists():
        return False
    findings.append(Finding(
        "key", PROBLEM, f"an interrupted `churnwh rotate-key` left the unused new key {pending} (the old key "
        "is still in force)", "run `churnwh build`: it deletes the new key and rebuilds with the key in force; "
        "then `churnwh rotate-key` again if you still want a new key"))
    return True


def _check_key_matches(con: duckdb.DuckDBPyConnection, key: bytes | None, findings: list[Finding]) -> None:
    built_with = _meta(con, "key_id")
    if key is not None and built_with is not None and not keys.is_key_version(key, built_with):
        findings.append(Finding(
            "key", PROBLEM, f"the key (version {keys.key_id(key)}) is not the one the warehouse was built with "
            f"(version {built_with})", "restore the original key; to change keys on purpose use "
            "`churnwh rotate-key`, which also rewrites the files"))


# --- private file ----------------------------------------------------------------------------------


def _open_private(config: Config, lock_state: lock.LockState, findings: list[Finding]):
    path = config.warehouse.private
    if not path.exists():
        findings.append(Finding("private", INFO, f"no private warehouse {path} yet", "run `churnwh build`"))
        return None
    if not path.is_file():
        findings.append(Finding("private", PROBLEM, f"{path} is not a file", "move it away; the next build "
                                "creates the warehouse file"))
        return None
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as err:
        if lock_state.held or "lock" in str(err).lower():
            who = f" (pid {lock_state.pid})" if lock_state.pid else ""
            findings.append(Finding("private", INFO, f"a build is running{who} and holds {path}: its checks are "
                                    "skipped", "run `churnwh doctor` again when it finishes"))
            return None
        from churnwh.store.warehouse import first_line

        findings.append(Finding(
            "private", PROBLEM, f"{path} cannot be opened ({first_line(err)})",
            "restore it from a backup, or move it away and run `churnwh build` (sources are reloaded; the "
            "model history and audit log start again)"))
        return None
    try:
        tables = con.execute("SELECT count(*) FROM information_schema.tables").fetchone()[0]
    except duckdb.Error as err:
        con.close()
        from churnwh.store.warehouse import first_line

        findings.append(Finding("private", PROBLEM, f"{path} cannot be read ({first_line(err)})",
                                "restore it from a backup, or move it away and run `churnwh build`"))
        return None
    findings.append(Finding("private", OK, f"{path} opens read-only ({tables} tables and views)"))
    return con


def _meta(con: duckdb.DuckDBPyConnection, name: str) -> str | None:
    """``warehouse.get_meta``, or None for a file that has no bookkeeping schema yet."""
    from churnwh.store import warehouse

    try:
        return warehouse.get_meta(con, name)
    except duckdb.Error:
        return None


def _check_audit_chain(con: duckdb.DuckDBPyConnection, config: Config, findings: list[Finding]) -> None:
    """The audit log's keyed hash chain (churnwh.privacy.audit): a removed or edited entry breaks it."""
    from churnwh.privacy import audit
    from churnwh.store import warehouse

    if audit.TABLE not in warehouse.relations(con):
        return
    try:
        key, _ = audit.chain_key(config, create=False)
    except ChurnwhError as err:
        findings.append(Finding("audit", PROBLEM, str(err), "restore the audit key file from your backup"))
        return
    entries = con.execute(f"SELECT count(*) FROM {audit.TABLE}").fetchall()[0][0]
    if key is None:
        findings.append(Finding("audit", PROBLEM if entries else INFO, "no audit key: the audit log's chain cannot be "
                                "verified", "restore the audit key file from your backup (a log written before "
                                "churnwh keyed its chain is sealed by the next build)"))
        return
    broken = audit.verify_chain(con, key)
    if broken:
        findings.append(Finding("audit", PROBLEM, f"the audit log's keyed chain is broken at {broken} of {entries} "
                                "entries (entries were removed or edited)", "treat the log as tampered with: "
                                "compare it with the copy in an older published file"))
    else:
        findings.append(Finding("audit", OK, f"the audit log's keyed chain is intact ({entries} entries)"))


def _check_pending(con: duckdb.DuckDBPyConnection, findings: list[Finding]) -> None:
    from churnwh.privacy import erasure

    if _meta(con, erasure.REWRITE_PENDING) is not None:
        findings.append(Finding(
            "private", PROBLEM, "an erasure or key rotation was interrupted before the private file was rewritten "
            "(erased or old values may still be in its bytes)", "run `churnwh build`: it finishes the rewrite "
            "and republishes"))


# --- published file --------------------------------------------------------------------------------


def _check_published(config: Config, private_con, lock_state: lock.LockState, findings: list[Finding]) -> None:
    from churnwh.privacy import classification, publish
    from churnwh.store import warehouse

    path = config.warehouse.published
    if not path.exists():
        if config.warehouse.private.exists():
            findings.append(Finding("published", PROBLEM, f"no published file {path}",
                                    "run `churnwh build` to publish it"))
        return
    try:
        reader = duckdb.connect(str(path), read_only=True)
        reader.execute("SELECT count(*) FROM information_schema.tables").fetchone()
        reader.close()
    except duckdb.Error as err:
        findings.append(Finding(
            "published", PROBLEM, f"{path} cannot be opened ({warehouse.first_line(err)})",
            "run `churnwh build` to publish a new verified file (BI tools cannot read this one)"))
        return
    con = private_con if private_con is not None else duckdb.connect()
    partial = private_con is None
    try:
        if config.variables:
            warehouse.set_variables(con, config.variables)
        con.execute(f"ATTACH {warehouse.sql_literal(str(path))} AS {publish.PUB} (READ_ONLY)")
        try:
            from churnwh.sqlmodels.project import load_project

            try:
                project = load_project(config.sql)
            except ChurnwhError:
                project = None
            problems, checks = publish.verify(con, config.publish.k_anonymity,
                                              classification.quasi_identifier_names(project))
        finally:
            con.execute(f"DETACH {publish.PUB}")
    except duckdb.Error as err:
        findings.append(Finding("published", PROBLEM, f"{path} cannot be verified ({warehouse.first_line(err)})",
                                "run `churnwh build` to publish a new verified file"))
        return
    finally:
        if partial:
            con.close()
    if problems:
        shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        findings.append(Finding(
            "published", PROBLEM, f"{path} fails verification: {shown}",
            f"keep BI tools off it: remove it (`rm {path}`) and run `churnwh build` to publish a verified one"))
        return
    scope = " (identifier patterns and k-anonymity only: the private file was not readable)" if partial else ""
    findings.append(Finding("published", OK, f"{path} opens read-only and passes verification "
                            f"({checks['tables']} tables, {checks['text_columns']} text columns scanned){scope}"))


# --- models and registry ---------------------------------------------------------------------------


def _check_models(con: duckdb.DuckDBPyConnection, config: Config, findings: list[Finding]) -> None:
    from churnwh.sqlmodels import run_models
    from churnwh.sqlmodels.project import load_project
    from churnwh.stages import registry
    from churnwh.store import warehouse

    try:
        recorded = con.execute("SELECT model, fingerprint, kind FROM _churnwh.model_state").fetchall()
    except duckdb.Error:
        recorded = []
    states = {model: fingerprint for model, fingerprint, _ in recorded}
    kinds = {model: kind for model, _, kind in recorded}
    relations = warehouse.relations(con)
    try:
        project = load_project(config.sql, known_sources={r for r in relations if r.startswith("raw.")})
    except ChurnwhError as err:
        findings.append(Finding("models", PROBLEM, str(err), "fix the model as the message says"))
        project = None
    # a Spark build keeps most models in Spark storage only (churnwh.spark.engine.KIND): no table here
    missing = [name for name in sorted(states) if name not in relations and kinds.get(name) != "parquet"]
    wrong_kind = [name for name in sorted(states) if name in relations and relations[name] != kinds.get(name)]
    for name in missing:
        findings.append(Finding("models", PROBLEM, f"model {name} has a fingerprint in _churnwh.model_state but "
                                "no table or view", f"run `churnwh build --select {name}+` (rebuilds it and what "
                                "reads it)"))
    for name in wrong_kind:
        findings.append(Finding("models", PROBLEM, f"model {name} is recorded as a {kinds[name]} but is a "
                                f"{relations[name]}", f"run `churnwh build --select {name}+ --full-refresh`"))
    if project is not None:
        gone = sorted(set(states) - set(project.models))
        if gone:
            findings.append(Finding("models", INFO, f"{len(gone)} model(s) recorded but without a file under "
                                    f"{config.sql}: {', '.join(gone[:5])}{' ...' if len(gone) > 5 else ''}",
                                    "their tables stay until dropped (DROP TABLE ...) if no longer wanted"))
        changed = _changed_models(con, project, config, states, relations, run_models)
        if changed:
            findings.append(Finding("models", INFO, f"{len(changed)} model(s) changed since the last build (SQL, "
                                    f"variables or upstream data): {', '.join(changed[:5])}"
                                    f"{' ...' if len(changed) > 5 else ''}", "the next `churnwh build` rebuilds them"))
    if not missing and not wrong_kind:
        findings.append(Finding("models", OK, f"{len(states)} model fingerprints match tables and views"))
    if registry.exists(con):
        record = registry.current(con)
        if record is not None:
            artifact = registry.model_dir(config.warehouse.models, record.version) / "model.json"
            if not artifact.is_file():
                findings.append(Finding(
                    "models", PROBLEM, f"the current model {record.version} has no artifact {artifact}",
                    "run `churnwh train --force` to train a new one, or `churnwh rollback VERSION` to one "
                    "listed by `churnwh models` whose artifact exists"))
            else:
                findings.append(Finding("models", OK, f"current model {record.version} has its artifact"))
        _check_withdrawn(con, config, record, findings)


def _check_withdrawn(con: duckdb.DuckDBPyConnection, config: Config, record, findings: list[Finding]) -> None:
    """Model versions trained on an erased customer or an objector must not score, nor stay on disk."""
    from churnwh.privacy import withdrawal

    withdrawn = [row[0] for row in con.execute(
        f"SELECT version FROM {withdrawal.RUNS} WHERE status = '{withdrawal.WITHDRAWN}' ORDER BY version").fetchall()]
    if not withdrawn:
        return
    if record is None:
        findings.append(Finding(
            "models", PROBLEM, f"no current model: {withdrawn[-1]} was withdrawn (trained on data of a customer "
            "since erased or objecting) and no retrain has replaced it yet", "run `churnwh build`"))
    left = withdrawal.withdrawn_artifacts(con, config.warehouse.models)
    if left:
        findings.append(Finding(
            "models", PROBLEM, f"{len(left)} withdrawn model version(s) still have artifacts: "
            f"{', '.join(path.name for path in left[:5])}", "run `churnwh build` (it deletes them) or delete those "
            f"folders under {config.warehouse.models}"))
    else:
        findings.append(Finding("models", OK, f"{len(withdrawn)} withdrawn model version(s), none restorable "
                                "(rollback refuses them, their artifacts are gone)"))


def _changed_models(con, project, config: Config, states: dict[str, str], relations: dict[str, str],
                    run_models) -> list[str]:
    from churnwh.store import warehouse

    try:
        warehouse.set_variables(con, config.variables)
        prints = run_models.current_fingerprints(con, project, config.variables, relations)
    except duckdb.Error:
        return []
    return [name for name in project.order if name in states and states[name] != prints[name]]


# --- lock and leftovers ----------------------------------------------------------------------------


def _check_lock(state: lock.LockState, findings: list[Finding]) -> None:
    who = f"pid {state.pid}" if state.pid else "pid unknown"
    if state.held:
        findings.append(Finding("lock", INFO, f"a build is running ({who})"))
    elif state.stale:
        findings.append(Finding("lock", PROBLEM, f"stale lock from a killed build ({who})",
                                "run `churnwh doctor --fix` or just the next build clears it", "clear_lock"))
    else:
        findings.append(Finding("lock", OK, "no build is running and no stale lock"))


def leftover_files(config: Config) -> list[Path]:
    """What killed churnwh processes left (our names only): temporary copies beside the private and
    published files, half-written model folders, DuckDB spill files of processes that no longer run,
    and a WAL beside the published file (which is never opened for writing)."""
    from churnwh.privacy import erasure, publish
    from churnwh.stages import registry

    private, published = config.warehouse.private, config.warehouse.published
    found = list(publish.stale_temp_files(published)) + list(erasure.stale_rewrites(private))
    found += registry.stale_staging_dirs(config.warehouse.models)
    wal = Path(str(published) + ".wal")
    if wal.exists():
        found.append(wal)
    found += pipeline.dead_spill_files(config.warehouse.temp_directory or Path(str(private) + ".tmp"))
    return sorted(set(found))


def _check_leftovers(config: Config, state: lock.LockState, findings: list[Finding]) -> list[Path]:
    found = leftover_files(config)
    if not found:
        findings.append(Finding("leftovers", OK, "no temporary files of killed runs"))
        return []
    names = ", ".join(path.name for path in found[:4]) + (" ..." if len(found) > 4 else "")
    if state.held:
        findings.append(Finding("leftovers", INFO, f"{len(found)} temporary file(s) beside the warehouse files "
                                f"({names}) while a build is running", "they may be its own: check again after it"))
        return []
    findings.append(Finding("leftovers", PROBLEM, f"{len(found)} temporary file(s) left by killed runs: {names}",
                            "run `churnwh doctor --fix` (or the next build) to remove them", "remove_leftovers"))
    return found


# --- file modes ------------------------------------------------------------------------------------


def private_paths(config: Config) -> list[Path]:
    """What holds identifiers or values derived from them, beside the key file: the private file,
    its WAL, the spill folder and everything in it, the models folder and everything in it."""
    private = config.warehouse.private
    found = [private, Path(str(private) + ".wal")]
    for folder in (Path(config.warehouse.temp_directory or Path(str(private) + ".tmp")), config.warehouse.models):
        found.append(folder)
        if folder.is_dir():
            found += sorted(folder.rglob("*"))
    return [path for path in found if path.exists() and not path.is_symlink()]


def too_open(config: Config) -> list[Path]:
    """Private paths that a group or other users may read, write or enter."""
    return [path for path in private_paths(config) if stat.S_IMODE(path.stat().st_mode) & 0o077]


def _check_modes(config: Config, findings: list[Finding]) -> None:
    loose = too_open(config)
    if not loose:
        findings.append(Finding("modes", OK, "the private file, its WAL, spill folder and models are owner-only"))
        return
    first = loose[0]
    more = f" and {len(loose) - 1} more" if len(loose) > 1 else ""
    findings.append(Finding(
        "modes", PROBLEM, f"{first} has mode {stat.S_IMODE(first.stat().st_mode):04o}{more}: other users may read "
        "identifiers", f"run `churnwh doctor --fix` (or `chmod go-rwx {first}`)", "chmod_private"))


# --- repairs ---------------------------------------------------------------------------------------


def repair(diagnosis: Diagnosis) -> list[str]:
    """Apply the safe repairs the diagnosis names; return one line per thing done."""
    done: list[str] = []
    config = diagnosis.config
    if config is None:
        return done
    wanted = {finding.repair for finding in diagnosis.problems if finding.repair}
    if "chmod_key" in wanted and config.key.file.is_file():
        os.chmod(config.key.file, 0o600)
        done.append(f"set mode 0600 on {config.key.file}")
    if "chmod_private" in wanted:
        for path in too_open(config):
            os.chmod(path, stat.S_IMODE(path.stat().st_mode) & 0o700)
            done.append(f"took group and other permissions off {path}")
    if "clear_lock" in wanted:
        state = lock.inspect(config.warehouse.private)
        if state.stale and lock.clear_stale(config.warehouse.private):
            done.append(f"cleared the stale lock of pid {state.pid or 'unknown'}")
    if "remove_leftovers" in wanted and not lock.inspect(config.warehouse.private).held:
        for path in leftover_files(config):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            done.append(f"removed {path}")
    return done


def run(root: Path, *, fix: bool = False) -> tuple[Diagnosis, list[str]]:
    """Diagnose; with ``fix``, repair what is safe and diagnose again. Returns (diagnosis, repairs)."""
    diagnosis = diagnose(root)
    if not fix:
        return diagnosis, []
    done = repair(diagnosis)
    return (diagnose(root) if done else diagnosis), done
