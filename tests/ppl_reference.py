"""Perplexity computed by transformers itself with llama-perplexity's chunk protocol (test oracle)."""

from __future__ import annotations

import math

import numpy as np

from device_bench.metrics import chunk_layout, chunk_tokens, log_softmax


def transformers_ppl(checkpoint, tokens: list[int], n_ctx: int, chunks: int, bos: int | None) -> float:
    from converters.verify import hf_logits, load_hf

    _, model = load_hf(checkpoint)
    n_chunk, first = chunk_layout(len(tokens), n_ctx, chunks)
    nll = []
    for i in range(n_chunk):
        chunk = chunk_tokens(tokens, i, n_ctx, bos)
        lp = log_softmax(hf_logits(model, chunk)[first:-1])
        targets = np.asarray(tokens[i * n_ctx + first + 1:(i + 1) * n_ctx])
        nll.append(-lp[np.arange(len(targets)), targets])
    return math.exp(float(np.concatenate(nll).mean()))
