"""Facts about a machine, parsed from the same texts on every Linux device (and platform on others)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """CPU model and core counts from ``/proc/cpuinfo`` (x86 'model name', ARM 'Hardware'/'CPU part')."""
    model = None
    logical = 0
    cores: set[tuple[str, str]] = set()
    phys = core = None
    for line in text.splitlines():
        key, _, val = (s.strip() for s in line.partition(":"))
        if key == "processor":
            logical += 1
        elif key in ("model name", "Hardware", "Processor", "cpu model") and not model:
            model = val
        elif key == "physical id":
            phys = val
        elif key == "core id":
            core = val
            cores.add((phys or "0", core))
    return {"cpu_model": model, "cores_logical": logical or None, "cores_physical": len(cores) or None}


def parse_meminfo(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return out


def local_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {"os": platform.platform(), "arch": platform.machine(),
                             "python": platform.python_version(), "hostname": platform.node()}
    cpuinfo = Path("/proc/cpuinfo")
    facts.update(parse_cpuinfo(cpuinfo.read_text()) if cpuinfo.exists() else
                 {"cpu_model": platform.processor() or None, "cores_logical": os.cpu_count(), "cores_physical": None})
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        mi = parse_meminfo(meminfo.read_text())
        facts["ram_bytes"] = mi.get("MemTotal")
        facts["ram_available_bytes"] = mi.get("MemAvailable")
    else:
        try:
            facts["ram_bytes"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            facts["ram_bytes"] = None
    facts["cpus_usable"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return facts
