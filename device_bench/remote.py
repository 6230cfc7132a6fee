"""A device reached over SSH or adb, measured in one of two ways (chosen per device in devices.toml):

- agent: the device has Python. edge installs itself there (a wheel built from this checkout, or a pinned
  release) into a venv in the workdir, with the runtime the artifact needs pinned to the version this
  machine runs, and runs its own runner (``python -m device_bench.runner``): the same code measures
  everywhere.
- native: no Python (phones). edge pushes the runtime's command-line tools named in the config and
  parses their own output (``device_bench.native``).

Files go to ``<workdir>/files/<sha256>/<name>`` once: a file whose sha256 on the device matches is not
pushed again; a push goes to ``.partial`` first, so a full disk or a dropped link leaves no file that
looks complete.
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

from device_bench.config import DeviceSpec
from device_bench.membw import cached_bandwidth
from device_bench.stream import stream_job
from device_bench.sysinfo import facts_from_probe, read_conditions, read_probe
from device_bench.transports import AdbTransport, OnBytes, SshTransport, Transport
from edge.core.hashing import folder_digest, sha256_file
from edge.core.errors import DeviceError
from edge.core.family import FAMILIES
from edge.core.jobs import Job, JobResult

ROOT = Path(__file__).resolve().parent.parent


def make_transport(spec: DeviceSpec) -> Transport:
    if spec.transport == "ssh":
        return SshTransport(spec.host or "", user=spec.user, port=spec.port, identity=spec.identity,
                            known_hosts=spec.known_hosts, label=spec.name)
    return AdbTransport(spec.serial, label=spec.name)


class RemoteDevice:
    def __init__(self, spec: DeviceSpec, transport: Transport | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.t = transport or make_transport(spec)
        self.workdir = spec.workdir.rstrip("/") or "/"
        self._facts: dict[str, Any] | None = None
        self._placed: dict[tuple[str, str], str] = {}
        self._agent_ready: set[str] = set()

    # ---------------------------------------------------------------- facts and conditions
    def facts(self, refresh: bool = False) -> dict[str, Any]:
        if self._facts is None or refresh:
            facts = {"transport": self.spec.transport, "mode": self.spec.mode, "workdir": self.workdir,
                     **facts_from_probe(read_probe(self.t, self.workdir))}
            if self.spec.transport == "ssh":
                facts["host"] = self.spec.host
            else:
                facts["serial"] = self.spec.serial
            facts.update(cached_bandwidth(self.name, facts, lambda: self._bandwidth(facts), refresh=refresh))
            self._facts = facts
        return self._facts

    def _bandwidth(self, facts: dict[str, Any]) -> dict[str, Any]:
        if not facts.get("python"):
            return {"membw_note": "not measured: the probe needs python3 on the device"}
        src = (ROOT / "device_bench" / "membw.py").read_text(encoding="utf-8")
        out = self.t.check([self.spec.python, "-c", src], timeout=300, what="the bandwidth probe")
        return json.loads(out.decode().strip().splitlines()[-1])

    def conditions(self, idle: bool = False) -> dict[str, Any]:
        return read_conditions(self.t, self.workdir, idle)

    # ---------------------------------------------------------------- files
    def _remote_sha(self, path: str) -> str | None:
        proc = self.t.run(["sha256sum", path], timeout=600)
        return proc.stdout.decode().split()[0] if proc.returncode == 0 and proc.stdout.strip() else None

    def _push(self, local: Path, digest: str, remote: str, on_bytes: OnBytes | None) -> str:
        key = (str(local), remote)
        if key in self._placed:
            return remote
        if self._remote_sha(remote) != digest:
            free = (self._facts or {}).get("disk_free_bytes")
            size = local.stat().st_size
            if free is not None and size > free:
                raise DeviceError(f"{self.name}: {local.name} is {size / 2**20:.0f} MiB but {self.workdir} has "
                                  f"{free / 2**20:.0f} MiB free")
            self.t.check(["mkdir", "-p", posixpath.dirname(remote)], what="mkdir")
            partial = remote + ".partial"
            try:
                self.t.push(local, partial, on_bytes)
            except DeviceError:
                self.t.run(["rm", "-f", partial])
                raise
            got = self._remote_sha(partial)
            if got != digest:
                self.t.run(["rm", "-f", partial])
                raise DeviceError(f"{self.name}: {local.name} arrived corrupt (sha256 {got} instead of {digest}); "
                                  "is the device's disk full?")
            self.t.check(["mv", "-f", partial, remote], what="mv")
        self._placed[key] = remote
        return remote

    def place(self, local: Path, digest: str | None = None, on_bytes: OnBytes | None = None) -> str:
        """The device path of a local file or folder (``<workdir>/files/<sha256>/<name>``), pushed unless an
        identical copy is there (checked with sha256sum on the device)."""
        local = Path(local)
        if local.is_dir():
            digest = digest or folder_digest(local)[0]
            base = posixpath.join(self.workdir, "files", digest, local.name)
            for f in sorted(p for p in local.iterdir() if p.is_file()):
                self._push(f, sha256_file(f), posixpath.join(base, f.name), on_bytes)
            return base
        digest = digest or sha256_file(local)
        return self._push(local, digest, posixpath.join(self.workdir, "files", digest, local.name), on_bytes)

    def scratch(self, name: str) -> str:
        path = posixpath.join(self.workdir, "scratch", name)
        self.t.check(["mkdir", "-p", posixpath.dirname(path)], what="mkdir")
        return path

    # ---------------------------------------------------------------- running
    def run_job(self, job: Job, on_event) -> JobResult:
        if self.spec.mode == "native":
            from device_bench.native import run_native

            return run_native(self, job, on_event)
        python = self.ensure_agent(job.family, on_event)
        proc = self.t.popen([python, "-m", "device_bench.runner"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
        return stream_job(proc, job, on_event, lost=f"{self.name}: the link to the device was lost")

    def ensure_agent(self, family: str, on_event) -> str:
        """The agent's python on the device: a venv in the workdir with edge and this family's runtime."""
        venv = posixpath.join(self.workdir, "agent")
        python = posixpath.join(venv, "bin", "python")
        if family in self._agent_ready:
            return python
        from_checkout = self.spec.agent == "wheel"
        want = {"edge": source_digest() if from_checkout else self.spec.agent, "family": family,
                "requirements": requirements(family)}
        stamp = posixpath.join(venv, f"edge-agent-{family}.json")
        have = self.t.run(["cat", stamp])
        if have.returncode == 0 and _json_or_none(have.stdout) == want:
            self._agent_ready.add(family)
            return python
        on_event({"stage": f"installing the edge agent ({family}) in {venv}"})
        if self.t.run([self.spec.python, "-c", "pass"]).returncode != 0:
            raise DeviceError(f"{self.name}: agent mode needs Python on the device ({self.spec.python} did not run); "
                              "set mode = \"native\" for devices without Python")
        self.t.check([self.spec.python, "-m", "venv", "--system-site-packages", venv], timeout=600, what="creating the agent venv")
        edge_req = self.place(agent_wheel()) if from_checkout else self.spec.agent  # the wheel keeps its own name
        self.t.check([python, "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", edge_req],
                     timeout=900, what="installing edge on the device")
        if want["requirements"]:
            self.t.check([python, "-m", "pip", "install", "--quiet", *want["requirements"]], timeout=1800,
                         what=f"installing the {family} runtime on the device")
        self.t.check(["sh", "-c", 'printf %s "$1" > "$2"', "stamp", json.dumps(want), stamp], what="stamp")
        self._agent_ready.add(family)
        return python


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
