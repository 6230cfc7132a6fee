"""The ONNX converter: HF checkpoint → onnxruntime-genai model folders (fp32 reference, int8, int4,
int4-mixed) made by onnxruntime-genai's model builder, run offline on the local folder.

An artifact is a folder (model.onnx, model.onnx.data, genai_config.json, tokenizer files); its manifest
sits beside it (``<folder>.manifest.json``) with a sha256 over the folder's files. Every folder is
loaded by onnxruntime-genai before its manifest is written; the fp32 folder must also reproduce
transformers' perplexity on the same tokens within 0.5 %.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from converters.onnx import gptq, ortquant
from converters.onnx.quant import (EMBEDDING_NODE, LM_HEAD_NODE, NodePlan, census, node_names, node_plan, parse_types,
                                   target_options)
from converters.onnx.runtime import OgModel
from converters.onnx.tables import ARCHITECTURES, CANNOT_ARCHITECTURES, CALIB_TOKENS, CALIBRATED, METHODS, FP32_METHODS, UNTIE_WHEN
from converters.qat import calibration_chunks, check_sizes
from converters.onnx.weights import weights_per_token
from edge.core.checkpoint import Checkpoint
from edge.core.errors import ConversionError, EdgeError, VerificationError
from edge.core.family import Checked, ConvertContext, Description, check_architecture
from edge.core.formats import FormatRequest, parse_format
from edge.core.fsutil import final_name
from edge.core.manifest import Artifact
from edge.measure.protocol import quality
from edge.measure.tokens import TokenStream, token_stream
from edge.measure.verify import THRESHOLDS, compare, hf_perplexity, load_hf

REFERENCE = "fp32"
CALIB_CTX = 512      # tokens per calibration chunk (the layout of the importance matrix, GPTQ and QAT elsewhere)


def check_method(req: FormatRequest, ckpt: Checkpoint) -> None:
    """calib= and calib_tokens= belong to the calibrated methods, which need them; GPTQ's blocks must divide
    every MatMul's input width: one line each."""
    method = req.params.get("method")
    if method == "gptq":
        hp, block = ckpt.hparams, int(req.params.get("block") or 32)
        bad = sorted(w for w in {hp.n_embd, hp.n_head * hp.head_dim, hp.n_ff} if w % block)
        if bad:
            raise EdgeError(f"{req.name}: block {block} does not divide the MatMul input width(s) {bad} of {ckpt.name}")
    if method in CALIBRATED and not req.params.get("calib"):
        raise EdgeError(f"{req.name}: method={method} needs calibration text: calib=wiki (a dataset name) or "
                        "calib=./ours.txt (not the text you will evaluate on)")
    extra = [k for k in ("calib", "calib_tokens") if req.params.get(k)]
    if extra and method not in CALIBRATED:
        raise EdgeError(f"{req.name}: {extra[0]}= belongs to method={' or '.join(CALIBRATED)}")
    check_sizes(req.name, req.params)


def node_types(req: FormatRequest) -> list[tuple[str, str]]:
    """The request's per-node types (``types``, then ``lm_head``), checked."""
    method = req.params.get("method")
    mixed = [k for k in ("types", "lm_head", "target_kld") if req.params.get(k)]
    if method in FP32_METHODS and mixed:
        raise EdgeError(f"{req.name}: method={method} quantizes every MatMul alike (it works on the fp32 graph, "
                        f"without the builder's per-node options): drop {', '.join(mixed)}")
    types = parse_types(req.params.get("types"), req.name)
    if any(v == "int8" and re.search(p, EMBEDDING_NODE) for p, v in types):
        raise EdgeError(f"{req.name}: {EMBEDDING_NODE}: onnxruntime's quantized Gather takes 4-bit tables only (int4 or float)")
    if req.params.get("lm_head") == "8":
        types.append((f"^{re.escape(LM_HEAD_NODE)}$", "int8"))
    return types


def builder_options(req: FormatRequest, ckpt: Checkpoint, plan: NodePlan | None = None) -> dict[str, str]:
    opts = {"hf_token": "false", **req.info.spec.recipe["options"]}
    block = req.params.get("block")
    if block:  # one of the declared block sizes (checked when the format was parsed)
        opts["block_size"] = block
    method = req.params.get("method")
    if method and method != "default" and method not in FP32_METHODS:
        opts["algo_config"] = method
    if ckpt.config.get("tie_word_embeddings") and ((plan and plan.untie) or any(k in opts for k in UNTIE_WHEN)):
        opts["shared_embeddings"] = "false"  # shared + mixed/asymmetric weights builds models that do not load
    if plan and plan.gather:
        opts["op_types_to_quantize"] = "MatMul/Gather"
    return opts


