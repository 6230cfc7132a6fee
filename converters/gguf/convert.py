"""The GGUF converter: HF checkpoint → reference GGUF (edge's writer on gguf-py, verified against
transformers on llama.cpp) → every other type from it with llama.cpp's own quantizer."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path
from typing import Any

from converters.gguf.facts import gguf_facts
from converters.gguf.quantize import parse_types, quantize
from converters.gguf.runtime import LlamaModel
from converters.gguf.tables import (CALIB_TOKENS, DEFAULT_REFERENCE, IMATRIX_CHUNKS, METHODS, NEEDS_IMATRIX,
                                   REFERENCE_PRECEDENCE, STEPS)
from converters.gguf.writer import check_config, write_gguf
from converters.qat import check_sizes
from edge.core.checkpoint import Checkpoint
from edge.core.errors import ConversionError
from edge.core.family import Checked, ConvertContext, Description
from edge.core.formats import FormatRequest, parse_format
from edge.core.fsutil import final_name
from edge.core.manifest import Artifact
from edge.measure.verify import THRESHOLDS, Verification, compare, require


def verify_gguf(checkpoint: Path, gguf_path: Path, text: str, *, n_greedy: int = THRESHOLDS.n_greedy,
                n_positions: int = THRESHOLDS.n_positions, min_top1: float = THRESHOLDS.min_top1,
                n_threads: int | None = None) -> Verification:
    """Does an unquantized GGUF reproduce its Hugging Face model? (``edge.measure.verify`` on llama.cpp.)"""
    # F32 KV cache: an F16 cache alone can flip near-tied argmaxes of a random tiny model
    with LlamaModel(gguf_path, n_ctx=max(512, n_positions + 8), n_threads=n_threads, f32_kv_cache=True) as llm:
        return compare(checkpoint, llm, text, n_greedy=n_greedy, n_positions=n_positions, min_top1=min_top1)


def _calibration_label(spec: str) -> str:
    """A calibration text's name as it goes into a file name: the dataset, or the file's stem (and the half
    of it, ``wiki:calib``)."""
    base, sep, half = spec.rpartition(":")
    if sep and base and half.isalpha():
        return f"{_calibration_label(base)}_{half}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(spec).stem if ("/" in spec or "." in spec) else spec)


def check_qat(r: FormatRequest) -> None:
    """method=qat's parameters, each refusal one line: calibration text needed, no importance matrix or
    recipe search beside it (the quantizer would then choose other integers than the rule the copy
    learned); calib=, steps= and lr= belong to it alone."""
    if r.params.get("method") != "qat":
        extra = [k for k in ("calib", "calib_tokens", "steps", "lr") if r.params.get(k)]
        if extra:
            raise ConversionError(f"{r.name}: {extra[0]}= belongs to method=qat (an importance matrix takes imatrix=)")
        return
    if not r.params.get("calib"):
        raise ConversionError(f"{r.name}: method=qat needs calibration text: calib=wiki (a dataset name) or "
                              "calib=./ours.txt (not the text you will evaluate on)")
    for k in ("imatrix", "target_kld"):
        if r.params.get(k):
            raise ConversionError(f"{r.name}: {k}= cannot go with method=qat (llama.cpp would then choose other "
                                  "integers than the block rule the copy learned)")
    check_sizes(r.name, r.params)


def _writer_facts(ctx: ConvertContext, reference: Artifact) -> dict[str, Any]:
    """What the writer recorded about the reference (architecture, tokenizer): from this run, or from the
    manifest of a reference an earlier run wrote and this one kept."""
    if "writer" not in ctx.state:
        described = ("tensor_types", "file_type")   # what ``describe`` adds for every file
        ctx.state["writer"] = {k: v for k, v in reference.manifest.details.items() if k not in described}
    return dict(ctx.state["writer"])


class GgufConverter:
    def check(self, ckpt: Checkpoint, requests: list[FormatRequest]) -> None:
        check_config(ckpt)
        for r in requests:
            if r.info.variant in NEEDS_IMATRIX and not r.params.get("imatrix"):
                raise ConversionError(f"{r.info.name} needs an importance matrix: add ?imatrix=wiki (a dataset, "
                                      f"see `edge bench --help`) or ?imatrix=./calibration.txt")
            if r.params.get("types"):
                parse_types(r.params["types"], r.name)
            chunks = r.params.get("imatrix_chunks")
            if chunks and int(chunks) < 1:
                raise ConversionError(f"{r.name}: imatrix_chunks must be at least 1")
            if r.info.quantized:
                check_qat(r)

    def reference_for(self, ckpt: Checkpoint, requests: list[FormatRequest]) -> tuple[FormatRequest, bool]:
        """The most precise unquantized type asked for is written first (f16 when none is)."""
        asked = {r.info.variant: r for r in requests}
        for variant in REFERENCE_PRECEDENCE:
            if variant in asked:
                return asked[variant], True
        return parse_format(f"gguf:{DEFAULT_REFERENCE}"), False

    def file_name(self, ckpt: Checkpoint, request: FormatRequest, *, added: bool) -> str:
        spec = request.params.get("imatrix")
        calib = f"-imatrix-{_calibration_label(spec)}" if spec else ""
        if spec and request.params.get("imatrix_chunks"):
            calib += f"{request.params['imatrix_chunks']}"
        if request.params.get("method") == "qat":
            calib += f"-qat-{_calibration_label(request.params['calib'])}-{request.params.get('steps') or STEPS.default}"
        if request.params.get("target_kld"):
            calib += f"-kld{request.params['target_kld']}"
        elif request.params.get("types"):  # named by a digest: the manifest's params hold the overrides
            calib += "-types" + hashlib.sha256(request.params["types"].encode()).hexdigest()[:8]
        return f"{ckpt.name}-{request.info.variant}{calib}.gguf"

    def _imatrix(self, ctx: ConvertContext, spec: str, chunks: int) -> tuple[Any, dict[str, Any]]:
        """The importance matrix of calibration text ``spec`` (computed once per text and chunk count)."""
        key = ("imatrix", spec, chunks)
        if key not in ctx.state:
            from converters.gguf.imatrix import compute
            from edge.measure.tokens import token_stream

            text = ctx.texts[spec]
            stream = token_stream(ctx.ckpt.path, text.text)
            ctx.progress.start(f"importance matrix from {text.name}", total=min(chunks, len(stream.ids) // 512))
            im = compute(ctx.ckpt.path, stream.ids, stream.bos, max_chunks=chunks, n_threads=ctx.n_threads,
                         on_chunk=lambda i, n: ctx.progress.update(i, description=f"importance matrix from {text.name}: chunk {i}/{n}"))
            ctx.state[key] = (im, {"text": text.name, "sha256": text.sha256, "tokens": im.tokens, "chunks": im.chunks,
                                   "ctx": im.n_ctx, "tensors": len(im.data),
                                   "method": "mean of squared inputs per column of each block weight (llama-imatrix's), "
                                             "transformers fp32 on the source checkpoint"})
        return ctx.state[key]

    def prepare(self, ctx: ConvertContext) -> None:
        pass

    def build(self, ctx: ConvertContext, request: FormatRequest, tmp: Path, reference: Artifact | None) -> dict[str, Any]:
        name = final_name(tmp)
        if reference is not None and request.info.quantized:
            im, calibration = None, None
            if request.params.get("imatrix"):
                im, calibration = self._imatrix(ctx, request.params["imatrix"], int(request.params.get("imatrix_chunks") or IMATRIX_CHUNKS.default))
            types = parse_types(request.params.get("types") or "", request.name)
            if request.params.get("method") == "qat":
                method = self._qat(ctx, request, reference.path, tmp, types)
                return {**_writer_facts(ctx, reference), "method": method, "calibration": method["calibration"]}
            ctx.progress.start(f"quantizing {name}")
            quantize(reference.path, tmp, request.info.variant, n_threads=ctx.n_threads or os.cpu_count() or 1,
                     imatrix=im, types=types)
            method = {"name": "rtn", "what": dict(METHODS)["rtn"], "imatrix": bool(im)}
            return {**_writer_facts(ctx, reference), "method": method, **({"calibration": calibration} if calibration else {})}
        ctx.progress.start(f"writing {name}", total=len(ctx.ckpt.tensor_names()))
        info = write_gguf(ctx.ckpt, tmp, request.info.variant, name=ctx.ckpt.name,
                          on_tensor=lambda i, n, t: ctx.progress.update(i, description=f"writing {name}: {t}"))
        ctx.state.setdefault("writer", info)
        return dict(ctx.state["writer"])

    def _qat(self, ctx: ConvertContext, request: FormatRequest, reference: Path, tmp: Path,
             types: list[tuple[str, str]]) -> dict[str, Any]:
        """Fine-tune a copy with llama.cpp's block rules fake-quantized, write it as an f32 GGUF beside the
        scratch copy, quantize that with the same type and overrides; the copy is removed after."""
        from converters.gguf import qat
        from converters.qat import settings_of

        settings = settings_of(request.params, CALIB_TOKENS.default)
        folder, rules, method = qat.train(ctx.ckpt, reference, request.info.variant, types, ctx.texts[request.params["calib"]],
                                          settings, ctx.scratch, threads=ctx.n_threads, progress=ctx.progress)
        try:
            copy = Checkpoint.open(folder)
            f32 = folder.parent / "qat-f32.gguf"
            ctx.progress.start("QAT: writing the fine-tuned copy as f32", total=len(copy.tensor_names()))
            write_gguf(copy, f32, "f32", name=ctx.ckpt.name, on_tensor=lambda i, n, t: ctx.progress.update(i))
            ctx.progress.start(f"QAT: quantizing the fine-tuned copy to {request.info.variant}")
            quantize(f32, tmp, request.info.variant, n_threads=ctx.n_threads or os.cpu_count() or 1, types=types or None)
            method["grid_check"] = qat.grid_check(tmp, copy, rules)
        finally:
            shutil.rmtree(folder.parent, ignore_errors=True)
        ctx.progress.note(f"{final_name(tmp)}: QAT {method['steps']} steps in {method['train_seconds']:.0f} s, "
                          f"KL {method['loss_first_steps']:.4f} → {method['loss_last_steps']:.4f}; "
                          f"{method['grid_check']['weights_differing']} of {method['grid_check']['weights']} weights "
                          "off llama.cpp's re-quantization")
        return {"what": dict(METHODS)["qat"], **method}

    def verify(self, ctx: ConvertContext, request: FormatRequest, tmp: Path, *, strict: bool) -> Checked:
        if not strict:  # the reference is checked against transformers; every other type is measured by `edge bench`
            return Checked(None)
        ctx.progress.start("verifying against transformers")
        result = verify_gguf(ctx.ckpt.path, tmp, ctx.text, n_threads=ctx.n_threads)
        require(result, tmp)
        return Checked(result.to_json(), f"verified: {result.summary()}")

    def describe(self, ctx: ConvertContext, request: FormatRequest, path: Path) -> Description:
        facts = gguf_facts(path)
        return Description({"tensor_types": facts["tensor_types"], "file_type": facts["file_type"]},
                           model=facts["weights"], bits_per_weight=facts["bits_per_weight"],
                           parameter_count=facts["parameter_count"])


CONVERTER = GgufConverter()
