"""Regression tests for the defects found in review, each against the real component (llama.cpp's own
tools, gguf-py's reader, onnx's loader, tokenizers, the ExecuTorch program) where one runs here."""

from __future__ import annotations

from pathlib import Path

import gguf
import pytest

from device_bench.roofline import roofline
from edge.artifacts import open_artifact
from edge.bench import BenchConfig, bench
from edge.convert import convert
from edge.core.manifest import Manifest, read_manifest

QUICK = BenchConfig(reps=1, n_prompt=32, n_gen=8, n_ttft=8, quality=False, warmup=False)


# ------------------------------------------------------------------ 1. roofline
def copy_gguf(src: Path, dst: Path, replace: dict) -> Path:
    """A copy of a GGUF with some keys replaced (key -> (value, type, array element type)), by gguf-py."""
    r = gguf.GGUFReader(str(src))
    w = gguf.GGUFWriter(str(dst), r.fields["general.architecture"].contents())
    for key, f in r.fields.items():
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        if key in replace:
            value, vtype, sub = replace[key]
        else:
            value, vtype = f.contents(), f.types[0]
            sub = f.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        w.add_key_value(key, value, vtype, sub_type=sub)
    for t in r.tensors:
        w.add_tensor_info(t.name, t.data.shape, t.data.dtype, t.data.nbytes, t.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    for t in r.tensors:
        w.write_tensor_data(t.data)
    w.close()
    return dst


def test_roofline_of_a_gguf_with_per_layer_kv_heads_keeps_the_row(tiny_artifacts, tmp_path):
    """llama.cpp takes head_count_kv as one value per layer; the row of such a GGUF (no manifest beside it)
    is measured by llama.cpp, stored, and gets a roofline summing the layers' KV."""
    per_layer = [2, 2]  # what the tensors hold (llama.cpp checks their shapes against it)
    arr = copy_gguf(tiny_artifacts["f16"], tmp_path / "per-layer-kv.gguf", {"llama.attention.head_count_kv": (
        per_layer, gguf.GGUFValueType.ARRAY, gguf.GGUFValueType.UINT32)})
    assert gguf.GGUFReader(str(arr)).fields["llama.attention.head_count_kv"].contents() == per_layer
    (row,) = bench([arr], config=QUICK)
    roof = row.raw["roofline"]
    head_dim = 16  # 64 wide / 4 heads
    assert roof["kv_bytes"] == pytest.approx(sum(per_layer) * 2 * head_dim * 2 * (QUICK.n_gen - 1) / 2)
    assert row.tg_tps > 0 and row.decode_gbs == pytest.approx(roof["bytes_per_token"] * row.tg_tps / 1e9)
    m = read_manifest(arr) or open_artifact(arr).manifest
    m.model["kv_heads"] = [3, 1]  # layers of different widths: the sum counts
    assert roofline(m, 9, None, None)["kv_bytes"] == (3 + 1) * 2 * head_dim * 2 * 4


@pytest.mark.parametrize("model", [
    {"layers": 2, "kv_heads": "two", "head_dim": 16, "kv_bytes": 2},
    {"layers": 2, "kv_heads": [2, None], "head_dim": 16, "kv_bytes": 2},
    {"layers": 2, "kv_heads": 2, "head_dim": [16], "kv_bytes": 2, "weight_bytes_per_token": "many"},
])
def test_roofline_never_raises_and_says_what_is_unknown(model):
    m = Manifest(format="gguf:f16", family="gguf", variant="f16", artifact="x.gguf", size_bytes=1000, sha256="0",
                 bits_per_weight=16, parameter_count=500, source={}, tools={}, model=model)
    roof = roofline(m, 128, 10.0, 5.0)
    assert roof["kv_bytes"] is None and "unknown" in roof["basis"] and roof["decode_gbs"] == pytest.approx(1e-5)


def _gguf_expected(path: Path) -> int:
    """Tensor bytes minus token_embd plus one of its rows, unless it is also the output layer (tied)."""
    tensors = {t.name: t for t in gguf.GGUFReader(str(path)).tensors}
    total = sum(int(t.n_bytes) for t in tensors.values())
    emb = tensors["token_embd.weight"]
    if "output.weight" not in tensors:
        return total
    n_vocab = int(emb.data.shape[0])  # numpy order: one row per token
    return total - int(emb.n_bytes) + int(emb.n_bytes) // n_vocab


def test_gguf_weight_bytes_per_token(tiny_artifacts, tiny, tmp_path):
    for variant, path in tiny_artifacts.items():
        m = read_manifest(path)
        expected = _gguf_expected(path)
        assert m.model["weight_bytes_per_token"] == expected < m.size_bytes, variant
        roof = roofline(m, 128, 100.0, None)
        assert roof["weight_bytes"] == expected and "one row per token" in roof["basis"]
    (tied,) = convert(tiny("llama", "bpe", tied=True), "gguf:f16", tmp_path)
    tensors = gguf.GGUFReader(str(tied.path)).tensors
    assert "output.weight" not in {t.name for t in tensors}
    assert tied.manifest.model["weight_bytes_per_token"] == sum(int(t.n_bytes) for t in tensors)
    assert "read whole" in tied.manifest.model["weight_basis"]


def _onnx_expected(folder: Path) -> tuple[int, int, int]:
    """(all initializer bytes, the input_ids Gather's table bytes, its rows), read with the data loaded."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(folder / "model.onnx"), load_external_data=True).graph  # the data beside it
    arrays = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    (gather,) = [n for n in graph.node if n.op_type == "Gather" and n.input[1] == "input_ids"]
    table = arrays[gather.input[0]]
    return sum(a.nbytes for a in arrays.values()), table.nbytes, table.shape[0]


@pytest.fixture(scope="module")
def onnx_tiny(tiny, tmp_path_factory):
    """The tiny Llama as ONNX: {"fp32": Artifact, "int8": Artifact}."""
    pytest.importorskip("onnxruntime_genai")
    return {a.manifest.variant: a for a in convert(tiny("llama", "bpe"), "onnx:int8", tmp_path_factory.mktemp("onnx"))}


def test_onnx_weight_bytes_per_token(onnx_tiny):
    for variant, art in onnx_tiny.items():
        total, emb, rows = _onnx_expected(art.path)
        m = art.manifest
        assert m.model["weight_bytes_per_token"] == total - emb + emb // rows, variant
        assert total < m.size_bytes  # the folder also holds model.onnx's graph, the tokenizer and configs
        assert roofline(m, 128, 100.0, None)["weight_bytes"] == total - emb + emb // rows
    assert emb == rows * 64 * 4  # int8 keeps the embedding float32


def test_executorch_weight_bytes_per_token(tiny, tmp_path):
    """fp32 program: every checkpoint weight as float32, the embedding as one row, plus the RoPE tables
    (max_seq_len × head_dim, cos and sin) and a few scalars that the program keeps beside them."""
    pytest.importorskip("executorch")
    from transformers import AutoConfig, AutoModelForCausalLM

    ckpt = tiny("llama", "bpe")
    (art,) = convert(ckpt, "executorch:fp32?max_seq_len=512", tmp_path, verify=False)
    cfg = AutoConfig.from_pretrained(ckpt)
    n_params = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(ckpt).parameters())
    weights = 4 * (n_params - cfg.vocab_size * cfg.hidden_size + cfg.hidden_size)
    rope = 2 * 512 * (cfg.hidden_size // cfg.num_attention_heads) * 4
    got = art.manifest.model["weight_bytes_per_token"]
    assert weights + rope <= got <= weights + rope + 256, (got, weights, rope)
    assert got < art.manifest.size_bytes - 4 * cfg.vocab_size * cfg.hidden_size


# ------------------------------------------------------------------ 2. ONNX timing
def test_onnx_last_logits_without_copying_every_row(onnx_tiny):
    """pp512 and TTFT ask for the last token's logits only: the same row as before, without a copy of
    every position's [n, vocab] float32 logits (what tracemalloc sees numpy allocate) inside the timer."""
    import tracemalloc

    import numpy as np

    from converters.onnx.runtime import OgModel

    tokens = [(7 * i) % 500 + 1 for i in range(512)]
    with OgModel(onnx_tiny["fp32"].path, n_threads=1) as m:
        every = m.decode(tokens, logits_from=0)
        assert every.shape == (512, m.n_vocab)
        tracemalloc.start()
        try:
            last = m.decode(tokens)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert last.shape == (1, m.n_vocab)
    np.testing.assert_allclose(last[0], every[-1], rtol=1e-5, atol=1e-5)
    full_copy = len(tokens) * m.n_vocab * 4
    assert peak < full_copy / 8, (peak, full_copy)


# ------------------------------------------------------------------ 3. native llama.cpp output
def _run(argv: list[str], until: tuple[str, ...] = ()) -> str:
    """The tool's stdout + stderr. llama.cpp's logger thread may drop the last lines at exit (it is leaked
    on purpose, ggml-org/llama.cpp#22142): with ``until``, run again (3 tries) until one of them is there."""
    import subprocess

    for _ in range(3):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-500:]
        text = proc.stdout + "\n" + proc.stderr
        if not until or any(u in text for u in until):
            break
    return text


