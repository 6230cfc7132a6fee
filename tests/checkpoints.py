"""Tiny random Hugging Face checkpoints, made with transformers, tokenizers and sentencepiece in a temp dir.

Nothing is downloaded: tokenizers are trained on Python's own documentation text in a second.
"""

from __future__ import annotations

import json
from pathlib import Path

from converters.gguf.tables import _GPT4O_SPLIT, _LLAMA3_SPLIT, _QWEN2_SPLIT

CHAT_TEMPLATE = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"


def training_text() -> str:
    from edge.datasets import load_dataset

    return load_dataset("pydoc").text[:150_000]


def bpe_tokenizer(folder: Path, pre: str = "gpt2", vocab_size: int = 512):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    if pre == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    else:
        regex = {"llama3": _LLAMA3_SPLIT, "qwen2": _QWEN2_SPLIT, "gpt4o": _GPT4O_SPLIT}[pre]
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(regex), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([training_text()], trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    return fast


def spm_tokenizer(folder: Path, vocab_size: int = 400, *, gemma: bool = False):
    """A SentencePiece BPE model; ``gemma``: like Gemma's, no space put before the text (GemmaTokenizer)."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    corpus = folder / "corpus.txt"
    corpus.write_text(training_text(), encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(folder / "tokenizer"), vocab_size=vocab_size,
                                   model_type="bpe", byte_fallback=True, character_coverage=1.0,
                                   bos_id=1, eos_id=2, unk_id=0, pad_id=-1, minloglevel=2,
                                   add_dummy_prefix=not gemma)
    corpus.unlink()
    (folder / "tokenizer.vocab").unlink()
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "GemmaTokenizer" if gemma else "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False, "legacy": False,
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}))
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(folder)  # writes tokenizer.json beside the tokenizer.model
    return tok


ARCH_CONFIGS = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "mistral": ("MistralConfig", "MistralForCausalLM", {"sliding_window": None}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 32}),
    # every 4th layer without rope (SmolLM3-3B's no_rope_layer_interval)
    "smollm3": ("SmolLM3Config", "SmolLM3ForCausalLM", {"no_rope_layer_interval": 4, "pad_token_id": None}),
    # fused qkv and gate_up; Phi-3-mini-4k's shape: the original context is the context
    "phi3": ("Phi3Config", "Phi3ForCausalLM", {"pad_token_id": None, "original_max_position_embeddings": 1024}),
    # sliding-window and global layers alternate (layer_types below), q/k norms, norms around attention and MLP
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", {"head_dim": 16, "query_pre_attn_scalar": 16,
                                                         "sliding_window": 8, "pad_token_id": None}),
}


def make_checkpoint(folder: Path, arch: str = "llama", tokenizer: str = "bpe", *, pre: str = "gpt2",
                    hidden: int = 64, layers: int = 2, heads: int = 4, kv_heads: int = 2, tied: bool = False,
                    rope: dict | None = None, init: float = 0.2, seed: int = 0, dtype: str = "float32",
                    config: dict | None = None) -> Path:
    import torch
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    # Gemma's SentencePiece model adds no space before the text
    tok = spm_tokenizer(folder, gemma=arch == "gemma3") if tokenizer == "spm" else bpe_tokenizer(folder, pre=pre)
    if arch == "phi3":  # Phi-3's chat tokens (llama.cpp looks <|end|> up in models it takes for Phi-3)
        tok.add_special_tokens({"additional_special_tokens": ["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]})
        tok.save_pretrained(folder)
    cfg_name, model_name, extra = ARCH_CONFIGS[arch]
    if arch == "gemma3":
        extra = {**extra, "layer_types": ["full_attention" if i % 2 else "sliding_attention" for i in range(layers)]}
    extra = {**extra, **(config or {})}
    cfg = getattr(transformers, cfg_name)(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=1024,
        tie_word_embeddings=tied, initializer_range=init, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, **extra)
    if rope:
        cfg.rope_parameters = {"rope_theta": 10000.0, **rope}
    torch.manual_seed(seed)
    model = getattr(transformers, model_name)(cfg).to(getattr(torch, dtype))
    model.save_pretrained(folder)
    return folder


def tokenizer_json(folder: Path) -> dict:
    return json.loads((folder / "tokenizer.json").read_text())


def copy_with_config(src: Path, dst: Path, **changes) -> Path:
    """A copy of checkpoint ``src`` at ``dst`` with config.json keys changed (for bad-input tests)."""
    import shutil

    shutil.copytree(src, dst)
    cfg = json.loads((dst / "config.json").read_text())
    cfg.update(changes)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst
