"""Task items scored on a runtime, in the measuring process (here or an agent on a device): the
host's token ids in (``edge.tasks.encode``), per-item log-likelihoods or generated ids out.

Choices by log-likelihood: the choices' sequences (context + continuation) share a prefix — the
question, few-shot examples, BOS — which is decoded once; each choice then continues from it after a
``rewind`` of the KV cache, instead of recomputing the context per choice (``reuse=False`` does that,
for the equality test). lm-eval's ``is_greedy`` (every continuation token the argmax) rides along."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.errors import BenchError
from edge.measure.metrics import log_softmax

Emit = Callable[[dict[str, Any]], None]
ENCODED_VERSION = 1


def _common_prefix(seqs: Sequence[Sequence[int]]) -> int:
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for i in range(n):
        if any(s[i] != first[i] for s in seqs[1:]):
            return i
    return n


def _continuation(rows: np.ndarray, targets: Sequence[int]) -> tuple[float, bool]:
    lp = log_softmax(rows)
    t = np.asarray(targets, dtype=np.int64)
    return float(lp[np.arange(len(t)), t].sum()), bool((lp.argmax(axis=-1) == t).all())


def score_choices(m, seqs: Sequence[Sequence[int]], n_ctx: Sequence[int], *, reuse: bool = True) -> list[tuple[float, bool]]:
    """(log-likelihood of the continuation, is greedy) per choice; ``seqs[j][:n_ctx[j]]`` is its context."""
    p = min(_common_prefix(seqs), min(n_ctx)) if reuse else 0
    out: list[tuple[float, bool]] = []
    if p == 0:
        for seq, c in zip(seqs, n_ctx):
            m.clear()
            rows = m.decode(list(seq[:-1]), logits_from=c - 1)
            out.append(_continuation(rows, seq[c:]))
        return out
    m.clear()
    last = m.decode(list(seqs[0][:p]))            # the row at position p - 1
    for seq, c in zip(seqs, n_ctx):
        m.rewind(p)
        rest = list(seq[p:-1])                     # the last token is scored, never fed
        rows = last if not rest else np.concatenate([last, m.decode(rest, start=p, logits_from=0)])
        out.append(_continuation(rows[c - p:], seq[c:]))  # rows[k] is position p - 1 + k
    return out


def generate(m, prompt: Sequence[int], max_tokens: int, stop_ids: Sequence[int],
             stop_seqs: Sequence[Sequence[int]] = ()) -> list[int]:
    """Greedy decoding up to ``max_tokens``, a stop id (not included), or ids ending with one of
    ``stop_seqs`` (a stop string's own tokens: then the text holds the stop string, which the host cuts
    at exactly; a stop string the model spells with other tokens is found there only)."""
    m.clear()
    logits = m.decode(list(prompt))
    out: list[int] = []
    stops = set(stop_ids)
    seqs = [list(s) for s in stop_seqs if s]
    for pos in range(len(prompt), len(prompt) + max_tokens):
        tok = int(np.argmax(logits[-1]))
        if tok in stops:
            break
        out.append(tok)
        if len(out) == max_tokens or pos + 1 >= m.n_ctx or any(out[-len(q):] == q for q in seqs):
            break
        logits = m.decode([tok], start=pos)
    return out


def _fit(seqs: list[list[int]], n_ctx: list[int], limit: int) -> tuple[list[list[int]], list[int], bool]:
    """Sequences longer than ``limit`` lose tokens from the left (lm-eval's rule), their contexts with them."""
    longest = max(len(s) for s in seqs)
    if longest <= limit:
        return seqs, n_ctx, False
    cut = longest - limit
    if any(c - cut < 1 for c in n_ctx):
        raise BenchError(f"a continuation is longer than the context of {limit} tokens")
    return [s[cut:] for s in seqs], [c - cut for c in n_ctx], True


def score_items(m, encoded: dict[str, Any], emit: Emit, *, reuse: bool = True) -> dict[str, Any]:
    """Every encoded item of one task on ``m``: per item the choices' log-likelihoods (or generated ids)."""
    if encoded.get("version") != ENCODED_VERSION:
        raise BenchError(f"task items of version {encoded.get('version')!r}; this measuring process reads {ENCODED_VERSION}")
    items = encoded["items"]
    limit = min(int(encoded.get("max_len") or m.n_ctx), m.n_ctx)
    results: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    for i, item in enumerate(items):
        emit({"stage": f"task {encoded['task']}", "done": i, "total": len(items)})
        if item["kind"] == "choice":
            seqs, n_ctx, cut = _fit([list(s) for s in item["seqs"]], list(item["n_ctx"]), limit)
            scored = score_choices(m, seqs, n_ctx, reuse=reuse)
            results.append({"lls": [s[0] for s in scored], "greedy": [s[1] for s in scored], "truncated": cut})
        else:
            prompt = item["prompt"][-max(1, limit - item["max_tokens"]):]
            results.append({"ids": generate(m, prompt, item["max_tokens"], encoded.get("stop_ids", []),
                                            item.get("stop_seqs", ())),
                            "truncated": len(prompt) < len(item["prompt"])})
    seconds = time.perf_counter() - t0
    emit({"stage": f"task {encoded['task']}", "done": len(items), "total": len(items)})
    return {"task": encoded["task"], "items_sha256": encoded["items_sha256"], "n": len(items), "seconds": seconds,
            "items_per_s": len(items) / seconds if seconds > 0 else None, "reuse": reuse, "results": results}


def read_encoded(path: str | Path, sha256: str | None) -> dict[str, Any]:
    from edge.core.hashing import sha256_file

    if sha256 and sha256_file(Path(path)) != sha256:
        raise BenchError(f"{path}: the task items do not match their sha256 (damaged in transfer)")
    return json.loads(Path(path).read_text(encoding="utf-8"))
