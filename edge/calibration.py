"""The calibration-domain × evaluation-domain table: for every calibrated format (an importance matrix,
``imatrix=``; GPTQ, ``calib=``) the KLD against the source on each evaluation text it was benched on, one
row per calibration text, so a team sees when calibrating on the wrong text hurts its own domain. A cell
measured on the calibration text itself is marked (its quality is flattered); calibrate on
``wiki:calib`` and evaluate on ``wiki:heldout`` for a diagonal that is not.

Rows come from the store's latest result per (model, device, format, text); a column is an evaluation
text. Formats without calibration (the same quantization, uncalibrated) are the row ``none``, the
baseline each row is compared with.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge.core.errors import EdgeError
from edge.core.formats import parse_format
from edge.core.registry import Registry
from edge.report import tabular_renderers
from edge.store import Result

CALIBRATION_PARAMS = ("imatrix", "calib")   # the format parameters that name a calibration text
SIZE_PARAMS = ("imatrix_chunks", "calib_tokens")   # how much of it: part of the row's calibration


@dataclass
class CalibrationTable:
    model: str
    device: str
    base: str                                   # the format without its calibration
    texts: list[str] = field(default_factory=list)            # evaluation texts (columns)
    rows: dict[str, dict[str, Result]] = field(default_factory=dict)   # calibration -> text -> result

    def cell(self, calib: str, text: str) -> str:
        r = self.rows.get(calib, {}).get(text)
        if r is None or r.kld_mean is None:
            return ""
        return f"{r.kld_mean:.4f} ± {r.kld_unc or 0:.4f}{' (own text)' if _own(r) else ''}"


def _own(r: Result) -> bool:
    """Measured on its own calibration text (edge bench compares the texts' digests)."""
    return bool((r.quality or {}).get("calibrated_on_eval_text"))


def _split(fmt: str) -> tuple[str, str]:
    """(the format without its calibration parameters, the calibration: its text and size, or 'none')."""
    req = parse_format(fmt)
    params = dict(req.params)
    calib = next((params.pop(k) for k in CALIBRATION_PARAMS if params.get(k)), None)
    size = [f"{k}={params.pop(k)}" for k in SIZE_PARAMS if params.get(k)]
    if calib is None:
        return fmt, "none"
    query = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if v)
    return f"{req.info.name}{'?' + query if query else ''}", " ".join([calib, *size])


def build_tables(results: list[Result]) -> list[CalibrationTable]:
    """One table per model, device and calibrated format; uncalibrated rows of the same format join as 'none'."""
    latest: dict[tuple, Result] = {}
    for r in results:
        if r.kld_mean is None:
            continue
        key = (r.model, r.device, r.format, r.dataset)
        if key not in latest or str(r.created_at) > str(latest[key].created_at):
            latest[key] = r
    split = {r.format: _split(r.format) for r in latest.values()}
    calibrated = {(r.model, r.device, split[r.format][0]) for r in latest.values() if split[r.format][1] != "none"}
    tables: dict[tuple, CalibrationTable] = {}
    for r in sorted(latest.values(), key=lambda r: (r.model, r.device, r.format, str(r.dataset))):
        base, calib = split[r.format]
        key = (r.model, r.device, base)
        if key not in calibrated:
            continue
        t = tables.setdefault(key, CalibrationTable(r.model, r.device, base))
        if r.dataset not in t.texts:
            t.texts.append(r.dataset)
        t.rows.setdefault(calib, {})[r.dataset] = r
    if not tables:
        raise EdgeError("no calibrated format in the store: bench one made with ?imatrix=TEXT or ?method=gptq&calib=TEXT "
                        "on one or more texts (edge bench ... --dataset wiki:heldout), then ask again")
    for t in tables.values():
        t.rows = dict(sorted(t.rows.items(), key=lambda kv: (kv[0] != "none", kv[0])))
    return list(tables.values())


def _title(t: CalibrationTable) -> str:
    return f"{t.model} on {t.device} — {t.base}: KLD against the source, by calibration text (rows) and evaluation text (columns)"


def render_markdown(tables: list[CalibrationTable]) -> str:
    parts = []
    for t in tables:
        lines = [f"### {_title(t)}", "", "| calibrated on | " + " | ".join(t.texts) + " |",
                 "|---|" + "---:|" * len(t.texts)]
        lines += ["| " + " | ".join([c, *(t.cell(c, x) for x in t.texts)]) + " |" for c in t.rows]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def render_table(tables: list[CalibrationTable]):
    from rich.console import Group
    from rich.table import Table

    out = []
    for t in tables:
        tab = Table(title=_title(t), title_justify="left")
        tab.add_column("calibrated on", style="bold")
        for x in t.texts:
            tab.add_column(x, justify="right")
        for c in t.rows:
            tab.add_row(c, *(t.cell(c, x) for x in t.texts))
        out.append(tab)
    return Group(*out)


def _records(tables: list[CalibrationTable]) -> list[dict[str, Any]]:
    return [{"model": t.model, "device": t.device, "format": t.base, "calibration": c, "text": x,
             "kld_mean": r.kld_mean, "kld_unc": r.kld_unc, "ppl": r.ppl, "ppl_unc": r.ppl_unc,
             "own_text": _own(r), "artifact_format": r.format}
            for t in tables for c, row in t.rows.items() for x, r in row.items()]


RENDERERS: Registry[Callable[[list[CalibrationTable]], Any]] = tabular_renderers(
    "calibration table format", render_table, render_markdown, _records)


def calibration_report(results: list[Result], fmt: str = "table") -> Any:
    return RENDERERS.get(fmt)(build_tables(results))
