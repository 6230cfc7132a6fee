"""Does an artifact reproduce its Hugging Face model? Checked against transformers itself.

Runtime-independent: a runtime hands over a model object with ``tokenize``, ``greedy``, ``clear``
and ``decode`` (``edge.measure.runtime.Runtime``), and three checks run on
the same token ids: the tokenizers agree on a text sample; greedy decoding of a short prompt gives
the same first ``n_greedy`` tokens; teacher-forced top-1 tokens agree on ``n_positions`` positions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.errors import VerificationError
from edge.core.fsutil import final_name

PROMPT = "The capital of France is"


@dataclass(frozen=True)
class Thresholds:
    """What a family's float reference must reproduce of its Hugging Face model (one table for every family)."""

    n_greedy: int = 16            # leading greedy tokens identical to transformers'
    n_positions: int = 256        # teacher-forced positions compared
    min_top1: float = 0.99        # share of those whose argmax agrees
    ppl_rel_tol: float = 0.005    # |PPL / transformers' PPL - 1|, for runtimes checked on perplexity (ONNX)


THRESHOLDS = Thresholds()


@dataclass
class Verification:
    greedy_tokens: int          # identical leading greedy tokens (of n_greedy)
    n_greedy: int
    top1_agreement: float       # fraction of positions whose argmax agrees
    n_positions: int
    max_abs_logit_diff: float
    tokenizer_match: bool
    tokenizer_mismatch_at: int | None
    passed: bool
    thresholds: dict[str, float] | None = None

    def to_json(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"greedy {self.greedy_tokens}/{self.n_greedy} identical, top-1 agreement "
                f"{self.top1_agreement:.2%} over {self.n_positions} tokens, max |Δlogit| {self.max_abs_logit_diff:.3g}, "
                f"tokenizer {'identical' if self.tokenizer_match else f'differs at token {self.tokenizer_mismatch_at}'}")


def load_hf_model(checkpoint: Path):
    """The checkpoint's transformers model in float32, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # edge draws its own progress
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32)
    model.eval()
    return model


def load_hf(checkpoint: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(checkpoint)), load_hf_model(checkpoint)


def hf_logits(model, ids: list[int]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def _cache_of(res):
    """The KV cache a transformers 5 forward returned (``cache``; ``past_key_values`` before 5.2x)."""
    return getattr(res, "cache", None) or res.past_key_values


def hf_greedy(model, prompt: list[int], n_new: int) -> list[int]:
    import torch

    out: list[int] = []
    with torch.inference_mode():
        res = model(torch.tensor([prompt]), use_cache=True)
        for _ in range(n_new):
            nxt = int(res.logits[0, -1].argmax())
            out.append(nxt)
            res = model(torch.tensor([[nxt]]), cache=_cache_of(res), use_cache=True)
    return out


def _first_difference(a: list[int], b: list[int]) -> int | None:
    at = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), None)
    if at is None and len(a) != len(b):
        at = min(len(a), len(b))
    return at


def compare(checkpoint: Path, model: Any, text: str, *, n_greedy: int = THRESHOLDS.n_greedy,
            n_positions: int = THRESHOLDS.n_positions, min_greedy: int | None = None,
            min_top1: float | None = THRESHOLDS.min_top1, hf: tuple | None = None) -> Verification:
    """Compare a loaded runtime model with transformers; ``passed`` applies the thresholds given
    (None: no threshold, the figures are recorded only). ``hf``: what ``load_hf`` returned, if loaded."""
    tok, hf = hf or load_hf(checkpoint)
    sample = text[:4000]
    hf_ids = tok(sample, add_special_tokens=False)["input_ids"]
    mismatch = _first_difference(hf_ids, model.tokenize(sample, add_special=False))
    bos = [model.bos] if model.add_bos and model.bos >= 0 else []
    prompt = bos + tok(PROMPT, add_special_tokens=False)["input_ids"]
    g_hf = hf_greedy(hf, prompt, n_greedy)
    g_rt = model.greedy(prompt, n_greedy)
    same = next((i for i, (a, b) in enumerate(zip(g_hf, g_rt)) if a != b), n_greedy)
    ids = (bos + hf_ids)[:n_positions]
    ref = hf_logits(hf, ids)
    model.clear()
    got = model.decode(ids, logits_from=0)
    agree = float(np.mean(ref.argmax(-1) == got.argmax(-1)))
    need_greedy = n_greedy if min_greedy is None else min_greedy
    thresholds = {"min_greedy": need_greedy, "min_top1": min_top1} if min_top1 is not None else None
    passed = mismatch is None and (thresholds is None or (same >= need_greedy and agree >= min_top1))
    return Verification(
        greedy_tokens=same, n_greedy=n_greedy, top1_agreement=agree, n_positions=len(ids),
        max_abs_logit_diff=float(np.max(np.abs(ref - got))), tokenizer_match=mismatch is None,
        tokenizer_mismatch_at=mismatch, passed=passed, thresholds=thresholds)


def require(result: Verification, artifact: Path) -> None:
    if not result.passed:
        raise VerificationError(f"{final_name(artifact)} does not reproduce the Hugging Face model: {result.summary()}")


def hf_perplexity(checkpoint_or_model: Any, tokens: list[int], n_ctx: int, chunks: int, bos: int | None) -> float:
    """Transformers' own perplexity on ``tokens`` with llama-perplexity's chunk protocol (second half of each
    chunk scored): the reference a runtime's figure is checked against, computed independently of
    ``edge.measure.protocol``. Takes a checkpoint folder or a model from ``load_hf``."""
    import math

    from edge.measure.metrics import chunk_layout, chunk_tokens, log_softmax

    hf = checkpoint_or_model
    if isinstance(hf, (str, Path)):
        _, hf = load_hf(Path(hf))
    n_chunk, first = chunk_layout(len(tokens), n_ctx, chunks)
    nll = []
    for i in range(n_chunk):
        chunk = chunk_tokens(tokens, i, n_ctx, bos)
        lp = log_softmax(hf_logits(hf, chunk)[first:-1])
        targets = np.asarray(tokens[i * n_ctx + first + 1:(i + 1) * n_ctx])
        nll.append(-lp[np.arange(len(targets)), targets])
    return math.exp(float(np.concatenate(nll).mean()))
