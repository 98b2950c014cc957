"""Named crash points for the fault-injection tests (tests/test_crash.py, tests/test_resources.py).

``CHURNWH_FAULT_AT=NAME`` makes the process SIGKILL itself the first time ``point(NAME)`` runs;
``NAME@N`` on its N-th hit (the N-th model, say); ``NAME:ENOSPC`` raises ``OSError(ENOSPC)``
there instead, as a full disk would. Unset (always, outside tests) a point costs one lookup.
"""

from __future__ import annotations

import errno
import os
import signal
from collections import Counter

ENV = "CHURNWH_FAULT_AT"

POINTS = (
    "load.raw_table",  # demo.write_raw: inside the raw-table transaction, after each table
    "load.after_raw",  # raw tables committed, demo truth and parameters not yet recorded
    "pseudonymize.mid",  # customer keys recomputed, transaction not committed
    "models.in_transaction",  # a model's table created, its checks and commit pending (@N: N-th model)
    "models.in_increment",  # an incremental model's new range deleted and inserted, checks and commit pending
    "models.after_commit",  # a model committed (@N)
    "train.after_fit",  # trained, nothing saved
    "train.after_artifact",  # artifact installed, registry row not written
    "train.after_record",  # registry row committed
    "score.mid_stream",  # a batch scored into the staging table
    "score.before_commit",  # ml.churn_scores replaced, transaction not committed
    "after.score",  # a stage finished (any stage name: after.load ... after.monitor)
    "after.explain",
    "after.monitor",
    "publish.copy",  # each allowlisted table copied into the temporary file
    "publish.temp_written",  # temporary file complete, not verified
    "publish.before_rename",  # verified, fsynced, not renamed
    "publish.after_rename",  # installed, build not finished
    "forget.after_delete",  # erasure committed, private file not rewritten
    "rewrite.temp_written",  # the rewritten copy written, still attached
    "rewrite.before_rename",  # the rewritten copy closed, not renamed
    "rewrite.after_rename",  # the rewritten copy installed, pending flag not cleared
    "forget.before_publish",  # rewrite done, published file not rebuilt
    "rotate.new_key_written",  # new key file written, nothing rebuilt
    "rotate.before_key_rename",  # everything rebuilt with the new key, key file not renamed
    "rotate.after_key_rename",  # new key in force, old pseudonyms not yet purged and rewritten
)

_hits: Counter[str] = Counter()


def point(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, action = spec.partition(":")
    target, _, nth = target.partition("@")
    if target != name:
        return
    _hits[name] += 1
    if _hits[name] != int(nth or 1):
        return
    if action.upper() == "ENOSPC":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    os.kill(os.getpid(), signal.SIGKILL)
