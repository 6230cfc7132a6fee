"""How a device measures a job, chosen per device in devices.toml (``mode = ...``), each a strategy over the
device's public surface (its spec, transport, files and facts), never its internals:

- agent: the device has Python. edge installs itself there (a wheel built from this checkout, or a pinned
  release) into a venv in the workdir, with the runtime the artifact needs pinned to the version this
  machine runs, and runs its own runner (``python -m device_bench.runner``): the same code measures
  everywhere.
- native: no Python (phones). edge pushes the family's command-line tools named in the config and parses
  their own output (``device_bench.native``, the family's native adapter).
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from device_bench.native import run_native
from device_bench.stream import OnEvent, RunnerSession, stream_job
from edge.core.errors import DeviceError
from edge.core.family import FAMILIES
from edge.core.jobs import Job, JobResult
from edge.core.registry import Registry

ROOT = Path(__file__).resolve().parent.parent


class AgentMode:
    """edge's own runner on the device, in a venv it keeps up to date (one stamp per family)."""

    def __init__(self) -> None:
        self._ready: set[str] = set()

    def _runner(self, device, job: Job, on_event: OnEvent) -> subprocess.Popen:
        python = self.ensure(device, job.family, on_event)
        return device.transport.popen([python, "-m", "device_bench.runner"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def run(self, device, job: Job, on_event: OnEvent) -> JobResult:
        return stream_job(self._runner(device, job, on_event), job, on_event, lost=_lost(device))

    def open_session(self, device, job: Job, on_event: OnEvent) -> RunnerSession:
        return RunnerSession(self._runner(device, job, on_event), job, on_event, lost=_lost(device))

    def ensure(self, device, family: str, on_event) -> str:
        """The agent's python on ``device``: a venv in its workdir with edge and this family's runtime."""
        venv = posixpath.join(device.workdir, "agent")
        python = posixpath.join(venv, "bin", "python")
        if family in self._ready:
            return python
        from_checkout = device.spec.agent == "wheel"
        want = {"edge": source_digest() if from_checkout else device.spec.agent, "family": family,
                "requirements": requirements(family)}
        stamp = posixpath.join(venv, f"edge-agent-{family}.json")
        have = device.transport.run(["cat", stamp])
        if have.returncode == 0 and _json_or_none(have.stdout) == want:
            self._ready.add(family)
            return python
        on_event({"stage": f"installing the edge agent ({family}) in {venv}"})
        if device.transport.run([device.spec.python, "-c", "pass"]).returncode != 0:
            raise DeviceError(f"{device.name}: agent mode needs Python on the device ({device.spec.python} did not run); "
                              "set mode = \"native\" for devices without Python")
        device.transport.check([device.spec.python, "-m", "venv", "--system-site-packages", venv], timeout=600, what="creating the agent venv")
        edge_req = device.place(agent_wheel()) if from_checkout else device.spec.agent  # the wheel keeps its own name
        device.transport.check([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", "--force-reinstall", edge_req],
                     timeout=900, what="installing edge on the device")
        if want["requirements"]:
            device.transport.check([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *want["requirements"]], timeout=1800,
                         what=f"installing the {family} runtime on the device")
        device.transport.check(["sh", "-c", 'printf %s "$1" > "$2"', "stamp", json.dumps(want), stamp], what="stamp")
        self._ready.add(family)
        return python


class NativeMode:
    """The family's own command-line tools, pushed to the device and their output parsed."""

    def run(self, device, job: Job, on_event: OnEvent) -> JobResult:
        return run_native(device, job, on_event)

    def open_session(self, device, job: Job, on_event: OnEvent) -> None:
        return None  # each tool call is its own process: repetitions are not interleaved


def _lost(device) -> str:
    return f"{device.name}: the link to the device was lost"


MODES: Registry[type] = Registry("mode")
MODES.register("agent", AgentMode)
MODES.register("native", NativeMode)


def requirements(family: str) -> list[str]:
    """The runtime packages of a family, pinned to the versions installed here (the same code everywhere)."""
    out = []
    for dist in FAMILIES.get(family).agent_requirements:
        try:
            out.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            out.append(dist)
    return out


_WHEEL: list[Path] = []
PACKAGES = ("edge", "converters", "device_bench")
NO_CHECKOUT = ("agent = \"wheel\" installs edge from its source checkout, and this edge is not one: set "
               "agent = \"edge-llm==<version>\" for the device in devices.toml")


def source_digest() -> str:
    """sha256 over this checkout's package sources: the agent on a device is reinstalled when it changes."""
    if not (ROOT / "pyproject.toml").exists():
        raise DeviceError(NO_CHECKOUT)
    h = hashlib.sha256()
    files = [ROOT / "pyproject.toml"] + sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))
    for f in files:
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def agent_wheel() -> Path:
    """A wheel of edge built from this checkout (once per process, no dependencies), built in a copy of
    the sources so the checkout gets no build/ or egg-info."""
    if _WHEEL and _WHEEL[0].exists():
        return _WHEEL[0]
    if not (ROOT / "pyproject.toml").exists():
        raise DeviceError(NO_CHECKOUT)
    tmp = Path(tempfile.mkdtemp(prefix="edge-wheel-"))
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp / "dist"), str(src)], capture_output=True, text=True)
    wheels = list((tmp / "dist").glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise DeviceError(f"building edge's wheel for the agent failed: {(proc.stderr.strip().splitlines() or ['?'])[-1]}")
    _WHEEL[:] = [wheels[0]]
    return wheels[0]


def _json_or_none(data: bytes) -> Any:
    try:
        return json.loads(data.decode())
    except (ValueError, UnicodeDecodeError):
        return None
