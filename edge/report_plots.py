"""The HTML report's plots, drawn with matplotlib as inline SVG.

Why matplotlib SVG rather than plotly or Vega-Lite: the report is one file that must open offline, in a
pull-request artifact viewer or a mail client as well as a browser. SVG needs no script at all (nothing
to load, nothing to fail, no 4.8 MB plotly.min.js — plotly 7.1.0's — inlined): the demo's whole report
is a few hundred kB, vector-sharp when printed or zoomed. Each point and bar carries an SVG ``<title>``,
so hovering shows its figures without JavaScript; the tables beside the plots hold every number.

Each function returns ``(svg, points)``: the SVG text and how many marks it drew, keyed by the ids of
the marks (``pt-…`` points, ``bar-…`` bars), which the report's test counts in a real browser.
"""

from __future__ import annotations

import html
import io
import math
import re
from typing import Any

from edge.core.formats import display_name
from edge.report import Matrix, pct_of_membw

FAMILY_STYLE = {  # family -> (colour, marker): one entry a line
    "gguf": ("#1f77b4", "o"),
    "executorch": ("#d62728", "s"),
    "onnx": ("#2ca02c", "^"),
    "source": ("#7f7f7f", "D"),
}
DEVICE_COLOURS = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c"]
KLD_FLOOR = 1e-7   # a KLD at or below this (an unquantized format) is drawn at the floor of the log axis


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=96, layout="constrained")
    return fig


def _style(fmt: str) -> tuple[str, str]:
    return FAMILY_STYLE.get(fmt.split(":", 1)[0], ("#17becf", "x"))


class Marks:
    """The ids and hover titles of a plot's marks."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.titles = prefix, {}

    def gid(self, kind: str, title: str) -> str:
        gid = f"{kind}-{self.prefix}-{len(self.titles)}"
        self.titles[gid] = title
        return gid


def _svg(fig: Any, marks: Marks) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "edge", "font.size": 9}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML prolog and doctype: the SVG sits inside HTML

    def title(m: re.Match) -> str:
        t = marks.titles.get(m.group(1))
        return m.group(0) + (f"<title>{html.escape(t)}</title>" if t else "")

    return re.sub(r'<g id="((?:pt|bar)-[^"]+)">', title, text)


def _frontier(points: list[tuple[float, float]], lower_better: bool = True) -> list[int]:
    """Indices of the Pareto-optimal points (fewer bits, better quality): none other has at most the
    bits and at least the quality, one of them strictly."""
    out = []
    for i, (b, q) in enumerate(points):
        dominated = any((b2 <= b and (q2 <= q if lower_better else q2 >= q)) and (b2 < b or q2 != q)
                        for j, (b2, q2) in enumerate(points) if j != i)
        if not dominated:
            out.append(i)
    return sorted(out, key=lambda i: points[i][0])


BPW_TICKS = [2, 3, 4, 5, 6, 8, 10, 12, 16, 24, 32, 40]


def _bpw_axis(ax: Any, bpws: list[float]) -> None:
    """A log bits-per-weight axis: the 4–8 bpw corner where the cliffs are gets room."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    lo, hi = min(bpws), max(bpws)
    ax.set_xlim(lo / 1.12, hi * 1.25)
    ax.set_xticks([t for t in BPW_TICKS if lo / 1.12 <= t <= hi * 1.25], [str(t) for t in BPW_TICKS if lo / 1.12 <= t <= hi * 1.25])
    ax.xaxis.set_minor_formatter(NullFormatter())


def _labels(ax: Any, fig: Any, pts: list[tuple[float, float]], texts: list[str]) -> None:
    """Point labels, each moved down in 11 px steps until it overlaps no earlier one (small models crowd
    the 4–6 bpw corner)."""
    ax.autoscale_view()
    placed: list[tuple[float, float]] = []
    for (x, y), text in sorted(zip(pts, texts), key=lambda p: (-p[0][1], p[0][0])):
        px, py = ax.transData.transform((x, y))
        dy = 4.0
        while any(abs(px - qx) < 7 * max(len(text), 4) and abs(py + dy - qy) < 10 for qx, qy in placed):
            dy -= 11
        placed.append((px, py + dy))
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(6, dy * 72 / fig.dpi), fontsize=8,
                    arrowprops=None if dy == 4.0 else {"arrowstyle": "-", "color": "#999", "linewidth": 0.5})


