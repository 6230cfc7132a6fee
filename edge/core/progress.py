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


NULL = Progress()
