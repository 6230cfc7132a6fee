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

from edge.convert import convert, request_texts
from edge.core.errors import EdgeError
from edge.core.family import FAMILIES
from edge.core.formats import FormatRequest, parse_format
from edge.core.paths import cache_dir
from edge.core.progress import NULL, Progress
from edge.core.registry import Registry
from edge.datasets import load_dataset

GRANULARITY = ("layer", "tensor")
SEARCH_PARAMS = frozenset({"target_kld", "target_text", "promote"})   # a recipe search's, not a quantization's


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
    measured_on: str = ""     # what measured the candidates, when not the family's runtime (a proxy)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Probe:
    """The source checkpoint's log-probs on a text (``edge bench``'s cached reference) and the family's
    sensitivity part (``Family.sensitivity``): the KLD of the checkpoint quantized with any plan of
    per-group types, measured on the family's own runtime (or, where the part says so, on its proxy).
    ``with Probe(...) as p:``."""

    def __init__(self, checkpoint: str | Path, family: str, text: str | Path | None, chunks: int,
                 threads: int | None, progress: Progress) -> None:
        fam = FAMILIES.get(family)
        if fam.sensitivity is None:
            raise EdgeError(f"edge sensitivity and recipes do not take {fam.name} formats")
        if chunks < 1:
            raise EdgeError("--chunks must be at least 1")
        self.plan = fam.load("sensitivity")
        self.checkpoint, self.data, self.chunks = Path(checkpoint), load_dataset(text), chunks
        self.threads, self.progress = threads, progress
        self._texts: dict[str, dict] = {}   # the requests' own texts (calibration), loaded once

    def __enter__(self) -> Probe:
        from edge.core.checkpoint import Checkpoint
        from edge.measure.reference import source_reference

        self.scratch = Path(tempfile.mkdtemp(prefix="edge-probe-"))
        try:
            fmt = self.plan.reference_format
            if fmt:  # the float artifact the groups are quantized from
                (self.ref_art,) = [a for a in convert(self.checkpoint, fmt, self.scratch, threads=self.threads,
                                                      progress=self.progress) if a.manifest.format == fmt]
                self.reference, src = self.ref_art.path, self.ref_art.manifest.source
            else:  # the checkpoint itself
                ck = Checkpoint.open(self.checkpoint)
                self.reference, src = ck.path, {"path": str(ck.path), "content_sha256": ck.content_hash()}
            self.progress.start(f"source reference on {self.data.name}")
            self.ref = source_reference(Path(src["path"]), self.data.text, self.data.sha256, 512, self.chunks,
                                        cache_dir(), lambda e: None, content_sha256=src.get("content_sha256"))
        except BaseException:
            shutil.rmtree(self.scratch, ignore_errors=True)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.scratch, ignore_errors=True)

    @property
    def proxy(self) -> str:
        """What measures the candidates when it is not the family's runtime ('' when it is)."""
        return getattr(self.plan, "proxy", "")

    def groups(self, by: str) -> list[tuple[str, str]]:
        return self.plan.groups(self.plan.weight_names(self.checkpoint, self.reference), by)

    def rank(self, req: FormatRequest, by: str, whole: GroupResult | None = None, label: str = "") -> list[GroupResult]:
        """Every group quantized alone as ``req``, most sensitive first (``share``: of ``whole``'s KLD)."""
        todo = self.groups(by)
        label = label or req.name
        self.progress.start(f"{label}: {len(todo)} groups, one at a time", total=len(todo))
        results = []
        for i, (name, pattern) in enumerate(todo, start=1):
            g = self.measure(name, req, group=pattern)
            g.share = g.kld / whole.kld if whole is not None and whole.kld else None
            results.append(g)
            self.progress.update(i, description=f"{label}: {name} alone ({i}/{len(todo)})")
        return sorted(results, key=lambda g: -g.kld)

    def measure(self, label: str, req: FormatRequest | None, *, group: str | None = None,
                types: list[tuple[str, str]] | None = None) -> GroupResult:
        """KLD of the checkpoint quantized as ``req`` (its own parameters kept) — only ``group`` (a regex;
        every other group float), or all with ``types`` overrides ahead of its own; ``req`` None: the float
        reference itself."""
        from edge.measure.protocol import quality

        if group is not None:
            types = self.plan.isolate(group)
        if req is not None and req.name not in self._texts:
            self._texts[req.name] = request_texts([req])
        texts = {} if req is None else self._texts[req.name]
        with self.plan.quantized(self.checkpoint, self.reference, req, types, self.scratch, self.threads,
                                 texts=texts) as (m, size):
            q = quality(m, self.ref.stream, 512, self.chunks, str(self.ref.logprobs), None, lambda e: None)
        return GroupResult(label, group or ("" if req is None else "."), q["kld_mean"], q["kld_unc"], q["ppl"], size)


