"""How a generated answer is checked against its target (one function per ``GenItem.check``, one table)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_GSM8K = re.compile(r"####\s*(-?[\d,]*\.?\d+)")


def cut_at_stop(text: str, stop: tuple[str, ...]) -> str:
    """The text up to the first stop string (the device generates to max_tokens or EOS)."""
    at = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    return text[:at]


def _norm(s: str) -> str:
    return " ".join(s.strip().split()).casefold()


def last_number(text: str) -> float | None:
    """GSM8K's ``#### N`` when present, else the last number in the text (commas as thousands separators)."""
    m = _GSM8K.search(text)
    found = m.group(1) if m else (_NUMBER.findall(text) or [None])[-1]
    if found is None:
        return None
    try:
        return float(found.replace(",", "").rstrip("."))
    except ValueError:
        return None


def _number(out: str, target: str) -> bool:
    got, want = last_number(out), last_number(target)
    return got is not None and want is not None and abs(got - want) <= 1e-9 * max(1.0, abs(want))


def _json(out: str, target: str) -> bool:
    start = min((i for i in (out.find("{"), out.find("[")) if i >= 0), default=-1)
    if start < 0:
        return False
    try:
        got = json.JSONDecoder().raw_decode(out[start:])[0]
    except ValueError:
        return False
    return got == json.loads(target)


CHECKERS: dict[str, Callable[[str, str], bool]] = {
    "exact": lambda out, target: _norm(out) == _norm(target),
    "number": _number,
    "contains": lambda out, target: _norm(target) in _norm(out),
    "regex": lambda out, target: re.search(target, out) is not None,
    "json": _json,
}
