"""edge's source reference in llama-perplexity's own ``--kl-divergence-base`` format, so that native mode
(llama.cpp's tools on a device without Python) compares with the same reference and scores the same tokens:
llama-perplexity's KL mode reads the evaluation tokens from this file, not from the text.

Layout (tools/perplexity/perplexity.cpp, llama.cpp as vendored by llama-cpp-python 0.3.36): ``_logits_``,
uint32 n_ctx, int32 n_vocab, int32 n_chunk, int32 tokens[n_ctx × n_chunk], then per chunk and per scored
position (n_ctx/2 … n_ctx−2) one row of ``2·⌈n_vocab/2⌉ + 4`` uint16: float32 scale, float32 min log-prob,
then each log-prob as round((lp − min)/scale), the range clipped to 16 nats below the top (0 below it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.measure.protocol import renormalise, rows_per_slice

MAGIC = b"_logits_"
RANGE = 16.0      # nats below the most likely token that llama-perplexity keeps


def row_width(n_vocab: int) -> int:
    return 2 * ((n_vocab + 1) // 2) + 4


def encode_rows(lp: np.ndarray) -> np.ndarray:
    """float64 log-probs [rows, n_vocab] → llama-perplexity's uint16 rows (perplexity.cpp's log_softmax)."""
    rows, n_vocab = lp.shape
    top = lp.max(axis=1, keepdims=True)
    low = np.maximum(lp.min(axis=1, keepdims=True), top - RANGE)
    scale = ((top - low) / 65535.0).astype(np.float32)
    out = np.zeros((rows, row_width(n_vocab)), dtype=np.uint16)
    head = np.concatenate([scale, low.astype(np.float32)], axis=1)
    out[:, :4] = head.view(np.uint16)
    safe = np.where(scale > 0, scale, 1.0)
    q = np.where(lp > low, np.rint((lp - low) / safe), 0)
    out[:, 4:4 + n_vocab] = np.where(scale > 0, q, 0).astype(np.uint16)
    return out


def write(logprobs: Path, tokens: np.ndarray, n_ctx: int, n_chunk: int, n_vocab: int, out: Path) -> Path:
    """Write the reference's float16 log-probs (``edge.measure.reference``) as a llama-perplexity base."""
    n_scored = n_ctx - 1 - n_ctx // 2
    stored = np.memmap(logprobs, dtype=np.float16, mode="r", shape=(n_chunk * n_scored, n_vocab))
    step = rows_per_slice(n_vocab)
    with open(out, "wb") as fh:
        fh.write(MAGIC)
        fh.write(np.array([n_ctx], dtype="<u4").tobytes())
        fh.write(np.array([n_vocab, n_chunk], dtype="<i4").tobytes())
        fh.write(np.asarray(tokens[: n_ctx * n_chunk], dtype="<i4").tobytes())
        for a in range(0, len(stored), step):
            fh.write(encode_rows(renormalise(stored[a:a + step])).tobytes())
    return out
