"""One token stream for every runtime: the evaluation text tokenized once, by the source checkpoint's own
tokenizer, and handed to every runtime as ids.

The rules are llama.cpp's, so that llama.cpp's own tools (``llama-perplexity``) score the same tokens:
- BOS: whether the tokenizer adds one is read as llama.cpp's converter reads it (``gguf.SpecialVocab``:
  ``add_bos_token`` in tokenizer_config.json, or the tokenizer.json post-processor's template); where
  neither says, what the Hugging Face tokenizer itself does when asked for special tokens. The GGUF writer
  stores the same answer explicitly (``tokenizer.ggml.add_bos_token``), so llama.cpp's per-pre-tokenizer
  default never decides.
- Special-token strings inside the text (``<|im_start|>``) are text, not control tokens (llama.cpp's
  ``parse_special=false``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SpecialFlags:
    add_bos: bool
    add_eos: bool
    bos_id: int | None
    eos_id: int | None


def _hf_adds(tok, token_id: int | None, first: bool) -> bool:
    if token_id is None:
        return False
    plain = tok("a", add_special_tokens=False)["input_ids"]
    special = tok("a", add_special_tokens=True)["input_ids"]
    if len(special) <= len(plain):
        return False
    return special[0] == token_id if first else special[-1] == token_id


def special_flags(folder: Path, tok=None) -> SpecialFlags:
    """Whether the checkpoint's tokenizer adds BOS / EOS, by llama.cpp's converter's rule (see above).
    ``tok``: the checkpoint's transformers tokenizer, if already loaded."""
    import gguf

    sv = gguf.SpecialVocab(folder, load_merges=False)
    bos_id, eos_id = sv.special_token_ids.get("bos"), sv.special_token_ids.get("eos")
    add_bos, add_eos = sv.add_special_token.get("bos"), sv.add_special_token.get("eos")
    if add_bos is None or add_eos is None:
        tok = tok or load_tokenizer(folder)
        if add_bos is None:
            add_bos = _hf_adds(tok, bos_id if bos_id is not None else tok.bos_token_id, first=True)
        if add_eos is None:
            add_eos = _hf_adds(tok, eos_id if eos_id is not None else tok.eos_token_id, first=False)
    return SpecialFlags(bool(add_bos), bool(add_eos), bos_id, eos_id)


def load_tokenizer(folder: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def digest(tokens) -> str:
    """sha256 of the ids as little-endian int32 (what every row records of the tokens it scored)."""
    return hashlib.sha256(np.asarray(tokens, dtype="<i4").tobytes()).hexdigest()


@dataclass(frozen=True)
class TokenStream:
    ids: np.ndarray               # int32: [BOS] + the text's tokens
    bos: int | None               # put at the start of every chunk (None: the tokenizer adds no BOS)

    @property
    def sha256(self) -> str:
        return digest(self.ids)

    def save(self, path: Path) -> Path:
        path.write_bytes(np.asarray(self.ids, dtype="<i4").tobytes())
        return path

    @staticmethod
    def read(path: str | Path) -> np.ndarray:
        return np.fromfile(str(path), dtype="<i4")


def token_stream(folder: Path, text: str, tok=None) -> TokenStream:
    """The evaluation tokens of ``text`` for the checkpoint in ``folder``, by the rules above."""
    tok = tok or load_tokenizer(folder)
    flags = special_flags(folder, tok)
    ids = tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    bos = flags.bos_id if flags.add_bos and flags.bos_id is not None else None
    return TokenStream(np.asarray(([bos] if bos is not None else []) + list(ids), dtype=np.int32), bos)