def test_llama_perplexity_kl_divergence_output_is_parsed(tiny_artifacts, llama_tools, tmp_path):
    """The real llama-perplexity: plain perplexity ("calculating perplexity over N chunks") with argv built as
    native mode builds it without a reference, a base file written by llama-perplexity itself, and a KL run
    reading it with native mode's argv ("computing over N chunks"); both give chunks and ctx."""
    from converters.gguf.native import llama_perplexity_argv, parse_llama_perplexity
    from edge.core.jobs import JobConfig, QualityJob
    from edge.datasets import load_dataset

    text = tmp_path / "eval.txt"
    text.write_text(load_dataset("pydoc").text[:60_000], encoding="utf-8")
    cfg, base = JobConfig(ctx=128, chunks=3), str(tmp_path / "base.kld")
    tool = llama_tools["llama-perplexity"]
    done = ("Final estimate", "Mean PPL(Q)")
    ref = _run(llama_perplexity_argv(tool, str(tiny_artifacts["f16"]), cfg, QualityJob(str(text)), ["-t", "2"])
               + ["--kl-divergence-base", base], done)
    q8 = _run(llama_perplexity_argv(tool, str(tiny_artifacts["q8_0"]), cfg, QualityJob(str(text), base_in=base),
                                    ["-t", "2"]), done)
    assert "computing over 3 chunks" in q8
    for out in (parse_llama_perplexity(ref), parse_llama_perplexity(q8)):
        assert (out["chunks"], out["ctx"]) == (3, 128) and out["ppl"] > 1
    assert 0 <= parse_llama_perplexity(q8)["kld_mean"] < 1