def quality_device(m: Matrix) -> str | None:
    """The device whose rows the quality plots draw: the first with the most KLD rows (quality is a
    property of the artifact; a second device only repeats it)."""
    counts = {d: sum(1 for f in m.formats if (r := m.cells.get((f, d))) is not None and r.kld_mean is not None)
              for d in m.devices}
    return max(m.devices, key=lambda d: counts[d]) if m.devices and max(counts.values()) else None


def quality_vs_size(m: Matrix) -> tuple[str, int] | None:
    """KLD against bits per weight, a series per family, 95 % error bars, the Pareto frontier marked."""
    device = quality_device(m)
    if device is None:
        return None
    rows = [r for f in m.formats if (r := m.cells.get((f, device))) is not None
            and r.kld_mean is not None and r.bits_per_weight]
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot()
    marks = Marks("quality")
    pts = [(r.bits_per_weight, max(r.kld_mean, KLD_FLOOR)) for r in rows]
    for r, (b, k) in zip(rows, pts):
        colour, marker = _style(r.format)
        h = 1.96 * (r.kld_unc or 0.0)
        ax.errorbar([b], [k], yerr=[[min(h, k - KLD_FLOOR / 2)], [h]], fmt="none", ecolor=colour, elinewidth=1, capsize=2)
        ax.plot([b], [k], marker=marker, color=colour, linestyle="none", markersize=7,
                gid=marks.gid("pt", f"{r.format}: {b:.2f} bpw, KLD {r.kld_mean:.4g} ± {h:.2g} (95 %), "
                                    f"{r.size_bytes / 2**20:.0f} MiB"))
    front = _frontier(pts)
    if front:
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], color="#444", linestyle="--",
                linewidth=1, drawstyle="steps-post", label="Pareto frontier (fewest bits for the quality)")
        ax.plot([pts[i][0] for i in front], [pts[i][1] for i in front], marker="o", markersize=13,
                markerfacecolor="none", markeredgecolor="#444", linestyle="none")
    for fam, (colour, marker) in FAMILY_STYLE.items():
        if any(r.format.startswith(fam + ":") for r in rows):
            ax.plot([], [], marker=marker, color=colour, linestyle="none", label=fam)
    ax.set_yscale("log")
    _bpw_axis(ax, [b for b, _ in pts])
    _labels(ax, fig, pts, [display_name(r.format).split(":", 1)[1] for r in rows])
    ax.set_xlabel("bits per weight (file size × 8 / parameters, log)")
    ax.set_ylabel("KLD vs the source (nats/token, log)")
    ax.set_title(f"Quality vs size on {device}: lower is better, left is smaller")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")  # few bits and little loss: the corner no format reaches
    return _svg(fig, marks), len(rows)


def accuracy_vs_size(m: Matrix) -> tuple[str, int] | None:
    """Task accuracy (± SE) against bits per weight, a series per task, its frontier dashed."""
    device = next((d for d in m.devices if any((f, d) in m.task_cells for f in m.formats)), None)
    if device is None:
        return None
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot()
    marks = Marks("accuracy")
    n, all_pts = 0, []
    for i, task in enumerate(m.tasks):
        colour = DEVICE_COLOURS[i % len(DEVICE_COLOURS)]
        pts, rows = [], []
        for f in m.formats:
            t = m.task_cells.get((f, device), {}).get(task)
            r = m.cells.get((f, device))
            if t is None or t.acc is None or r is None or not r.bits_per_weight:
                continue
            pts.append((r.bits_per_weight, 100 * t.acc))
            rows.append((r, t))
        for (r, t), (b, a) in zip(rows, pts):
            _, marker = _style(r.format)
            ax.errorbar([b], [a], yerr=[100 * (t.acc_se or 0)], fmt="none", ecolor=colour, elinewidth=1, capsize=2)
            delta = "" if t.dacc is None else f", Δacc {100 * t.dacc:+.1f} [{100 * t.dacc_lo:+.1f}, {100 * t.dacc_hi:+.1f}]"
            ax.plot([b], [a], marker=marker, color=colour, linestyle="none", markersize=6,
                    gid=marks.gid("pt", f"{task} · {r.format}: acc {a:.1f} ± {100 * (t.acc_se or 0):.1f} %{delta}, n {t.n}"))
            n += 1
        all_pts += pts
        front = _frontier(pts, lower_better=False)
        ax.plot([pts[j][0] for j in front], [pts[j][1] for j in front], color=colour, linestyle="--",
                linewidth=1, drawstyle="steps-post", label=f"{task} (frontier dashed)")
    _bpw_axis(ax, [b for b, _ in all_pts] or [4, 32])
    ax.set_xlabel("bits per weight (log)")
    ax.set_ylabel("accuracy % (± SE)")
    ax.set_title(f"Task accuracy vs size on {device}: higher is better")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _svg(fig, marks), n


