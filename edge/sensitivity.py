"""``edge sensitivity``: which layers resist low precision. The checkpoint's float reference is quantized
one group of tensors at a time (a block, or one weight of a block; the embedding and the output layer on
their own), every other tensor kept float, each by the family's own quantizer; each such artifact is
measured on its own runtime against the source checkpoint's log-probs on the text (the same cached
reference and token stream as ``edge bench``). The ranking is by KLD: the groups whose quantization alone
costs the most are the ones a mixed-precision recipe should keep at more bits.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.convert import convert
from edge.core.errors import EdgeError
from edge.core.family import FAMILIES
from edge.core.formats import parse_format
from edge.core.paths import cache_dir
from edge.core.progress import NULL, Progress
from edge.core.registry import Registry
from edge.datasets import load_dataset

GRANULARITY = ("layer", "tensor")


@dataclass
class GroupResult:
    group: str
    pattern: str
    kld: float
    kld_unc: float
    ppl: float
    size_bytes: int
    share: float | None = None     # of the KLD with every group quantized


@dataclass
class Sensitivity:
    checkpoint: str
    format: str
    text: str
    chunks: int
    by: str
    all_quantized: GroupResult
    float_reference: GroupResult
    groups: list[GroupResult] = field(default_factory=list)   # most sensitive first
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Probe:
    """The checkpoint's float reference (the family's ``reference_format``, written to a scratch folder) and
    the source checkpoint's log-probs on a text (``edge bench``'s cached reference): the KLD of that
    reference quantized with any plan, measured on the family's own runtime. ``with Probe(...) as p:``."""

    def __init__(self, checkpoint: str | Path, family: str, text: str | Path | None, chunks: int,
                 threads: int | None, progress: Progress) -> None:
        fam = FAMILIES.get(family)
        if fam.sensitivity is None:
            raise EdgeError(f"edge sensitivity and recipes take gguf formats for now; {fam.name} is not built yet")
        if chunks < 1:
            raise EdgeError("--chunks must be at least 1")
        self.plan = fam.load("sensitivity")
        self.checkpoint, self.data, self.chunks = checkpoint, load_dataset(text), chunks
        self.threads, self.progress = threads, progress

    def __enter__(self) -> Probe:
        from edge.measure.reference import source_reference

        self.scratch = Path(tempfile.mkdtemp(prefix="edge-probe-"))
        try:
            fmt = self.plan.reference_format
            (self.ref_art,) = [a for a in convert(self.checkpoint, fmt, self.scratch, threads=self.threads,
                                                  progress=self.progress) if a.manifest.format == fmt]
            src = self.ref_art.manifest.source
            self.progress.start(f"source reference on {self.data.name}")
            self.ref = source_reference(Path(src["path"]), self.data.text, self.data.sha256, 512, self.chunks,
                                        cache_dir(), lambda e: None, content_sha256=src.get("content_sha256"))
        except BaseException:
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    def groups(self, by: str) -> list[tuple[str, str]]:
        return self.plan.groups(self.plan.weight_names(self.ref_art.path), by)

    def _kld(self, path: Path) -> tuple[float, float, float]:
        from edge.measure.protocol import quality

        with self.plan.open(path, self.threads) as m:
            q = quality(m, self.ref.stream, 512, self.chunks, str(self.ref.logprobs), None, lambda e: None)
        return q["kld_mean"], q["kld_unc"], q["ppl"]

    def rank(self, variant: str, by: str, whole: GroupResult | None = None, label: str = "") -> list[GroupResult]:
        """Every group quantized alone as ``variant``, most sensitive first (``share``: of ``whole``'s KLD)."""
        todo = self.groups(by)
        self.progress.start(f"{label or variant}: {len(todo)} groups, one at a time", total=len(todo))
        results = []
        for i, (name, pattern) in enumerate(todo, start=1):
            g = self.measure(name, variant, group=pattern)
            g.share = g.kld / whole.kld if whole is not None and whole.kld else None
            results.append(g)
            self.progress.update(i, description=f"{label or variant}: {name} alone ({i}/{len(todo)})")
        return sorted(results, key=lambda g: -g.kld)

    def measure(self, label: str, variant: str | None, *, group: str | None = None,
                types: list[tuple[str, str]] | None = None) -> GroupResult:
        """KLD of the reference quantized as ``variant`` — only ``group`` (a regex), or all with ``types``
        overrides; ``variant`` None: the float reference itself."""
        if variant is None:
            return GroupResult(label, "", *self._kld(self.ref_art.path), self.ref_art.path.stat().st_size)
        dest = self.scratch / f"probe{self.ref_art.path.suffix}"
        if types is not None:
            self.plan.quantize_types(self.ref_art.path, dest, variant, types, n_threads=self.threads or 0)
        else:
            self.plan.quantize_group(self.ref_art.path, dest, variant, group, n_threads=self.threads or 0)
        try:
            return GroupResult(label, group or ".", *self._kld(dest), dest.stat().st_size)
        finally:
            dest.unlink(missing_ok=True)


