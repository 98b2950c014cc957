"""Progress of long commands on stderr: rich bars on a terminal, timestamped lines without one.

Without a terminal (cron, CI) a line is written when a stage starts, for its first and last step, and
in between at most every ``PLAIN_INTERVAL_SECONDS`` (every step with --verbose). With --quiet nothing.
Every line is built from counts, losses and table names only: no customer value can reach a log.
"""

from __future__ import annotations

import time
from datetime import datetime

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Column

from churnwh.progress import Count

PLAIN_INTERVAL_SECONDS = 5.0


def timestamp() -> str:
    return datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float) -> str:
    """3 s, 2 min 05 s, 1 h 02 min."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def stage_of(report) -> str:
    return report.stage if isinstance(report, Count) else "train"


def describe(report) -> str:
    """One report as words: an EpochReport (churnwh.ml.train) or a Count (churnwh.progress)."""
    if isinstance(report, Count):
        share = f" ({report.done / report.total:.0%})" if report.total else ""
        counted = f"{report.done:,} of {report.total:,} {report.unit}{share}" if report.total is not None else \
            f"{report.done:,} {report.unit}"
        return f"{counted}, {report.what} done" if report.what else counted
    text = (f"epoch {report.epoch}/{report.max_epochs}: validation loss {report.valid_loss:.4f} "
            f"(best {report.best_loss:.4f} at epoch {report.best_epoch})")
    if report.epoch == 1:  # its time is mostly compiling: no speed or estimate to draw from it
        text += f", {duration(report.epoch_seconds)} with compiling"
    else:
        text += f", {report.rows_per_second:,.0f} rows/s"
    if report.stopped:
        why = "epoch cap reached" if report.epoch >= report.max_epochs else \
            f"no gain for {report.patience} epochs"
        return f"{text}; stopped: {why}, keeping epoch {report.best_epoch}"
    if report.epoch == 1:
        return text
    return (f"{text}; at most {duration(report.seconds_to_cap)} left (stops sooner after "
            f"{report.patience - report.epochs_without_gain} more epochs without gain)")


def brief(report) -> str:
    """The words beside a bar (which shows the counts itself): short enough for an 80-column terminal."""
    if isinstance(report, Count):
        return f"{report.unit}, {report.what} done" if report.what else report.unit
    text = f"val loss {report.valid_loss:.4f}, best {report.best_loss:.4f} at {report.best_epoch}"
    if report.stopped:
        return f"{text}; stopped"
    if report.epoch == 1:
        return f"{text}; compiled"
    return f"{text}; {report.rows_per_second:,.0f} rows/s, <= {duration(report.seconds_to_cap)} left"


def model_line(result) -> str:
    status = "increment" if getattr(result, "mode", "full") == "incremental" else result.status
    line = f"{status:<8} {result.name:<40} {result.rows:>10,} rows  {result.seconds:6.2f} s"
    notes = [getattr(result, "note", ""), f"{slices} slices" if (slices := getattr(result, "slices", 1)) > 1 else ""]
    note = "; ".join(filter(None, notes))
    return f"{line}  ({note})" if note else line


class Silent:
    """--quiet: nothing at all."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def stage(self, name: str) -> None:
        pass

    def model(self, result) -> None:
        pass

    def report(self, report) -> None:
        pass


class PlainLines(Silent):
    """No terminal: one timestamped line per stage start, per model, and per step at a log's pace."""

    def __init__(self, console: Console, every_step: bool = False, interval: float = PLAIN_INTERVAL_SECONDS):
        self.console = console
        self.every_step = every_step
        self.interval = interval
        self.last_line: dict[str, float] = {}

    def line(self, text: str) -> None:
        self.console.print(f"{timestamp()} {text}", highlight=False, markup=False, soft_wrap=True)

    def stage(self, name: str) -> None:
        self.line(f"{name:<12} started")

    def model(self, result) -> None:
        self.line(f"{'models':<12} {model_line(result)}")

    def report(self, report) -> None:
        stage = stage_of(report)
        now = time.monotonic()
        last = report.finished if isinstance(report, Count) else report.stopped
        first = stage not in self.last_line
        if self.every_step or first or last or now - self.last_line[stage] >= self.interval:
            self.last_line[stage] = now
            self.line(f"{stage:<12} {describe(report)}")


class LiveBars(Silent):
    """A terminal: a spinner for the running stage, a bar for training epochs, customers and rows."""

    def __init__(self, console: Console):
        self.bars = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}", table_column=Column(min_width=12, no_wrap=True)),
            BarColumn(bar_width=20), TextColumn("{task.fields[counts]}", justify="right"), TimeElapsedColumn(),
            TextColumn("{task.fields[info]}", table_column=Column(ratio=1, no_wrap=True, overflow="ellipsis")),
            console=console, transient=False,
        )
        self.tasks: dict[str, TaskID] = {}
        self.running: TaskID | None = None

    def __enter__(self):
        self.bars.start()
        return self

    def __exit__(self, *exc) -> None:
        self._end_running()
        self.bars.stop()

    def _end_running(self) -> None:
        if self.running is not None and self.running not in self.tasks.values():
            self.bars.remove_task(self.running)  # a stage without counts leaves no bar behind
        self.running = None

    def stage(self, name: str) -> None:
        self._end_running()
        self.running = self.bars.add_task(name, total=None, info="", counts="")

    def model(self, result) -> None:
        self.bars.console.print("  " + model_line(result), highlight=False, markup=False)

    def report(self, report) -> None:
        stage = stage_of(report)
        if stage not in self.tasks:
            if self.running is not None and self.bars.tasks[self._index(self.running)].description == stage:
                self.tasks[stage] = self.running
            else:
                self.tasks[stage] = self.bars.add_task(stage, total=None, info="", counts="")
        if isinstance(report, Count):
            done, total = report.done, report.total
        else:
            done, total = report.epoch, (report.epoch if report.stopped else report.max_epochs)
        counts = f"{done:,}/{total:,}" if total is not None else f"{done:,}"
        self.bars.update(self.tasks[stage], completed=done, total=total, info=brief(report), counts=counts)

    def _index(self, task: TaskID) -> int:
        return next(i for i, candidate in enumerate(self.bars.tasks) if candidate.id == task)


def display(console: Console, verbosity: int):
    """The progress display for this run: Silent (--quiet), LiveBars (a terminal) or PlainLines."""
    if verbosity < 0:
        return Silent()
    if console.is_terminal:
        return LiveBars(console)
    return PlainLines(console, every_step=verbosity > 0)