def test_llama_bench_ttft_when_it_is_the_pp_size(tiny_artifacts, llama_tools):
    """n_ttft == n_prompt: llama-bench runs (and reports) that prefill once, and it gives both figures."""
    import json

    from converters.gguf.native import llama_bench_argv, parse_llama_bench
    from edge.core.jobs import JobConfig

    cfg = JobConfig(n_prompt=64, n_gen=16, n_ttft=64)
    argv = llama_bench_argv(llama_tools["llama-bench"], str(tiny_artifacts["q8_0"]), cfg, ["-t", "2"])
    assert argv[argv.index("-p") + 1] == "64"
    text = _run([*argv, "-r", "2"])
    out = parse_llama_bench(text, cfg.n_prompt, cfg.n_gen, cfg.n_ttft)
    (pp,) = [r for r in json.loads(text[text.index("["):text.rindex("]") + 1]) if r["n_gen"] == 0]
    assert out["ttft_s"] == pytest.approx(sum(pp["samples_ns"]) / len(pp["samples_ns"]) / 1e9)
    assert out["pp_tps"] == pytest.approx(pp["avg_ts"]) and out["tg_tps"] > 0


# ------------------------------------------------------------------ 4. BOS of a Hugging Face tokenizer.json
@pytest.mark.parametrize("template, bos", [("<s> $A </s>", True), ("<s> $A", True), ("$A </s>", False), ("$A", False)])
def test_hf_tokenizer_bos_with_and_without_eos(tmp_path, template, bos):
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    from edge.measure.runtime import HfTokenizerText

    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "a": 3, "b": 4}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single=template, special_tokens=[("<s>", 1), ("</s>", 2)])
    tok.save(str(tmp_path / "tokenizer.json"))
    text = HfTokenizerText()
    text._load_tokenizer(tmp_path / "tokenizer.json")
    assert (text.add_bos, text.bos) == (bos, 1 if bos else -1)
    assert text.tokenize("a b", add_special=True)[: 1 + bos][-1] == 3  # the text follows the BOS, if any


