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

    [tiers]                         # named groups of devices: `edge recommend` answers for each tier
    low-android = ["pixel6a", "galaxy-a54"]
    laptop = ["local"]

The keys every device takes are ``DeviceSpec``'s; the keys of its link (host, port, serial, ...) are
those of its transport's own spec dataclass (``device_bench.transports.TRANSPORTS``), and the modes
are ``device_bench.modes.MODES``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

from device_bench.modes import MODES
from device_bench.transports import TRANSPORTS
from edge.core.errors import DeviceError
from edge.core.family import FAMILIES

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib



def native_tools() -> tuple[str, ...]:
    """The command-line tools native mode may push: those the families' native adapters run."""
    return tuple(t for f in FAMILIES.values() for t in f.native_tools)


@dataclass
class DeviceSpec:
    name: str
    transport: str
    link: Any                              # the transport's spec (SshLink, AdbLink): how to reach the device
    mode: str = ""
    workdir: str = ""
    python: str = "python3"                # agent: the interpreter its venv is made from
    agent: str = "wheel"                   # agent: "wheel" (built from this checkout) or a pip requirement, e.g. "edge-llm==0.1.0"
    tools: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        t = TRANSPORTS.get(self.transport)
        self.mode = self.mode or t.default_mode
        self.workdir = self.workdir or t.default_workdir

    @classmethod
    def from_table(cls, name: str, entry: dict[str, Any], where: str | None = None) -> DeviceSpec:
        """A device from its table in the devices file (every refusal one line naming ``where``)."""
        where = where or f"[devices.{name}]"
        transport = entry.get("transport")
        if transport not in TRANSPORTS:
            raise DeviceError(f"{where}: transport must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
        link_cls = TRANSPORTS.get(transport).Link
        own = {f.name for f in fields(cls)} - {"name", "link"}
        link_keys = {f.name for f in fields(link_cls)}
        unknown = set(entry) - own - link_keys
        if unknown:
            raise DeviceError(f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                              f"(known: {', '.join(sorted(own | link_keys))})")
        for f in fields(link_cls):
            if f.default is MISSING and f.default_factory is MISSING and not entry.get(f.name):
                raise DeviceError(f"{where}: an {transport} device needs {f.name} = \"...\"")
        mode = entry.get("mode") or TRANSPORTS.get(transport).default_mode
        if mode not in MODES:
            raise DeviceError(f"{where}: mode must be agent or native, not {entry.get('mode')!r}")
        bad_tools = set(entry.get("tools", {})) - set(native_tools())
        if bad_tools:
            raise DeviceError(f"{where}: unknown tool(s) {', '.join(sorted(bad_tools))} (known: {', '.join(native_tools())})")
        link = link_cls(**{k: v for k, v in entry.items() if k in link_keys})
        return cls(name=name, link=link, **{k: v for k, v in entry.items() if k in own})


def config_path() -> Path:
    return Path(os.environ.get("EDGE_DEVICES") or Path(platformdirs.user_config_dir("edge", appauthor=False)) / "devices.toml")


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise DeviceError(f"{path}: not a valid devices file ({exc})") from None


def load_specs(path: Path | None = None) -> dict[str, DeviceSpec]:
    """The devices of the config file ({} when there is none)."""
    path = path or config_path()
    data = _read(path)
    specs = {}
    for name, entry in (data.get("devices") or {}).items():
        where = f"{path}: [devices.{name}]"
        if name == "local":
            raise DeviceError(f"{where}: 'local' is this machine and cannot be redefined")
        if not isinstance(entry, dict):
            raise DeviceError(f"{where} must be a table")
        specs[name] = DeviceSpec.from_table(name, entry, where)
    return specs


def load_tiers(path: Path | None = None) -> dict[str, list[str]]:
    """The ``[tiers]`` of the config file: tier name -> its devices ({} when there are none). A tier names
    devices of the file, ``local`` or ``adb:SERIAL``; anything else is refused in one line."""
    path = path or config_path()
    data = _read(path)
    tiers = data.get("tiers") or {}
    if not isinstance(tiers, dict):
        raise DeviceError(f"{path}: [tiers] must be a table of name = [\"device\", ...]")
    known = {"local", *(data.get("devices") or {})}
    out = {}
    for name, members in tiers.items():
        where = f"{path}: [tiers] {name}"
        if not isinstance(members, list) or not members or not all(isinstance(m, str) and m for m in members):
            raise DeviceError(f"{where} must be a non-empty list of device names, e.g. {name} = [\"pixel8\", \"pi5\"]")
        unknown = [m for m in members if m not in known and not m.startswith("adb:")]
        if unknown:
            import difflib

            hint = difflib.get_close_matches(unknown[0], sorted(known), n=1)
            raise DeviceError(f"{where}: unknown device {unknown[0]!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                              + f"; known: {', '.join(sorted(known))}")
        out[name] = list(dict.fromkeys(members))
    return out


__all__ = ["DeviceSpec", "load_specs", "load_tiers", "config_path", "native_tools"]
