"""The ExecuTorch family: HF checkpoint → ``.pte`` programs (fp32 reference, int8, 8da8w, 8da4w) with a
KV cache on XNNPACK, each verified with ExecuTorch's Python runtime before its manifest is written.

Beside the programs goes ``<model>.tokenizer.json`` (the checkpoint's Hugging Face tokenizer), which
the runtimes' own runners read; its sha256 is in every manifest.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

from converters.executorch.recipe import EtOptions, ExportProfile, check_supported, export_pte, linear_in_features
from converters.executorch.tables import AUTO_GROUPS
from edge.measure.verify import compare, require
from edge.core.checkpoint import Checkpoint
from edge.core.hashing import sha256_file
from edge.core.errors import ConversionError, EdgeError
from edge.core.formats import FormatRequest
from edge.core.fsutil import atomic_path
from edge.core.manifest import Manifest, write_manifest
from edge.core.progress import NULL, Progress
from edge.core.versions import tool_versions

FAMILY = "executorch"
TOOLS = ("executorch", "torchao", "torch", "transformers")
REFERENCE = "fp32"
DEFAULT_MAX_SEQ_LEN = 2048


def _int_param(req: FormatRequest, key: str) -> int | None:
    raw = req.params.get(key)
    return None if raw is None or raw == "" else int(raw)  # the type was checked when the format was parsed


def options(req: FormatRequest, ckpt: Checkpoint) -> EtOptions:
    """Resolve a request's parameters against the checkpoint (refusing what cannot be exported)."""
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
    emb = req.params.get("embedding")
    limit = hp.n_ctx
    max_seq = _int_param(req, "max_seq_len")
    if max_seq is None:
        max_seq = min(DEFAULT_MAX_SEQ_LEN, limit)
    elif max_seq > limit:
        raise EdgeError(f"{req.name}: max_seq_len {max_seq} is beyond {ckpt.name}'s limit of {limit} positions")
    elif max_seq < 2:
        raise EdgeError(f"{req.name}: max_seq_len must be at least 2")
    logits = req.params.get("logits") or "last"
    return EtOptions(qmode=recipe["qmode"], group_size=group, embedding_bits=int(emb) if emb else None,
                     max_seq_len=max_seq, full_logits=logits == "all")


def check(ckpt: Checkpoint, requests: list[FormatRequest]) -> None:
    """Refuse an unsupported checkpoint or parameter before anything is written."""
    for req in requests:
        options(req, ckpt)


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


def convert(ckpt: Checkpoint, requests: list[FormatRequest], out_dir: Path, *, source: dict, text: str,
            verify: bool = True, n_threads: int | None = None, progress: Progress = NULL) -> list[Manifest]:
    from edge.core.formats import parse_format

    planned = [(req, options(req, ckpt)) for req in requests]  # every refusal before any export
    # the reference: the fp32 program asked for (the first without parameters, else the first), else one added
    fp32 = [r for r, _ in planned if r.info.variant == REFERENCE]
    ref_req = next((r for r in fp32 if not r.params), fp32[0] if fp32 else None)
    ref_asked = ref_req is not None
    if ref_req is None:
        ref_req = parse_format(f"executorch:{REFERENCE}")
        seq = max(o.max_seq_len for _, o in planned)
        if seq != options(ref_req, ckpt).max_seq_len:
            ref_req = parse_format(f"executorch:{REFERENCE}?max_seq_len={seq}")
        planned.insert(0, (ref_req, options(ref_req, ckpt)))
    else:
        planned.sort(key=lambda p: p[0] is not ref_req)
    tok_path, tok_sha = _tokenizer(ckpt, out_dir)
    manifests: list[Manifest] = []
    ref_link = None
    for req, opts in planned:
        is_ref = req is ref_req
        path = out_dir / (file_name(ckpt.name, req) if req is not ref_req or ref_asked
                          else f"{ckpt.name}-et-{REFERENCE}.pte")
        with atomic_path(path) as tmp:
            profile = export_pte(ckpt, opts, tmp, _metadata(ckpt), progress=progress, label=path.name)
            progress.start(f"{path.name}: verifying with ExecuTorch's runtime against transformers")
            verification = _verify(ckpt, tmp, tok_path, text, n_threads, strict=is_ref and verify)
            progress.note(f"{path.name}: {verification.summary()}; export {profile.total_s:.0f} s "
                          f"({', '.join(f'{k} {v:.0f} s' for k, v in profile.seconds.items() if v >= 1)})")
            if is_ref and verify:
                require(verification, path)
        m = _manifest(path, req, opts, ckpt, source, None if is_ref else ref_link, verification.to_json(),
                      profile, tok_path, tok_sha, progress)
        manifests.append(m)
        if is_ref:
            ref_link = {"artifact": m.artifact, "sha256": m.sha256, "format": m.format}
            if not ref_asked:
                progress.note(f"also wrote {path.name}: the verified float reference that `edge bench` measures "
                              "the quantized programs' KL divergence against")
    return manifests


def _verify(ckpt: Checkpoint, pte: Path, tokenizer: Path, text: str, n_threads: int | None, *, strict: bool):
    from converters.executorch.runtime import EtModel

    with EtModel(pte, tokenizer, n_threads=n_threads) as m:
        return compare(ckpt.path, m, text, n_greedy=16, n_positions=256, min_top1=0.99 if strict else None)


def _manifest(path: Path, req: FormatRequest, opts: EtOptions, ckpt: Checkpoint, source: dict, reference: dict | None,
              verification: dict, profile: ExportProfile, tok_path: Path, tok_sha: str, progress: Progress) -> Manifest:
    size = path.stat().st_size
    progress.start(f"sha256 {path.name}", total=size)
    digest = sha256_file(path, on_bytes=lambda n: progress.update(advance=n))
    n_params = ckpt.parameter_count
    m = Manifest(
        format=req.name, family=FAMILY, variant=req.info.variant, artifact=path.name, size_bytes=size, sha256=digest,
        bits_per_weight=round(8.0 * size / max(n_params, 1), 4), parameter_count=n_params, source=source,
        tools=tool_versions(*TOOLS), params=dict(req.params), reference=reference, verification=verification,
        details={
            "qmode": opts.qmode, "group_size": opts.group_size, "embedding_bits": opts.embedding_bits,
            "max_seq_len": opts.max_seq_len, "full_logits": opts.full_logits, "backend": "xnnpack",
            "kv_cache": True, "sdpa": "llama::sdpa_with_kv_cache", "bits_per_weight_basis": "file size / source parameters",
            "tokenizer_file": {"file": tok_path.name, "sha256": tok_sha},
            "delegation": profile.delegation, "export_seconds": {k: round(v, 2) for k, v in profile.seconds.items()},
            "export_peak_rss_bytes": profile.peak_rss_bytes, "export_peak_rss_per_export": profile.peak_is_per_export,
        })
    write_manifest(path, m)
    return m


__all__ = ["check", "convert", "file_name", "options"]


CONVERTER = SimpleNamespace(check=check, convert=convert)  # interim: replaced by the shared convert driver
