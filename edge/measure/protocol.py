"""The measurement protocol, the same for every runtime: llama-bench's speed protocol (warm-up,
pp/tg repetitions, TTFT) and llama-perplexity's quality protocol (chunks of ``ctx`` tokens, the second
half of each scored, KL divergence against a reference's stored log-probs).

A runtime supplies a model object with the interface declared by ``edge.measure.runtime.Runtime``.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge.measure.metrics import QualityAccumulator, chunk_layout, chunk_tokens, log_softmax, mean_std
from edge.measure.procmem import current_rss, peak_rss
from edge.measure.runtime import Runtime
from edge.core.errors import DatasetError
from edge.core.jobs import Cooldown, Job, JobConfig, JobResult

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


def _tokens_digest(tokens: list[int]) -> str:
    return hashlib.sha256(np.asarray(tokens, dtype=np.int32).tobytes()).hexdigest()


def quality(m, text: str, n_ctx: int, chunks: int | None, base_out: str | None, base_in: str | None,
            emit: Emit, tokens: list[int] | None = None) -> dict[str, Any]:
    """Perplexity (and KL divergence against ``base_in``'s log-probs) of ``text``, tokenized by the model
    unless its ``tokens`` are given."""
    if tokens is None:
        tokens = m.tokenize(text, add_special=True)
    n_chunk, first = chunk_layout(len(tokens), n_ctx, chunks)
    if n_chunk == 0:
        raise DatasetError(f"the evaluation text is {len(tokens)} tokens; perplexity needs at least {n_ctx} (one chunk)")
    n_scored = n_ctx - 1 - first
    digest = _tokens_digest(tokens[: n_chunk * n_ctx])
    shape = (n_chunk * n_scored, m.n_vocab)
    base = out = None
    notes: list[str] = []
    if base_in:
        meta = json.loads(Path(base_in + ".json").read_text())
        if meta["tokens_sha256"] == digest and tuple(meta["shape"]) == shape:
            base = np.memmap(base_in, dtype=np.float16, mode="r", shape=shape)
        else:
            notes.append("reference tokenizes the evaluation text differently: no KL divergence")
    if base_out:
        out = np.memmap(base_out, dtype=np.float16, mode="w+", shape=shape)
    bos = m.bos if m.add_bos and m.bos >= 0 else None
    acc = QualityAccumulator()
    for i in range(n_chunk):
        emit({"stage": "perplexity", "done": i, "total": n_chunk})
        chunk = chunk_tokens(tokens, i, n_ctx, bos)
        m.clear()
        logits = m.decode(chunk, logits_from=first)[:-1]  # positions first .. n_ctx-2
        lp = log_softmax(logits)
        targets = np.asarray(tokens[i * n_ctx + first + 1:(i + 1) * n_ctx], dtype=np.int64)
        rows = slice(i * n_scored, (i + 1) * n_scored)
        acc.add(lp, targets, None if base is None else base[rows])
        if out is not None:
            out[rows] = lp.astype(np.float16)
    emit({"stage": "perplexity", "done": n_chunk, "total": n_chunk})
    if out is not None:
        out.flush()
        Path(base_out + ".json").write_text(json.dumps({"tokens_sha256": digest, "shape": list(shape)}))
    return {**acc.summary(), "chunks": n_chunk, "ctx": n_ctx, "text_tokens": len(tokens), "quality_notes": notes}


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
            text = Path(q.text_file).read_text(encoding="utf-8")
            result["quality"] = quality(m, text, cfg.ctx, cfg.chunks, q.base_out, q.base_in, emit)
    finally:
        m.close()
    return JobResult.from_json(result)
