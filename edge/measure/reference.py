"""The one quality reference every artifact is compared with: the source checkpoint itself, run by
transformers in float32 on the evaluation tokens with the bench's chunk protocol.

Its log-probabilities are computed once per (checkpoint content, text, ctx, chunks, token stream) and
kept in edge's cache (``<cache>/references/<key>/``): ``logprobs.f16`` (float16, one row per scored
position, renormalised when read) and ``meta.json`` (the token digest, the shape, the source's own
perplexity). The tokens themselves are ``tokens.i32``, the stream every runtime is fed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.checkpoint import Checkpoint
from edge.core.fsutil import atomic_path
from edge.core.hashing import sha256_file
from edge.measure.runtime import RuntimeModel, default_threads
from edge.measure.tokens import TokenStream, load_tokenizer, token_stream

PROTOCOL = 1          # bump when the reference's computation changes: old cache entries are then not reused
LOGPROBS = "logprobs.f16"
TOKENS = "tokens.i32"
META = "meta.json"
LABEL = "source checkpoint, transformers fp32"


class HfRuntime(RuntimeModel):
    """A transformers model in float32 as a ``Runtime``: whole sequences for the quality protocol, and a
    KV cache (``DynamicCache``) continued at its end or rewound for the choices of a task's question."""

    def __init__(self, folder: Path, tok=None) -> None:
        import torch

        from edge.measure.verify import load_hf_model

        self._torch = torch
        self._model = load_hf_model(folder)
        self._tok = tok or load_tokenizer(folder)
        self.n_vocab = int(self._model.config.vocab_size)
        self.n_ctx = int(getattr(self._model.config, "max_position_embeddings", 0) or 0)
        self.n_threads = torch.get_num_threads() or default_threads()
        self.bos, self.add_bos = -1, False
        self._cache, self._len = None, 0

    def tokenize(self, text: str, *, add_special: bool = False) -> list[int]:
        return self._tok(text, add_special_tokens=add_special, split_special_tokens=True)["input_ids"]

    def clear(self) -> None:
        self._cache, self._len = None, 0

    def rewind(self, n: int) -> None:
        if n == 0:
            self.clear()
        elif self._cache is not None and n < self._len:
            self._cache.crop(n - self._len)  # transformers 5: a negative count of positions to drop
            self._len = n

    def decode(self, tokens: Sequence[int], *, start: int = 0, logits_from: int | None = None) -> np.ndarray | None:
        torch = self._torch
        from transformers import DynamicCache

        if start == 0:
            self.clear()
        elif start != self._len:
            raise ValueError(f"HfRuntime continues its sequence at {self._len}, not at {start}")
        if self._cache is None:
            self._cache = DynamicCache(config=self._model.config)
        with torch.inference_mode():
            out = self._model(torch.tensor([list(tokens)]), cache=self._cache, use_cache=True)
        self._len = start + len(tokens)
        logits = out.logits[0]
        if logits_from is None:
            return logits[-1:].float().numpy()
        return None if logits_from >= len(tokens) else logits[logits_from:].float().numpy()

    def close(self) -> None:
        self._model = self._cache = None


@dataclass(frozen=True)
class SourceReference:
    """The source checkpoint's log-probs on one token stream, in the cache."""

    folder: Path                  # the cache entry
    checkpoint: str
    content_sha256: str
    meta: dict[str, Any]

    @property
    def key(self) -> str:
        return self.folder.name

    @property
    def logprobs(self) -> Path:
        return self.folder / LOGPROBS

    @property
    def tokens(self) -> Path:
        return self.folder / TOKENS

    @property
    def stream(self) -> TokenStream:
        return TokenStream(TokenStream.read(self.tokens), self.meta["bos"])

    def summary(self) -> str:
        m = self.meta
        return (f"{LABEL}: PPL {m['ppl']:.4f} ± {m['ppl_unc']:.4f} on {m['tokens_scored']} tokens "
                f"({m['chunks']} chunks of {m['ctx']})")


def reference_key(content_sha256: str, text_sha256: str, ctx: int, chunks: int | None, tokens_sha256: str) -> str:
    return hashlib.sha256(json.dumps([PROTOCOL, content_sha256, text_sha256, ctx, chunks, tokens_sha256]).encode()).hexdigest()


def source_reference(checkpoint: Path, text: str, text_sha256: str, ctx: int, chunks: int | None, cache: Path,
                     emit: Callable[[dict[str, Any]], None], content_sha256: str | None = None) -> SourceReference:
    """The cached reference for ``checkpoint`` on ``text``, computed now if the cache has none.
    ``content_sha256``: the checkpoint's content hash when already known (else computed)."""
    from edge.measure.protocol import quality

    ckpt = Checkpoint.open(checkpoint)
    if content_sha256 is None:
        emit({"stage": "hashing the source checkpoint"})
        content_sha256 = ckpt.content_hash()
    tok = load_tokenizer(ckpt.path)
    stream = token_stream(ckpt.path, text, tok)
    key = reference_key(content_sha256, text_sha256, ctx, chunks, stream.sha256)
    folder = cache / "references" / key
    if not (folder / META).exists():
        folder.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder) as tmp:
            tmp.mkdir()
            stream.save(tmp / TOKENS)
            with HfRuntime(ckpt.path, tok) as hf:
                q = quality(hf, stream, ctx, chunks, base_in=None, base_out=str(tmp / LOGPROBS), emit=emit)
                n_vocab = hf.n_vocab
            meta = {**q, "bos": stream.bos, "label": LABEL, "checkpoint": str(ckpt.path), "n_vocab": n_vocab,
                    "stream_sha256": stream.sha256, "logprobs_sha256": sha256_file(tmp / LOGPROBS),
                    "content_sha256": content_sha256, "text_sha256": text_sha256, "protocol": PROTOCOL}
            (tmp / META).write_text(json.dumps(meta, indent=1))
    meta = json.loads((folder / META).read_text())
    return SourceReference(folder, str(ckpt.path), content_sha256, meta)
