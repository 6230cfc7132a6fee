"""Rich progress bars for the CLI (one bar for the current stage, notes printed above it; work running in
lanes at once, one device each, gets one bar per lane, in the order the lanes were opened)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichBar, SpinnerColumn, TextColumn, TimeElapsedColumn

from edge.core.progress import Progress


class RichProgress(Progress):
    def __init__(self, console: Console) -> None:
        self.console = console
        self.bar = RichBar(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                           TimeElapsedColumn(), console=console, transient=True)
        self.task = None

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def lane(self, name: str) -> Progress:
        return _Lane(self, name)

    def start(self, description: str, total: float | None = None) -> None:
        if self.task is not None:
            self.bar.remove_task(self.task)
        self.task = self.bar.add_task(description, total=total)

    def update(self, completed: float | None = None, *, advance: float | None = None,
               description: str | None = None) -> None:
        if self.task is None:
            self.start(description or "")
        kwargs = {k: v for k, v in (("completed", completed), ("advance", advance), ("description", description))
                  if v is not None}
        self.bar.update(self.task, **kwargs)

    def note(self, message: str) -> None:
        self.console.print(f"[dim]•[/dim] {message}")


class _Lane(Progress):
    """One lane's bar, kept in its place (a new stage resets it) and named; its notes say whose they are."""

    def __init__(self, parent: RichProgress, name: str) -> None:
        self.parent, self.name = parent, name
        self.task = parent.bar.add_task(f"{name}: waiting", total=None)

    def start(self, description: str, total: float | None = None) -> None:
        self.parent.bar.reset(self.task, total=total, description=f"{self.name}: {description}")

    def update(self, completed: float | None = None, *, advance: float | None = None,
               description: str | None = None) -> None:
        kwargs = {k: v for k, v in (("completed", completed), ("advance", advance)) if v is not None}
        if description is not None:
            kwargs["description"] = f"{self.name}: {description}"
        self.parent.bar.update(self.task, **kwargs)

    def finish(self) -> None:
        self.parent.bar.update(self.task, description=f"{self.name}: done")

    def note(self, message: str) -> None:
        self.parent.note(f"{self.name}: {message}")

    def lane(self, name: str) -> Progress:
        return self
