"""Devices declared by the user: a TOML file, ``devices.toml`` in edge's config dir (or $EDGE_DEVICES).

    [devices.pi5]
    transport = "ssh"
    host = "pi5.local"
    user = "pi"
    workdir = "/tmp/edge"           # where artifacts, the agent venv and results live on the device
    mode = "agent"                  # agent (device has Python: edge runs its own runner there) or native

    [devices.pixel8]
    transport = "adb"
    serial = "39281FDJH000XY"
    mode = "native"                 # the default for adb
    [devices.pixel8.tools]          # runtime binaries built for the device, pushed once (checked by sha256)
    llama-bench = "~/android/llama.cpp/build-android/bin/llama-bench"
    llama-perplexity = "~/android/llama.cpp/build-android/bin/llama-perplexity"
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

import platformdirs

from edge.core.errors import DeviceError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TRANSPORTS = ("ssh", "adb")
MODES = ("agent", "native")
DEFAULT_MODE = {"ssh": "agent", "adb": "native"}
DEFAULT_WORKDIR = {"ssh": "/tmp/edge", "adb": "/data/local/tmp/edge"}
NATIVE_TOOLS = ("llama-bench", "llama-perplexity", "llama_main")


@dataclass
class DeviceSpec:
    name: str
    transport: str
    mode: str = ""
    workdir: str = ""
    host: str | None = None
    user: str | None = None
    port: int | None = None
    identity: str | None = None            # ssh private key
    known_hosts: str | None = None         # default: ssh's own (~/.ssh/known_hosts)
    serial: str | None = None              # adb
    python: str = "python3"                # agent: the interpreter its venv is made from
    agent: str = "wheel"                   # agent: "wheel" (built from this checkout) or a pip requirement, e.g. "edge-llm==0.1.0"
    tools: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mode = self.mode or DEFAULT_MODE.get(self.transport, "agent")
        self.workdir = self.workdir or DEFAULT_WORKDIR.get(self.transport, "/tmp/edge")


def config_path() -> Path:
    return Path(os.environ.get("EDGE_DEVICES") or Path(platformdirs.user_config_dir("edge", appauthor=False)) / "devices.toml")


def load_specs(path: Path | None = None) -> dict[str, DeviceSpec]:
    """The devices of the config file ({} when there is none)."""
    path = path or config_path()
    if not path.exists():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DeviceError(f"{path}: not a valid devices file ({exc})") from None
    known = {f.name for f in fields(DeviceSpec)} - {"name"}
    specs = {}
    for name, entry in (data.get("devices") or {}).items():
        where = f"{path}: [devices.{name}]"
        if name == "local":
            raise DeviceError(f"{where}: 'local' is this machine and cannot be redefined")
        if not isinstance(entry, dict):
            raise DeviceError(f"{where} must be a table")
        unknown = set(entry) - known
        if unknown:
            raise DeviceError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
        transport = entry.get("transport")
        if transport not in TRANSPORTS:
            raise DeviceError(f"{where}: transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        if transport == "ssh" and not entry.get("host"):
            raise DeviceError(f"{where}: an ssh device needs host = \"...\"")
        if entry.get("mode", DEFAULT_MODE[transport]) not in MODES:
            raise DeviceError(f"{where}: mode must be agent or native, not {entry.get('mode')!r}")
        bad_tools = set(entry.get("tools", {})) - set(NATIVE_TOOLS)
        if bad_tools:
            raise DeviceError(f"{where}: unknown tool(s) {', '.join(sorted(bad_tools))} (known: {', '.join(NATIVE_TOOLS)})")
        specs[name] = DeviceSpec(name=name, **entry)
    return specs


def spec_for_serial(serial: str) -> DeviceSpec:
    """A phone ``adb devices`` reports that the config does not name: native mode, no tools yet."""
    return DeviceSpec(name=f"adb:{serial}", transport="adb", serial=serial)


def expand(p: str) -> Path:
    return Path(os.path.expanduser(p))


__all__ = ["DeviceSpec", "load_specs", "config_path", "spec_for_serial", "expand", "NATIVE_TOOLS"]
