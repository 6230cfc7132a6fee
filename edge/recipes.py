"""Mixed-precision recipes that reach a quality target at the fewest bits: ``gguf:q4_k_m?target_kld=0.02``.

The search is measured, not predicted: every group of tensors is ranked by the KLD that quantizing it
alone costs (``edge.sensitivity``); then the fewest of the most sensitive groups kept at ``promote`` (q8_0,
8 bits, int8) that bring the KLD to the target is found by bisection over that count, each candidate
quantized by the family's own quantizer and measured against the source checkpoint — GGUF and ONNX on
real artifacts and their runtimes, ExecuTorch on its proxy (the program's torchao quantization in eager
torch; an export takes minutes). The KLD falls as groups are promoted; the sum of the groups' own KLDs
overstates the whole's, so it only ranks.
The answer is a per-group type plan (``?types=``), which the conversion then applies; the manifest records
the search. The target's text is held out from evaluation (measuring the artifact on it later is flagged)
and from calibration (refused).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edge.core.errors import ConversionError
from edge.core.progress import Progress
from edge.datasets import load_dataset
from edge.sensitivity import Probe

CHUNKS = 4


def solve(checkpoint: str | Path, req: Any, *, threads: int | None, progress: Progress) -> tuple[str, dict[str, Any]]:
    """(the ``types`` plan, the search's record) for a request with ``target_kld``."""
    target = float(req.params["target_kld"])
    text = req.params.get("target_text") or "wiki"
    calibration = [req.params[p.name] for p in req.info.params if p.text and p.name != "target_text" and req.params.get(p.name)]
    with Probe(checkpoint, req.info.family, text, CHUNKS, threads, progress) as probe:
        if any(load_dataset(c).sha256 == probe.data.sha256 for c in calibration):
            raise ConversionError(f"{req.name}: the target text {probe.data.name} is also the calibration text; "
                                  f"give target_text another text (held out from both calibration and evaluation)")
        promote = req.params.get("promote") or probe.plan.promote_default
        whole = probe.measure("all groups", req)
        record: dict[str, Any] = {"target_kld": target, "text": probe.data.name, "text_sha256": probe.data.sha256,
                                  "chunks": CHUNKS, "promote": promote, "all_quantized_kld": whole.kld, "steps": [],
                                  **({"measured_on": probe.proxy} if probe.proxy else {})}
        if whole.kld <= target:
            return "", {**record, "promoted": [], "kld": whole.kld, "kld_unc": whole.kld_unc, "measurements": 1}
        already = getattr(probe.plan, "already", lambda req, group, to: False)   # promoting it would change nothing
        ranked = [(g.kld, g.group, g.pattern) for g in probe.rank(req, "layer", label=f"{req.info.name} (target KLD {target:g})")
                  if not already(req, g.group, promote)]
        measured = len(ranked) + 1
        cache: dict[int, Any] = {}

        def with_top(n: int):  # the n most sensitive groups at `promote`, measured on a real artifact
            nonlocal measured
            if n not in cache:
                types = [probe.plan.promote(p, promote) for _, _, p in ranked[:n]]
                progress.start(f"{req.info.name}: the {n} most sensitive group(s) at {promote}, checking the KLD")
                cache[n] = (types, probe.measure("recipe", req, types=types))
                measured += 1
                record["steps"].append({"promoted": [lb for _, lb, _ in ranked[:n]], "kld": cache[n][1].kld,
                                        "size_bytes": cache[n][1].size_bytes})
            return cache[n]

        if with_top(len(ranked))[1].kld > target:
            raise ConversionError(f"{req.name}: the target KLD {target:g} is out of reach with {promote} groups: "
                                  f"with every group at {promote} the KLD is {cache[len(ranked)][1].kld:.4g}")
        lo, hi = 0, len(ranked)  # lo misses the target, hi meets it: the fewest promotions, by bisection
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if with_top(mid)[1].kld <= target:
                hi = mid
            else:
                lo = mid
        types, result = with_top(hi)
        promoted = [(lb, p) for _, lb, p in ranked[:hi]]
    plan = ";".join(f"{p}={t}" for p, t in types)
    return plan, {**record, "promoted": [lb for lb, _ in promoted], "kld": result.kld, "kld_unc": result.kld_unc,
                  "size_bytes": result.size_bytes, "measurements": measured}
