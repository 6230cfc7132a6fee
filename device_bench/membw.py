"""Memory bandwidth of a device: a STREAM-style probe, one process per usable CPU, reading (the roofline's
denominator: decoding reads weights) and copying (STREAM "copy", bytes read + written).

The probe is this file itself, run with ``python3 -c`` on the device: plain CPython, no packages
(``bytearray.find`` of an absent byte is one memchr, a slice assignment one memcpy), buffers far
larger than any CPU cache. The processes run each pass together: they touch their buffers, then wait
at a barrier (a byte on a pipe of their own, which the parent writes to all at once); a pass's
figure is all processes' bytes / the wall time from the release to the last process's end (one
monotonic clock for all); best of 5 passes.
The figure is cached per device (edge's cache dir) and is the roofline's denominator.
"""

from __future__ import annotations

import json
import time

MIB = 1 << 20
PROBE_VERSION = 3  # part of the cache key: a changed probe measures again
PASSES = ("read", "copy")
BYTES_MOVED = {"read": 1, "copy": 2}  # bytes per buffer byte: memchr reads, memcpy reads and writes


def _buffers(n: int) -> tuple[bytearray, bytearray]:
    src = bytearray(b"\x5a") * n
    dst = bytearray(n)
    dst[:] = src  # touch every page before timing
    return src, dst


def _one_pass(kind: str, src: bytearray, dst: bytearray) -> None:
    if kind == "read":
        src.find(b"\x01")
    else:
        dst[:] = src


def _read_copy(n: int, reps: int) -> tuple[float, float]:
    """Best seconds to read ``n`` bytes (memchr over a buffer without the byte) and to copy them (memcpy)."""
    src, dst = _buffers(n)
    best = {k: float("inf") for k in PASSES}
    for _ in range(reps):
        for kind in PASSES:
            t = time.monotonic()
            _one_pass(kind, src, dst)
            best[kind] = min(best[kind], time.monotonic() - t)
    return best["read"], best["copy"]


def _child(n: int, reps: int, ready_w: int, go_r: int, out_w: int) -> None:
    """Touch the buffers, say ready, then for each pass wait at the barrier, run it, report its end time."""
    import os

    src, dst = _buffers(n)
    os.write(ready_w, b"r")
    os.close(ready_w)  # so that the parent sees the end of the pipe if a process dies before it is ready
    for _ in range(reps):
        for kind in PASSES:
            if not os.read(go_r, 1):
                return  # the parent gave up
            _one_pass(kind, src, dst)
            os.write(out_w, f"{time.monotonic()!r}\n".encode())


def parallel_walls(procs: int, n: int, reps: int) -> dict[str, list[float]]:
    """Wall seconds of each pass run by ``procs`` processes together, from the barrier's release to the
    last one's end: {"read": [...], "copy": [...]} (``reps`` each)."""
    import os

    ready_r, ready_w = os.pipe()
    children = []  # (pid, its barrier pipe's write end, its reports)
    for _ in range(procs):
        go_r, go_w = os.pipe()
        out_r, out_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: measure its share, exit
            try:
                for fd in (out_r, ready_r, go_w, *(w for _, w, _ in children)):
                    os.close(fd)
                _child(n, reps, ready_w, go_r, out_w)
            finally:
                os._exit(0)
        os.close(out_w)
        os.close(go_r)
        children.append((pid, go_w, os.fdopen(out_r)))
    os.close(ready_w)
    walls: dict[str, list[float]] = {k: [] for k in PASSES}
    try:
        if sum(len(os.read(ready_r, 1)) for _ in range(procs)) != procs:
            raise RuntimeError("a bandwidth probe process ended before its buffers were ready (out of memory?)")
        for _ in range(reps):
            for kind in PASSES:
                t0 = time.monotonic()
                for _, go_w, _ in children:  # the barrier's release: one byte to every waiting process
                    os.write(go_w, b"g")
                ends = [float(fh.readline()) for _, _, fh in children]
                walls[kind].append(max(ends) - t0)
    finally:
        for pid, go_w, fh in children:
            os.close(go_w)  # a process still waiting at the barrier reads the end of its pipe and exits
            fh.close()
            os.waitpid(pid, 0)  # only our own children (the caller may have others, e.g. a server)
        os.close(ready_r)
    return walls


def gbs(procs: int, n: int, kind: str, wall_s: float) -> float:
    """GB/s of one pass: every process's bytes moved / the pass's wall time."""
    return procs * BYTES_MOVED[kind] * n / wall_s / 1e9


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
        procs = 1
        read, copy = _read_copy(per, reps)
        walls = {"read": [read], "copy": [copy]}
    else:
        procs = cpus
        walls = parallel_walls(procs, per, reps)
    best = {k: min(walls[k]) for k in PASSES}
    return {"membw_gbs": round(gbs(procs, per, "read", best["read"]), 2),
            "membw_copy_gbs": round(gbs(procs, per, "copy", best["copy"]), 2),
            "membw_walls_s": walls, "membw_procs": procs, "membw_bytes_per_proc": per,
            "membw_method": f"{procs} process(es) × {per // MIB} MiB started together at a barrier: read (memchr) "
                            f"and copy (memcpy, read+write), all bytes / wall time from release to the last "
                            f"end, best of {reps}; membw_gbs is the read figure"}


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
