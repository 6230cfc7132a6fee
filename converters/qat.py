"""Quantization-aware training as a short recovery run: a copy of the source model is fine-tuned with its
weights fake-quantized on the family's exact grid (straight-through gradients), the source model's own
next-token distribution as the target (distillation: the KL divergence from the float model to the
fake-quantized one, per token, as Gemma's QAT did), on calibration text cut into chunks whose first token is
BOS. The family then converts the fine-tuned copy through its normal path; the source checkpoint is only
read.

Which weights are fake-quantized, and how, is the family's (``converters.gguf.qat``: llama.cpp's block rules;
``converters.executorch.qat``: torchao's ``QATConfig``); this module holds what they share: the loop, its
progress and record, and writing the fine-tuned copy as a checkpoint folder.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.core.errors import ConversionError, DatasetError
from edge.core.family import Param
from edge.core.progress import NULL, Progress

CTX = 512            # tokens per training chunk (the calibration layout of the importance matrix and GPTQ)
WARMUP = 0.1         # the fraction of steps the learning rate climbs over, then a cosine decay to a tenth
TAIL = 10            # steps averaged for the loss figures the record keeps (at most a quarter of them)


@dataclass(frozen=True)
class Settings:
    steps: int
    lr: float
    calib_tokens: int
    ctx: int = CTX


def settings_of(params: dict[str, str], calib_tokens_default: str) -> Settings:
    """A request's QAT settings from its parameters (checked when the format was parsed)."""
    return Settings(steps=int(params.get("steps") or STEPS.default), lr=float(params.get("lr") or LR.default),
                    calib_tokens=int(params.get("calib_tokens") or calib_tokens_default))


def check_sizes(name: str, params: dict[str, str]) -> None:
    """``steps`` (at least 1) and ``calib_tokens`` (at least one chunk) where a request gives them: one line each."""
    if params.get("steps") and int(params["steps"]) < 1:
        raise ConversionError(f"{name}: steps must be at least 1")
    if params.get("calib_tokens") and int(params["calib_tokens"]) < CTX:
        raise ConversionError(f"{name}: calib_tokens must be at least {CTX} (one chunk)")


def chunks_of(tokens, bos: int | None, settings: Settings) -> list[list[int]]:
    """The calibration text as training chunks of ``settings.ctx`` tokens (BOS first), at most
    ``calib_tokens`` tokens in all; refused in one line when the text is shorter than one chunk."""
    return calibration_chunks(tokens, bos, settings.calib_tokens, settings.ctx, "QAT")


def calibration_chunks(tokens, bos: int | None, calib_tokens: int, ctx: int, purpose: str) -> list[list[int]]:
    """Calibration tokens as chunks of ``ctx`` (BOS first), at most ``calib_tokens`` in all; refused in one
    line, naming ``purpose``, when the text is shorter than one chunk."""
    from edge.measure.metrics import chunk_tokens

    tokens = list(tokens)
    n = min(len(tokens), calib_tokens) // ctx
    if n < 1:
        raise DatasetError(f"the calibration text has {len(tokens)} tokens: {purpose} needs at least {ctx} "
                           f"(one chunk of {ctx})")
    return [chunk_tokens(tokens, i, ctx, bos) for i in range(n)]


