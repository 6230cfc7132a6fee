"""``edge report --format html``: one self-contained page (no script, no external resource: it opens
offline) — the recommendation for the given constraints, then per model the device × format matrix
with its uncertainties and flags, quality against size with the Pareto frontier, decode / prefill speed
per device with error bars, the roofline, per-task and per-text quality. Plots: ``edge.report_plots``.
"""

from __future__ import annotations

import html
from datetime import datetime, timezone
from typing import Any

from edge.core.formats import display_name
from edge.core.versions import edge_version
from edge.recommend import VERDICT_HEADS, Recommendation, choice_text, scope_text, title, verdict_rows
from edge.report import COLUMNS, Matrix, flags, headers, task_texts
from edge.sensitivity import HEADS as SENSITIVITY_HEADS
from edge.sensitivity import Sensitivity
from edge.sensitivity import rows as sensitivity_rows
from edge.sensitivity import title as sensitivity_title
from edge import report_plots as plots

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 6px;border-bottom:1px solid #ddd;padding-bottom:3px}
h3{font-size:15px;margin:18px 0 6px} .meta{color:#666;font-size:12px} .protocol{color:#444;font-size:12px;margin:4px 0 10px}
table{border-collapse:collapse;font-size:12px;margin:6px 0 12px} th,td{border:1px solid #ddd;padding:3px 6px;vertical-align:top}
th{background:#f5f5f5;text-align:left} td.n{text-align:right;white-space:nowrap}
.scroll{overflow-x:auto} .chosen{background:#e8f5e9;font-weight:600} .nothing{background:#ffebee;font-weight:600}
.marginal{background:#fff8e1} .flag{color:#b71c1c} figure{margin:10px 0 18px} figure svg{max-width:100%;height:auto}
figcaption{font-size:12px;color:#555} details{margin:4px 0} summary{cursor:pointer}
"""


def _e(x: Any) -> str:
    return html.escape(str(x))


def _table(heads: list[str], rows: list[list[str]], classes: list[str] | None = None, numeric_from: int = 1) -> str:
    out = ["<table><thead><tr>" + "".join(f"<th>{_e(h)}</th>" for h in heads) + "</tr></thead><tbody>"]
    for i, row in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f'<td class="n">{_e(c)}</td>' if j >= numeric_from else f"<td>{_e(c)}</td>"
                                          for j, c in enumerate(row)) + "</tr>")
    return "\n".join(out) + "</tbody></table>"


def recommendation_html(recs: list[Recommendation]) -> str:
    parts = []
    for r in recs:
        rows = [[scope_text(d), choice_text(d), d.why] for d in r.decisions]
        classes = ["chosen" if d.choice else "nothing" for d in r.decisions]
        parts.append(f'<section class="recommendation" data-model="{_e(r.model)}"><h3>{_e(title(r))}</h3>'
                     f'<div class="protocol">{_e(r.header)}</div>'
                     + _table(["scope", "choice", "why"], rows, classes, numeric_from=99)
                     + "".join(f"<p class=\"meta\">note: {_e(n)}</p>" for n in r.notes))
        for d in r.decisions:
            vrows = verdict_rows(d, r.quality)
            vclasses = ["chosen" if row[1] == "chosen" else ("marginal" if "within error bar" in row[4] else "") for row in vrows]
            parts.append(f"<details><summary>{_e(scope_text(d))}: every format, and why</summary>"
                         + _table(VERDICT_HEADS, vrows, vclasses, numeric_from=99) + "</details>")
        parts.append("</section>")
    return "\n".join(parts)


def matrix_html(m: Matrix) -> str:
    heads = headers(m)
    cols = ["format"] + [f"{d} · {h}" if len(m.devices) > 1 else h for d in m.devices for h in heads] + ["flags"]
    rows = []
    for f in m.formats:
        cells, flagged = [display_name(f)], []
        for d in m.devices:
            r = m.cells.get((f, d))
            cells += [cell(r) if r else "" for _, _, cell in COLUMNS] + task_texts(m, f, d)
            flagged += [f"{d}: {x}" for x in (flags(r) if r else [])]
        rows.append(cells + ["; ".join(flagged)])
    return '<div class="scroll matrix">' + _table(cols, rows) + "</div>"


def _figure(fid: str, drawn: tuple[str, int] | None, caption: str) -> str:
    if drawn is None:
        return ""
    svg, n = drawn
    return (f'<figure class="plot" id="plot-{fid}" data-marks="{n}">{svg}'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def model_html(m: Matrix, same_model: list[Matrix]) -> str:
    parts = [f"<h2>{_e(m.model)} — text {_e(m.dataset or 'none')}</h2>", f'<div class="protocol">{_e(m.header())}</div>',
             "<h3>Device × format matrix</h3>", matrix_html(m)]
    parts.append(_figure("quality", plots.quality_vs_size(m),
                         "The cliff: KLD against the source by bits per weight, per family; error bars are 95 % intervals; "
                         "ringed points and the dashed line are the Pareto frontier (no other format is both smaller and better)."))
    parts.append(_figure("accuracy", plots.accuracy_vs_size(m), "Task accuracy by bits per weight (± standard error)."))
    parts.append(_figure("decode", plots.decode_speed(m), "Decode speed, one bar per device, ± stddev over repetitions."))
    parts.append(_figure("prefill", plots.prefill_speed(m), "Prefill speed, one bar per device, ± stddev."))
    parts.append(_figure("roofline", plots.roofline(m), "Bytes read per second while decoding as a share of the "
                                                        "device's measured memory bandwidth: near 100 % is memory-bound."))
    parts.append(_figure("tasks", plots.task_deltas(m), "Per-task accuracy change against the source checkpoint on the same items."))
    if same_model and same_model[0] is m:
        parts.append(_figure("domains", plots.quality_per_text(same_model), "KLD per format on each evaluation text."))
    return "\n".join(p for p in parts if p)


def render_html(matrices: list[Matrix], recs: list[Recommendation] | None = None) -> str:
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    models = list(dict.fromkeys(m.model for m in matrices))
    body = [f"<h1>edge report — {_e(', '.join(models))}</h1>",
            f'<div class="meta">generated {stamp} by edge {_e(edge_version())} · {len(matrices)} matrix(es) · '
            "every ± is stated where it is shown; hover a point or bar for its figures</div>"]
    if recs:
        body += ["<h2>Recommendation</h2>", recommendation_html(recs)]
    for m in matrices:
        body.append(model_html(m, [x for x in matrices if x.model == m.model]))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>edge report — {_e(', '.join(models))}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def sensitivity_html(s: Sensitivity) -> str:
    """``edge sensitivity --output-format html``: the ranking as a plot and a table, one self-contained page."""
    svg, _ = plots.sensitivity(s)
    body = [f"<h1>edge sensitivity — {_e(s.format)}</h1>", f'<div class="protocol">{_e(sensitivity_title(s))}</div>',
            f'<figure id="sensitivity">{svg}<figcaption>hover a bar for its figures</figcaption></figure>',
            _table(SENSITIVITY_HEADS, sensitivity_rows(s), numeric_from=2)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>edge sensitivity — {_e(s.format)}</title><style>{CSS}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")