def sensitivity(checkpoint: str | Path, fmt: str = "gguf:q4_0", *, text: str | Path | None = None, chunks: int = 4,
                by: str = "layer", threads: int | None = None, progress: Progress = NULL) -> Sensitivity:
    """Rank the groups of ``checkpoint``'s tensors by the KLD that quantizing each alone to ``fmt`` costs."""
    req = parse_format(fmt)
    if not req.info.quantized:
        raise EdgeError(f"{fmt} is not quantized: give the type whose sensitivity to rank, e.g. gguf:q4_0")
    if req.params:
        raise EdgeError(f"{req.name}: edge sensitivity ranks a plain type; its parameters are not taken yet")
    if by not in GRANULARITY:
        raise EdgeError(f"--by must be one of {', '.join(GRANULARITY)}, not {by!r}")
    t0 = time.perf_counter()
    with Probe(checkpoint, req.info.family, text, chunks, threads, progress) as probe:
        progress.start(f"{fmt}: every group quantized")
        whole = probe.measure("all groups", req.info.variant)
        floor = probe.measure("none (the float reference)", None)
        results = probe.rank(req.info.variant, by, whole, fmt)
        name = probe.data.name
    return Sensitivity(str(checkpoint), fmt, name, chunks, by, whole, floor, results, time.perf_counter() - t0)


def _rows(s: Sensitivity) -> list[list[str]]:
    rows = [[str(i), g.group, f"{g.kld:.5f} ± {g.kld_unc:.5f}", "" if g.share is None else f"{100 * g.share:.1f}",
             f"{g.ppl:.3f}"] for i, g in enumerate(s.groups, 1)]
    for g in (s.all_quantized, s.float_reference):
        rows.append(["", g.group, f"{g.kld:.5f} ± {g.kld_unc:.5f}", "", f"{g.ppl:.3f}"])
    return rows


HEADS = ["rank", "quantized alone", "KLD vs source", "% of the all-quantized KLD", "PPL"]


def _title(s: Sensitivity) -> str:
    return (f"{s.format} sensitivity of {Path(s.checkpoint).name} by {s.by}: KLD against the source on {s.text} "
            f"({s.chunks} × 512 tokens), one group quantized at a time, every other tensor float; {s.seconds:.0f} s")


def render_table(s: Sensitivity):
    from rich.table import Table

    t = Table(*HEADS, title=_title(s), title_justify="left")
    for r in _rows(s):
        t.add_row(*r)
    return t


def render_markdown(s: Sensitivity) -> str:
    lines = [f"### {_title(s)}", "", "| " + " | ".join(HEADS) + " |", "|" + "---|" * len(HEADS)]
    lines += ["| " + " | ".join(r) + " |" for r in _rows(s)]
    return "\n".join(lines) + "\n"


def render_json(s: Sensitivity) -> str:
    return json.dumps(s.as_dict(), indent=2) + "\n"


RENDERERS: Registry[Callable[[Sensitivity], Any]] = Registry("sensitivity format")
RENDERERS.register("table", render_table)
RENDERERS.register("md", render_markdown)
RENDERERS.register("json", render_json)
