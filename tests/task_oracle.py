"""Shared by the task tests of every family: a few multiple-choice items encoded by a checkpoint's
tokenizer, and the oracle — each choice's whole sequence through transformers, its continuation's
log-probs summed (not edge's scorer)."""

from __future__ import annotations

QUESTIONS = [
    {"question": "Which is a colour?", "choices": ["blue", "seven", "quickly"], "answer": "blue"},
    {"question": "What do bees make?", "choices": ["honey", "bricks"], "answer": 0},
    {"question": "How many legs has a cat?", "choices": ["four", "nine", "none", "a thousand"], "answer": 0},
]


def choice_items(ck, tmp_path):
    import json

    from edge.measure.tokens import load_tokenizer, special_flags
    from edge.tasks.encode import encode
    from edge.tasks.jsonl import load_jsonl

    path = tmp_path / "q.jsonl"
    lines = QUESTIONS + [{"context": "She picked", "continuations": [" Sarah", " Maria"], "answer": 1}]
    path.write_text("\n".join(json.dumps(q) for q in lines), encoding="utf-8")
    tok = load_tokenizer(ck)
    return encode(load_jsonl(path), tok, special_flags(ck, tok), 512)["items"]


def hf_choice_lls(model, seqs, n_ctx):
    import torch

    out = []
    with torch.inference_mode():
        for seq, c in zip(seqs, n_ctx):
            lp = torch.log_softmax(model(torch.tensor([seq])).logits[0].double(), dim=-1)
            out.append(float(sum(lp[i - 1, seq[i]] for i in range(c, len(seq)))))
    return out


def check_runtime(m, model, items, atol: float | None):
    """The runtime's log-likelihoods against transformers (``atol``; None: a quantized runtime, not
    compared) and its shared-prefix path against recomputing each choice from position 0."""
    import numpy as np

    from edge.measure.tasks import score_choices

    for item in items:
        reused = [ll for ll, _ in score_choices(m, item["seqs"], item["n_ctx"])]
        fresh = [ll for ll, _ in score_choices(m, item["seqs"], item["n_ctx"], reuse=False)]
        np.testing.assert_allclose(reused, fresh, atol=1e-4, rtol=0)
        if atol is not None:
            np.testing.assert_allclose(reused, hf_choice_lls(model, item["seqs"], item["n_ctx"]), atol=atol, rtol=0)
