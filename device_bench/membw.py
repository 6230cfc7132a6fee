"""Memory bandwidth of a device: a STREAM-style "copy" probe (bytes read + bytes written per second).

The probe is this file itself, run with ``python3 -c`` on the device: plain CPython, no packages (a
``bytearray`` slice assignment is one memcpy), two buffers far larger than any CPU cache, best of 5.
The figure is cached per device (edge's cache dir) and is the roofline's denominator.
"""

from __future__ import annotations

import json
import time

MIB = 1 << 20


def measure(size_mib: int = 256, reps: int = 5) -> dict:
    try:
        with open("/proc/meminfo") as fh:
            avail_kib = next(int(line.split()[1]) for line in fh if line.startswith("MemAvailable:"))
        size_mib = max(16, min(size_mib, avail_kib // 1024 // 8))
    except (OSError, StopIteration, ValueError):
        pass
    n = size_mib * MIB
    src = bytearray(b"\x5a") * n
    dst = bytearray(n)
    dst[:] = src  # touch every page before timing
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        dst[:] = src
        best = min(best, time.perf_counter() - t)
    return {"membw_gbs": round(2 * n / best / 1e9, 2), "membw_method": f"memcpy of {size_mib} MiB, best of {reps} (read+write)"}


def cached_bandwidth(name: str, facts: dict, run, refresh: bool = False) -> dict:
    """The device's bandwidth figure from edge's cache, or measured now by ``run()`` and cached. The cache
    key is the device's identity (name, CPU, RAM, OS), so a different board under the same name re-measures."""
    import hashlib

    from edge.fsutil import write_json_atomic
    from edge.paths import cache_dir

    ident = json.dumps([name, facts.get("cpu_model"), facts.get("ram_bytes"), facts.get("os"), facts.get("arch")])
    path = cache_dir() / "devices" / f"{hashlib.sha256(ident.encode()).hexdigest()[:16]}.json"
    if path.exists() and not refresh:
        try:
            return json.loads(path.read_text())
        except ValueError:
            pass
    data = {**run(), "membw_measured_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    if "membw_gbs" in data:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, data)
    return data


if __name__ == "__main__":
    print(json.dumps(measure()))
