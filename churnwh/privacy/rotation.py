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
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from churnwh.config import Config
from churnwh.errors import KeyMaterialError
from churnwh.privacy import audit, keys
from churnwh.store import faults, lock, warehouse

NEW_KEY_SUFFIX = ".new"


def pending_key(config: Config) -> Path:
    return Path(str(config.key.file) + NEW_KEY_SUFFIX)


def rotate_key(config: Config, *, on_stage=lambda name: None) -> tuple[str, str]:
    """Rotate the key file; return (old key version, new key version)."""
    from churnwh.action import pilot
    from churnwh.pipeline import BuildOptions, build
    from churnwh.privacy import erasure, publish

    if config.key.env in os.environ:
        raise KeyMaterialError(
            f"the key comes from environment variable {config.key.env}: rotate it in your secret store, "
            "or unset it to rotate the key file"
        )
    with lock.write_lock(config.warehouse.private):
        old_version = keys.key_id(keys.load_key(config.key))
        new_path = pending_key(config)
        new_path.unlink(missing_ok=True)
        keys.generate_key_file(new_path)
        faults.point("rotate.new_key_written")
        new_config = dataclasses.replace(config, key=dataclasses.replace(config.key, file=new_path))
        with warehouse.open_private(config) as con:  # campaigns and score history outlive the rebuild
            owners = pilot.pseudonym_owners(con)
        try:
            build(new_config, BuildOptions(full_refresh=True), on_stage=on_stage)
            # From here the private file needs a rewrite whichever key ends up in force.
            with warehouse.open_private(config) as con:
                warehouse.set_meta(con, erasure.REWRITE_PENDING, "key_rotation")
        except BaseException:
            new_path.unlink(missing_ok=True)
            raise
        new_version = keys.key_id(keys.load_key(new_config.key))
        warehouse.fsync(new_path)
        faults.point("rotate.before_key_rename")
        os.replace(new_path, config.key.file)
        warehouse.fsync(config.key.file.parent)
        faults.point("rotate.after_key_rename")
        run_id = audit.new_id()
        with warehouse.open_private(config) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                rekeyed = pilot.rekey(con, owners)  # before the purge, which deletes unmatched rows
                purged = erasure.purge_orphans(con)
                audit.append(
                    con,
                    event="key_rotation",
                    run_id=run_id,
                    config=config,
                    key_version=new_version,
                    detail={"previous_key_version": old_version, "stale_rows_purged": purged,
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
    return old_version, new_version


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
