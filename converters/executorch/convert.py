"""The ExecuTorch converter: HF checkpoint → ``.pte`` programs (fp32 reference, int8, 8da8w, 8da4w) with a
KV cache on XNNPACK, each verified with ExecuTorch's Python runtime before its manifest is written.

Beside the programs goes ``<model>.tokenizer.json`` (the checkpoint's Hugging Face tokenizer), which
the runtimes' own runners read; its sha256 is in every manifest.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from converters.executorch.program import weights_per_token
from converters.executorch.quant import FLOAT, LinearQuant, census, embedding_bits, linear_plan, linear_shapes, parse_types
from converters.executorch.recipe import EtOptions, check_supported, export_pte, fused, linear_in_features
from converters.executorch.methods import gptq_weights
from converters.executorch.tables import AUTO_GROUPS, CALIB_TOKENS, METHOD, METHODS, OUTPUT
from converters.qat import check_sizes
from edge.core.checkpoint import Checkpoint
from edge.core.errors import ConversionError, EdgeError
from edge.core.family import Checked, ConvertContext, Description
from edge.core.formats import FormatRequest, parse_format
from edge.core.fsutil import atomic_path, final_name
from edge.core.hashing import sha256_file
from edge.core.manifest import Artifact
from edge.measure.verify import THRESHOLDS, compare, require

REFERENCE = "fp32"
CALIBRATED = ("gptq", "qat")   # the methods that take calibration text
DEFAULT_MAX_SEQ_LEN = 2048


def _int_param(req: FormatRequest, key: str) -> int | None:
    raw = req.params.get(key)
    return None if raw is None or raw == "" else int(raw)  # the type was checked when the format was parsed


def options(req: FormatRequest, ckpt: Checkpoint, first: list[tuple[str, str]] = ()) -> EtOptions:
    """Resolve a request's parameters against the checkpoint (refusing what cannot be exported);
    ``first``: per-module overrides ahead of the request's own ``types``."""
    hp = check_supported(ckpt)
    recipe = req.info.spec.recipe
    widths = linear_in_features(hp)
    group = _int_param(req, "group")
    if recipe["default_group"] == -1 and group is None:  # 8da4w: the largest standard group dividing every linear
        group = next((g for g in AUTO_GROUPS if all(w % g == 0 for w in widths)), None)
        if group is None:
            raise EdgeError(f"{req.name}: no group size in {AUTO_GROUPS} divides the linear widths {sorted(widths)}")
    elif group is None:
        group = recipe["default_group"]
    if group is not None and group < 0:
        raise EdgeError(f"{req.name}: group must be positive (or 0 for one scale per channel)")
    if group:
        bad = sorted(w for w in widths if w % group)
        if bad:
            good = [g for g in (256, 128, 64, 32, 16) if all(w % g == 0 for w in widths)]
            raise EdgeError(f"{req.name}: group {group} does not divide the linear width(s) {bad} of {ckpt.name} "
                            f"(those layers would stay float); try group={good[0] if good else 0}")
    plan, emb_bits = quant_plan(req, hp, group, first)
    limit, why = hp.n_ctx, ""
    if hp.longrope and hp.n_ctx_orig < limit:
        # ExecuTorch picks LongRoPE's factors once, by the program's length; transformers by the sequence's
        limit, why = hp.n_ctx_orig, " (LongRoPE's original context: a longer program would use the long factors at every length)"
    max_seq = _int_param(req, "max_seq_len")
    if max_seq is None:
        max_seq = min(DEFAULT_MAX_SEQ_LEN, limit)
    elif max_seq > limit:
        raise EdgeError(f"{req.name}: max_seq_len {max_seq} is beyond {ckpt.name}'s limit of {limit} positions{why}")
    elif max_seq < 2:
        raise EdgeError(f"{req.name}: max_seq_len must be at least 2")
    window = ckpt.config.get("sliding_window") if ckpt.architecture == "MistralForCausalLM" else None
    if window and int(window) < max_seq:
        raise EdgeError(f"{req.name}: {ckpt.name} attends over a sliding window of {window} tokens, which ExecuTorch's "
                        f"Llama transformer does not run; a program of max_seq_len={window} or less is the same model")
    logits = req.params.get("logits") or "last"
    method = req.params.get("method") or METHOD.default
    if method in CALIBRATED and not req.params.get("calib"):
        raise EdgeError(f"{req.name}: method={method} needs calibration text: calib=wiki (a dataset name) or "
                        "calib=./ours.txt (not the text you will evaluate on)")
    if req.params.get("calib") and method not in CALIBRATED:
        raise EdgeError(f"{req.name}: calib= is calibration text for method=gptq or qat; method={method} takes none")
    if fused(ckpt) and (method in CALIBRATED or req.params.get("target_kld")):
        raise EdgeError(f"{req.name}: {'target_kld=' if req.params.get('target_kld') else f'method={method}'} works on the "
                        f"checkpoint's own linears, and {ckpt.architecture} fuses qkv and gate_up that ExecuTorch keeps "
                        "apart: use method=hqq or affine")
    check_sizes(req.name, req.params)
    extra = [k for k in ("steps", "lr") if req.params.get(k)]
    if extra and method != "qat":
        raise EdgeError(f"{req.name}: {extra[0]}= belongs to method=qat")
    if method == "qat":
        if req.params.get("target_kld"):
            raise EdgeError(f"{req.name}: target_kld= cannot go with method=qat (the search measures untrained proxies)")
    return EtOptions(qmode=recipe["qmode"], group_size=group, embedding_bits=emb_bits,
                     max_seq_len=max_seq, full_logits=logits == "all", linear_plan=plan, method=method)


