"""Memory bandwidth of a device: a STREAM-style probe, one process per usable CPU, reading (the roofline's
denominator: decoding reads weights) and copying (STREAM "copy", bytes read + written).

The probe is this file itself, run with ``python3 -c`` on the device: plain CPython, no packages
(``bytearray.find`` of an absent byte is one memchr, a slice assignment one memcpy), buffers far
larger than any CPU cache, best of 5.
The figure is cached per device (edge's cache dir) and is the roofline's denominator.
"""

from __future__ import annotations

import json
import time

MIB = 1 << 20
PROBE_VERSION = 2  # part of the cache key: a changed probe measures again


def _read_copy(n: int, reps: int) -> tuple[float, float]:
    """Best seconds to read ``n`` bytes (memchr over a buffer without the byte) and to copy them (memcpy)."""
    src = bytearray(b"\x5a") * n
    dst = bytearray(n)
    dst[:] = src  # touch every page before timing
    read = copy = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        src.find(b"\x01")
        read = min(read, time.perf_counter() - t)
        t = time.perf_counter()
        dst[:] = src
        copy = min(copy, time.perf_counter() - t)
    return read, copy


def measure(size_mib: int = 256, reps: int = 5) -> dict:
    """Read and copy bandwidth with one process per usable CPU (decoding reads weights on every core)."""
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        with open("/proc/meminfo") as fh:
            avail_kib = next(int(line.split()[1]) for line in fh if line.startswith("MemAvailable:"))
        size_mib = max(16, min(size_mib, avail_kib // 1024 // 8))
    except (OSError, StopIteration, ValueError):
        pass
    per = max(8, size_mib // cpus) * MIB
    if not hasattr(os, "fork") or cpus == 1:
        read, copy = _read_copy(per, reps)
        results = [(read, copy)]
    else:
        children = []
        for _ in range(cpus):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:  # child: measure its share, report, exit
                try:
                    os.close(r)
                    os.write(w, json.dumps(_read_copy(per, reps)).encode())
                finally:
                    os._exit(0)
            os.close(w)
            children.append((pid, r))
        results = []
        for pid, r in children:
            with os.fdopen(r) as fh:
                results.append(tuple(json.loads(fh.read())))
            os.waitpid(pid, 0)  # only our own children (the caller may have others, e.g. a server)
    read_gbs = sum(per / r for r, _ in results) / 1e9
    copy_gbs = sum(2 * per / c for _, c in results) / 1e9
    return {"membw_gbs": round(read_gbs, 2), "membw_copy_gbs": round(copy_gbs, 2),
            "membw_method": f"{len(results)} process(es) × {per // MIB} MiB: read (memchr) and copy (memcpy, "
                            f"read+write), best of {reps}; membw_gbs is the read figure"}


def cached_bandwidth(name: str, facts: dict, run, refresh: bool = False) -> dict:
    """The device's bandwidth figure from edge's cache, or measured now by ``run()`` and cached. The cache
    key is the device's identity (name, CPU, RAM, OS), so a different board under the same name re-measures."""
    import hashlib

    from edge.core.fsutil import write_json_atomic
    from edge.core.paths import cache_dir

    ident = json.dumps([PROBE_VERSION, name, facts.get("cpu_model"), facts.get("ram_bytes"), facts.get("os"), facts.get("arch")])
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
