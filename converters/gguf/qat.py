"""QAT for GGUF (``gguf:q4_0?method=qat``): the fine-tuned copy's weights are fake-quantized with llama.cpp's
own block rules — ``quantize_row_q4_0_ref`` and ``quantize_row_q8_0_ref`` of ggml-quants.c, what its
quantizer runs without an importance matrix — on the types llama.cpp's quantizer gives each tensor for the
asked type (read from a dry run on the float reference: with ``q4_0`` a tied embedding is Q8_0, the norms
F32), so the weights the copy learns are the ones llama.cpp writes when it re-quantizes them.

Tensors of a type without a mirrored rule (K-quants, i-quants) are trained unquantized and named in the
manifest.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from converters.gguf.quantize import quantize
from converters.qat import Settings, chunks_of, distill, load_pair, record, save_copy
from edge.core.progress import NULL, Progress

BLOCK = 32   # QK4_0 = QK8_0


def q4_0(w):
    """llama.cpp's Q4_0 of ``w`` [rows, cols], dequantized: per block of 32 the value of largest magnitude
    maps to −8, ``d = max / −8`` kept as f16, ``q = min(15, trunc(x / d + 8.5))``, value ``(q − 8) · d``."""
    import torch

    b = w.reshape(-1, BLOCK)
    mx = b.gather(1, b.abs().argmax(dim=1, keepdim=True))   # the first of equal magnitudes, as the C loop keeps
    d = mx / -8
    inv = torch.where(d != 0, 1.0 / d, torch.zeros_like(d))
    q = torch.clamp(torch.trunc(b * inv + 8.5), max=15)
    return ((q - 8) * d.half().float()).reshape(w.shape)


def q8_0(w):
    """llama.cpp's Q8_0 of ``w``, dequantized: ``d = amax / 127`` kept as f16, ``q = roundf(x / d)`` (half
    away from zero), value ``q · d``."""
    import torch

    b = w.reshape(-1, BLOCK)
    d = b.abs().amax(dim=1, keepdim=True) / 127
    inv = torch.where(d != 0, 1.0 / d, torch.zeros_like(d))
    x = b * inv
    q = torch.sign(x) * torch.floor(x.abs() + 0.5)
    return (q * d.half().float()).reshape(w.shape)


# ggml tensor type → its fake quantizer (llama.cpp's reference rule), one a line
FAKE = {
    "Q4_0": q4_0,
    "Q8_0": q8_0,
}


def ste(w, rule):
    """``rule(w)`` forward, identity gradient (the straight-through estimator)."""
    return w + (rule(w.detach()) - w).detach()


def llama_types(reference: Path, variant: str, types: list[tuple[str, str]], scratch: Path, threads: int) -> dict[str, str]:
    """GGUF tensor name → the ggml type llama.cpp's quantizer gives it for ``variant`` and ``types``."""
    import gguf

    with tempfile.TemporaryDirectory(dir=scratch) as d:
        dry = Path(d) / "dry.gguf"
        quantize(reference, dry, variant, n_threads=threads, types=types or None)
        return {t.name: t.tensor_type.name for t in gguf.GGUFReader(str(dry)).tensors}


def train(ckpt, reference: Path, variant: str, types: list[tuple[str, str]], text, settings: Settings, scratch: Path, *,
          threads: int | None = None, progress: Progress = NULL) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """Fine-tune a copy of ``ckpt`` on ``text`` with every block weight fake-quantized as llama.cpp will
    quantize it; returns (the copy's checkpoint folder under ``scratch``, the fake quantizer of each
    checkpoint tensor by name, the manifest's method record)."""
    import torch
    from torch.func import functional_call

    from converters.gguf.writer import gguf_names
    from edge.measure.procmem import reset_peak_rss
    from edge.measure.tokens import token_stream

    t0 = time.perf_counter()
    per_run = reset_peak_rss()
    progress.start(f"QAT: the types llama.cpp gives {variant}'s tensors")
    by_gguf = llama_types(reference, variant, types, scratch, threads or 0)
    names = gguf_names(ckpt)
    typed = {hf: by_gguf[g] for hf, g in names.items() if g in by_gguf}
    stream = token_stream(ckpt.path, text.text)
    chunks = chunks_of(stream.ids, stream.bos, settings)
    progress.start("QAT: loading the source model twice (student and teacher)")
    student, teacher = load_pair(ckpt.path, threads)
    params = dict(student.named_parameters())
    fake = {n: t for n, t in typed.items() if t in FAKE and n in params}

    def logits(ids):
        weights = {n: ste(params[n], FAKE[t]) for n, t in fake.items()}
        return functional_call(student, weights, (), {"input_ids": ids}).logits

    run = distill(logits, list(params.values()), teacher, chunks, settings, progress=progress, label=f"QAT {variant}")
    unmirrored = sorted({t for n, t in typed.items() if len(ckpt.shape(n)) > 1 and t not in FAKE and not t.startswith(("F32", "F16", "BF16"))})
    state = {n: p.detach() for n, p in student.state_dict().items()}
    del student, teacher
    dest = save_copy(ckpt, state, Path(tempfile.mkdtemp(dir=scratch)) / ckpt.name)
    census: dict[str, int] = {}
    for t in fake.values():
        census[t] = census.get(t, 0) + 1
    rec = record(settings, text, run, t0, per_run,
                 grid="llama.cpp's block rules (ggml-quants.c quantize_row_q4_0_ref / q8_0_ref), f16 scales, "
                      "straight-through gradients", fake_quantized=census,
                 **({"trained_unquantized_types": unmirrored} if unmirrored else {}))
    return dest, {n: FAKE[t] for n, t in fake.items()}, rec


def grid_check(path: Path, ckpt, rules: dict[str, Any]) -> dict[str, Any]:
    """The written file against the fine-tuned copy: each fake-quantized tensor as llama.cpp stored it
    (gguf-py's dequantization) against the fake quantizer on the copy's weights."""
    import gguf
    import numpy as np
    import torch

    from converters.gguf.writer import arch_spec, as_written, gguf_names

    hp, spec = ckpt.hparams, arch_spec(ckpt.architecture)
    tensors = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
    names = gguf_names(ckpt)
    worst, differ, total = 0.0, 0, 0
    for hf, rule in rules.items():
        w = as_written(ckpt.tensor(hf), hf, hp, spec)
        want = rule(torch.from_numpy(np.ascontiguousarray(w))).numpy()
        t = tensors[names[hf]]
        got = gguf.quants.dequantize(t.data, t.tensor_type).reshape(want.shape)
        diff = np.abs(got - want)
        worst = max(worst, float(diff.max()))
        differ += int((diff > 1e-6 * np.abs(want).max()).sum())
        total += diff.size
    return {"tensors": len(rules), "weights": total, "weights_differing": differ, "max_abs_diff": worst}
