"""Facts about a machine, parsed from the same texts on every Linux device (and platform on others)."""

from __future__ import annotations

import os
import platform
import re
from pathlib import Path
from typing import Any


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """CPU model and core counts from ``/proc/cpuinfo`` (x86 'model name', ARM 'Hardware'/'CPU part')."""
    model = None
    logical = 0
    cores: set[tuple[str, str]] = set()
    phys = core = None
    for line in text.splitlines():
        key, _, val = (s.strip() for s in line.partition(":"))
        if key == "processor":
            logical += 1
        elif key in ("model name", "Hardware", "Processor", "cpu model") and not model:
            model = val
        elif key == "physical id":
            phys = val
        elif key == "core id":
            core = val
            cores.add((phys or "0", core))
    return {"cpu_model": model, "cores_logical": logical or None, "cores_physical": len(cores) or None}


def parse_meminfo(text: str) -> dict[str, int]:
    out = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0]) * (1024 if len(parts) > 1 and parts[1] == "kB" else 1)
    return out


def local_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {"os": platform.platform(), "arch": platform.machine(),
                             "python": platform.python_version(), "hostname": platform.node()}
    cpuinfo = Path("/proc/cpuinfo")
    facts.update(parse_cpuinfo(cpuinfo.read_text()) if cpuinfo.exists() else
                 {"cpu_model": platform.processor() or None, "cores_logical": os.cpu_count(), "cores_physical": None})
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        mi = parse_meminfo(meminfo.read_text())
        facts["ram_bytes"] = mi.get("MemTotal")
        facts["ram_available_bytes"] = mi.get("MemAvailable")
    else:
        try:
            facts["ram_bytes"] = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            facts["ram_bytes"] = None
    facts["cpus_usable"] = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return facts


# --- the facts probe: one POSIX sh script, the same on Linux boards, laptops and Android (mksh/toybox) ---
# Each section starts with a line "=== name"; $1 is the device's workdir (for its free disk space).
PROBE_SECTIONS: tuple[tuple[str, str], ...] = (
    ("uname",    "uname -srm"),
    ("os",       "grep PRETTY_NAME /etc/os-release 2>/dev/null"),
    ("cpuinfo",  "cat /proc/cpuinfo"),
    ("meminfo",  "cat /proc/meminfo"),
    ("nproc",    "nproc 2>/dev/null || getconf _NPROCESSORS_ONLN"),
    ("cpufreq",  'for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; do [ -r "$f" ] && echo "$f $(cat "$f")"; done'),
    ("governor", 'for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/scaling_governor; do [ -r "$f" ] && echo "$f $(cat "$f")"; done'),
    ("thermal",  'for z in /sys/class/thermal/thermal_zone*; do [ -r "$z/temp" ] && echo "$(cat "$z/type" 2>/dev/null || echo ?) $(cat "$z/temp" 2>/dev/null)"; done'),
    ("getprop",  "command -v getprop >/dev/null 2>&1 && getprop"),
    ("battery",  "command -v dumpsys >/dev/null 2>&1 && dumpsys battery"),
    ("python",   "command -v python3 >/dev/null 2>&1 && python3 -c 'import platform; print(platform.python_version())'"),
    ("stat",     "head -n 1 /proc/stat; sleep 1; head -n 1 /proc/stat"),
    ("df",       'mkdir -p "$1" 2>/dev/null; df -k "$1" 2>/dev/null | tail -n 1'),
)
# what changes during a run: read before and after every artifact
CONDITION_SECTIONS = ("governor", "thermal", "battery")


def probe_script(sections: tuple[str, ...] | None = None) -> str:
    """The probe (all sections but the 1-second idle sample, or the ``sections`` named)."""
    chosen = [(n, c) for n, c in PROBE_SECTIONS if (n in sections if sections is not None else n != "stat")]
    return "\n".join(f"echo '=== {name}'; {cmd}" for name, cmd in chosen) + "\ntrue\n"


def parse_idle(text: str) -> float | None:
    """Two ``/proc/stat`` 'cpu' lines a second apart → the fraction of that second the CPUs were idle."""
    rows = [[int(x) for x in line.split()[1:]] for line in text.splitlines() if line.startswith("cpu ")]
    if len(rows) < 2:
        return None
    delta = [b - a for a, b in zip(rows[0], rows[1])]
    total = sum(delta)
    idle = delta[3] + (delta[4] if len(delta) > 4 else 0)  # idle + iowait
    return idle / total if total > 0 else None


def read_probe(transport, workdir: str, sections: tuple[str, ...] | None = None) -> dict[str, str]:
    """Run the probe through a transport (``device_bench.transports``) and split its sections."""
    out = transport.check(["sh", "-c", probe_script(sections), "probe", workdir], timeout=60, what="the facts probe")
    return split_sections(out.decode("utf-8", "replace"))


def read_conditions(transport, workdir: str, idle: bool = False) -> dict[str, Any]:
    """Temperatures, governors, battery; with ``idle`` also a 1-second CPU idle sample (for cooldowns)."""
    return conditions_from_probe(read_probe(transport, workdir, CONDITION_SECTIONS + (("stat",) if idle else ())))


def split_sections(text: str) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("=== "):
            current = line[4:].strip()
            out[current] = []
        elif current is not None:
            out[current].append(line)
    return {k: "\n".join(v).strip() for k, v in out.items()}


