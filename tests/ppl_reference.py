"""Perplexity computed by transformers itself with llama-perplexity's chunk protocol (test oracle)."""

from __future__ import annotations


def transformers_ppl(checkpoint, tokens: list[int], n_ctx: int, chunks: int, bos: int | None) -> float:
    from edge.measure.verify import hf_perplexity

    return hf_perplexity(checkpoint, tokens, n_ctx, chunks, bos)