def quant_plan(req: FormatRequest, hp, group: int | None, first: list[tuple[str, str]] = ()) -> tuple[dict | None, int | None]:
    """8da8w / 8da4w: edge's per-module plan of the linears (output layer, ``types`` overrides, after
    ``first``) and the embedding's bits; other variants: export_llm's qmode, and the embedding's bits."""
    recipe = req.info.spec.recipe
    emb_default = _bits(req.params.get("embedding") or recipe.get("embedding", FLOAT))
    if not recipe.get("bits"):
        return None, emb_default
    types = [*first, *parse_types(req.params.get("types"), req.name)]
    base = LinearQuant(recipe["bits"], group or 0)
    out_bits = int(req.params.get("output") or (OUTPUT.default if OUTPUT in req.info.params else recipe["bits"]))
    try:
        plan = linear_plan(linear_shapes(hp), base, base if out_bits == base.bits else LinearQuant(8, 0), types)
    except EdgeError as exc:
        raise EdgeError(f"{req.name}: {exc}") from None
    return plan, embedding_bits(types, emb_default)


def _bits(raw: str) -> int | None:
    return None if raw in ("", FLOAT) else int(raw)


def file_name(stem: str, req: FormatRequest) -> str:
    return f"{stem}-et-{req.info.variant}{req.file_suffix}.pte"


def _metadata(ckpt: Checkpoint) -> dict:
    cfg = ckpt.config
    bos = cfg.get("bos_token_id")
    eos = cfg.get("eos_token_id")
    eos_ids = eos if isinstance(eos, list) else ([eos] if eos is not None else [])
    return {"get_bos_id": int(bos) if bos is not None else 0, "get_eos_ids": [int(e) for e in eos_ids]}


def _tokenizer(ckpt: Checkpoint, out_dir: Path) -> tuple[Path, str]:
    src = ckpt.path / "tokenizer.json"
    if not src.exists():
        raise ConversionError(f"{ckpt.name}: no tokenizer.json (a fast Hugging Face tokenizer) to ship beside the program")
    dst = out_dir / f"{ckpt.name}.tokenizer.json"
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)
    return dst, sha256_file(dst)


