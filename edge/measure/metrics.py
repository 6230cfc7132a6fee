"""Quality and speed statistics, with llama.cpp's definitions (llama-perplexity, llama-bench).

Perplexity: the text is cut into non-overlapping chunks of ``n_ctx`` tokens (the first token of a
chunk replaced by BOS when the vocabulary adds BOS); only the second half of each chunk is scored:
logits at positions ``n_ctx/2 ... n_ctx-2`` predict the next token. KL divergence, Δp and same-top
compare a model's distributions with the reference model's at exactly those positions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64, copy=False)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def chunk_layout(n_tokens: int, n_ctx: int, max_chunks: int | None) -> tuple[int, int]:
    """(number of chunks, first scored position) for a text of ``n_tokens``."""
    n_chunk = n_tokens // n_ctx
    if max_chunks is not None and max_chunks > 0:
        n_chunk = min(n_chunk, max_chunks)
    return n_chunk, n_ctx // 2


def chunk_tokens(tokens: list[int], i: int, n_ctx: int, bos: int | None) -> list[int]:
    chunk = list(tokens[i * n_ctx:(i + 1) * n_ctx])
    if bos is not None:
        chunk[0] = bos
    return chunk


def mean_unc(s: float, s2: float, n: int) -> tuple[float, float]:
    """Mean and its standard error from a sum and a sum of squares (llama.cpp's mean_and_uncertainty)."""
    mean = s / n
    var = s2 / n - mean * mean
    return mean, math.sqrt(max(var, 0.0) / (n - 1)) if n > 1 else 0.0


def percentile(sorted_values: np.ndarray, fraction: float) -> float:
    if fraction <= 0:
        return float(sorted_values[0])
    if fraction >= 1:
        return float(sorted_values[-1])
    p = fraction * (len(sorted_values) - 1)
    ip = int(p)
    p -= ip
    return float((1 - p) * sorted_values[ip] + p * sorted_values[min(ip + 1, len(sorted_values) - 1)])


@dataclass
class QualityAccumulator:
    """Accumulates per-token negative log-likelihoods and, against a base, KLD / Δp / same-top."""

    nll: list[np.ndarray] = field(default_factory=list)
    nll_base: list[np.ndarray] = field(default_factory=list)
    kld: list[np.ndarray] = field(default_factory=list)
    p_diff: list[np.ndarray] = field(default_factory=list)
    same_top: int = 0

    def add(self, logprobs: np.ndarray, targets: np.ndarray, base_logprobs: np.ndarray | None = None) -> None:
        rows = np.arange(len(targets))
        self.nll.append(-logprobs[rows, targets])
        if base_logprobs is None:
            return
        base = base_logprobs.astype(np.float64)
        p_base = np.exp(base)
        self.nll_base.append(-base[rows, targets])
        self.kld.append(np.sum(p_base * (base - logprobs), axis=-1))
        self.p_diff.append(np.exp(logprobs[rows, targets]) - p_base[rows, targets])
        self.same_top += int(np.sum(logprobs.argmax(-1) == base.argmax(-1)))

    @property
    def count(self) -> int:
        return int(sum(len(a) for a in self.nll))

    def _log_ppl(self) -> tuple[np.ndarray, float, float]:
        """The per-token NLLs, their mean (ln PPL) and its standard error."""
        nll = np.concatenate(self.nll)
        return nll, *mean_unc(float(nll.sum()), float((nll ** 2).sum()), len(nll))

    def ppl(self) -> tuple[float, float]:
        _, mean, unc = self._log_ppl()
        return math.exp(mean), math.exp(mean) * unc

    def summary(self) -> dict[str, float | int | None]:
        n = self.count
        nll, mean_q, unc_q = self._log_ppl()
        out: dict[str, float | int | None] = {"tokens_scored": n, "ppl": math.exp(mean_q),
                                              "ppl_unc": math.exp(mean_q) * unc_q}
        if not self.kld:
            return out
        nll_b = np.concatenate(self.nll_base)
        kld = np.sort(np.concatenate(self.kld))
        pd = np.concatenate(self.p_diff)
        base_mean, base_unc = mean_unc(float(nll_b.sum()), float((nll_b ** 2).sum()), n)
        # llama-perplexity's paired uncertainty of ln(PPL(Q)/PPL(base)): the two share every token
        cov = (float((nll * nll_b).sum()) / n - mean_q * base_mean) / (n - 1) if n > 1 else 0.0
        ratio_unc = math.sqrt(max(unc_q ** 2 + base_unc ** 2 - 2 * cov, 0.0))
        kld_mean, kld_unc = mean_unc(float(kld.sum()), float((kld ** 2).sum()), n)
        pd_mean, pd_unc = mean_unc(float(pd.sum()), float((pd ** 2).sum()), n)
        top = self.same_top / n
        out.update({
            "ppl_base": math.exp(base_mean), "ppl_base_unc": math.exp(base_mean) * base_unc,
            "ln_ppl_ratio": mean_q - base_mean, "ln_ppl_ratio_unc": ratio_unc,
            "kld_mean": kld_mean, "kld_unc": kld_unc,
            "kld_max": float(kld[-1]), "kld_99_9": percentile(kld, 0.999), "kld_99": percentile(kld, 0.99),
            "kld_95": percentile(kld, 0.95), "kld_median": percentile(kld, 0.5),
            "delta_p_mean": pd_mean, "delta_p_unc": pd_unc, "delta_p_rms": float(np.sqrt(np.mean(pd ** 2))),
            "same_top": top, "same_top_unc": math.sqrt(top * (1 - top) / (n - 1)) if n > 1 else 0.0,
        })
        return out


def mean_std(samples: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (llama-bench's avg/stdev of per-repetition t/s)."""
    arr = np.asarray(samples, dtype=np.float64)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
