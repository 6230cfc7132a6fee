"""Devices: where artifacts are measured. A registry, like formats; ``local`` is this machine.

A device runs one job (``edge.core.jobs.Job``) at a time in a fresh measuring process and returns its ``JobResult``
(see ``device_bench.runner``). Devices over SSH and adb (``device_bench.remote``, declared in
devices.toml) have the same methods: facts, conditions, place (a file on the device), scratch, run_job.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from device_bench import membw
from device_bench.config import DeviceSpec, config_path, load_specs
from device_bench.membw import cached_bandwidth
from device_bench.stream import OnEvent, RunnerSession, stream_job
from device_bench.sysinfo import facts_from_probe, local_facts, read_conditions, read_probe
from device_bench.transports import TRANSPORTS, LocalTransport
from edge.core.errors import UnknownNameError
from edge.core.jobs import Job, JobResult
from edge.core.registry import Registry



class Device(Protocol):
    name: str

    def facts(self, refresh: bool = False) -> dict[str, Any]: ...

    def conditions(self, idle: bool = False) -> dict[str, Any]: ...

    def place(self, local: Path, digest: str | None = None, on_bytes: Callable[[int], None] | None = None) -> str: ...

    def scratch(self, name: str) -> str: ...

    def run_job(self, job: Job, on_event: OnEvent) -> JobResult: ...

    def open_session(self, job: Job, on_event: OnEvent) -> RunnerSession | None:
        """A measuring process kept loaded for interleaved repetitions (None: the device's mode has none)."""


class LocalDevice:
    """This machine: each job runs in ``python -m device_bench.runner`` under the current interpreter;
    files are used where they are."""

    name = "local"

    def __init__(self) -> None:
        self._facts: dict[str, Any] | None = None
        self._scratch = Path(tempfile.mkdtemp(prefix="edge-local-"))
        weakref.finalize(self, shutil.rmtree, str(self._scratch), True)

    def facts(self, refresh: bool = False) -> dict[str, Any]:
        if self._facts is None or refresh:
            facts = {"transport": "local", "mode": "agent", **local_facts()}
            probed = facts_from_probe(read_probe(LocalTransport(), str(self._scratch))) if sys.platform.startswith("linux") else {}
            for key in ("clusters", "thermal_c", "max_temp_c", "governors", "disk_free_bytes"):
                if key in probed:
                    facts[key] = probed[key]
            facts.update(cached_bandwidth(self.name, facts, membw.measure, refresh=refresh))
            self._facts = facts
        return self._facts

    def conditions(self, idle: bool = False) -> dict[str, Any]:
        return read_conditions(LocalTransport(), str(self._scratch), idle) if sys.platform.startswith("linux") else {}

    def place(self, local: Path, digest: str | None = None, on_bytes: Callable[[int], None] | None = None) -> str:
        return str(local)

    def scratch(self, name: str) -> str:
        return str(self._scratch / name)

    def _runner(self) -> subprocess.Popen:
        root = Path(__file__).resolve().parent.parent
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH")]))}
        return subprocess.Popen([sys.executable, "-m", "device_bench.runner"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)

    def run_job(self, job: Job, on_event: OnEvent) -> JobResult:
        return stream_job(self._runner(), job, on_event)

    def open_session(self, job: Job, on_event: OnEvent) -> RunnerSession:
        return RunnerSession(self._runner(), job, on_event)


DEVICES: Registry[Callable[[], Device]] = Registry("device")
DEVICES.register("local", LocalDevice)


def get_device(name: str, config: Path | None = None) -> Device:
    """``local``, a device of devices.toml, or ``TRANSPORT:ID`` for a device a transport can name by itself
    (``adb:SERIAL``: a phone the config does not declare)."""
    from device_bench.remote import RemoteDevice

    if name in DEVICES:
        return DEVICES.get(name)()
    specs = load_specs(config)
    if name in specs:
        return RemoteDevice(specs[name])
    transport, _, ident = name.partition(":")
    if ident and transport in TRANSPORTS:
        link = TRANSPORTS.get(transport).link_for(ident)
        if link is not None:
            return RemoteDevice(DeviceSpec(name=name, transport=transport, link=link))
    known = Registry[None]("device")
    for n in [*DEVICES, *specs]:
        known.register(n, None)
    raise UnknownNameError(known.unknown_message(name) + f"; declare devices in {config or config_path()}")


def all_devices(config: Path | None = None) -> list[Device]:
    """Every device edge can name now: local, each of devices.toml, and each device a transport discovers
    (phones ``adb devices`` reports) that the config does not already declare."""
    from device_bench.remote import RemoteDevice

    specs = load_specs(config)
    out: list[Device] = [LocalDevice(), *(RemoteDevice(s) for s in specs.values())]
    for tname, transport in TRANSPORTS.items():
        declared = [transport.identity(s.link) for s in specs.values() if s.transport == tname]
        out += [RemoteDevice(DeviceSpec(name=name, transport=tname, link=link))
                for name, link in transport.discover() if transport.identity(link) not in declared]
    return out
