"""The measurement protocol, the same for every runtime: llama-bench's speed protocol (warm-up,
pp/tg repetitions, TTFT) and llama-perplexity's quality protocol (chunks of ``ctx`` tokens, the second
half of each scored, KL divergence against a reference's stored log-probs).

A runtime supplies a model object with the interface declared by ``edge.measure.runtime.Runtime``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge.measure.metrics import QualityAccumulator, chunk_layout, chunk_tokens, log_softmax, mean_std
from edge.measure.procmem import current_rss, peak_rss
from edge.measure.runtime import Runtime
from edge.core.errors import BenchError, DatasetError
from edge.core.jobs import Cooldown, Job, JobConfig, JobResult, QualityJob
from edge.measure.tokens import TokenStream, digest as token_digest

Emit = Callable[[dict[str, Any]], None]
Conditions = Callable[[], dict[str, Any]]   # the device's temperatures / idle share, read by the caller's layer


def _random_tokens(m, n: int, rng: random.Random) -> list[int]:
    first = [m.bos] if m.add_bos and m.bos >= 0 else [rng.randrange(m.n_vocab)]
    return first + [rng.randrange(m.n_vocab) for _ in range(n - 1)]


def _time_pp(m, tokens: list[int]) -> float:
    m.clear()
    t = time.perf_counter()
    m.decode(tokens)
    return time.perf_counter() - t


def _time_tg(m, n_gen: int, rng: random.Random) -> float:
    m.clear()
    tok = m.bos if m.add_bos and m.bos >= 0 else rng.randrange(m.n_vocab)
    t = time.perf_counter()
    for pos in range(n_gen):
        m.decode([tok], start=pos)
        tok = rng.randrange(m.n_vocab)
    return time.perf_counter() - t


def _time_ttft(m, prompt: list[int]) -> float:
    m.clear()
    t = time.perf_counter()
    logits = m.decode(prompt)
    int(np.argmax(logits[-1]))
    return time.perf_counter() - t


def perf(m, cfg: JobConfig, emit: Emit, conditions: Conditions | None = None) -> dict[str, Any]:
    rng = random.Random(cfg.seed)
    n_prompt, n_gen, n_ttft, reps = cfg.n_prompt, cfg.n_gen, cfg.n_ttft, cfg.reps
    pp_tokens = _random_tokens(m, n_prompt, rng)
    ttft_tokens = _random_tokens(m, n_ttft, rng)
    if cfg.warmup:
        emit({"stage": "warm-up"})
        _time_pp(m, pp_tokens)
        _time_tg(m, min(n_gen, 16), rng)
    pp, tg, ttft = [], [], []
    waits: list[dict[str, Any]] = []
    for r in range(reps):
        if cfg.cooldown and conditions is not None:
            emit({"stage": "cooling down"})
            waits.append(cool_down(cfg.cooldown, conditions))
        emit({"stage": f"pp{n_prompt} / tg{n_gen}", "done": r, "total": reps})
        pp.append(n_prompt / _time_pp(m, pp_tokens))
        tg.append(n_gen / _time_tg(m, n_gen, rng))
        ttft.append(_time_ttft(m, ttft_tokens))
    emit({"stage": f"pp{n_prompt} / tg{n_gen}", "done": reps, "total": reps})
    (pp_m, pp_s), (tg_m, tg_s), (tt_m, tt_s) = mean_std(pp), mean_std(tg), mean_std(ttft)
    return {"pp_tps": pp_m, "pp_tps_std": pp_s, "tg_tps": tg_m, "tg_tps_std": tg_s, "ttft_s": tt_m, "ttft_s_std": tt_s,
            "pp_samples": pp, "tg_samples": tg, "ttft_samples": ttft, **({"cooldown_waits": waits} if waits else {})}


def cool_down(spec: Cooldown, read: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Wait until the device is back under ``max_temp_c`` (thermal zones), or, where it has none, until its
    CPUs were ``min_idle`` idle over a second; give up after ``timeout_s``. Returns what was waited for."""
    t0 = time.monotonic()
    while True:
        c = read()
        temp, idle = c.get("max_temp_c"), c.get("idle")
        if temp is not None:
            ok, basis = temp <= spec.max_temp_c, f"{temp:.1f} °C"
        elif idle is not None:
            ok, basis = idle >= spec.min_idle, f"{100 * idle:.0f} % idle"
        else:
            return {"waited_s": 0.0, "basis": "no thermal zones or /proc/stat: not enforced"}
        waited = time.monotonic() - t0
        if ok or waited >= spec.timeout_s:
            return {"waited_s": round(waited, 1), "basis": basis, "reached": ok}
        time.sleep(spec.poll_s)


SLICE_ELEMENTS = 1 << 21  # rows × vocabulary of one slice: each float64 temporary 16 MiB, whatever the vocabulary


