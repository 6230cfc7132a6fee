"""How edge reaches a device: one interface over the local machine, OpenSSH and adb. Each remote transport
is a class registered in ``TRANSPORTS`` with its own spec dataclass (``SshLink``, ``AdbLink``: the keys of
devices.toml it takes), how it identifies a device, how it discovers devices, and its defaults; a new
transport is one class here plus one registry line.

Every remote command is an argv list; the transports turn it into one POSIX-shell string with
``shlex.join`` (every argument single-quoted where needed), so a hostile file name stays one
argument. SSH verifies host keys (``StrictHostKeyChecking=yes`` against known_hosts; an unknown host
is refused, never added) and never asks for a password (``BatchMode``).
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Protocol

from edge.core.errors import DeviceError
from edge.core.registry import Registry

OnBytes = Callable[[int], None]
CHUNK = 1 << 20


class Transport(Protocol):
    label: str

    def argv(self, argv: list[str]) -> list[str]:
        """The local command line that runs ``argv`` on the device."""

    def run(self, argv: list[str], *, input: bytes | None = None, timeout: float | None = None) -> subprocess.CompletedProcess: ...

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen: ...

    def push(self, local: Path, remote: str, on_bytes: OnBytes | None = None) -> None: ...


def _tail(data: bytes | str | None) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else (data or "")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else ""


class _Base:
    label = "?"

    def argv(self, argv: list[str]) -> list[str]:
        raise NotImplementedError

    def _unreachable(self, proc: subprocess.CompletedProcess) -> bool:
        return False

    def run(self, argv: list[str], *, input: bytes | None = None, timeout: float | None = None) -> subprocess.CompletedProcess:
        cmd = self.argv(argv)
        try:
            proc = subprocess.run(cmd, input=input, capture_output=True, timeout=timeout)
        except FileNotFoundError:
            raise DeviceError(f"{self.label}: {cmd[0]} is not installed on this machine") from None
        except subprocess.TimeoutExpired:
            raise DeviceError(f"{self.label}: no answer within {timeout:.0f} s to {argv[0]}") from None
        if self._unreachable(proc):
            raise DeviceError(f"{self.label}: {_tail(proc.stderr) or f'exit code {proc.returncode}'}")
        return proc

    def check(self, argv: list[str], *, input: bytes | None = None, timeout: float | None = None, what: str = "") -> bytes:
        proc = self.run(argv, input=input, timeout=timeout)
        if proc.returncode != 0:
            raise DeviceError(f"{self.label}: {what or argv[0]} failed: {_tail(proc.stderr) or _tail(proc.stdout) or f'exit code {proc.returncode}'}")
        return proc.stdout

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen:
        try:
            return subprocess.Popen(self.argv(argv), **kwargs)
        except FileNotFoundError:
            raise DeviceError(f"{self.label}: {self.argv(argv)[0]} is not installed on this machine") from None

    def _stream_in(self, local: Path, argv: list[str], on_bytes: OnBytes | None) -> None:
        """Copy a local file to the device through the stdin of ``argv`` (``cat > path``)."""
        proc = self.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        assert proc.stdin is not None
        try:
            with open(local, "rb") as fh:
                while chunk := fh.read(CHUNK):
                    proc.stdin.write(chunk)
                    if on_bytes:
                        on_bytes(len(chunk))
            proc.stdin.close()
        except BrokenPipeError:
            pass
        err = proc.stderr.read() if proc.stderr else b""
        if proc.wait() != 0:
            raise DeviceError(f"{self.label}: copying {local.name} failed: {_tail(err) or f'exit code {proc.returncode}'}")


class LocalTransport(_Base):
    """This machine: argv runs as is."""

    label = "local"

    def argv(self, argv: list[str]) -> list[str]:
        return list(argv)

    def push(self, local: Path, remote: str, on_bytes: OnBytes | None = None) -> None:
        shutil.copyfile(local, remote)


@dataclass
class SshLink:
    """How devices.toml reaches a board over SSH."""

    host: str
    user: str | None = None
    port: int | None = None
    identity: str | None = None            # ssh private key
    known_hosts: str | None = None         # default: ssh's own (~/.ssh/known_hosts)


@dataclass
class AdbLink:
    """How devices.toml reaches a phone over adb (no serial: the only phone attached)."""

    serial: str | None = None


class SshTransport(_Base):
    """OpenSSH's ``ssh`` client: keys only, host keys verified against known_hosts."""

    Link = SshLink
    default_mode = "agent"
    default_workdir = "/tmp/edge"

    @classmethod
    def open(cls, link: SshLink, label: str) -> SshTransport:
        return cls(link.host, user=link.user, port=link.port, identity=link.identity, known_hosts=link.known_hosts,
                   label=label)

    @staticmethod
    def identity(link: SshLink) -> dict[str, Any]:
        return {"host": link.host}

    @staticmethod
    def discover() -> list[tuple[str, SshLink]]:
        return []  # boards are declared in devices.toml, never found

    @staticmethod
    def link_for(ident: str) -> SshLink | None:
        return None  # "ssh:HOST" is not a device name: a board needs its user, key and known_hosts declared

    def __init__(self, host: str, *, user: str | None = None, port: int | None = None, identity: str | None = None,
                 known_hosts: str | None = None, connect_timeout: int = 10, label: str | None = None) -> None:
        self.host, self.user, self.port = host, user, port
        self.label = label or host
        self.base = ["ssh", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"ConnectTimeout={connect_timeout}",
                     "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4", "-o", "LogLevel=ERROR"]
        if known_hosts:
            self.base += ["-o", f"UserKnownHostsFile={Path(known_hosts).expanduser()}"]
        if identity:
            self.base += ["-o", "IdentitiesOnly=yes", "-i", str(Path(identity).expanduser())]
        if port:
            self.base += ["-p", str(port)]
        if user:
            self.base += ["-l", user]

    def argv(self, argv: list[str]) -> list[str]:
        return [*self.base, self.host, "--", shlex.join(argv)]

    def _unreachable(self, proc: subprocess.CompletedProcess) -> bool:
        return proc.returncode == 255  # ssh's own failures: refused, timed out, auth, host key

    def push(self, local: Path, remote: str, on_bytes: OnBytes | None = None) -> None:
        self._stream_in(local, ["sh", "-c", 'cat > "$1"', "push", remote], on_bytes)


