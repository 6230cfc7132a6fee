"""``edge convert`` as a library call: one checkpoint to many artifacts, each with its manifest.

The one convert driver: it plans (every family's refusals before anything is written), then for each
family writes the reference first and every other artifact after it, each built and verified under a
temporary name and moved into place only when both succeed, then described and given its manifest,
which links the family's reference and records what downstream needs (model shape, KV element size)
so nothing later re-parses the artifact or needs the checkpoint. Families supply the steps
(``edge.core.family.Converter``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from edge.core.checkpoint import Checkpoint
from edge.core.errors import OutputError
from edge.core.family import FAMILIES, ConvertContext, Converter, Family
from edge.core.formats import FormatRequest, parse_formats
from edge.core.fsutil import atomic_path, ensure_writable_dir
from edge.core.hashing import artifact_digest, tree_size
from edge.core.manifest import Artifact, Manifest, read_manifest, write_manifest
from edge.core.progress import NULL, Progress
from edge.core.registry import Registry
from edge.core.versions import tool_versions
from edge.datasets import load_dataset


def default_out_dir(ckpt: Checkpoint) -> Path:
    return Path("artifacts") / ckpt.name


def _estimate_bytes(ckpt: Checkpoint, requests: list[FormatRequest]) -> int:
    """Bytes the requested artifacts need, plus an F16 reference that may be added."""
    n = ckpt.parameter_count
    return int(sum(n * r.info.nominal_bpw / 8 for r in requests) + n * 2)


def convert(checkpoint: str | Path, formats: str | list[str], out: str | Path | None = None, *,
            verify: bool = True, allow_pickle: bool = False, threads: int | None = None,
            progress: Progress = NULL) -> list[Artifact]:
    requests = parse_formats(formats)
    ckpt = Checkpoint.open(checkpoint, allow_pickle=allow_pickle)
    by_family: dict[str, list[FormatRequest]] = defaultdict(list)
    for r in requests:
        by_family[r.info.family].append(r)
    converters = {fam: FAMILIES.get(fam).load("converter") for fam in by_family}
    for fam, conv in converters.items():  # refuse unsupported input before writing anything
        conv.check(ckpt, by_family[fam])
    out_dir = ensure_writable_dir(Path(out) if out else default_out_dir(ckpt))
    need, free = _estimate_bytes(ckpt, requests), shutil.disk_usage(out_dir).free
    if need > free:
        raise OutputError(f"not enough disk space in {out_dir}: about {need / 2**20:.0f} MiB needed, {free / 2**20:.0f} MiB free")
    progress.start("hashing the checkpoint", total=ckpt.total_bytes())
    source = {"name": ckpt.name, "path": str(ckpt.path), "architecture": ckpt.architecture,
              "content_sha256": ckpt.content_hash(on_bytes=lambda n: progress.update(advance=n)),
              "parameter_count": ckpt.parameter_count}
    text = load_dataset(None).text
    artifacts: list[Artifact] = []
    texts = request_texts(requests)
    recipes = _solve_recipes(ckpt, requests, threads, progress)
    for fam, reqs in by_family.items():
        with tempfile.TemporaryDirectory(prefix=f"edge-{fam}-") as scratch:
            ctx = ConvertContext(ckpt, out_dir, text, verify, threads, progress, Path(scratch), texts=texts,
                                 state={"recipes": recipes})
            artifacts += _convert_family(FAMILIES.get(fam), converters[fam], ctx, reqs, source)
    return artifacts


# parameters solved by a measured search before the conversion, each into a tensor-type plan (``types``):
# named lazily, the searches convert artifacts themselves (a layer that uses this one)
SEARCHES: Registry[Any] = Registry("recipe search")
SEARCHES.register_lazy("target_kld", "edge.recipes:solve")


def _solve_recipes(ckpt: Checkpoint, requests: list[FormatRequest], threads: int | None,
                   progress: Progress) -> dict[int, dict[str, Any]]:
    """Each request with a search parameter (``target_kld``) gets its plan in ``types``; returns the
    searches' records by the request's id (for the manifests' ``details.recipe``)."""
    out = {}
    for r in requests:
        for param in SEARCHES:
            if r.params.get(param):
                plan, record = SEARCHES.get(param)(ckpt.path, r, threads=threads, progress=progress)
                out[id(r)] = record
                if plan:
                    r.params["types"] = ";".join(x for x in (plan, r.params.get("types")) if x)
    return out


def request_texts(requests: list[FormatRequest]) -> dict[str, Any]:
    """The texts the requests' text parameters name (calibration text: ``?imatrix=wiki``), each loaded
    once, before anything is written: a missing file is refused here."""
    out: dict[str, Any] = {}
    for r in requests:
        for p in r.info.params:
            spec = r.params.get(p.name)
            if p.text and spec and spec not in out:
                out[spec] = load_dataset(spec)
    return out


def _convert_family(family: Family, conv: Converter, ctx: ConvertContext, requests: list[FormatRequest],
                    source: dict) -> list[Artifact]:
    ref_req, asked = conv.reference_for(ctx.ckpt, requests)
    plan = [ref_req] + [r for r in requests if r.name != ref_req.name]
    conv.prepare(ctx)
    reference: Artifact | None = None
    out: list[Artifact] = []
    for req in plan:
        is_ref = req is ref_req
        final = ctx.out_dir / conv.file_name(ctx.ckpt, req, added=is_ref and not asked)
        if is_ref and not asked and (kept := _kept_reference(final, req, family, source)) is not None:
            ctx.progress.note(f"{final.name}: the {family.name} float artifact from an earlier run, same source and tools: kept")
            reference = kept
            continue
        with atomic_path(final) as tmp:
            details = conv.build(ctx, req, tmp, None if is_ref else reference)
            if id(req) in ctx.state["recipes"]:
                details = {**details, "recipe": ctx.state["recipes"][id(req)]}
            checked = conv.verify(ctx, req, tmp, strict=is_ref and ctx.verify)
            if checked.summary:
                ctx.progress.note(f"{final.name}: {checked.summary}")
        art = Artifact(final, _manifest(family, conv, ctx, req, final, source, details, checked.record,
                                        None if is_ref else reference))
        out.append(art)
        if is_ref:
            reference = art
            if not asked:
                ctx.progress.note(f"also wrote {final.name}: the {family.name} float artifact, verified against "
                                  "transformers, that the family's other formats are built after (edge bench compares "
                                  "every artifact with the source checkpoint itself)")
    return out


def _kept_reference(final: Path, req: FormatRequest, family: Family, source: dict) -> Artifact | None:
    """The float artifact an earlier conversion into the same folder wrote, when it was made as this one
    would be (the same format, source content and tool versions) and is whole (its digest matches)."""
    m = read_manifest(final) if final.exists() else None
    if m is None or m.format != req.name or m.source.get("content_sha256") != source["content_sha256"] \
            or m.tools != tool_versions(*family.tools):
        return None
    return Artifact(final, m) if artifact_digest(final)[0] == m.sha256 else None


def _manifest(family: Family, conv: Converter, ctx: ConvertContext, req: FormatRequest, path: Path, source: dict,
              details: dict, verification: dict | None, reference: Artifact | None) -> Manifest:
    ctx.progress.start(f"sha256 {path.name}", total=tree_size(path))
    digest, size = artifact_digest(path, on_bytes=lambda n: ctx.progress.update(advance=n))
    desc = conv.describe(ctx, req, path)
    n_params = desc.parameter_count or ctx.ckpt.parameter_count
    bpw = desc.bits_per_weight if desc.bits_per_weight is not None else 8.0 * size / max(n_params, 1)
    ref = None if reference is None else {"artifact": reference.manifest.artifact, "sha256": reference.manifest.sha256,
                                          "format": reference.manifest.format}
    m = Manifest(
        format=req.name, family=family.name, variant=req.info.variant, artifact=path.name, size_bytes=size,
        sha256=digest, bits_per_weight=round(bpw, 4), parameter_count=n_params, source=source,
        tools=tool_versions(*family.tools), params=dict(req.params), reference=ref, verification=verification,
        details={**details, **desc.details},
        model={**ctx.ckpt.hparams.shape(), "kv_bytes": family.kv_bytes, **desc.model})
    write_manifest(path, m)
    return m
