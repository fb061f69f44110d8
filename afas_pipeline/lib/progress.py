"""A run's progress on a terminal: one line per asset (waiting, running, then its counts: rows read, records
sent), drawn with rich from the run's own events. Off a terminal (cron, CI, a pipe) nothing is drawn, so logs
stay plain text."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, SpinnerColumn, Task, TaskID,
                           TextColumn, TimeElapsedColumn)
from rich.text import Text

__all__ = ["RunProgress", "counts_text", "run_progress"]

#: What a materialisation's metadata says, in the order shown: rows read or held, then records sent or refused.
COUNTS = (("dagster/row_count", "rows"), ("created", "created"), ("updated", "updated"), ("rejected", "rejected"),
          ("plan/create", "to create"), ("plan/update", "to update"))


def counts_text(metadata: Mapping[str, object]) -> str:
    """`300 rows, 243 created, 0 updated` from a materialisation's metadata (values or MetadataValues)."""
    shown = []
    for key, label in COUNTS:
        if key in metadata:
            value = getattr(metadata[key], "value", metadata[key])
            if isinstance(value, int) and not isinstance(value, bool):
                shown.append(f"{value:,} {label}")
    return ", ".join(shown)


class _RunOnly(ProgressColumn):
    """A column shown on the run's line only (its bar, steps done of all), blank on the steps' lines."""

    def __init__(self, column: ProgressColumn) -> None:
        super().__init__()
        self._column = column

    def render(self, task: Task):
        return self._column.render(task) if task.fields.get("run") else Text("")


class RunProgress:
    """Listens to a run's events (`DagsterInstance.add_event_listener`) and draws a line per asset. `step_assets`
    names the assets of a step that materialises several (`afas_snapshots`); any other step is its asset."""

    def __init__(self, console: Console, assets: Sequence[str], title: str,
                 step_assets: Mapping[str, Sequence[str]] | None = None) -> None:
        self._progress = Progress(SpinnerColumn(finished_text=" "), TextColumn("{task.description:<34}"),
                                  _RunOnly(BarColumn(bar_width=30)), _RunOnly(MofNCompleteColumn()),
                                  TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=console)
        self._run = self._progress.add_task(title, total=len(assets), status="", run=True)
        self._steps: dict[str, TaskID] = {}
        self._status: dict[TaskID, str] = {}
        self._step_assets = dict(step_assets or {})
        for asset in assets:
            self._task(asset)

    def _task(self, step: str) -> TaskID:
        if step not in self._steps:
            self._steps[step] = self._progress.add_task(f"  {step}", total=1, start=False, status="")
            self._show(self._steps[step], "waiting")
        return self._steps[step]

    def _show(self, task: TaskID, status: str) -> None:
        self._status[task] = status
        self._progress.update(task, status=status)

    def __enter__(self) -> RunProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for task, status in self._status.items():
            if status in ("waiting", "running"):  # a step the run never reached, or left when it stopped
                self._show(task, "not run")
        self._progress.stop()

    def on_event(self, entry) -> None:
        event = entry.dagster_event
        if event is None or event.step_key is None:
            return
        kind = event.event_type_value
        if kind == "ASSET_MATERIALIZATION":
            materialization = event.event_specific_data.materialization
            task = self._task(self._line_of(event.step_key, materialization.asset_key.to_user_string()))
            self._show(task, counts_text(materialization.metadata) or "done")
            return
        for task in (self._task(line) for line in self._step_assets.get(event.step_key, (event.step_key,))):
            if kind == "STEP_START":
                self._progress.start_task(task)
                self._show(task, "running")
            elif kind in ("STEP_SUCCESS", "STEP_FAILURE", "STEP_SKIPPED"):
                if kind != "STEP_SUCCESS":
                    self._show(task, "FAILED" if kind == "STEP_FAILURE" else "skipped")
                elif self._status[task] == "running":  # a step without a materialisation
                    self._show(task, "done")
                self._progress.update(task, completed=1)
                self._progress.advance(self._run)

    def _line_of(self, step: str, asset: str) -> str:
        return asset if asset in self._step_assets.get(step, ()) else step


def run_progress(assets: Sequence[str], title: str, console: Console | None = None,
                 step_assets: Mapping[str, Sequence[str]] | None = None) -> RunProgress | None:
    """A progress display on stderr when it is a terminal; None when it is not (nothing is drawn)."""
    console = console or Console(stderr=True)
    return RunProgress(console, assets, title, step_assets) if console.is_terminal else None