class AdbTransport(_Base):
    """Android Debug Bridge: ``adb -s SERIAL shell``; files with ``adb push`` (no shell involved)."""

    Link = AdbLink
    default_mode = "native"
    default_workdir = "/data/local/tmp/edge"

    @classmethod
    def open(cls, link: AdbLink, label: str) -> AdbTransport:
        return cls(link.serial, label=label)

    @staticmethod
    def identity(link: AdbLink) -> dict[str, Any]:
        return {"serial": link.serial}

    @staticmethod
    def discover() -> list[tuple[str, AdbLink]]:
        """Every phone ``adb devices`` reports, named ``adb:SERIAL``."""
        return [(f"adb:{d['serial']}", AdbLink(d["serial"])) for d in adb_devices()]

    @staticmethod
    def link_for(ident: str) -> AdbLink | None:
        return AdbLink(ident)  # adb:SERIAL names a phone the devices file does not

    def __init__(self, serial: str | None, *, adb: str = "adb", label: str | None = None) -> None:
        self.serial, self.adb = serial, adb
        self.label = label or serial or "adb"
        self.base = [adb] + (["-s", serial] if serial else [])

    def argv(self, argv: list[str]) -> list[str]:
        return [*self.base, "shell", shlex.join(argv)]

    def _unreachable(self, proc: subprocess.CompletedProcess) -> bool:
        err = _tail(proc.stderr).lower()
        return proc.returncode != 0 and err.startswith(("error: device", "error: no devices", "adb: device",
                                                        "error: closed", "adb: no devices", "error: device offline"))

    def _files(self, *args: str) -> None:
        try:
            proc = subprocess.run([*self.base, *args], capture_output=True)
        except FileNotFoundError:
            raise DeviceError(f"{self.label}: {self.adb} is not installed on this machine") from None
        if proc.returncode != 0:
            raise DeviceError(f"{self.label}: adb {args[0]} failed: {_tail(proc.stderr) or _tail(proc.stdout)}")

    def push(self, local: Path, remote: str, on_bytes: OnBytes | None = None) -> None:
        self._files("push", str(local), remote)
        if on_bytes:
            on_bytes(local.stat().st_size)


def adb_devices(adb: str = "adb") -> list[dict[str, str]]:
    """Phones ``adb devices -l`` reports ([] when adb is not installed or its server cannot start)."""
    from device_bench.sysinfo import parse_adb_devices

    if shutil.which(adb) is None:
        return []
    try:
        proc = subprocess.run([adb, "devices", "-l"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_adb_devices(proc.stdout) if proc.returncode == 0 else []


# transport name (devices.toml's ``transport = ...``) -> its class: Link (its spec dataclass), open(link, label),
# identity(link), discover(), link_for("SERIAL" of "adb:SERIAL"), default_mode, default_workdir
TRANSPORTS: Registry[type] = Registry("transport")
TRANSPORTS.register("ssh", SshTransport)
TRANSPORTS.register("adb", AdbTransport)
