"""Per-group type overrides, the one syntax every family's ``?types=`` takes: ``PATTERN=TYPE;...`` (a
regular expression searched in the family's tensor, module or node names; the first match wins), or
``@FILE``: a recipe file with one ``PATTERN=TYPE`` a line (``#`` starts a comment)."""

from __future__ import annotations

import re
from pathlib import Path

from edge.core.errors import EdgeError


def entries(raw: str | None, fmt: str) -> list[str]:
    if not raw:
        return []
    if raw.startswith("@"):
        path = Path(raw[1:]).expanduser()
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise EdgeError(f"{fmt}: cannot read the recipe file {path} ({exc.strerror or exc})") from None
        return [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]
    return [e.strip() for e in raw.split(";") if e.strip()]


def parse(raw: str | None, fmt: str, values: tuple[str, ...], example: str) -> list[tuple[str, str]]:
    """[(pattern, type)] with each type one of ``values`` (case folded); every refusal one line."""
    out: list[tuple[str, str]] = []
    for entry in entries(raw, fmt):
        pattern, sep, value = entry.rpartition("=")
        if not sep or not pattern:
            raise EdgeError(f"{fmt}: types entries are PATTERN=TYPE (e.g. {example}), not {entry!r}")
        if value.lower() not in values:
            raise EdgeError(f"{fmt}: a types entry takes {', '.join(values)}, not {value!r} (in {entry!r})")
        try:
            re.compile(pattern)
        except re.error as exc:
            raise EdgeError(f"{fmt}: types pattern {pattern!r} is not a regular expression ({exc})") from None
        out.append((pattern, value.lower()))
    return out