def plan_nodes(req: FormatRequest, ckpt: Checkpoint, reference: Path | None,
               first: list[tuple[str, str]] = ()) -> tuple[list[str], NodePlan | None]:
    """The float graph's weight nodes and the request's plan over them (``first`` ahead of its own types)."""
    types = [*first, *node_types(req)]
    if not types or reference is None:
        return [], None
    names = node_names(reference)
    return names, node_plan(names, types, req.info.spec.recipe["precision"], bool(ckpt.config.get("tie_word_embeddings")))


def run_builder(ckpt: Checkpoint, precision: str, opts: dict[str, str], out: Path, cache: Path, name: str,
                over: list[dict] = ()) -> None:
    cmd = [sys.executable, "-m", "converters.onnx.builder_entry", "-i", str(ckpt.path), "-o", str(out),
           "-p", precision, "-e", "cpu", "-c", str(cache), "--extra_options", *(f"{k}={v}" for k, v in opts.items())]
    if over:
        cmd += ["--target_options", target_options(list(over))]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.stderr.splitlines()
                 if ln.strip() and not ln.startswith(" ") and not ln.startswith("Traceback")]
        raise ConversionError(f"onnxruntime-genai's builder failed for {name}: "
                              f"{lines[-1] if lines else f'exit code {proc.returncode}'}")


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