def sensitivity(checkpoint: str | Path, fmt: str = "gguf:q4_0", *, text: str | Path | None = None, chunks: int = 4,
                by: str = "layer", threads: int | None = None, progress: Progress = NULL) -> Sensitivity:
    """Rank the groups of ``checkpoint``'s tensors by the KLD that quantizing each alone to ``fmt`` costs."""
    req = parse_format(fmt)
    if not req.info.quantized:
        raise EdgeError(f"{fmt} is not quantized: give the type whose sensitivity to rank, e.g. gguf:q4_0")
    searched = sorted(set(req.params) & SEARCH_PARAMS)
    if searched:
        raise EdgeError(f"{req.name}: {', '.join(searched)} belong to a recipe search (edge convert), not to a ranking")
    if by not in GRANULARITY:
        raise EdgeError(f"--by must be one of {', '.join(GRANULARITY)}, not {by!r}")
    t0 = time.perf_counter()
    with Probe(checkpoint, req.info.family, text, chunks, threads, progress) as probe:
        progress.start(f"{fmt}: every group quantized")
        whole = probe.measure("all groups", req)
        floor = probe.measure("none (the float reference)", None)
        results = probe.rank(req, by, whole, fmt)
        name, proxy = probe.data.name, probe.proxy
    return Sensitivity(str(checkpoint), req.name, name, chunks, by, whole, floor, results, time.perf_counter() - t0, proxy)


def rows(s: Sensitivity) -> list[list[str]]:
    rows = [[str(i), g.group, f"{g.kld:.5f} ± {g.kld_unc:.5f}", "" if g.share is None else f"{100 * g.share:.1f}",
             f"{g.ppl:.3f}"] for i, g in enumerate(s.groups, 1)]
    for g in (s.all_quantized, s.float_reference):
        rows.append(["", g.group, f"{g.kld:.5f} ± {g.kld_unc:.5f}", "", f"{g.ppl:.3f}"])
    return rows


HEADS = ["rank", "quantized alone", "KLD vs source", "% of the all-quantized KLD", "PPL"]


def title(s: Sensitivity) -> str:
    on = f"; measured on {s.measured_on}" if s.measured_on else ""
    return (f"{s.format} sensitivity of {Path(s.checkpoint).name} by {s.by}: KLD against the source on {s.text} "
            f"({s.chunks} × 512 tokens), one group quantized at a time, every other tensor float{on}; {s.seconds:.0f} s")


def render_table(s: Sensitivity):
    from rich.table import Table

    t = Table(*HEADS, title=title(s), title_justify="left")
    for r in rows(s):
        t.add_row(*r)
    return t


def render_markdown(s: Sensitivity) -> str:
    lines = [f"### {title(s)}", "", "| " + " | ".join(HEADS) + " |", "|" + "---|" * len(HEADS)]
    lines += ["| " + " | ".join(r) + " |" for r in rows(s)]
    return "\n".join(lines) + "\n"


def render_json(s: Sensitivity) -> str:
    return json.dumps(s.as_dict(), indent=2) + "\n"


RENDERERS: Registry[Callable[[Sensitivity], Any]] = Registry("sensitivity format")
RENDERERS.register("table", render_table)
RENDERERS.register("md", render_markdown)
RENDERERS.register("json", render_json)
RENDERERS.register_lazy("html", "edge.report_html:sensitivity_html")   # a layer above this one