def lr_at(step: int, settings: Settings) -> float:
    """Linear warm-up, then cosine decay to a tenth of ``lr``."""
    warm = max(1, int(settings.steps * WARMUP))
    if step < warm:
        return settings.lr * (step + 1) / warm
    t = (step - warm) / max(1, settings.steps - warm)
    return settings.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def distill(student_logits: Callable[[Any], Any], params: list[Any], teacher, chunks: list[list[int]],
            settings: Settings, *, progress: Progress = NULL, label: str = "QAT") -> dict[str, Any]:
    """Fine-tune ``params`` (AdamW, no weight decay) for ``settings.steps`` steps so that
    ``student_logits(ids)`` (the fake-quantized model) matches ``teacher``'s (the float model's)
    distribution over ``chunks``, one chunk a step, cycling; returns the run's record (losses, tokens/s)."""
    import torch

    opt = torch.optim.AdamW(params, lr=settings.lr, weight_decay=0.0)
    t0 = time.perf_counter()
    losses: list[float] = []
    progress.start(f"{label}: step 0/{settings.steps}", total=settings.steps)
    for step in range(settings.steps):
        ids = torch.tensor([chunks[step % len(chunks)]], dtype=torch.long)
        with torch.no_grad():
            target = torch.log_softmax(teacher(input_ids=ids).logits.float(), dim=-1)
        logp = torch.log_softmax(student_logits(ids).float(), dim=-1)
        loss = torch.nn.functional.kl_div(logp[0], target[0], log_target=True, reduction="batchmean")
        for g in opt.param_groups:
            g["lr"] = lr_at(step, settings)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        done = step + 1
        spent = time.perf_counter() - t0
        eta = spent / done * (settings.steps - done)
        progress.update(done, description=f"{label}: step {done}/{settings.steps}, KL {losses[-1]:.4f}, "
                                          f"{done * settings.ctx / spent:.0f} tok/s, ETA {_clock(eta)}")
    seconds = time.perf_counter() - t0
    k = max(1, min(TAIL, settings.steps // 4))
    head, tail = losses[:k], losses[-k:]
    return {"steps": settings.steps, "lr": settings.lr, "schedule": f"linear warm-up over {WARMUP:.0%} of the steps, "
            "cosine decay to a tenth", "optimizer": "AdamW, no weight decay", "ctx": settings.ctx,
            "loss": "KL(source ‖ fake-quantized) per token, the source model's log-probs as the target",
            "loss_first_steps": round(sum(head) / len(head), 5), "loss_last_steps": round(sum(tail) / len(tail), 5),
            "chunks": len(chunks), "tokens_seen": settings.steps * settings.ctx,
            "train_seconds": round(seconds, 1), "tokens_per_second": round(settings.steps * settings.ctx / seconds, 1)}


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds + 0.5), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def load_pair(checkpoint: Path, threads: int | None):
    """(student, teacher): two fp32 copies of the source model, the teacher frozen."""
    import torch
    from transformers import AutoModelForCausalLM

    if threads:
        torch.set_num_threads(threads)
    teacher = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32)
    student.train()
    return student, teacher


def save_copy(source, state: dict[str, Any], dest: Path) -> Path:
    """The fine-tuned copy as a checkpoint folder at ``dest``: the source's config and tokenizer files as
    they are, and ``state``'s tensors (fp32) under the source's tensor names (a tied output layer stays
    tied: only the names the source has are written)."""
    import torch
    from safetensors.torch import save_file

    dest.mkdir(parents=True)
    for f in source.side_files():
        shutil.copyfile(f, dest / f.name)
    names = source.tensor_names()
    missing = [n for n in names if n not in state]
    if missing:
        raise ValueError(f"the fine-tuned model lacks {len(missing)} of the source's tensors, e.g. {missing[0]}")
    save_file({n: state[n].detach().to(torch.float32).contiguous() for n in names}, str(dest / "model.safetensors"))
    return dest


def record(settings: Settings, text, run: dict[str, Any], t0: float, per_run: bool, **extra) -> dict[str, Any]:
    """The manifest's method record of a QAT run (``details.method``)."""
    from edge.measure.procmem import peak_rss

    return {"name": "qat", **extra, **run,
            "calibration": {"text": text.name, "sha256": text.sha256, "tokens": min(settings.calib_tokens, run["chunks"] * settings.ctx),
                            "chunks": run["chunks"], "ctx": settings.ctx},
            "seconds": round(time.perf_counter() - t0, 1), "peak_rss_bytes": peak_rss(), "peak_rss_per_run": per_run}


# the format parameters of method=qat, shared by the families that have it
STEPS = Param("steps", int, default="100", help="method=qat: optimizer steps, one chunk of 512 calibration tokens each")
LR = Param("lr", float, default="5e-5", help="method=qat: the peak learning rate (AdamW; warm-up, then cosine decay)")
