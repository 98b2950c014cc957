"""`churnwh rotate-key`: a new pseudonym key, every pseudonym recomputed, a full rebuild.

Decision: the old key is NOT kept. Keeping it would let anyone holding an old export (an old
published file, an old contacts list) link old pseudonyms to people again, which is what a
rotation is meant to end; old and new pseudonyms share nothing (independent HMAC keys). Back the
key up yourself first if a regulator requires you to keep it. The sequence is crash-safe: the new
key is written next to the old one (``<key file>.new``), the build runs with it, and only then is
it renamed over the old key; a failed build leaves the old key in force and the next build
recomputes the pseudonyms with it (a killed rotation's new key is deleted by that build). The
private file is then rewritten so no old pseudonym survives in its bytes (a 'rewrite_pending'
mark, set before the rename, makes the next build finish that rewrite), and the published file is
rebuilt. The key version (a public fingerprint, ``keys.key_id``) is recorded in the audit log.

This module holds the key's steps; ``churnwh.pipeline.rotate_key`` runs them around the full
rebuild (``begin_rotation``, the build with ``new_config``, ``mark_rebuilt``, ``finish_rotation``), so
that privacy needs neither the pipeline nor the campaigns whose rows it carries over.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Callable

import duckdb

from churnwh.config import Config
from churnwh.errors import KeyMaterialError
from churnwh.privacy import audit, erasure, keys, publish
from churnwh.store import faults, warehouse

NEW_KEY_SUFFIX = ".new"


@dataclasses.dataclass(frozen=True)
class PendingRotation:
    """A rotation whose new key is written beside the old one, not yet in force."""

    config: Config
    """The project's configuration (the old key in force)."""
    new_config: Config
    """The same configuration reading the new key: the rebuild runs with it."""
    old_version: str


def pending_key(config: Config) -> Path:
    return Path(str(config.key.file) + NEW_KEY_SUFFIX)


def refuse_key_from_environment(config: Config) -> None:
    """A key from an environment variable is rotated in the secret store, not here."""
    if config.key.env in os.environ:
        raise KeyMaterialError(
            f"the key comes from environment variable {config.key.env}: rotate it in your secret store, "
            "or unset it to rotate the key file"
        )


def begin_rotation(config: Config) -> PendingRotation:
    """Write the new key next to the old one (call under the write lock)."""
    old_version = keys.key_id(keys.load_key(config.key))
    new_path = pending_key(config)
    new_path.unlink(missing_ok=True)
    keys.generate_key_file(new_path)
    faults.point("rotate.new_key_written")
    new_config = dataclasses.replace(config, key=dataclasses.replace(config.key, file=new_path))
    return PendingRotation(config=config, new_config=new_config, old_version=old_version)


def mark_rebuilt(rotation: PendingRotation) -> None:
    """After the rebuild with the new key: from here the private file needs a rewrite whichever key ends up
    in force."""
    with warehouse.open_private(rotation.config) as con:
        warehouse.set_meta(con, erasure.REWRITE_PENDING, "key_rotation")


def abandon_rotation(rotation: PendingRotation) -> None:
    """The rebuild failed: delete the new key, the old one stays in force."""
    pending_key(rotation.config).unlink(missing_ok=True)


def finish_rotation(
    rotation: PendingRotation,
    *,
    carry_over: Callable[[duckdb.DuckDBPyConnection], int] = lambda con: 0,
    on_stage: Callable[[str], None] = lambda name: None,
) -> str:
    """Put the new key in force, purge and rewrite what the old pseudonyms left, republish; return the new
    key version.

    ``carry_over`` moves the rows that outlive builds to the new pseudonyms (inside the audit entry's
    transaction, before the purge that deletes unmatched rows) and returns how many it moved.
    """
    config, new_path = rotation.config, pending_key(rotation.config)
    new_version = keys.key_id(keys.load_key(rotation.new_config.key))
    warehouse.fsync(new_path)
    faults.point("rotate.before_key_rename")
    os.replace(new_path, config.key.file)
    warehouse.fsync(config.key.file.parent)
    faults.point("rotate.after_key_rename")
    run_id = audit.new_id()
    with warehouse.open_private(config) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            rekeyed = carry_over(con)  # before the purge, which deletes unmatched rows
            purged = erasure.purge_orphans(con)
            audit.append(
                con,
                event="key_rotation",
                run_id=run_id,
                config=config,
                key_version=new_version,
                detail={"previous_key_version": rotation.old_version, "stale_rows_purged": purged,
                        "rows_rekeyed": rekeyed},
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    on_stage("rewrite")
    erasure.finish_pending_rewrite(config)
    with warehouse.open_private(config) as con:
        warehouse.set_variables(con, config.variables)
        publish.publish(con, config, run_id=run_id)
    return new_version


def discard_aborted_rotation(config: Config) -> bool:
    """Delete the new key of a rotation killed before it took effect (the old key stays in force).

    Before the rename the new key is only a candidate: keeping it would leave key material that
    nothing uses. Call under the write lock. Returns whether there was one.
    """
    candidate = pending_key(config)
    if not candidate.exists():
        return False
    candidate.unlink()
    return True
