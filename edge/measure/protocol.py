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
from edge.measure.tasks import read_encoded, score_items
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


class PerfRun:
    """llama-bench's speed protocol one repetition at a time (so repetitions of several artifacts can be
    interleaved, each in its own warm process): a warm-up before the first, then pp / tg / TTFT per call."""

    def __init__(self, m, cfg: JobConfig, emit: Emit, conditions: Conditions | None = None) -> None:
        self.m, self.cfg, self.emit, self.conditions = m, cfg, emit, conditions
        self.rng = random.Random(cfg.seed)
        self.pp_tokens = _random_tokens(m, cfg.n_prompt, self.rng)
        self.ttft_tokens = _random_tokens(m, cfg.n_ttft, self.rng)
        self.warm = not cfg.warmup
        self.pp: list[float] = []
        self.tg: list[float] = []
        self.ttft: list[float] = []
        self.waits: list[dict[str, Any]] = []

    @property
    def stage(self) -> str:
        return f"pp{self.cfg.n_prompt} / tg{self.cfg.n_gen}"

    def rep(self) -> None:
        m, cfg = self.m, self.cfg
        if not self.warm:
            self.emit({"stage": "warm-up"})
            _time_pp(m, self.pp_tokens)
            _time_tg(m, min(cfg.n_gen, 16), self.rng)
            self.warm = True
        if cfg.cooldown and self.conditions is not None:
            self.emit({"stage": "cooling down"})
            self.waits.append(cool_down(cfg.cooldown, self.conditions))
        self.emit({"stage": self.stage, "done": len(self.pp), "total": cfg.reps})
        self.pp.append(cfg.n_prompt / _time_pp(m, self.pp_tokens))
        self.tg.append(cfg.n_gen / _time_tg(m, cfg.n_gen, self.rng))
        self.ttft.append(_time_ttft(m, self.ttft_tokens))

    def result(self) -> dict[str, Any]:
        self.emit({"stage": self.stage, "done": len(self.pp), "total": self.cfg.reps})
        (pp_m, pp_s), (tg_m, tg_s), (tt_m, tt_s) = mean_std(self.pp), mean_std(self.tg), mean_std(self.ttft)
        return {"pp_tps": pp_m, "pp_tps_std": pp_s, "tg_tps": tg_m, "tg_tps_std": tg_s, "ttft_s": tt_m,
                "ttft_s_std": tt_s, "pp_samples": self.pp, "tg_samples": self.tg, "ttft_samples": self.ttft,
                **({"cooldown_waits": self.waits} if self.waits else {})}


def perf(m, cfg: JobConfig, emit: Emit, conditions: Conditions | None = None) -> dict[str, Any]:
    run = PerfRun(m, cfg, emit, conditions)
    for _ in range(cfg.reps):
        run.rep()
    return run.result()


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


class Measurement:
    """One artifact in this process, in steps: load (timed) when made, ``rep()`` once per repetition, then
    ``finish()``: the speed summary, peak RSS and the quality pass. ``conditions`` reads the device's state
    for ``--cooldown`` (None: no cooldown)."""

    def __init__(self, load: Callable[[], Runtime], job: Job, emit: Emit, conditions: Conditions | None = None) -> None:
        self.job, self.emit = job, emit
        rss_before = current_rss()
        emit({"stage": "load"})
        t = time.perf_counter()
        self.m = load()
        self.result: dict[str, Any] = {"load_s": time.perf_counter() - t, "threads": self.m.n_threads,
                                       "rss_before_load": rss_before}
        self.perf = PerfRun(self.m, job.config, emit, conditions) if job.perf else None

    def rep(self) -> None:
        if self.perf is not None:
            self.perf.rep()

    def finish(self) -> JobResult:
        if self.perf is not None:
            self.result.update(self.perf.result())
            self.result["peak_rss_bytes"] = peak_rss()
        q = self.job.quality
        if q:
            cfg = self.job.config
            self.result["quality"] = quality(self.m, job_stream(self.m, q), cfg.ctx, cfg.chunks, q.base_in, None, self.emit)
        if self.job.tasks:
            self.result["tasks"] = [score_items(self.m, read_encoded(t.items_file, t.items_sha256), self.emit)
                                    for t in self.job.tasks]
        return JobResult.from_json(self.result)

    def close(self) -> None:
        self.m.close()


def measure(load: Callable[[], Runtime], job: Job, emit: Emit, conditions: Conditions | None = None) -> JobResult:
    """One artifact, all of it: load, every repetition, then quality (``Measurement`` in one go)."""
    run = Measurement(load, job, emit, conditions)
    try:
        for _ in range(job.config.reps if job.perf else 0):
            run.rep()
        return run.finish()
    finally:
        run.close()
