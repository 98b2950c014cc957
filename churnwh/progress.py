"""Progress reports that long stages send to whoever runs them (the CLI renders them).

A report holds counts, losses and table names, never a customer value: it may end up in a log.
Training sends ``churnwh.ml.train.EpochReport``; loading, scoring and explaining send ``Count``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Count:
    """``done`` of ``total`` units (customers, rows) of a stage; ``what`` names a table, if any."""

    stage: str
    done: int
    total: int | None
    unit: str
    what: str = ""

    @property
    def finished(self) -> bool:
        return self.total is not None and self.done >= self.total


Reporter = Callable[[object], None]
"""Receives each report (``Count`` or ``EpochReport``); must return quickly."""


def ignore(report: object) -> None:
    """The reporter of a caller that shows no progress."""
