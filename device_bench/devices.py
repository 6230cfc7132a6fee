"""Devices: where artifacts are measured. A registry, like formats; ``local`` is this machine.

A device runs one job at a time in a fresh measuring process and returns the runner's JSON
(see ``device_bench.runner``). Remote transports (SSH, adb) implement the same two methods.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from device_bench.runner import PROGRESS_PREFIX
from device_bench.sysinfo import local_facts
from edge.errors import ArtifactError, BenchError, DatasetError, EdgeError
from edge.registry import Registry

OnEvent = Callable[[dict[str, Any]], None]
# errors the measuring process may report, re-raised as themselves (anything else: BenchError)
ERROR_TYPES: dict[str, type[EdgeError]] = {
    "DatasetError": DatasetError,
    "ArtifactError": ArtifactError,
}


class Device(Protocol):
    name: str

    def facts(self) -> dict[str, Any]: ...

    def run_job(self, job: dict[str, Any], on_event: OnEvent) -> dict[str, Any]: ...


class LocalDevice:
    """This machine: each job runs in ``python -m device_bench.runner`` under the current interpreter."""

    name = "local"

    def __init__(self) -> None:
        self._facts: dict[str, Any] | None = None

    def facts(self) -> dict[str, Any]:
        if self._facts is None:
            self._facts = {"transport": "local", **local_facts()}
        return self._facts

    def run_job(self, job: dict[str, Any], on_event: OnEvent) -> dict[str, Any]:
        root = Path(__file__).resolve().parent.parent
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        proc = subprocess.Popen([sys.executable, "-m", "device_bench.runner"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        assert proc.stdin and proc.stderr and proc.stdout
        proc.stdin.write(json.dumps(job))
        proc.stdin.close()
        tail: list[str] = []
        try:
            for line in proc.stderr:
                if line.startswith(PROGRESS_PREFIX):
                    on_event(json.loads(line[len(PROGRESS_PREFIX):]))
                elif line.strip():
                    tail = (tail + [line.rstrip()])[-5:]
            out = proc.stdout.read()
            proc.wait()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        return decode_result(out, proc.returncode, tail)


def decode_result(stdout: str, returncode: int, stderr_tail: list[str]) -> dict[str, Any]:
    """Turn a runner's stdout into its result, or raise the error it reported as an EdgeError."""
    try:
        reply = json.loads(stdout.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        why = " | ".join(stderr_tail) or f"exit code {returncode}"
        raise BenchError(f"the measuring process died without a result ({why})") from None
    if not reply.get("ok"):
        raise ERROR_TYPES.get(reply.get("error_type", ""), BenchError)(reply.get("error", "unknown error"))
    return reply["result"]


DEVICES: Registry[Callable[[], Device]] = Registry("device")
DEVICES.register("local", LocalDevice)


def get_device(name: str) -> Device:
    return DEVICES.get(name)()
