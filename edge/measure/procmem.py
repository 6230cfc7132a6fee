"""Memory of the measuring process: peak resident set (VmHWM) and current RSS."""

from __future__ import annotations

import resource
import sys
from pathlib import Path


def parse_proc_status(text: str) -> dict[str, int]:
    """The ``kB`` fields of a Linux ``/proc/PID/status`` text, in bytes (VmHWM, VmRSS, VmSwap, ...)."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            out[key.strip()] = int(parts[0]) * 1024
    return out


def _status() -> dict[str, int]:
    p = Path("/proc/self/status")
    return parse_proc_status(p.read_text()) if p.exists() else {}


def peak_rss() -> int:
    st = _status()
    if "VmHWM" in st:
        return st["VmHWM"]
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ru if sys.platform == "darwin" else ru * 1024


def current_rss() -> int:
    return _status().get("VmRSS", 0)


def reset_peak_rss() -> bool:
    """Start a new peak: Linux resets VmHWM to the current RSS when "5" is written to clear_refs.
    Returns False where that is not possible (the peak then covers the process's life so far)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False