def rows_per_slice(n_vocab: int) -> int:
    return max(1, SLICE_ELEMENTS // max(n_vocab, 1))


def renormalise(stored: np.ndarray) -> np.ndarray:
    """Log-probs read back from float16, as float64 that sum to one again (rounding left them off by up
    to ~1e-3, which a KL divergence would count as a difference)."""
    return log_softmax(stored)


def _base_rows(base_in: str | None, shape: tuple[int, int], notes: list[str]) -> np.ndarray | None:
    if not base_in:
        return None
    expected = shape[0] * shape[1] * 2
    size = Path(base_in).stat().st_size
    if size != expected:
        notes.append(f"the reference holds {size} bytes of log-probs where {shape[0]} positions × {shape[1]} "
                     "tokens are scored: another vocabulary or protocol, no KL divergence")
        return None
    return np.memmap(base_in, dtype=np.float16, mode="r", shape=shape)


def quality(m, stream: TokenStream, n_ctx: int, chunks: int | None, base_in: str | None, base_out: str | None,
            emit: Emit) -> dict[str, Any]:
    """Perplexity of ``stream`` (and KL divergence against ``base_in``'s log-probs; ``base_out``: write this
    model's own), computed in slices of rows so the float64 working set stays bounded for any vocabulary."""
    tokens = [int(t) for t in stream.ids]
    n_chunk, first = chunk_layout(len(tokens), n_ctx, chunks)
    if n_chunk == 0:
        raise DatasetError(f"the evaluation text is {len(tokens)} tokens; perplexity needs at least {n_ctx} (one chunk)")
    n_scored = n_ctx - 1 - first
    shape = (n_chunk * n_scored, m.n_vocab)
    notes: list[str] = []
    base = _base_rows(base_in, shape, notes)
    out = np.memmap(base_out, dtype=np.float16, mode="w+", shape=shape) if base_out else None
    step = rows_per_slice(m.n_vocab)
    acc = QualityAccumulator()
    for i in range(n_chunk):
        emit({"stage": "perplexity", "done": i, "total": n_chunk})
        m.clear()
        logits = m.decode(chunk_tokens(tokens, i, n_ctx, stream.bos), logits_from=first)  # rows 0 .. n_scored-1 predict the targets
        targets = np.asarray(tokens[i * n_ctx + first + 1:(i + 1) * n_ctx], dtype=np.int64)
        for a in range(0, n_scored, step):
            b = min(a + step, n_scored)
            lp = log_softmax(logits[a:b])
            rows = slice(i * n_scored + a, i * n_scored + b)
            acc.add(lp, targets[a:b], None if base is None else renormalise(base[rows]))
            if out is not None:
                out[rows] = lp.astype(np.float16)
        del logits
    emit({"stage": "perplexity", "done": n_chunk, "total": n_chunk})
    if out is not None:
        out.flush()
    return {**acc.summary(), "chunks": n_chunk, "ctx": n_ctx, "text_tokens": len(tokens),
            "tokens_sha256": token_digest(tokens[: n_chunk * n_ctx]), "bos": stream.bos, "quality_notes": notes}


def job_stream(m, q: QualityJob) -> TokenStream:
    """The tokens a job scores: the host's stream (the source tokenizer's, checked against its digest), or,
    for an artifact without a source checkpoint, the runtime's own tokenization of the text."""
    if q.tokens_file:
        ids = TokenStream.read(q.tokens_file)
        if q.tokens_sha256 and token_digest(ids) != q.tokens_sha256:
            raise BenchError(f"{q.tokens_file}: the evaluation tokens do not match their sha256 (damaged in transfer)")
        return TokenStream(ids, q.bos)
    text = Path(q.text_file).read_text(encoding="utf-8")
    bos = m.bos if m.add_bos and m.bos >= 0 else None
    return TokenStream(np.asarray(m.tokenize(text, add_special=True), dtype=np.int32), bos)


def measure(load: Callable[[], Runtime], job: Job, emit: Emit, conditions: Conditions | None = None) -> JobResult:
    """One artifact in this process: load (timed), speed, peak RSS, then quality. ``conditions`` reads
    the device's state for ``--cooldown`` (None: no cooldown)."""

    cfg = job.config
    rss_before = current_rss()
    emit({"stage": "load"})
    t = time.perf_counter()
    m = load()
    load_s = time.perf_counter() - t
    result: dict[str, Any] = {"load_s": load_s, "threads": m.n_threads, "rss_before_load": rss_before}
    try:
        if job.perf:
            result.update(perf(m, cfg, emit, conditions))
            result["peak_rss_bytes"] = peak_rss()
        q = job.quality
        if q:
            result["quality"] = quality(m, job_stream(m, q), cfg.ctx, cfg.chunks, q.base_in, None, emit)
    finally:
        m.close()
    return JobResult.from_json(result)
