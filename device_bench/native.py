"""Native mode: devices without Python (phones). edge pushes the runtime's own command-line tools (named
in devices.toml) and a family's native adapter (``Family.native``: ``converters.gguf.native`` for
llama-bench / llama-perplexity, ``converters.executorch.native`` for llama_main) parses their real output;
``NativeRun`` is the session an adapter gets: the tools pushed and checked, each command run under the
sampler, the device's conditions for a cooldown.

Peak memory is the VmHWM (and VmSwap) of the tool's own process, sampled from ``/proc/PID/status`` on
the device every 0.05 s by a small sh wrapper — not device-wide used memory.
"""

from __future__ import annotations

import os
import re
import struct
from pathlib import Path
from typing import Any

from device_bench.sysinfo import split_sections
from edge.core.errors import BenchError, DeviceError
from edge.core.family import FAMILIES
from edge.core.jobs import Job, JobResult

# ELF e_machine → the `uname -m` names of CPUs that run it
ELF_MACHINES: dict[int, tuple[str, ...]] = {
    0x03: ("i386", "i686", "x86_64"),
    0x28: ("armv7l", "armv8l", "arm", "aarch64"),
    0x3E: ("x86_64", "amd64"),
    0xB7: ("aarch64", "arm64", "armv8l"),
    0xF3: ("riscv64",),
}

# run "$@" in the background, sample its /proc/PID/status until it exits, then print its output
SAMPLER = r'''out="$1"; shift
"$@" > "$out.stdout" 2> "$out.stderr" &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && break
  s=$(grep -E '^(VmHWM|VmRSS|VmSwap):' "/proc/$pid/status" 2>/dev/null | tr -s ' \t\n' ' ')
  [ -n "$s" ] && echo "@mem $s"
  sleep 0.05
done
wait "$pid"; rc=$?
echo; echo "=== @edge-stdout"; cat "$out.stdout"; echo; echo "=== @edge-stderr"; cat "$out.stderr"; echo; echo "=== @edge-exit"; echo "$rc"
rm -f "$out.stdout" "$out.stderr"
'''


def elf_machine(path: Path) -> int | None:
    """The e_machine of an ELF file (None when it is not ELF)."""
    with open(path, "rb") as fh:
        head = fh.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return struct.unpack("<H" if head[5] == 1 else ">H", head[18:20])[0]


def check_binary(path: Path, arch: str | None, device: str) -> None:
    if not path.exists():
        raise DeviceError(f"{device}: runtime binary {path} does not exist")
    machine = elf_machine(path)
    if machine is None:
        raise DeviceError(f"{device}: {path} is not an ELF executable")
    runs_on = ELF_MACHINES.get(machine, ())
    if arch and arch not in runs_on:
        raise DeviceError(f"{device}: {path.name} is built for {runs_on[0] if runs_on else f'ELF machine {machine:#x}'} "
                          f"but the device is {arch}")


def parse_mem_samples(lines: list[str]) -> dict[str, int]:
    """``@mem VmHWM: 1234 kB VmRSS: ... kB VmSwap: 0 kB`` lines → the largest of each, in bytes."""
    peak: dict[str, int] = {}
    for line in lines:
        for key, kb in re.findall(r"(Vm\w+): (\d+) kB", line):
            peak[key] = max(peak.get(key, 0), int(kb) * 1024)
    return peak


class NativeRun:
    """One job on a native device: its tools pushed and checked, each command run under the sampler."""

    def __init__(self, device, job: Job, on_event) -> None:
        self.d, self.job, self.on_event = device, job, on_event
        self.cfg = job.config
        self.arch = device.facts().get("arch")

    def cooling(self) -> dict[str, Any]:
        return self.d.conditions(idle=True)

    def tool(self, name: str) -> str:
        local = self.d.spec.tools.get(name)
        if not local:
            raise DeviceError(f"{self.d.name}: native mode needs {name} for this artifact: add it under "
                              f"[devices.{self.d.name}.tools] in devices.toml (a build for the device's CPU, {self.arch})")
        path = Path(os.path.expanduser(local))
        check_binary(path, self.arch, self.d.name)
        remote = self.d.place(path)
        self.d.transport.check(["chmod", "755", remote], what="chmod")
        return remote

    def run(self, argv: list[str], what: str) -> tuple[str, dict[str, int]]:
        if self.job.cpus:
            argv = ["taskset", "-c", ",".join(map(str, self.job.cpus)), *argv]
        out = self.d.scratch("native-run")
        proc = self.d.transport.run(["sh", "-c", SAMPLER, "sampler", out, *argv])
        text = proc.stdout.decode("utf-8", "replace")
        mem = parse_mem_samples([ln for ln in text.splitlines() if ln.startswith("@mem ")])
        parts = split_sections("\n".join(ln for ln in text.splitlines() if not ln.startswith("@mem ")))
        rc = parts.get("@edge-exit", "").strip()
        both = parts.get("@edge-stdout", "") + "\n" + parts.get("@edge-stderr", "")
        if rc != "0":
            last = [ln for ln in parts.get("@edge-stderr", "").splitlines() if ln.strip()][-1:] or ["no output"]
            raise BenchError(f"{self.d.name}: {what} failed (exit {rc or '?'}): {last[0].strip()}")
        return both, mem

    def threads(self) -> list[str]:
        t = self.cfg.threads or (len(self.job.cpus) if self.job.cpus else None)
        return ["-t", str(t)] if t else []



def run_native(device, job: Job, on_event) -> JobResult:
    """One job through the artifact family's native adapter (its tools' own output parsed)."""
    family = FAMILIES.get(job.family)
    if family.native is None:
        raise DeviceError(f"{device.name}: {job.family} artifacts need agent mode (a device with Python); native "
                          f"mode runs the command-line tools of {', '.join(f.name for f in FAMILIES.values() if f.native)}")
    return JobResult.from_json(family.load("native")(NativeRun(device, job, on_event)))


__all__ = ["NativeRun", "run_native", "parse_mem_samples", "check_binary", "elf_machine"]