class EtConverter:
    def check(self, ckpt: Checkpoint, requests: list[FormatRequest]) -> None:
        for req in requests:
            options(req, ckpt)

    def reference_for(self, ckpt: Checkpoint, requests: list[FormatRequest]) -> tuple[FormatRequest, bool]:
        """The fp32 program asked for (the first without parameters, else the first), else one added with
        the longest max_seq_len asked for."""
        fp32 = [r for r in requests if r.info.variant == REFERENCE]
        if fp32:
            return next((r for r in fp32 if not r.params), fp32[0]), True
        ref = parse_format(f"executorch:{REFERENCE}")
        seq = max(options(r, ckpt).max_seq_len for r in requests)
        if seq != options(ref, ckpt).max_seq_len:
            ref = parse_format(f"executorch:{REFERENCE}?max_seq_len={seq}")
        return ref, False

    def file_name(self, ckpt: Checkpoint, request: FormatRequest, *, added: bool) -> str:
        return f"{ckpt.name}-et-{REFERENCE}.pte" if added else file_name(ckpt.name, request)

    def prepare(self, ctx: ConvertContext) -> None:
        ctx.state["tokenizer"] = _tokenizer(ctx.ckpt, ctx.out_dir)

    def build(self, ctx: ConvertContext, request: FormatRequest, tmp: Path, reference: Artifact | None) -> dict[str, Any]:
        opts = options(request, ctx.ckpt)
        name = final_name(tmp)
        method: dict[str, Any] = {"name": opts.method, "what": dict(METHODS).get(opts.method)}
        if opts.method == "gptq":
            custom, method = gptq_weights(ctx.ckpt, opts.linear_plan, ctx.texts[request.params["calib"]],
                                          int(request.params.get("calib_tokens") or CALIB_TOKENS.default),
                                          threads=ctx.n_threads, progress=ctx.progress)
            opts = replace(opts, custom=custom)
            ctx.progress.note(f"{name}: GPTQ {method['seconds']:.0f} s, output error below round-to-nearest's on "
                              f"{method['output_error_vs_rtn']['below_rtn']} of {method['output_error_vs_rtn']['linears']} "
                              f"linears (median ratio {method['output_error_vs_rtn']['median_ratio']})")
        source, copy = ctx.ckpt, None
        if opts.method == "qat":
            copy, method = self._qat(ctx, request, opts)
            source, opts = Checkpoint.open(copy), replace(opts, method="affine")
        try:
            profile = export_pte(source, opts, tmp, _metadata(ctx.ckpt), progress=ctx.progress, label=name)
        finally:
            if copy is not None:
                shutil.rmtree(copy.parent, ignore_errors=True)
        ctx.progress.note(f"{name}: export {profile.total_s:.0f} s "
                          f"({', '.join(f'{k} {v:.0f} s' for k, v in profile.seconds.items() if v >= 1)})")
        tok_path, tok_sha = ctx.state["tokenizer"]
        return {
            "qmode": opts.qmode, "group_size": opts.group_size, "embedding_bits": opts.embedding_bits,
            **({"linears": census(opts.linear_plan), "method": method} if opts.linear_plan else {}),
            **({"calibration": method["calibration"]} if "calibration" in method else {}),
            "max_seq_len": opts.max_seq_len, "full_logits": opts.full_logits, "backend": "xnnpack",
            "kv_cache": True, "sdpa": "llama::sdpa_with_kv_cache", "bits_per_weight_basis": "file size / source parameters",
            "tokenizer_file": {"file": tok_path.name, "sha256": tok_sha},
            "delegation": profile.delegation, "export_seconds": {k: round(v, 2) for k, v in profile.seconds.items()},
            "export_peak_rss_bytes": profile.peak_rss_bytes, "export_peak_rss_per_export": profile.peak_is_per_export,
        }

    def _qat(self, ctx: ConvertContext, request: FormatRequest, opts: EtOptions) -> tuple[Path, dict[str, Any]]:
        """The fine-tuned copy (a checkpoint folder in the scratch folder) and its method record."""
        from converters.executorch import qat
        from converters.qat import settings_of

        settings = settings_of(request.params, CALIB_TOKENS.default)
        folder, method = qat.train(ctx.ckpt, opts.linear_plan, opts.embedding_bits, ctx.texts[request.params["calib"]],
                                   settings, ctx.scratch, threads=ctx.n_threads, progress=ctx.progress)
        ctx.progress.note(f"{request.name}: QAT {method['steps']} steps in {method['train_seconds']:.0f} s, "
                          f"KL {method['loss_first_steps']:.4f} → {method['loss_last_steps']:.4f}")
        return folder, {"what": dict(METHODS)["qat"], **method}

    def verify(self, ctx: ConvertContext, request: FormatRequest, tmp: Path, *, strict: bool) -> Checked:
        """Every program is loaded by ExecuTorch's runtime and compared with transformers; only the
        reference must pass the thresholds."""
        from converters.executorch.runtime import EtModel

        ctx.progress.start(f"{final_name(tmp)}: verifying with ExecuTorch's runtime against transformers")
        with EtModel(tmp, ctx.state["tokenizer"][0], n_threads=ctx.n_threads) as m:
            v = compare(ctx.ckpt.path, m, ctx.text, min_top1=THRESHOLDS.min_top1 if strict else None)
        if strict:
            require(v, tmp)
        return Checked(v.to_json(), v.summary())

    def describe(self, ctx: ConvertContext, request: FormatRequest, path: Path) -> Description:
        try:
            return Description(model=weights_per_token(path))
        except (ImportError, AttributeError, KeyError, IndexError, StopIteration, TypeError, ValueError) as exc:
            # a program layout this reader does not know: the roofline falls back to the file size
            return Description({"weight_bytes_note": f"not read from the program ({type(exc).__name__}: {exc})"})


CONVERTER = EtConverter()
