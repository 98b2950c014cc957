"""`churnwh rotate-key`: a new pseudonym key, every pseudonym recomputed, a full rebuild.

Decision: the old key is NOT kept. Keeping it would let anyone holding an old export (an old
published file, an old contacts list) link old pseudonyms to people again, which is what a
rotation is meant to end; old and new pseudonyms share nothing (independent HMAC keys). Back the
key up yourself first if a regulator requires you to keep it. The sequence is crash-safe: the new
key is written next to the old one (``<key file>.new``), the build runs with it, and only then is
it renamed over the old key; a failed build leaves the old key in force and the next build
recomputes the pseudonyms with it. The private file is then rewritten so no old pseudonym
survives in its bytes, and the published file is rebuilt. The key version (a public fingerprint,
``keys.key_id``) is recorded in the audit log.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from churnwh import audit, keys, warehouse
from churnwh.config import Config
from churnwh.errors import KeyMaterialError


def rotate_key(config: Config, *, on_stage=lambda name: None) -> tuple[str, str]:
    """Rotate the key file; return (old key version, new key version)."""
    from churnwh import erasure, publish
    from churnwh.pipeline import BuildOptions, build

    if config.key.env in os.environ:
        raise KeyMaterialError(
            f"the key comes from environment variable {config.key.env}: rotate it in your secret store, "
            "or unset it to rotate the key file"
        )
    old_version = keys.key_id(keys.load_key(config.key))
    new_path = Path(str(config.key.file) + ".new")
    new_path.unlink(missing_ok=True)
    keys.generate_key_file(new_path)
    new_config = dataclasses.replace(config, key=dataclasses.replace(config.key, file=new_path))
    try:
        build(new_config, BuildOptions(full_refresh=True), on_stage=on_stage)
    except BaseException:
        new_path.unlink(missing_ok=True)
        raise
    new_version = keys.key_id(keys.load_key(new_config.key))
    os.replace(new_path, config.key.file)
    run_id = audit.new_id()
    with warehouse.connect(config.warehouse.private, memory_limit=config.warehouse.memory_limit) as con:
        purged = erasure.purge_orphans(con)
        audit.append(
            con,
            event="key_rotation",
            run_id=run_id,
            config=config,
            key_version=new_version,
            detail={"previous_key_version": old_version, "stale_rows_purged": purged},
        )
    on_stage("rewrite")
    erasure.rewrite_file(config.warehouse.private)
    with warehouse.connect(config.warehouse.private, memory_limit=config.warehouse.memory_limit) as con:
        warehouse.set_variables(con, config.variables)
        publish.publish(con, config, run_id=run_id)
    return old_version, new_version
