"""Does an unquantized GGUF reproduce its Hugging Face model? Checked with transformers itself.

Three checks, all on the same token ids: the tokenizers agree on a text sample; greedy decoding of a
short prompt gives the same first ``n_greedy`` tokens; teacher-forced top-1 tokens agree on at least
``min_top1`` of ``n_positions`` positions of real text.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from device_bench.llama_runtime import LlamaModel
from edge.errors import VerificationError

PROMPT = "The capital of France is"


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

    def to_json(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (f"greedy {self.greedy_tokens}/{self.n_greedy} identical, top-1 agreement "
                f"{self.top1_agreement:.2%} over {self.n_positions} tokens, max |Δlogit| {self.max_abs_logit_diff:.3g}, "
                f"tokenizer {'identical' if self.tokenizer_match else f'differs at token {self.tokenizer_mismatch_at}'}")


def load_hf(checkpoint: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # edge draws its own progress
    tok = AutoTokenizer.from_pretrained(str(checkpoint))
    model = AutoModelForCausalLM.from_pretrained(str(checkpoint), dtype=torch.float32)
    model.eval()
    return tok, model


def hf_logits(model, ids: list[int]) -> np.ndarray:
    import torch

    with torch.inference_mode():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def hf_greedy(model, prompt: list[int], n_new: int) -> list[int]:
    import torch

    out: list[int] = []
    with torch.inference_mode():
        res = model(torch.tensor([prompt]), use_cache=True)
        for _ in range(n_new):
            nxt = int(res.logits[0, -1].argmax())
            out.append(nxt)
            res = model(torch.tensor([[nxt]]), past_key_values=res.past_key_values, use_cache=True)
    return out


def verify_gguf(checkpoint: Path, gguf_path: Path, text: str, *, n_greedy: int = 16, n_positions: int = 256,
                min_top1: float = 0.99, n_threads: int | None = None) -> Verification:
    tok, model = load_hf(checkpoint)
    sample = text[:4000]
    hf_ids = tok(sample, add_special_tokens=False)["input_ids"]
    with LlamaModel(gguf_path, n_ctx=max(512, n_positions + 8), n_threads=n_threads, f32_kv_cache=True) as llm:
        ll_ids = llm.tokenize(sample, add_special=False)
        mismatch = next((i for i, (a, b) in enumerate(zip(hf_ids, ll_ids)) if a != b),
                        None if len(hf_ids) == len(ll_ids) else min(len(hf_ids), len(ll_ids)))
        bos = [llm.bos] if llm.add_bos and llm.bos >= 0 else []
        prompt = bos + tok(PROMPT, add_special_tokens=False)["input_ids"]
        g_hf = hf_greedy(model, prompt, n_greedy)
        g_ll = llm.greedy(prompt, n_greedy)
        same = next((i for i, (a, b) in enumerate(zip(g_hf, g_ll)) if a != b), n_greedy)
        ids = (bos + hf_ids)[:n_positions]
        ref = hf_logits(model, ids)
        llm.clear()
        got = llm.decode(ids, logits_from=0)
    agree = float(np.mean(ref.argmax(-1) == got.argmax(-1)))
    result = Verification(
        greedy_tokens=same, n_greedy=n_greedy, top1_agreement=agree, n_positions=len(ids),
        max_abs_logit_diff=float(np.max(np.abs(ref - got))), tokenizer_match=mismatch is None,
        tokenizer_mismatch_at=mismatch, passed=False)
    result.passed = same >= n_greedy and agree >= min_top1 and result.tokenizer_match
    return result


def require(result: Verification, artifact: Path) -> None:
    if not result.passed:
        raise VerificationError(f"{artifact.name} does not reproduce the Hugging Face model: {result.summary()}")