# ------------------------------------------------------------------ 5. memory-bandwidth probe
def test_membw_parallel_figure_is_all_bytes_over_the_wall_time():
    """A real small run: every process starts each pass at one barrier, and the figure is all bytes / the
    wall time of the pass (best pass), plausible beside one process copying alone in this test."""
    from device_bench import membw

    r = membw.measure(size_mib=32, reps=3)
    procs, per, walls = r["membw_procs"], r["membw_bytes_per_proc"], r["membw_walls_s"]
    assert len(walls["read"]) == len(walls["copy"]) == (3 if procs > 1 else 1) and min(walls["read"]) > 0
    assert r["membw_gbs"] == round(procs * per / min(walls["read"]) / 1e9, 2)
    assert r["membw_copy_gbs"] == round(procs * 2 * per / min(walls["copy"]) / 1e9, 2)
    read_s, copy_s = membw._read_copy(per, 5)  # one process alone, same buffer size
    alone_read, alone_copy = per / read_s / 1e9, 2 * per / copy_s / 1e9
    assert 0 < r["membw_gbs"] <= 1.5 * procs * alone_read, (r["membw_gbs"], alone_read)
    assert 0 < r["membw_copy_gbs"] <= 1.5 * procs * alone_copy, (r["membw_copy_gbs"], alone_copy)


def test_membw_passes_overlap():
    """With the barrier, a pass of two processes takes at least as long as the slower one's own pass:
    the wall is measured from one release to the last end, on one clock."""
    from device_bench import membw

    n = 16 * membw.MIB
    walls = membw.parallel_walls(2, n, 2)
    alone = membw._read_copy(n, 3)
    assert min(walls["read"]) >= 0.5 * alone[0] and min(walls["copy"]) >= 0.5 * alone[1], (walls, alone)


# ------------------------------------------------------------------ 6. GGUF metadata
@pytest.mark.parametrize("tokenizer", ["bpe", "spm"])
def test_gguf_writes_add_bos_and_eos_explicitly(tiny, tmp_path, tokenizer):
    """The tiny checkpoints' tokenizer_config says nothing about add_bos (transformers drops the key when
    saving); the BPE one has no post-processor either, so gguf.SpecialVocab cannot tell, the SentencePiece
    one adds <s>. Both GGUFs carry the keys, with special_flags' answer, and llama.cpp's own vocabulary
    reads the same (llama_vocab_get_add_bos)."""
    import json

    from converters.gguf.runtime import LlamaModel
    from edge.measure.tokens import special_flags

    ckpt = tiny("llama", tokenizer)
    said = json.loads((ckpt / "tokenizer_config.json").read_text())
    assert "add_bos_token" not in said
    (art,) = convert(ckpt, "gguf:f16", tmp_path)
    fields = gguf.GGUFReader(str(art.path)).fields
    flags = special_flags(ckpt)
    assert flags.add_bos == (tokenizer == "spm")
    assert fields["tokenizer.ggml.add_bos_token"].contents() is flags.add_bos
    assert fields["tokenizer.ggml.add_eos_token"].contents() is flags.add_eos
    assert fields["llama.attention.key_length"].contents() == fields["llama.attention.value_length"].contents() == 16
    with LlamaModel(art.path, n_ctx=64) as m:
        assert m.add_bos == flags.add_bos


# ------------------------------------------------------------------ 7. native ExecuTorch (llama_main)
def observer_line(prompt_tokens: int, generated: int, *, load_ms=800, tokenize_ms=5, prefill_ms=500, step_ms=16) -> str:
    """A llama_main run's output as ExecuTorch's runner prints it (stats.h's stats_to_json_string fields)."""
    import json

    t0 = 2000
    end_prefill = t0 + tokenize_ms + prefill_ms
    stats = {"prompt_tokens": prompt_tokens, "generated_tokens": generated, "model_load_start_ms": 1000,
             "model_load_end_ms": 1000 + load_ms, "inference_start_ms": t0,
             "inference_end_ms": end_prefill + generated * step_ms, "prompt_eval_end_ms": end_prefill,
             "first_token_ms": end_prefill, "aggregate_sampling_time_ms": generated,
             "SCALING_FACTOR_UNITS_PER_SECOND": 1000}
    return (f"I 00:00:02.100 executorch:text_llm_runner.cpp:200] Max new tokens resolved: {generated + 1}\n"
            f"PyTorchObserver {json.dumps(stats, separators=(',', ':'))}\n")


def _value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


