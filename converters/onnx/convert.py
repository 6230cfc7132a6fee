"""The ONNX family: HF checkpoint → onnxruntime-genai model folders (fp32 reference, int8, int4,
int4-mixed) made by onnxruntime-genai's model builder, run offline on the local folder.

An artifact is a folder (model.onnx, model.onnx.data, genai_config.json, tokenizer files); its manifest
sits beside it (``<folder>.manifest.json``) with a sha256 over the folder's files. Every folder is
loaded by onnxruntime-genai before its manifest is written; the fp32 folder must also reproduce
transformers' perplexity on the same tokens within 0.5 %.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

from converters.onnx.tables import ARCHITECTURES, UNTIE_WHEN
from edge.measure.verify import compare, hf_perplexity, load_hf
from edge.measure.protocol import quality
from edge.core.checkpoint import Checkpoint
from edge.core.hashing import folder_digest
from edge.core.errors import ConversionError, EdgeError, UnsupportedArchitectureError, VerificationError
from edge.core.formats import FormatRequest
from edge.core.manifest import Manifest, write_manifest
from edge.core.progress import NULL, Progress
from edge.core.versions import tool_versions

FAMILY = "onnx"
TOOLS = ("onnxruntime_genai", "onnxruntime", "onnx", "onnx_ir", "transformers", "torch")
REFERENCE = "fp32"
PPL_TOLERANCE = 0.005


def builder_options(req: FormatRequest, ckpt: Checkpoint) -> dict[str, str]:
    opts = {"hf_token": "false", **req.info.spec.recipe["options"]}
    block = req.params.get("block")
    if block:  # one of the declared block sizes (checked when the format was parsed)
        opts["block_size"] = block
    if ckpt.config.get("tie_word_embeddings") and any(k in opts for k in UNTIE_WHEN):
        opts["shared_embeddings"] = "false"  # shared + mixed/asymmetric weights builds models that do not load
    return opts


def check(ckpt: Checkpoint, requests: list[FormatRequest]) -> None:
    if ckpt.architecture not in ARCHITECTURES:
        raise UnsupportedArchitectureError(
            f"architecture {ckpt.architecture} is not supported for ONNX (supported: {', '.join(ARCHITECTURES)})")
    if not (ckpt.path / "tokenizer.json").exists():
        raise ConversionError(f"{ckpt.name}: no tokenizer.json; onnxruntime-genai needs a fast Hugging Face tokenizer")
    for req in requests:
        builder_options(req, ckpt)


def run_builder(ckpt: Checkpoint, precision: str, opts: dict[str, str], out: Path, cache: Path, name: str) -> None:
    cmd = [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(ckpt.path), "-o", str(out),
           "-p", precision, "-e", "cpu", "-c", str(cache), "--extra_options", *(f"{k}={v}" for k, v in opts.items())]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines()
                 if ln.strip() and not ln.startswith(" ") and not ln.startswith("Traceback")]
        raise ConversionError(f"onnxruntime-genai's builder failed for {name}: "
                              f"{lines[-1] if lines else f'exit code {proc.returncode}'}")


def file_name(stem: str, req: FormatRequest) -> str:
    return f"{stem}-onnx-{req.info.variant}{req.file_suffix}"


def convert(ckpt: Checkpoint, requests: list[FormatRequest], out_dir: Path, *, source: dict, text: str,
            verify: bool = True, n_threads: int | None = None, progress: Progress = NULL) -> list[Manifest]:
    from edge.core.formats import parse_format

    check(ckpt, requests)
    fp32 = [r for r in requests if r.info.variant == REFERENCE]
    ref_req = fp32[0] if fp32 else parse_format(f"onnx:{REFERENCE}")
    plan = [ref_req] + [r for r in requests if r is not ref_req]
    manifests: list[Manifest] = []
    ref_link = None
    with tempfile.TemporaryDirectory(prefix="edge-onnx-cache-") as cache:
        for req in plan:
            precision = req.info.spec.recipe["precision"]
            name = file_name(ckpt.name, req)
            final = out_dir / name
            tmp = out_dir / f".{name}.partial-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                progress.start(f"{name}: onnxruntime-genai model builder ({precision})")
                opts = builder_options(req, ckpt)
                run_builder(ckpt, precision, opts, tmp, Path(cache), name)
                progress.start(f"{name}: loading with onnxruntime-genai")
                verification = _verify(ckpt, tmp, text, n_threads, strict=req is ref_req and verify)
                progress.note(f"{name}: {verification['summary']}")
                if final.exists():
                    shutil.rmtree(final)
                os.replace(tmp, final)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            m = _manifest(final, req, opts, ckpt, source, None if req is ref_req else ref_link, verification, progress)
            manifests.append(m)
            if req is ref_req:
                ref_link = {"artifact": m.artifact, "sha256": m.sha256, "format": m.format}
                if not fp32:
                    progress.note(f"also wrote {name}: the verified float reference for KL divergence")
    return manifests


def _verify(ckpt: Checkpoint, folder: Path, text: str, n_threads: int | None, *, strict: bool) -> dict:
    from converters.onnx.runtime import OgModel

    hf = load_hf(ckpt.path)  # once, for both checks
    with OgModel(folder, n_threads=n_threads) as m:  # loads: an artifact that does not load is never kept
        v = compare(ckpt.path, m, text, n_greedy=16, n_positions=256, min_top1=0.99 if strict else None, hf=hf)
        tokens = m.tokenize(text, add_special=True)
        n_ctx = 512 if len(tokens) >= 1024 else 128
        bos = m.bos if m.add_bos else None
        ppl = quality(m, text, {"ctx": n_ctx, "chunks": 2}, None, None, lambda ev: None, tokens=tokens)["ppl"]
    ref_ppl = hf_perplexity(hf[1], tokens, n_ctx, 2, bos)
    out = {**v.to_json(), "ppl": ppl, "transformers_ppl": ref_ppl, "ppl_rel_diff": ppl / ref_ppl - 1,
           "ppl_tokens": 2 * n_ctx, "summary": f"{v.summary()}, PPL {ppl:.4f} vs transformers {ref_ppl:.4f}"}
    if strict:
        ok = v.passed and abs(ppl / ref_ppl - 1) <= PPL_TOLERANCE
        out["passed"] = ok
        if not ok:
            raise VerificationError(f"{folder.name.split('.partial')[0].lstrip('.')} does not reproduce the Hugging Face model: "
                                    f"{out['summary']}")
    return out


def float_tensors(folder: Path, min_elements: int = 1 << 20) -> dict[str, int]:
    """Large initializers the builder left in floating point (bytes by name): with int8 the builder keeps
    the embedding float, because its quantized Gather (GatherBlockQuantized) only takes 4-bit weights."""
    import onnx

    model = onnx.load(str(folder / "model.onnx"), load_external_data=False)
    sizes = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.FLOAT16: 2, onnx.TensorProto.BFLOAT16: 2}
    out = {}
    for t in model.graph.initializer:
        n = 1
        for d in t.dims:
            n *= d
        if t.data_type in sizes and n >= min_elements:
            out[t.name] = n * sizes[t.data_type]
    return out


def _manifest(folder: Path, req: FormatRequest, opts: dict[str, str], ckpt: Checkpoint, source: dict,
              reference: dict | None, verification: dict, progress: Progress) -> Manifest:
    progress.start(f"sha256 {folder.name}")
    digest, size = folder_digest(folder)
    n_params = ckpt.parameter_count
    m = Manifest(
        format=req.name, family=FAMILY, variant=req.info.variant, artifact=folder.name, size_bytes=size, sha256=digest,
        bits_per_weight=round(8.0 * size / max(n_params, 1), 4), parameter_count=n_params, source=source,
        tools=tool_versions(*TOOLS), params=dict(req.params), reference=reference, verification=verification,
        details={"precision": req.info.spec.recipe["precision"], "builder_options": opts,
                 "execution_provider": "cpu", "files": sorted(p.name for p in folder.iterdir()),
                 "float_tensors": float_tensors(folder),
                 "sha256_basis": "sha256 of sorted 'path\\0sha256' lines of the folder's files",
                 "bits_per_weight_basis": "folder size / source parameters"})
    write_manifest(folder, m)
    return m


__all__ = ["check", "convert", "builder_options"]


CONVERTER = SimpleNamespace(check=check, convert=convert)  # interim: replaced by the shared convert driver
