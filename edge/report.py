"""The device × format matrix: the store's latest result per (device, format), pivoted — one matrix per
model, text, token stream, reference and protocol, so rows measured under different settings are never
pivoted together; each matrix's header states its protocol.

Rows are formats (most bits first); for each device the columns are size, bits per weight, prefill
and decode tokens/s and TTFT (mean ± stddev over n repetitions, flagged "!cv" when they vary more than
5 %), peak memory, the decode roofline (GB/s read and its % of the device's measured bandwidth),
perplexity ± its standard error, ΔPPL % against the source checkpoint with the paired uncertainty,
KL divergence ± with its 99th / 99.9th percentile and maximum, same-top-token % ± and RMS Δp.
Renderers: rich table, Markdown, CSV, JSON.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.core.errors import EdgeError, OutputError
from edge.core.formats import display_name
from edge.core.registry import Registry
from edge.metrics import METRICS
from edge.store import Result


@dataclass
class Matrix:
    model: str
    dataset: str | None
    devices: list[str]
    formats: list[str]
    cells: dict[tuple[str, str], Result] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)        # task columns (edge eval), in name order
    task_cells: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (format, device) -> task -> TaskResult

    def header(self) -> str:
        """One line: the text, token stream, reference and settings every row of this matrix shares."""
        p = self.protocol
        parts = [f"text {self.dataset or 'none'}"]
        if p.get("chunks"):
            parts.append(f"ctx {p['ctx']} × {p['chunks']} chunks ({p.get('tokens_scored')} tokens scored, "
                         f"tokens {str(p.get('tokens_sha256') or 'unrecorded')[:12]})")
        parts.append(f"pp{p.get('n_prompt')} / tg{p.get('n_gen')} / TTFT {p.get('n_ttft', '?')} tokens, "
                     f"{p.get('reps')} reps, threads {p.get('threads') or 'all cores'}")
        if p.get("reference"):
            parts.append(f"KLD vs {p['reference']} (PPL {p['ppl_base']:.3f} ± {p['ppl_base_unc']:.3f})")
        elif p.get("chunks"):
            parts.append("no reference: KLD not measured")
        return " · ".join(parts)


def _mib(b: float | None) -> str:
    return "" if b is None else f"{b / 2**20:.0f}"


CV_LIMIT = 0.05  # a speed whose repetitions vary more than this (stddev / mean) is flagged


def _cv(v: float | None, s: float | None) -> float | None:
    return None if not v or s is None else s / v


def _pm(v: float | None, s: float | None, n: int | None, digits: int = 1, scale: float = 1.0) -> str:
    """mean ± stddev (n/a with one repetition: no spread to show), flagged when the cv is over the limit."""
    if v is None:
        return ""
    if n == 1:
        return f"{v * scale:.{digits}f} ± n/a"
    if s is None:
        return f"{v * scale:.{digits}f}"
    cv = _cv(v, s)
    flag = f" !cv {100 * cv:.0f}%" if cv is not None and cv > CV_LIMIT else ""
    return f"{v * scale:.{digits}f} ± {s * scale:.{digits}f}{flag}"


def ppl_delta_pct(r: Result) -> tuple[float, float] | tuple[None, None]:
    """ΔPPL % against the source from ln(PPL/PPL_source), and its paired uncertainty (llama-perplexity's)."""
    if r.ln_ppl_ratio is None:
        return None, None
    ratio = math.exp(r.ln_ppl_ratio)
    return 100 * (ratio - 1), 100 * ratio * (r.ln_ppl_ratio_unc or 0.0)


def _pair(v: float | None, u: float | None, spec: str, scale: float = 1.0) -> str:
    if v is None:
        return ""
    return f"{format(v * scale, spec)}" + ("" if u is None else f" ± {format(u * scale, spec.lstrip('+'))}")


def _tail(r: Result) -> str:
    values = (r.kld_99, r.kld_99_9, r.kld_max)
    if all(v is None for v in values):
        return ""
    return " / ".join("?" if v is None else format(v, spec) for v, spec in zip(values, (".4f", ".4f", ".3f")))


def pct_of_membw(r: Result) -> float | None:
    return None if not (r.decode_gbs and r.membw_gbs) else 100 * r.decode_gbs / r.membw_gbs


def _roof(r: Result) -> str:
    if r.decode_gbs is None:
        return ""
    pct = pct_of_membw(r)
    return f"{r.decode_gbs:.1f}" + (f" ({pct:.0f}%)" if pct is not None else "")


def flags(r: Result) -> list[str]:
    """Why a row should not be trusted as is: noisy repetitions, a device that heated up, a roofline over
    100 %, quality measured on the very text its quantization was calibrated on."""
    out = []
    for name, v, s in (("pp", r.pp_tps, r.pp_tps_std), ("tg", r.tg_tps, r.tg_tps_std), ("ttft", r.ttft_s, r.ttft_s_std)):
        cv = _cv(v, s)
        if cv is not None and cv > CV_LIMIT:
            out.append(f"{name} cv {100 * cv:.0f}% > {100 * CV_LIMIT:.0f}%")
    if (r.quality or {}).get("calibrated_on_eval_text"):
        out.append("calibrated on the evaluation text: quality flattered")
    pct = pct_of_membw(r)
    if pct is not None and pct > 100:  # more than the device can read: the bytes-per-token estimate is too high
        out.append(f"roofline {pct:.0f}% > 100%")
    cond = r.conditions or {}
    t0, t1 = (cond.get("before") or {}).get("max_temp_c"), (cond.get("after") or {}).get("max_temp_c")
    if t0 is not None and t1 is not None and t1 - t0 >= 10:
        out.append(f"heated {t0:.0f}→{t1:.0f} °C")
    return out


# the cell formatters the metrics table names, each (row, the metric's key) → text
CELLS: dict[str, Callable[[Result, str], str]] = {
    "mib": lambda r, k: _mib(getattr(r, k)),
    "pm": lambda r, k: _pm(getattr(r, k), getattr(r, f"{k}_std"), r.reps),
    "ms": lambda r, k: _pm(getattr(r, k), getattr(r, f"{k}_std"), r.reps, digits=1, scale=1000),
    "roof": lambda r, k: _roof(r),
    "pct": lambda r, k: "" if getattr(r, k) is None else f"{100 * getattr(r, k):.2f}",
    "ppl": lambda r, k: _pair(r.ppl, r.ppl_unc, ".3f"),
    "dppl": lambda r, k: _pair(*ppl_delta_pct(r), "+.2f"),
    "kld": lambda r, k: _pair(r.kld_mean, r.kld_unc, ".5f" if r.kld_mean is None or abs(r.kld_mean) >= 1e-3 else ".2e"),
    "tail": lambda r, k: _tail(r),
    "top": lambda r, k: _pair(r.same_top, r.same_top_unc, ".2f", 100),
}


def _cell(key: str, name: str) -> Callable[[Result], str]:
    if name in CELLS:
        return lambda r: CELLS[name](r, key)
    return lambda r: "" if getattr(r, key) is None else format(getattr(r, key), name)  # a format spec


def _header(text: str) -> Callable[[Result], str]:
    return lambda r: text.format_map(vars(r))  # a header may name the row's fields: "pp{n_prompt} t/s"


# (key, header, cell text) of the human table's columns, in the metrics table's column order
_SHOWN = sorted((m for m in METRICS if m.column), key=lambda m: m.column[0])
COLUMNS: list[tuple[str, Callable[[Result], str], Callable[[Result], str]]] = [
    (m.column[1], _header(m.column[2]), _cell(m.key, m.column[3])) for m in _SHOWN]

RECORD_KEYS = [m.key for m in METRICS if m.has("export")]  # the CSV/JSON records' stored fields, in order
_DERIVED_AT = RECORD_KEYS.index("membw_gbs") + 1  # the computed fields follow the bandwidth


def _derived(r: Result) -> dict[str, Any]:
    cond = r.conditions or {}
    delta, delta_unc = ppl_delta_pct(r)
    return {"pct_of_membw": pct_of_membw(r), "flags": "; ".join(flags(r)),
            "ppl_delta_pct": delta, "ppl_delta_pct_unc": delta_unc, "reference": (r.quality or {}).get("reference"),
            "max_temp_c_before": (cond.get("before") or {}).get("max_temp_c"),
            "max_temp_c_after": (cond.get("after") or {}).get("max_temp_c")}


def protocol(r: Result) -> dict[str, Any]:
    """What a row was measured with that another row must share to sit in the same matrix."""
    q = r.quality or {}
    p = {"ctx": r.ctx, "chunks": r.chunks, "n_prompt": r.n_prompt, "n_gen": r.n_gen, "reps": r.reps,
         **((r.raw or {}).get("protocol") or {}), "tokens_sha256": r.tokens_sha256,
         "reference_sha256": r.reference_sha256, "tokens_scored": q.get("tokens_scored")}
    return p


def _shown(r: Result) -> dict[str, Any]:
    """The protocol as the header shows it, with the reference's own perplexity (from the matrix's first row)."""
    q = r.quality or {}
    p = protocol(r)
    if r.reference_sha256:
        p.update(reference=q.get("reference"), ppl_base=r.ppl_base, ppl_base_unc=q.get("ppl_base_unc") or 0.0)
    return p


def _attach_tasks(m: Matrix, task_rows: list[Any]) -> None:
    """The latest task row (``edge eval``) of each cell's artifact on its device, per task."""
    by_artifact: dict[tuple[str, str], dict[str, Any]] = {}
    for t in sorted(task_rows, key=lambda t: t.id or 0):
        by_artifact.setdefault((t.artifact_sha256, t.device), {})[t.task] = t
    for key, r in m.cells.items():
        found = by_artifact.get((r.artifact_sha256, r.device))
        if found:
            m.task_cells[key] = found
    m.tasks = sorted({name for cell in m.task_cells.values() for name in cell})


def _task_text(t: Any) -> list[str]:
    if t is None:
        return ["", ""]
    acc = "" if t.acc is None else f"{100 * t.acc:.1f} ± {100 * (t.acc_se or 0):.1f}"
    delta = "" if t.dacc is None else f"{100 * t.dacc:+.1f} [{100 * t.dacc_lo:+.1f}, {100 * t.dacc_hi:+.1f}]"
    return [acc, delta]


TASK_HEADS = ["{task} acc %", "{task} Δacc pts [95 %]"]
TASK_RECORD = ["n", "acc", "acc_se", "acc_norm", "dacc", "dacc_lo", "dacc_hi", "p_mcnemar", "flips", "choice_kl"]


def task_texts(m: Matrix, f: str, d: str) -> list[str]:
    cell = m.task_cells.get((f, d), {})
    return [text for name in m.tasks for text in _task_text(cell.get(name))]


def build_matrices(results: list[Result], task_rows: list[Any] | None = None) -> list[Matrix]:
    latest: dict[str, tuple[Result, dict[tuple[str, str], Result]]] = {}
    for r in results:  # ordered by id: later rows replace earlier ones measured the same way
        key = json.dumps([r.model, r.dataset, protocol(r)], sort_keys=True, default=str)
        latest.setdefault(key, (r, {}))[1][(r.format, r.device)] = r
    out = []
    for first, cells in latest.values():
        devices = sorted({d for _, d in cells}, key=lambda d: (d != "local", d))
        bpw = {f: r.bits_per_weight or 0 for (f, _), r in cells.items()}
        formats = sorted({f for f, _ in cells}, key=lambda f: (-bpw[f], f))
        out.append(Matrix(first.model, first.dataset, devices, formats, cells, _shown(first)))
        _attach_tasks(out[-1], task_rows or [])
    return out


def headers(m: Matrix) -> list[str]:
    sample = next(iter(m.cells.values()))
    return [h(sample) for _, h, _ in COLUMNS] + [h.format(task=t) for t in m.tasks for h in TASK_HEADS]


def _records(m: Matrix) -> list[dict[str, Any]]:
    rows = []
    for f in m.formats:
        for d in m.devices:
            r = m.cells.get((f, d))
            if r is None:
                continue
            tasks = m.task_cells.get((f, d), {})
            rows.append({**{k: getattr(r, k) for k in RECORD_KEYS[:_DERIVED_AT]}, **_derived(r),
                         **{k: getattr(r, k) for k in RECORD_KEYS[_DERIVED_AT:]},
                         **{f"task_{name}_{k}": getattr(tasks[name], k) if name in tasks else None
                            for name in m.tasks for k in TASK_RECORD}})
    return rows


def render_table(matrices: list[Matrix], recs: list[Any] | None = None):
    from rich.console import Group
    from rich.table import Table

    tables = [RECOMMENDATION.get("table")(recs)] if recs else []
    for m in matrices:
        heads = headers(m)
        t = Table(title=f"{m.model} — device × format\n{m.header()}", title_justify="left")
        t.add_column("format", style="bold")
        for d in m.devices:
            for i, h in enumerate(heads):
                t.add_column(f"{d}\n{h}" if len(m.devices) > 1 else h, justify="right")
        for f in m.formats:
            cells = [display_name(f)]
            for d in m.devices:
                r = m.cells.get((f, d))
                cells += [cell(r) if r else "" for _, _, cell in COLUMNS] + task_texts(m, f, d)
            t.add_row(*cells)
        tables.append(t)
    return Group(*tables)


def render_markdown(matrices: list[Matrix], recs: list[Any] | None = None) -> str:
    parts = [RECOMMENDATION.get("md")(recs).rstrip("\n")] if recs else []
    for m in matrices:
        heads = headers(m)
        cols = ["format"] + [f"{d} {h}" if len(m.devices) > 1 else h for d in m.devices for h in heads]
        lines = [f"### {m.model}", "", m.header(), "", "| " + " | ".join(cols) + " |",
                 "|" + "|".join("---" if i == 0 else "---:" for i in range(len(cols))) + "|"]
        for f in m.formats:
            cells = [f"`{display_name(f)}`"]
            for d in m.devices:
                r = m.cells.get((f, d))
                cells += [cell(r) if r else "" for _, _, cell in COLUMNS] + task_texts(m, f, d)
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def csv_text(records: list[dict[str, Any]]) -> str:
    """Records as CSV, the first record's keys as the header (empty for none)."""
    buf = io.StringIO()
    if records:
        w = csv.DictWriter(buf, fieldnames=list(records[0]))
        w.writeheader()
        w.writerows(records)
    return buf.getvalue()


def tabular_renderers(label: str, table: Callable[[Any], Any], markdown: Callable[[Any], str],
                      records: Callable[[Any], list[dict[str, Any]]]) -> Registry[Callable[[Any], Any]]:
    """A report's renderers (table, md, csv, json) where CSV and JSON are its ``records`` as they are."""
    reg: Registry[Callable[[Any], Any]] = Registry(label)
    reg.register("table", table)
    reg.register("md", markdown)
    reg.register("csv", lambda rows: csv_text(records(rows)))
    reg.register("json", lambda rows: json.dumps(records(rows), indent=2) + "\n")
    return reg


def render_csv(matrices: list[Matrix], recs: list[Any] | None = None) -> str:
    return csv_text([rec for m in matrices for rec in _records(m)])


def render_json(matrices: list[Matrix], recs: list[Any] | None = None) -> str:
    return json.dumps([{"model": m.model, "dataset": m.dataset, "protocol": m.protocol, "header": m.header(),
                        "devices": m.devices, "formats": m.formats, "rows": _records(m)} for m in matrices],
                      indent=2) + "\n"


# each renderer: (matrices, recommendations or None) -> what is printed or written. The table and the
# Markdown open with the recommendation (edge.recommend's own renderers, a layer above: named lazily);
# CSV and JSON hold the matrix only (`edge recommend -f json` holds the reasoning).
RENDERERS: Registry[Callable[[list[Matrix], list[Any] | None], Any]] = Registry("report format")
RENDERERS.register("table", render_table)
RENDERERS.register("md", render_markdown)
RENDERERS.register("csv", render_csv)
RENDERERS.register("json", render_json)
RENDERERS.register_lazy("html", "edge.report_html:render_html")
RECOMMENDATION: Registry[Callable[[list[Any]], Any]] = Registry("recommendation format")
RECOMMENDATION.register_lazy("table", "edge.recommend:render_table")
RECOMMENDATION.register_lazy("md", "edge.recommend:render_markdown")


def report(results: list[Result], fmt: str = "table", tasks: list[Any] | None = None,
           recommendations: list[Any] | None = None) -> Any:
    """The matrices of ``results``; ``tasks`` (the store's task rows, ``edge eval``) add per-task columns
    (acc ± SE, Δacc against the source with its 95 % interval) to the cells of the artifacts they scored;
    ``recommendations`` (``edge.recommend``) open the table, Markdown and HTML renderings."""
    renderer = RENDERERS.get(fmt)
    if not results:
        raise EdgeError("the results store is empty: run `edge bench ARTIFACT...` first (or `edge demo`)")
    return renderer(build_matrices(results, tasks), recommendations)


def write_report(rendered: Any, output: Path) -> None:
    """Write what ``report`` rendered (text, or a rich renderable drawn 200 columns wide) to ``output``,
    atomically: the file appears whole or not at all."""
    from edge.core.fsutil import atomic_path

    output = Path(output)
    if not output.parent.is_dir():
        raise OutputError(f"cannot write {output}: no folder {output.parent}")
    with atomic_path(output) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            if isinstance(rendered, str):
                fh.write(rendered)
            else:
                from rich.console import Console

                Console(file=fh, width=200).print(rendered)