def parse_cpufreq(text: str) -> dict[int, int]:
    """``/sys/devices/system/cpu/cpuN/cpufreq/cpuinfo_max_freq VALUE`` lines → {cpu: kHz}."""
    out = {}
    for line in text.splitlines():
        path, _, value = line.rpartition(" ")
        m = re.search(r"/cpu(\d+)/cpufreq/", path)
        if m and value.strip().isdigit():
            out[int(m.group(1))] = int(value)
    return out


def clusters(max_freq: dict[int, int]) -> list[dict[str, Any]]:
    """CPUs grouped by maximum frequency, fastest first (big.LITTLE: [big, (mid,) little])."""
    by: dict[int, list[int]] = {}
    for cpu, khz in max_freq.items():
        by.setdefault(khz, []).append(cpu)
    return [{"max_mhz": khz // 1000, "cpus": sorted(cpus)} for khz, cpus in sorted(by.items(), reverse=True)]


def parse_governors(text: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for line in text.splitlines():
        path, _, gov = line.rpartition(" ")
        m = re.search(r"/cpu(\d+)/cpufreq/", path)
        if m and gov:
            out.setdefault(gov.strip(), []).append(int(m.group(1)))
    return out


def parse_thermal(text: str) -> dict[str, float]:
    """``TYPE TEMP`` lines (sysfs millidegrees, or degrees on some kernels) → {type: °C}; duplicates numbered."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        kind, _, raw = line.strip().rpartition(" ")
        try:
            value = int(raw)
        except ValueError:
            continue
        c = value / 1000 if abs(value) >= 200 else float(value)
        if not -40 <= c <= 150:  # sensors that report nonsense (unplugged zones) are left out
            continue
        name, n = kind or "?", 1
        while name in out:
            n += 1
            name = f"{kind}#{n}"
        out[name] = round(c, 1)
    return out


def parse_getprop(text: str) -> dict[str, str]:
    """Android's ``getprop`` listing: ``[ro.product.model]: [Pixel 8]`` lines."""
    out = {}
    for m in re.finditer(r"^\[([^\]]+)\]: \[(.*)\]\s*$", text, re.M):
        out[m.group(1)] = m.group(2)
    return out


def parse_dumpsys_battery(text: str) -> dict[str, Any]:
    """``dumpsys battery``: level, temperature (tenths of °C), status (2 = charging, 5 = full), powered sources."""
    kv = {}
    for line in text.splitlines():
        key, sep, val = line.strip().partition(":")
        if sep:
            kv[key.strip()] = val.strip()
    if not kv:
        return {}
    status = {"1": "unknown", "2": "charging", "3": "discharging", "4": "not charging", "5": "full"}
    out: dict[str, Any] = {"status": status.get(kv.get("status", ""), kv.get("status")),
                           "plugged": [k.split()[0] for k in ("AC powered", "USB powered", "Wireless powered")
                                       if kv.get(k) == "true"]}
    if kv.get("level", "").isdigit():
        out["level_pct"] = int(kv["level"])
    if kv.get("temperature", "").lstrip("-").isdigit():
        out["temperature_c"] = int(kv["temperature"]) / 10
    return out


def parse_adb_devices(text: str) -> list[dict[str, str]]:
    """``adb devices -l``: serial, state (device, unauthorized, offline) and the key:value details."""
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("List of devices") or line.startswith("*"):
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        entry = {"serial": parts[0], "state": parts[1]}
        entry.update(p.split(":", 1) for p in parts[2:] if ":" in p)
        out.append(entry)
    return out


def parse_df(text: str) -> int | None:
    """The last line of ``df -k PATH``: available kB (4th column) in bytes."""
    parts = text.split()
    return int(parts[3]) * 1024 if len(parts) >= 4 and parts[3].isdigit() else None


def conditions_from_probe(sections: dict[str, str]) -> dict[str, Any]:
    thermal = parse_thermal(sections.get("thermal", ""))
    out: dict[str, Any] = {"thermal_c": thermal, "max_temp_c": max(thermal.values()) if thermal else None,
                           "governors": parse_governors(sections.get("governor", ""))}
    if "stat" in sections:
        out["idle"] = parse_idle(sections["stat"])
    battery = parse_dumpsys_battery(sections.get("battery", ""))
    if battery:
        out["battery"] = battery
    return out


def facts_from_probe(sections: dict[str, str]) -> dict[str, Any]:
    facts: dict[str, Any] = dict(parse_cpuinfo(sections.get("cpuinfo", "")))
    props = parse_getprop(sections.get("getprop", ""))
    uname = sections.get("uname", "")
    facts["arch"] = uname.split()[-1] if uname else None
    os_line = sections.get("os", "").partition("=")[2].strip().strip('"')
    if props:
        facts["os"] = f"Android {props.get('ro.build.version.release', '?')} ({uname})"
        facts["model"] = props.get("ro.product.model")
        facts["soc"] = props.get("ro.soc.model") or props.get("ro.board.platform") or props.get("ro.hardware")
        facts["cpu_model"] = facts["soc"] or facts.get("cpu_model")
    else:
        facts["os"] = f"{os_line} ({uname})" if os_line else uname or None
    nproc = sections.get("nproc", "").strip()
    if nproc.isdigit():
        facts["cpus_usable"] = int(nproc)
    mi = parse_meminfo(sections.get("meminfo", ""))
    facts["ram_bytes"], facts["ram_available_bytes"] = mi.get("MemTotal"), mi.get("MemAvailable")
    freq = parse_cpufreq(sections.get("cpufreq", ""))
    facts["clusters"] = clusters(freq) if freq else []
    facts["python"] = sections.get("python") or None
    facts["disk_free_bytes"] = parse_df(sections.get("df", ""))
    facts.update(conditions_from_probe(sections))
    return facts
