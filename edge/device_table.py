"""``edge devices`` as a library call: every device edge can name now, with its facts or why it cannot be
reached, and the table a person reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from device_bench.devices import all_devices
from edge.core.errors import EdgeError


def device_rows(devices_file: Path | None = None, *, refresh: bool = False) -> list[dict[str, Any]]:
    """One row per device: ``reachable`` and its facts, or ``why`` it is not reachable (one line)."""
    rows = []
    for dev in all_devices(devices_file):
        try:
            rows.append({"name": dev.name, "reachable": True, **dev.facts(refresh=refresh)})
        except EdgeError as exc:
            rows.append({"name": dev.name, "reachable": False, "why": str(exc)})
    return rows


def render_devices(rows: list[dict[str, Any]]):
    from rich.table import Table

    t = Table("device", "reachable", "OS", "CPU / SoC", "cores", "RAM GiB (avail)", "bandwidth GB/s", "temp °C")
    for r in rows:
        if not r["reachable"]:
            t.add_row(r["name"], f"[red]no[/red]: {r['why']}", "", "", "", "", "", "")
            continue
        clusters = " + ".join(f"{len(c['cpus'])}×{c['max_mhz']} MHz" for c in r.get("clusters") or [])
        cores = f"{r.get('cores_logical') or r.get('cpus_usable')}" + (f" ({clusters})" if clusters else "")
        ram = f"{(r.get('ram_bytes') or 0) / 2**30:.1f} ({(r.get('ram_available_bytes') or 0) / 2**30:.1f})"
        cpu = " · ".join(x for x in (r.get("model"), r.get("cpu_model")) if x) or "?"
        bw = f"{r['membw_gbs']:.1f}" if r.get("membw_gbs") else r.get("membw_note", "")
        temp = "" if r.get("max_temp_c") is None else f"{r['max_temp_c']:.0f}"
        t.add_row(r["name"], f"yes ({r.get('transport')}, {r.get('mode')})", r.get("os") or "?", cpu, cores, ram, bw, temp)
    return t
