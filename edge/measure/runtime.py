"""What a runtime is, for everything that measures one: the ``Runtime`` protocol, implemented by each
family's model (llama.cpp, ExecuTorch, onnxruntime-genai) and used by both the converters' verification
and the bench's measuring process, plus what those implementations share."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Runtime(Protocol):
    """One loaded model with one sequence of KV cache.

    ``decode(tokens, start=, logits_from=)`` evaluates ``tokens`` at positions ``start...`` and returns
    the logits of positions >= ``logits_from`` (None: the last token's only), shape (n_out, n_vocab),
    or None when none were asked for; ``clear()`` starts a new sequence; ``rewind(n)`` keeps its first
    ``n`` positions and drops the rest, so the next ``decode`` continues at ``start=n`` (the choices of one
    question share their context's KV cache)."""

    n_vocab: int
    n_ctx: int
    n_threads: int
    bos: int
    add_bos: bool

    def tokenize(self, text: str, *, add_special: bool = False) -> list[int]: ...

    def clear(self) -> None: ...

    def rewind(self, n: int) -> None: ...

    def decode(self, tokens: Sequence[int], *, start: int = 0, logits_from: int | None = None) -> np.ndarray | None: ...

    def greedy(self, prompt: list[int], n_new: int) -> list[int]: ...

    def close(self) -> None: ...


def greedy(m: Runtime, prompt: list[int], n_new: int) -> list[int]:
    """Greedy decoding from a fresh sequence: one prefill, then one token per call."""
    m.clear()
    logits = m.decode(prompt)
    produced: list[int] = []
    for pos in range(len(prompt), len(prompt) + n_new):
        tok = int(np.argmax(logits[-1]))
        produced.append(tok)
        logits = m.decode([tok], start=pos)
    return produced


def default_threads() -> int:
    """The thread count when none is given, the same for every runtime: the CPUs this process may run on
    (llama.cpp's own default is 4 whatever the machine; on 2 cores that oversubscribes and cut tg128 from
    183 to 48 t/s for SmolLM2 Q4_0)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class RuntimeModel:
    """What every runtime's model shares: greedy decoding on top of its ``clear``/``decode``, and use as
    a context manager around its ``close``."""

    def greedy(self, prompt: list[int], n_new: int) -> list[int]:
        return greedy(self, list(prompt), n_new)

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def adds_bos(plain: list[int], special: list[int]) -> bool:
    """Whether encoding with special tokens put one token before the plain ids (an EOS after them is allowed)."""
    return len(special) > len(plain) and special[1:1 + len(plain)] == plain


class HfTokenizerText:
    """Text for runtimes that ship a Hugging Face ``tokenizer.json`` (ExecuTorch, onnxruntime-genai):
    BOS is what the tokenizer's post-processor adds, found by encoding a probe with and without it: one
    extra token before the plain ids (whatever follows them, such as an EOS, ``<s> $A </s>``)."""

    def _load_tokenizer(self, path: str | Path) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(path))
        plain = self._tok.encode("a", add_special_tokens=False).ids
        special = self._tok.encode("a", add_special_tokens=True).ids
        self.add_bos = adds_bos(plain, special)
        self.bos = special[0] if self.add_bos else -1

    def tokenize(self, text: str, *, add_special: bool = False) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=add_special).ids)
