"""The architectures teams ship on devices beyond Llama and Qwen (SmolLM3, Phi-3 / Phi-4-mini, Gemma 3), in
every family that takes them: tiny random checkpoints of each config shape, converted, run by the family's
own runtime and checked against transformers (greedy tokens, top-1 agreement; ONNX also perplexity); the
parts each adds (layers without rope, fused projections, LongRoPE, sliding windows, norm offsets) shown to
matter by a copy that lacks them failing the same check; configs a runtime's graph would not reproduce
refused in one line before anything is written."""

import json

import gguf
import pytest

from checkpoints import copy_with_config
from converters.gguf.convert import verify_gguf
from edge.convert import convert
from edge.core.errors import EdgeError
from edge.datasets import load_dataset

# Phi-4-mini's shape: LongRoPE over 3/4 of each head (head_dim 64: 48 rotary dims, 24 factors; onnxruntime's
# attention takes rotary halves that are a multiple of 8, as Phi-4-mini's 48 of 128 are)
LONGROPE = {"rope_type": "longrope", "partial_rotary_factor": 0.75, "original_max_position_embeddings": 512,
            "long_factor": [1.0 + i / 2 for i in range(24)], "short_factor": [1.0 + i / 8 for i in range(24)]}
PHI4 = {"rope": LONGROPE, "config": {"original_max_position_embeddings": 512}, "hidden": 256}

GGUF_CASES = [
    # (arch, tokenizer, checkpoint options, llama.cpp arch, tensors that must be written)
    pytest.param("smollm3", "bpe", {"layers": 4, "tied": True}, "smollm3", [], id="smollm3-nope-layers"),
    pytest.param("phi3", "spm", {}, "phi3", ["blk.0.attn_qkv.weight"], id="phi3-mini-sentencepiece"),
    pytest.param("phi3", "bpe", {**PHI4, "pre": "gpt4o"}, "phi3",
                 ["rope_factors_long.weight", "rope_factors_short.weight"], id="phi4-mini-longrope-partial-o200k"),
    pytest.param("gemma3", "spm", {"tied": True}, "gemma3", ["blk.0.post_ffw_norm.weight", "blk.0.attn_k_norm.weight"],
                 id="gemma3-sentencepiece"),
    pytest.param("gemma3", "bpe", {"tied": True, "layers": 4}, "gemma3", ["blk.3.post_attention_norm.weight"],
                 id="gemma3-bpe"),
]


def _field(reader, key):
    f = reader.fields.get(key)
    return None if f is None else f.contents()


@pytest.mark.parametrize("arch,tok,kw,gguf_arch,tensors", GGUF_CASES)
def test_gguf_architecture(tiny, tmp_path, arch, tok, kw, gguf_arch, tensors):
    ckpt = tiny(arch, tok, **kw)
    by = {a.manifest.variant: a.manifest for a in convert(ckpt, "gguf:f32,gguf:q4_0", tmp_path)}
    ref = by["f32"]
    assert ref.verification["passed"] and ref.verification["greedy_tokens"] == 16
    assert ref.verification["top1_agreement"] >= 0.99 and ref.verification["tokenizer_match"]
    reader = gguf.GGUFReader(str(tmp_path / ref.artifact))
    assert _field(reader, "general.architecture") == gguf_arch
    names = {t.name for t in reader.tensors}
    assert set(tensors) <= names
    if arch == "gemma3":  # the per-layer pattern llama.cpp reads, from config.json's layer_types
        layer_types = json.loads((ckpt / "config.json").read_text())["layer_types"]
        assert _field(reader, "gemma3.attention.sliding_window_pattern") == [t == "sliding_attention" for t in layer_types]
        assert _field(reader, "gemma3.attention.sliding_window") == 8
        if tok == "spm":  # Gemma's SentencePiece model puts no space before the text; llama.cpp assumes one
            assert _field(reader, "tokenizer.ggml.add_space_prefix") is False
    if kw.get("rope"):
        assert _field(reader, "phi3.rope.dimension_count") == 48
    if kw.get("pre") == "gpt4o":  # Phi-4's byte-level BPE splits text with GPT-4o's (o200k) regex
        assert _field(reader, "tokenizer.ggml.pre") == "gpt-4o"
    assert by["q4_0"].bits_per_weight < 8


def _refused_verification(ckpt, broken, tmp_path):
    """A GGUF of ``broken`` (the same weights, one architectural part changed) checked against ``ckpt``."""
    m = [a.manifest for a in convert(broken, "gguf:f32", tmp_path / "out", verify=False)][0]
    return verify_gguf(ckpt, tmp_path / "out" / m.artifact, load_dataset("pydoc").text)


@pytest.mark.parametrize("arch,kw,change", [
    pytest.param("gemma3", {"tied": True}, {"layer_types": ["full_attention", "full_attention"]}, id="gemma3-without-its-window"),
    pytest.param("phi3", PHI4, {"rope_parameters": {**LONGROPE, "short_factor": [1.0] * 24, "rope_theta": 10000.0}},
                 id="phi3-without-longrope"),
    pytest.param("smollm3", {"layers": 4, "tied": True}, {"architectures": ["LlamaForCausalLM"], "model_type": "llama"},
                 id="smollm3-as-llama-rope-everywhere"),
])
def test_each_part_matters(tiny, tmp_path, arch, kw, change):
    """The parts the writer adds for an architecture are what makes llama.cpp agree with transformers: written
    without one, the same weights fail the verification."""
    ckpt = tiny(arch, "bpe", **kw)
    result = _refused_verification(ckpt, copy_with_config(ckpt, tmp_path / "broken", **change), tmp_path)
    assert not result.passed and result.top1_agreement < 0.99