class OnnxConverter:
    def check(self, ckpt: Checkpoint, requests: list[FormatRequest]) -> None:
        check_architecture("ONNX", ckpt.architecture, ARCHITECTURES, CANNOT_ARCHITECTURES)
        if not (ckpt.path / "tokenizer.json").exists():
            raise ConversionError(f"{ckpt.name}: no tokenizer.json; onnxruntime-genai needs a fast Hugging Face tokenizer")
        for req in requests:
            builder_options(req, ckpt)
            check_method(req, ckpt)
            node_types(req)

    def reference_for(self, ckpt: Checkpoint, requests: list[FormatRequest]) -> tuple[FormatRequest, bool]:
        fp32 = [r for r in requests if r.info.variant == REFERENCE]
        return (fp32[0], True) if fp32 else (parse_format(f"onnx:{REFERENCE}"), False)

    def file_name(self, ckpt: Checkpoint, request: FormatRequest, *, added: bool) -> str:
        return f"{ckpt.name}-onnx-{request.info.variant}{request.file_suffix}"

    def prepare(self, ctx: ConvertContext) -> None:
        pass

    def build(self, ctx: ConvertContext, request: FormatRequest, tmp: Path, reference: Artifact | None) -> dict[str, Any]:
        name, precision = final_name(tmp), request.info.spec.recipe["precision"]
        ctx.progress.start(f"{name}: onnxruntime-genai model builder ({precision})")
        names, plan = plan_nodes(request, ctx.ckpt, reference.path if reference is not None else None)
        over = plan.overrides if plan else []
        opts = builder_options(request, ctx.ckpt, plan)
        method = request.params.get("method")
        if method in FP32_METHODS and reference is not None:
            if over:
                raise EdgeError(f"{request.name}: method={method} takes no per-node types (it quantizes every MatMul "
                                "of the fp32 graph alike)")
            return self._ort_method(ctx, request, tmp, reference, int(opts.get("block_size", 32)))
        run_builder(ctx.ckpt, precision, opts, tmp, ctx.scratch, name, over)  # the scratch folder is the builder's cache
        algo = opts.get("algo_config", "default")
        method = {"name": algo.removesuffix("_mixed"), "what": dict(METHODS).get(algo.removesuffix("_mixed")),
                  "builder_algo_config": algo}
        return {"precision": precision, "builder_options": opts, "execution_provider": "cpu",
                **({"method": method} if request.info.quantized else {}),
                **({"nodes": census(names, over, precision), "target_options": json.loads(target_options(over))}
                   if over else {})}

    def _ort_method(self, ctx: ConvertContext, request: FormatRequest, tmp: Path, reference: Artifact,
                    block: int) -> dict[str, Any]:
        """method=hqq: onnxruntime's HQQ quantizer on the fp32 folder; method=gptq: edge's GPTQ on it, over
        calibration chunks of the source tokenizer's ids (handed to its process as an array)."""
        name, method = final_name(tmp), request.params["method"]
        t0 = time.perf_counter()
        details: dict[str, Any] = {"precision": request.info.spec.recipe["precision"], "execution_provider": "cpu",
                                   "quantized_from": reference.path.name}
        info: dict[str, Any] = {"name": method, "what": dict(METHODS)[method], "block_size": block, "bits": 4}
        if method in CALIBRATED:
            text = ctx.texts[request.params["calib"]]
            stream = token_stream(ctx.ckpt.path, text.text)
            chunks = np.asarray(calibration_chunks(stream.ids, stream.bos, int(request.params.get("calib_tokens") or
                                                   CALIB_TOKENS.default), CALIB_CTX, "GPTQ"), dtype=np.int64)
            ctx.scratch.mkdir(parents=True, exist_ok=True)   # the builder, whose cache it is, may have removed it
            calib = ctx.scratch / f"{name}.calib.npy"
            np.save(calib, chunks)
            details["calibration"] = {"text": text.name, "sha256": text.sha256, "tokens": int(chunks.size),
                                      "chunks": int(chunks.shape[0]), "ctx": int(chunks.shape[1])}

            def on_progress(label: str, i: int, n: int) -> None:
                if i == 1:
                    ctx.progress.start(f"{name}: GPTQ {label}", total=n)
                ctx.progress.update(i, description=f"{name}: GPTQ {label} {i}/{n}")

            info.update(quantizer="edge's GPTQ (converters.gptq) written as MatMulNBits", calibration=details["calibration"],
                        **gptq.quantize(reference.path, tmp, block, calib, name, ctx.n_threads, on_progress))
        else:
            ctx.progress.start(f"{name}: onnxruntime's {method.upper()} quantizer on {reference.path.name}")
            ortquant.quantize(reference.path, tmp, method, block, name)
            info.update(quantizer="onnxruntime.quantization.matmul_nbits_quantizer (HQQWeightOnlyQuantConfig)",
                        accuracy_level=ortquant.ACCURACY_LEVEL)
        info["seconds"] = round(time.perf_counter() - t0, 1)
        return {**details, "method": info}

    def verify(self, ctx: ConvertContext, request: FormatRequest, tmp: Path, *, strict: bool) -> Checked:
        """Every folder is loaded by onnxruntime-genai (one that does not load is never kept) and compared
        with transformers; the reference must also give transformers' perplexity on the same tokens."""
        ctx.progress.start(f"{final_name(tmp)}: loading with onnxruntime-genai")
        hf = load_hf(ctx.ckpt.path)  # once, for both checks
        with OgModel(tmp, n_threads=ctx.n_threads) as m:
            v = compare(ctx.ckpt.path, m, ctx.text, min_top1=THRESHOLDS.min_top1 if strict else None, hf=hf)
            tokens = m.tokenize(ctx.text, add_special=True)
            n_ctx = 512 if len(tokens) >= 1024 else 128
            bos = m.bos if m.add_bos else None
            ppl = quality(m, TokenStream(np.asarray(tokens, dtype=np.int32), bos), n_ctx, 2, None, None,
                          lambda ev: None)["ppl"]
        ref_ppl = hf_perplexity(hf[1], tokens, n_ctx, 2, bos)
        summary = f"{v.summary()}, PPL {ppl:.4f} vs transformers {ref_ppl:.4f}"
        out = {**v.to_json(), "ppl": ppl, "transformers_ppl": ref_ppl, "ppl_rel_diff": ppl / ref_ppl - 1,
               "ppl_tokens": 2 * n_ctx, "summary": summary}
        if strict:
            out["passed"] = v.passed and abs(ppl / ref_ppl - 1) <= THRESHOLDS.ppl_rel_tol
            if not out["passed"]:
                raise VerificationError(f"{final_name(tmp)} does not reproduce the Hugging Face model: {summary}")
        return Checked(out, summary)

    def describe(self, ctx: ConvertContext, request: FormatRequest, path: Path) -> Description:
        return Description({"files": sorted(p.name for p in path.iterdir()), "float_tensors": float_tensors(path),
                            "sha256_basis": "sha256 of sorted 'path\\0sha256' lines of the folder's files",
                            "bits_per_weight_basis": "folder size / source parameters"},
                           model=weights_per_token(path))


CONVERTER = OnnxConverter()
