"""Progress reporting for long work, decoupled from any UI.

Library functions take a ``Progress``; the default does nothing. The CLI passes a rich-backed one
(``edge.cli_progress.RichProgress``) that draws bars.
"""

from __future__ import annotations


class Progress:
    """No-op base: override ``start``/``update``/``note`` to display progress."""

    def start(self, description: str, total: float | None = None) -> None:
        pass

    def update(self, completed: float | None = None, *, advance: float | None = None,
               description: str | None = None) -> None:
        pass

    def finish(self) -> None:
        pass

    def note(self, message: str) -> None:
        pass

    def lane(self, name: str) -> Progress:
        """The progress of one of several pieces of work running at once (a device's share of a bench), shown
        apart from the others' (the CLI: one bar per lane, named); by default the same progress."""
        return self


NULL = Progress()