@pytest.mark.parametrize("arch,kw,change,message", [
    ("smollm3", {"layers": 4}, {"no_rope_layers": [1, 0, 1, 0]}, "every 4th layer"),
    ("gemma3", {}, {"query_pre_attn_scalar": 256}, "query_pre_attn_scalar=256"),
    ("gemma3", {}, {"hidden_activation": "silu"}, "activation 'silu'"),
    ("phi3", {}, {"rope_parameters": {"rope_type": "yarn", "factor": 2.0, "rope_theta": 10000.0}}, "rope scaling 'yarn'"),
])
def test_gguf_refuses_configs_llama_cpp_would_not_reproduce(tiny, tmp_path, arch, kw, change, message):
    ck = copy_with_config(tiny(arch, "bpe", **kw), tmp_path / "ck", **change)
    with pytest.raises(EdgeError, match=message) as err:
        convert(ck, "gguf:f16", tmp_path / "out")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize("arch,tok,kw", [
    pytest.param("smollm3", "bpe", {"layers": 4, "tied": True}, id="smollm3-layers-without-rope"),
    pytest.param("phi3", "spm", {}, id="phi3-mini"),
    pytest.param("phi3", "bpe", PHI4, id="phi4-mini-longrope"),
    pytest.param("gemma3", "spm", {"tied": True}, id="gemma3-sliding-window"),
])
def test_onnx_architecture(tiny, tmp_path, arch, tok, kw):
    """onnxruntime-genai's builder on each architecture (through converters.onnx.builder_entry): the fp32 folder
    gives transformers' perplexity (over chunks far longer than Gemma's 8-token window, so the sliding-window
    cache is exercised) and tokens."""
    by = {a.manifest.variant: a.manifest for a in convert(tiny(arch, tok, **kw), "onnx:fp32,onnx:int4", tmp_path)}
    v = by["fp32"].verification
    assert v["passed"] and v["greedy_tokens"] == 16 and abs(v["ppl_rel_diff"]) < 1e-4
    assert by["int4"].bits_per_weight < by["fp32"].bits_per_weight


@pytest.mark.parametrize("arch,kw", [
    pytest.param("qwen3", {"pre": "qwen2"}, id="qwen3-qk-norms"),
    pytest.param("smollm3", {"layers": 4, "tied": True}, id="smollm3-layers-without-rope"),
    pytest.param("phi3", PHI4, id="phi4-mini-fused-longrope-partial"),
])
def test_executorch_architecture(tiny, tmp_path, arch, kw):
    """Qwen 3's per-head q/k RMSNorms (before rope), SmolLM3's layers without rope (their rope made the
    identity), Phi's fused projections cut apart with LongRoPE over part of each head, in ExecuTorch's Llama
    transformer: the program, run by ExecuTorch's runtime, reproduces transformers."""
    pytest.importorskip("executorch")
    m = [a.manifest for a in convert(tiny(arch, "bpe", **kw), "executorch:fp32", tmp_path)][0]
    v = m.verification
    assert v["passed"] and v["greedy_tokens"] == 16 and v["top1_agreement"] >= 0.99
    if arch == "phi3":  # the program stops where LongRoPE's short factors do (ExecuTorch picks them once)
        assert m.details["max_seq_len"] == 512


@pytest.mark.parametrize("fmt, message", [
    ("executorch:8da4w?method=gptq&calib=wiki", "fuses qkv and gate_up"),
    ("executorch:8da4w?target_kld=0.1", "fuses qkv and gate_up"),
    ("executorch:fp32?max_seq_len=1024", "LongRoPE's original context"),
])
def test_executorch_refuses_what_phi_cannot_take(tiny, tmp_path, fmt, message):
    pytest.importorskip("executorch")
    with pytest.raises(EdgeError, match=message) as err:
        convert(tiny("phi3", "bpe", **PHI4), fmt, tmp_path / "out")
    assert "\n" not in str(err.value) and not (tmp_path / "out").exists()


def test_executorch_sensitivity_refuses_fused_projections(tiny):
    from edge.sensitivity import sensitivity

    with pytest.raises(EdgeError, match="no proxy for it yet"):
        sensitivity(tiny("phi3", "bpe", **PHI4), "executorch:8da4w", chunks=1)


def test_executorch_mistral_within_its_window(tiny, tmp_path):
    """Mistral is a Llama whose attention may slide: a program no longer than the window is that model (verified
    against transformers), a longer one is refused."""
    pytest.importorskip("executorch")
    ckpt = copy_with_config(tiny("mistral", "spm"), tmp_path / "ck", sliding_window=300)
    with pytest.raises(EdgeError, match="sliding window of 300 tokens"):
        convert(ckpt, "executorch:fp32", tmp_path / "refused")
    m = [a.manifest for a in convert(ckpt, "executorch:fp32?max_seq_len=300", tmp_path / "out")][0]
    assert m.verification["passed"] and m.verification["greedy_tokens"] == 16