def _bars(m: Matrix, key: str, title: str, xlabel: str, value, err=None, line: float | None = None) -> tuple[str, int] | None:
    """Horizontal bars per format, one per device (coloured by device; by family when there is one
    device), with error bars; ``line``: a reference drawn across (100 % of the bandwidth)."""
    devices = [d for d in m.devices if any(m.cells.get((f, d)) is not None and value(m.cells[(f, d)]) is not None
                                           for f in m.formats)]
    if not devices:
        return None
    fig = _figure(7.5, 0.9 + 0.28 * len(m.formats) * max(1, len(devices)) ** 0.6)
    ax = fig.add_subplot()
    marks = Marks(key)
    height = 0.8 / len(devices)
    n = 0
    for j, d in enumerate(devices):
        colour = DEVICE_COLOURS[j % len(DEVICE_COLOURS)]
        for i, f in enumerate(m.formats):
            r = m.cells.get((f, d))
            v = None if r is None else value(r)
            if v is None:
                continue
            e = None if err is None else err(r)
            y = i - 0.4 + height * (j + 0.5)
            ax.barh([y], [v], height=height * 0.9, color=colour if len(devices) > 1 else _style(f)[0],
                    xerr=None if e is None else [e],
                    error_kw={"elinewidth": 1, "capsize": 2}, label=d if i == 0 or n == 0 else None,
                    gid=marks.gid("bar", f"{f} on {d}: {v:.1f}" + ("" if e is None else f" ± {e:.1f}")))
            n += 1
    if line is not None:
        ax.axvline(line, color="#444", linewidth=1, linestyle="--")
    ax.set_yticks(range(len(m.formats)), m.formats, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(True, axis="x", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    if len(devices) > 1:
        ax.legend(seen.values(), seen.keys(), fontsize=8, loc="lower right")
    return _svg(fig, marks), n


def decode_speed(m: Matrix) -> tuple[str, int] | None:
    return _bars(m, "decode", f"Decode tg{m.protocol.get('n_gen')} t/s per device (± stddev over {m.protocol.get('reps')} reps)",
                 "tokens/s", lambda r: r.tg_tps, lambda r: r.tg_tps_std)


def prefill_speed(m: Matrix) -> tuple[str, int] | None:
    return _bars(m, "prefill", f"Prefill pp{m.protocol.get('n_prompt')} t/s per device (± stddev)", "tokens/s",
                 lambda r: r.pp_tps, lambda r: r.pp_tps_std)


def roofline(m: Matrix) -> tuple[str, int] | None:
    return _bars(m, "roofline", "Decode roofline: bytes read per second, % of measured bandwidth",
                 "weight + KV bytes read per second while decoding, % of the device's measured bandwidth",
                 pct_of_membw, line=100.0)


def task_deltas(m: Matrix) -> tuple[str, int] | None:
    """Δacc against the source checkpoint with its paired 95 % interval, per format, a panel per task."""
    panels = [(t, [(f, d, m.task_cells[(f, d)][t]) for f in m.formats for d in m.devices
                   if t in m.task_cells.get((f, d), {}) and m.task_cells[(f, d)][t].dacc is not None]) for t in m.tasks]
    panels = [(t, rows) for t, rows in panels if rows]
    if not panels:
        return None
    fig = _figure(7.5, 0.8 + sum(0.25 * len(rows) + 0.5 for _, rows in panels))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    marks = Marks("tasks")
    n = 0
    for ax, (task, rows) in zip(axes, panels):
        for i, (f, d, t) in enumerate(rows):
            colour, marker = _style(f)
            lo, hi, v = 100 * t.dacc_lo, 100 * t.dacc_hi, 100 * t.dacc
            ax.plot([lo, hi], [i, i], color=colour, linewidth=2)
            p = "" if t.p_mcnemar is None else f", McNemar p {t.p_mcnemar:.3f}"
            ax.plot([v], [i], marker=marker, color=colour, linestyle="none",
                    gid=marks.gid("pt", f"{task} · {f} on {d}: Δacc {v:+.1f} [{lo:+.1f}, {hi:+.1f}] pts{p}"))
            n += 1
        ax.axvline(0, color="#444", linewidth=1)
        ax.set_yticks(range(len(rows)), [f if len(m.devices) == 1 else f"{f} · {d}" for f, d, _ in rows], fontsize=8)
        ax.invert_yaxis()
        ax.set_title(f"{task}: Δacc vs the source checkpoint (points, paired 95 % interval)", fontsize=9)
        ax.grid(True, axis="x", alpha=0.3)
    axes[-1].set_xlabel("Δacc (accuracy points); left of 0 is a loss")
    return _svg(fig, marks), n


def quality_per_text(matrices: list[Matrix]) -> tuple[str, int] | None:
    """KLD per format on each evaluation text (domain) of the same model: the cliff per domain."""
    by_text = [(mm.dataset or "?", mm) for mm in matrices]
    if len({t for t, _ in by_text}) < 2:
        return None
    formats = list(dict.fromkeys(f for _, mm in by_text for f in mm.formats))
    fig = _figure(7.5, 0.9 + 0.3 * len(formats) * math.sqrt(len(by_text)))
    ax = fig.add_subplot()
    marks = Marks("domains")
    height = 0.8 / len(by_text)
    n = 0
    for j, (text, mm) in enumerate(by_text):
        d = quality_device(mm)
        for i, f in enumerate(formats):
            r = mm.cells.get((f, d)) if d else None
            if r is None or r.kld_mean is None:
                continue
            ax.barh([i - 0.4 + height * (j + 0.5)], [max(r.kld_mean, KLD_FLOOR)], height=height * 0.9,
                    color=DEVICE_COLOURS[j % len(DEVICE_COLOURS)], label=text,
                    gid=marks.gid("bar", f"{f} on {text}: KLD {r.kld_mean:.4g}"))
            n += 1
    ax.set_xscale("log")
    ax.set_yticks(range(len(formats)), formats, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("KLD vs the source (log)")
    ax.set_title("Quality per evaluation text (domain)")
    handles, labels = ax.get_legend_handles_labels()
    seen = dict(zip(labels, handles))
    ax.legend(seen.values(), seen.keys(), fontsize=8)
    return _svg(fig, marks), n


def sensitivity(s: Any) -> tuple[str, int]:
    """``edge sensitivity``'s ranking as horizontal bars: each group's KLD quantized alone (± its
    uncertainty), most sensitive on top, with the all-quantized KLD as a line."""
    groups = s.groups
    fig = _figure(7.5, 0.9 + 0.2 * len(groups))
    ax = fig.add_subplot()
    marks = Marks("sens")
    colour = _style(s.format)[0]
    for i, g in enumerate(groups):
        ax.barh([i], [g.kld], height=0.75, color=colour, xerr=[g.kld_unc], error_kw={"elinewidth": 1, "capsize": 2},
                gid=marks.gid("bar", f"{g.group} alone: KLD {g.kld:.5f} ± {g.kld_unc:.5f}, PPL {g.ppl:.3f}"
                              + ("" if g.share is None else f", {100 * g.share:.1f} % of the all-quantized KLD")))
    ax.axvline(s.all_quantized.kld, color="#444", linewidth=1, linestyle="--")
    ax.text(s.all_quantized.kld, -0.9, f" all groups {s.all_quantized.kld:.4f}", fontsize=8, va="bottom")
    ax.set_yticks(range(len(groups)), [g.group for g in groups], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"KLD against the source on {s.text}, the group quantized alone")
    ax.set_title(f"{s.format}: which groups resist low precision")
    ax.grid(True, axis="x", alpha=0.3)
    return _svg(fig, marks), len(groups)