def test_llama_main_runs_hold_the_prompt_and_the_generated_tokens():
    from converters.executorch.native import SEQ_MARGIN, run_plan
    from edge.core.errors import BenchError
    from edge.core.jobs import Job, JobConfig

    cfg = JobConfig(n_prompt=512, n_gen=128, n_ttft=128, threads=4)
    job = Job(family="executorch", artifact="/d/m.pte", config=cfg, tokenizer="/d/t.json", max_context=2048)
    plan = run_plan("/d/llama_main", job)
    gen, ttft = plan["gen"], plan["ttft"]
    assert plan["warmup"] == gen and _value(gen, "--cpu_threads") == "4"
    # --seq_len counts prompt + generated tokens (GenerationConfig.resolve_max_new_tokens)
    assert int(_value(gen, "--seq_len")) == 512 + 128 + SEQ_MARGIN and len(_value(gen, "--prompt").split()) == 512
    assert len(_value(ttft, "--prompt").split()) == 128 and int(_value(ttft, "--seq_len")) < 512
    near = Job(family="executorch", artifact="a", config=cfg, tokenizer="t", max_context=512 + 128 + 4)
    assert int(_value(run_plan("m", near)["gen"], "--seq_len")) == 512 + 128 + 4  # capped by the program
    with pytest.raises(BenchError, match="holds 600"):
        run_plan("m", Job(family="executorch", artifact="a", config=cfg, tokenizer="t", max_context=600))


def test_llama_main_result_from_its_stats_lines():
    from converters.executorch.native import assemble, parse_observer

    gen = [parse_observer(observer_line(513, 142, step_ms=s)) for s in (16, 20)]
    ttft = [parse_observer(observer_line(129, 17, tokenize_ms=2, prefill_ms=t)) for t in (100, 120)]
    res = assemble(gen, ttft, {"VmHWM": 5 << 20, "VmSwap": 0}, n_gen=128)
    assert res["tg_tps"] == pytest.approx((142 / (142 * 0.016) + 142 / (142 * 0.020)) / 2)  # 62.5 and 50 t/s
    assert res["pp_tps"] == pytest.approx(513 / 0.505)
    assert res["ttft_s"] == pytest.approx((0.102 + 0.122) / 2)  # from the 128-token runs, tokenization included
    assert res["ttft_prompt_tokens"] == [129, 129] and res["prompt_tokens"] == [513, 513]
    assert res["load_s"] == pytest.approx(0.8) and res["peak_rss_bytes"] == 5 << 20
    assert any("tokenization" in n for n in res["notes"])
    short = assemble([parse_observer(observer_line(513, 40))], ttft[:1], {}, n_gen=128)
    assert any("generated 40 tokens" in n for n in short["notes"])


def test_a_kl_summary_cut_short_at_exit_is_run_again(tiny_artifacts, llama_tools, tmp_path):
    """llama.cpp's logger can drop its last lines at exit (ggml-org/llama.cpp#22142): a KL run whose output
    lost "Same top p" and the Δp lines is run again; after the last try the row keeps what was printed and
    says what was lost. The full text is real llama-perplexity output; the cut copies lose its tail."""
    from converters.gguf import native
    from converters.gguf.native import llama_perplexity_argv
    from edge.core.jobs import JobConfig, QualityJob
    from edge.datasets import load_dataset

    text = tmp_path / "eval.txt"
    text.write_text(load_dataset("pydoc").text[:60_000], encoding="utf-8")
    cfg, base = JobConfig(ctx=128, chunks=3), str(tmp_path / "base.kld")
    tool = llama_tools["llama-perplexity"]
    _run(llama_perplexity_argv(tool, str(tiny_artifacts["f16"]), cfg, QualityJob(str(text)), ["-t", "2"])
         + ["--kl-divergence-base", base], ("Final estimate",))
    argv = llama_perplexity_argv(tool, str(tiny_artifacts["q8_0"]), cfg, QualityJob(str(text), base_in=base), ["-t", "2"])
    for _ in range(10):  # the very loss this test is about can strike here too: a whole summary is wanted
        full = _run(argv, ("Same top p:",))
        if "Same top p:" in full:
            break
    cut = full[:full.rindex("Same top p:")]   # its last line, "Same top p: x ± y %", lost

    class Session:  # hands out the outputs in turn, as the device's run would
        def __init__(self, outputs):
            self.outputs, self.events = list(outputs), []

        def on_event(self, ev):
            self.events.append(ev)

        def run(self, argv, what):
            return self.outputs.pop(0), {}

    s = Session([cut, full])
    out = native._perplexity(s, ["llama-perplexity"], kl=True)
    assert out["tries"] == 2 and out["same_top"] > 0 and "delta_p_rms" in out and not s.outputs
    last = native._perplexity(Session([cut] * native.PERPLEXITY_TRIES), ["llama-perplexity"], kl=True)
    assert "same_top" not in last and "kld_mean" in last and "same_top" in last["quality_notes"][0]
    plain = native._perplexity(Session([cut]), ["llama-perplexity"])        # no KL asked: the PPL is enough
    assert "tries" not in plain
