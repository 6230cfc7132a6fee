"""ExecuTorch's Python runtime (pybindings, XNNPACK delegate) behind the interface the measurement
protocol and the verification use (that of ``converters.gguf.runtime.LlamaModel``).

A program from edge's ExecuTorch converter takes ``(tokens[1, n], input_pos[1])``, keeps its KV cache
inside, and returns the logits of the last token (``[1, vocab]``) or of every token (``[1, n, vocab]``).
Text goes through the Hugging Face ``tokenizer.json`` shipped beside the program.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from converters.executorch.tables import REQUIRED_METHODS
from edge.measure.runtime import HfTokenizerText, RuntimeModel, default_threads
from edge.core.jobs import Job
from edge.core.errors import ArtifactError, BenchError
from edge.core.quiet import native_stderr_silenced


def _runtime():
    from executorch.extension.pybindings import portable_lib

    # kernels the programs call outside the delegate: the KV-cache SDPA op and quantized embeddings
    from executorch.extension.llm.custom_ops import custom_ops  # noqa: F401  # isort: skip
    from executorch.kernels import quantized  # noqa: F401  # isort: skip

    return portable_lib


class EtModel(HfTokenizerText, RuntimeModel):
    def __init__(self, path: str | Path, tokenizer: str | Path, *, n_threads: int | None = None) -> None:
        import torch

        self._torch = torch
        self.path = Path(path)
        rt = _runtime()
        self.n_threads = int(n_threads or default_threads())
        with native_stderr_silenced():  # "[threadpool.cpp:66] Resetting threadpool to N threads." from C++
            rt._unsafe_reset_threadpool(self.n_threads)
        try:
            self._m = rt._load_for_executorch(str(self.path))
        except (RuntimeError, ValueError) as exc:
            raise ArtifactError(f"{self.path}: ExecuTorch cannot load this program ({exc})") from None
        names = set(self._m.method_names())
        missing = [m for m in REQUIRED_METHODS if m not in names]
        if missing:
            raise ArtifactError(f"{self.path.name} is not an LLM program with a KV cache: it lacks the method(s) "
                                f"{', '.join(missing)} (has: {', '.join(sorted(names))})")
        if not self._meta("use_kv_cache"):
            raise ArtifactError(f"{self.path.name} was exported without a KV cache; edge measures KV-cache programs")
        self.n_ctx = int(self._meta("get_max_seq_len"))
        self.n_vocab = int(self._meta("get_vocab_size"))
        # one forward call takes at most max_seq_len - 1 tokens (the dynamic dimension's bound)
        self.max_chunk = max(1, self.n_ctx - 1) if "enable_dynamic_shape" in names and self._meta("enable_dynamic_shape") else None
        self._load_tokenizer(tokenizer)
        probe = self._m.forward((torch.tensor([[max(self.bos, 0)]], dtype=torch.long), torch.tensor([0], dtype=torch.long)))
        self.full_logits = probe[0].dim() == 3  # [1, n, vocab]: every token's logits; [1, vocab]: the last one's

    def _meta(self, name: str):
        out = self._m.run_method(name, ())
        value = out[0] if isinstance(out, (list, tuple)) else out
        return value.item() if hasattr(value, "item") else value

    def clear(self) -> None:
        """The KV cache is positional: the next call at position 0 starts a new sequence."""

    def rewind(self, n: int) -> None:
        """Positional too: a call at ``start=n`` overwrites positions n... and attends to 0..n+len only."""

    def _forward(self, tokens: Sequence[int], start: int) -> np.ndarray:
        torch = self._torch
        out = self._m.forward((torch.tensor([list(tokens)], dtype=torch.long), torch.tensor([start], dtype=torch.long)))
        logits = out[0]
        return (logits[0] if logits.dim() == 3 else logits).numpy()

    def _calls(self, n: int) -> list[tuple[int, int]]:
        step = self.max_chunk or n
        return [(lo, min(n, lo + step)) for lo in range(0, n, step)]

    def decode(self, tokens: Sequence[int], *, start: int = 0, logits_from: int | None = None) -> np.ndarray | None:
        """Evaluate ``tokens`` at positions ``start...``; return logits for positions >= ``logits_from``
        (None: the last token's only). A program that returns only last-token logits gets the rows
        it cannot return in one call fed one token per call, as generation would."""
        n = len(tokens)
        if start + n > self.n_ctx:
            raise BenchError(f"{n} tokens at position {start} exceed the program's max_seq_len of {self.n_ctx}")
        want_from = n - 1 if logits_from is None else logits_from
        rows: list[np.ndarray] = []
        prefill_end = n if self.full_logits else min(n, want_from + 1)
        for lo, hi in self._calls(prefill_end):
            out = self._forward(tokens[lo:hi], start + lo)
            if self.full_logits:
                rows.extend(out[max(0, want_from - lo):].reshape(-1, self.n_vocab))
            elif hi - 1 >= want_from:
                rows.append(out.reshape(-1, self.n_vocab)[-1])
        if not self.full_logits:
            for i in range(prefill_end, n):
                rows.append(self._forward(tokens[i:i + 1], start + i).reshape(-1, self.n_vocab)[-1])
        if not rows:
            return None
        return np.stack(rows).astype(np.float32, copy=False)

    def close(self) -> None:
        self._m = None


def open_runtime(job: Job) -> EtModel:
    """The program a bench job measures, with the tokenizer shipped beside it."""
    if job.tokenizer is None:
        raise BenchError(f"{job.artifact}: an ExecuTorch job needs the program's tokenizer")
    return EtModel(job.artifact, job.tokenizer, n_threads=job.config.threads)
