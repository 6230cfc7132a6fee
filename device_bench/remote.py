"""A device reached through a registered transport (SSH, adb), measured by the mode its devices.toml entry
names (``device_bench.modes``: agent or native). The device offers facts, conditions, files and scratch
paths; the mode decides how a job runs.

Files go to ``<workdir>/files/<sha256>/<name>`` once: a file whose sha256 on the device matches is not
pushed again; a push goes to ``.partial`` first, so a full disk or a dropped link leaves no file that
looks complete.
"""

from __future__ import annotations

import json
import posixpath
from pathlib import Path
from typing import Any

from device_bench.config import DeviceSpec
from device_bench.membw import cached_bandwidth
from device_bench.modes import MODES
from device_bench.sysinfo import facts_from_probe, read_conditions, read_probe
from device_bench.transports import TRANSPORTS, OnBytes, Transport
from edge.core.errors import DeviceError
from edge.core.hashing import folder_digest, sha256_file
from edge.core.jobs import Job, JobResult

ROOT = Path(__file__).resolve().parent.parent


class RemoteDevice:
    def __init__(self, spec: DeviceSpec, transport: Transport | None = None) -> None:
        self.spec = spec
        self.name = spec.name
        self.transport = transport or TRANSPORTS.get(spec.transport).open(spec.link, spec.name)
        self.mode = MODES.get(spec.mode)()
        self.workdir = spec.workdir.rstrip("/") or "/"
        self._facts: dict[str, Any] | None = None
        self._placed: dict[tuple[str, str], str] = {}

    # ---------------------------------------------------------------- facts and conditions
    def facts(self, refresh: bool = False) -> dict[str, Any]:
        if self._facts is None or refresh:
            facts = {"transport": self.spec.transport, "mode": self.spec.mode, "workdir": self.workdir,
                     **facts_from_probe(read_probe(self.transport, self.workdir)),
                     **TRANSPORTS.get(self.spec.transport).identity(self.spec.link)}
            facts.update(cached_bandwidth(self.name, facts, lambda: self._bandwidth(facts), refresh=refresh))
            self._facts = facts
        return self._facts

    def _bandwidth(self, facts: dict[str, Any]) -> dict[str, Any]:
        if not facts.get("python"):
            return {"membw_note": "not measured: the probe needs python3 on the device"}
        src = (ROOT / "device_bench" / "membw.py").read_text(encoding="utf-8")
        out = self.transport.check([self.spec.python, "-c", src], timeout=300, what="the bandwidth probe")
        return json.loads(out.decode().strip().splitlines()[-1])

    def conditions(self, idle: bool = False) -> dict[str, Any]:
        return read_conditions(self.transport, self.workdir, idle)

    # ---------------------------------------------------------------- files
    def _remote_sha(self, path: str) -> str | None:
        proc = self.transport.run(["sha256sum", path], timeout=600)
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
            self.transport.check(["mkdir", "-p", posixpath.dirname(remote)], what="mkdir")
            partial = remote + ".partial"
            try:
                self.transport.push(local, partial, on_bytes)
            except DeviceError:
                self.transport.run(["rm", "-f", partial])
                raise
            got = self._remote_sha(partial)
            if got != digest:
                self.transport.run(["rm", "-f", partial])
                raise DeviceError(f"{self.name}: {local.name} arrived corrupt (sha256 {got} instead of {digest}); "
                                  "is the device's disk full?")
            self.transport.check(["mv", "-f", partial, remote], what="mv")
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
        self.transport.check(["mkdir", "-p", posixpath.dirname(path)], what="mkdir")
        return path

    # ---------------------------------------------------------------- running
    def run_job(self, job: Job, on_event) -> JobResult:
        return self.mode.run(self, job, on_event)

    def open_session(self, job: Job, on_event):
        return self.mode.open_session(self, job, on_event)

