"""Perplexity computed by transformers itself with llama-perplexity's chunk protocol (test oracle).

Written from llama-perplexity's definition, independently of edge's chunk helpers (``edge.measure``)
that it checks: the text is cut into non-overlapping chunks of ``n_ctx`` tokens, the first token of each
replaced by BOS when there is one, and only the second half is scored — the logits at positions
n_ctx/2 … n_ctx-2 predict the token after each.
"""

from __future__ import annotations

import math


def transformers_ppl(checkpoint, tokens: list[int], n_ctx: int, chunks: int, bos: int | None) -> float:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32).eval()
    n_chunk = min(len(tokens) // n_ctx, chunks) if chunks else len(tokens) // n_ctx
    first = n_ctx // 2
    total, count = 0.0, 0
    with torch.inference_mode():
        for i in range(n_chunk):
            ids = list(tokens[i * n_ctx:(i + 1) * n_ctx])
            if bos is not None:
                ids[0] = bos
            logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].double(), dim=-1)
            for pos in range(first, n_ctx - 1):
                total -= float(logp[pos, tokens[i * n_ctx + pos + 1]])
                count += 1
    return math.exp(total / count)
