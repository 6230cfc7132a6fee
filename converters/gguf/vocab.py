"""Tokenizer → GGUF metadata, on gguf-py's vocab helpers.

Byte-level BPE (tokenizer.json) becomes ``tokenizer.ggml.model = gpt2`` with merges and the llama.cpp
pre-tokenizer named by ``gguf_tables.PRE_TOKENIZERS``; SentencePiece (tokenizer.model) becomes
``llama`` with scores. Special tokens and the chat template come from ``gguf.SpecialVocab``;
``tokenizer.ggml.add_bos_token`` / ``add_eos_token`` are always written, as llama.cpp's converter does,
from ``edge.measure.tokens.special_flags`` (llama.cpp's rule, else what the Hugging Face tokenizer
does), so llama.cpp's per-pre-tokenizer default never decides. An unknown pre-tokenizer is refused: llama.cpp would silently tokenize
differently from the source model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf

from converters.gguf.tables import PRE_TOKENIZERS
from edge.core.errors import ConversionError
from edge.measure.tokens import special_flags


def pre_signature(pre: dict[str, Any] | None) -> str:
    """A canonical one-line description of a tokenizers ``pre_tokenizer`` JSON object."""
    if pre is None:
        return "None"
    kind = pre.get("type")
    if kind == "Sequence":
        return "+".join(pre_signature(p) for p in pre.get("pretokenizers", []))
    if kind == "ByteLevel":
        return f"ByteLevel(prefix={pre.get('add_prefix_space', False)},regex={pre.get('use_regex', True)})"
    if kind == "Digits":
        return f"Digits(individual={pre.get('individual_digits', False)})"
    if kind == "Split":
        pattern = pre.get("pattern", {})
        return f"Split({pattern.get('Regex', pattern.get('String'))},{pre.get('behavior')})"
    return str(kind)


def _is_byte_level_bpe(tok: dict[str, Any]) -> bool:
    model = tok.get("model") or {}
    decoder = tok.get("decoder") or {}
    return model.get("type") == "BPE" and not model.get("byte_fallback", False) and decoder.get("type") == "ByteLevel"


def tokenizer_kind(folder: Path) -> str:
    """'bpe' for a byte-level BPE tokenizer.json, 'spm' for a SentencePiece tokenizer.model."""
    tj = folder / "tokenizer.json"
    if tj.exists():
        try:
            tok = json.loads(tj.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ConversionError(f"{tj}: not valid JSON ({exc})") from None
        if _is_byte_level_bpe(tok):
            return "bpe"
    if (folder / "tokenizer.model").exists():
        return "spm"
    if tj.exists():
        raise ConversionError(f"{tj}: tokenizer is neither byte-level BPE nor backed by a tokenizer.model (SentencePiece)")
    raise ConversionError(f"{folder}: no tokenizer.json or tokenizer.model")


def _pad(tokens: list[str | None], n_vocab: int) -> int:
    if len(tokens) > n_vocab:
        raise ConversionError(f"tokenizer has {len(tokens)} tokens but the model's vocab_size is {n_vocab}")
    missing = n_vocab - len(tokens)
    tokens.extend([None] * missing)
    return missing


def add_specials(writer: gguf.GGUFWriter, folder: Path, n_vocab: int, *, load_merges: bool) -> None:
    """Special token ids, merges and chat template (gguf.SpecialVocab), and add_bos / add_eos written
    explicitly by the rule the evaluation tokens follow."""
    sv = gguf.SpecialVocab(folder, load_merges=load_merges, n_vocab=n_vocab)
    for kind in ("bos", "eos"):
        sv.add_special_token.pop(kind, None)  # written below, always
    sv.add_to_gguf(writer, quiet=True)
    flags = special_flags(folder)
    writer.add_add_bos_token(flags.add_bos)
    writer.add_add_eos_token(flags.add_eos)


def add_bpe_vocab(writer: gguf.GGUFWriter, folder: Path, n_vocab: int) -> dict[str, Any]:
    tok = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    signature = pre_signature(tok.get("pre_tokenizer"))
    pre = PRE_TOKENIZERS.get(signature)
    if pre is None:
        raise ConversionError(
            f"unsupported BPE pre-tokenizer {signature!r}; llama.cpp would split text differently "
            f"(supported: {', '.join(sorted(set(PRE_TOKENIZERS.values())))})")
    vocab: dict[str, int] = tok["model"]["vocab"]
    texts: list[str | None] = [None] * (max(vocab.values(), default=-1) + 1)
    types = [gguf.TokenType.NORMAL] * len(texts)
    for text, idx in vocab.items():
        texts[idx] = text
    for added in tok.get("added_tokens", []):
        idx = added["id"]
        if idx >= len(texts):
            grow = idx + 1 - len(texts)
            texts.extend([None] * grow)
            types.extend([gguf.TokenType.NORMAL] * grow)
        texts[idx] = added["content"]
        types[idx] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    padded = _pad(texts, n_vocab)
    types.extend([gguf.TokenType.UNUSED] * padded)
    tokens = [t if t is not None else f"[PAD{i}]" for i, t in enumerate(texts)]
    types = [ty if texts[i] is not None else gguf.TokenType.UNUSED for i, ty in enumerate(types)]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    add_specials(writer, folder, n_vocab, load_merges=True)
    return {"tokenizer": "bpe", "pre": pre, "tokens": len(tokens), "padded": padded, "vocab": tokens}


def _adds_dummy_prefix(folder: Path) -> bool:
    """Whether the SentencePiece model puts a space before the text (its normalizer's add_dummy_prefix)."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((folder / "tokenizer.model").read_bytes())
    return bool(proto.normalizer_spec.add_dummy_prefix)


def add_spm_vocab(writer: gguf.GGUFWriter, folder: Path, n_vocab: int) -> dict[str, Any]:
    try:
        spm = gguf.vocab.SentencePieceVocab(folder)
    except (RuntimeError, OSError, ValueError) as exc:
        raise ConversionError(f"{folder / 'tokenizer.model'}: cannot be read by sentencepiece ({exc})") from None
    texts: list[str | None] = []
    scores: list[float] = []
    types: list[int] = []
    for text, score, ttype in spm.sentencepiece_tokens():
        texts.append(text.decode("utf-8"))
        scores.append(score)
        types.append(ttype)
    tj = folder / "tokenizer.json"
    added_tokens = json.loads(tj.read_text(encoding="utf-8")).get("added_tokens", []) if tj.exists() else []
    for added in added_tokens:
        idx = added["id"]
        while idx >= len(texts):
            texts.append(None)
            scores.append(-1000.0)
            types.append(gguf.TokenType.UNUSED)
        if texts[idx] is None or texts[idx] == added["content"]:
            texts[idx] = added["content"]
            if added.get("special"):
                types[idx] = gguf.TokenType.CONTROL
            elif types[idx] == gguf.TokenType.UNUSED:
                types[idx] = gguf.TokenType.USER_DEFINED
    padded = _pad(texts, n_vocab)
    scores.extend([-1000.0] * padded)
    types.extend([gguf.TokenType.UNUSED] * padded)
    tokens = [t if t is not None else f"[PAD{i}]" for i, t in enumerate(texts)]
    writer.add_tokenizer_model("llama")
    writer.add_tokenizer_pre("default")
    writer.add_add_space_prefix(_adds_dummy_prefix(folder))  # llama.cpp assumes one; Gemma's model adds none
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    add_specials(writer, folder, n_vocab, load_merges=False)
    return {"tokenizer": "spm", "pre": "default", "tokens": len(tokens), "padded": padded, "vocab": tokens}


def add_vocab(writer: gguf.GGUFWriter, folder: Path, n_vocab: int) -> dict[str, Any]:
    """The vocabulary's keys; returns what the manifest records of it, and under "vocab" the token texts."""
    if tokenizer_kind(folder) == "bpe":
        return add_bpe_vocab(writer, folder, n_vocab)
    return add_spm_vocab(writer, folder, n_vocab)
