"""Per-layer sensitivity for GGUF: one group of tensors quantized at a time, every other tensor kept at
f16, by llama.cpp's own quantizer (its ftype's own rules decide the group's types; the rest is pinned by a
tensor-type override whose regex matches every name outside the group)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from converters.gguf.quantize import parse_types, quantize

# the groups a ranking is made of, by granularity: (label pattern over a GGUF tensor name) -> group label
KINDS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def groups(names: list[str], by: str) -> list[tuple[str, str]]:
    """(label, regex) of the groups of ``names`` (GGUF weight tensors): ``layer`` (one block each, plus the
    embedding / output) or ``tensor`` (each block's q, k, v, o, gate, up, down)."""
    blocks = sorted({int(m.group(1)) for n in names if (m := re.match(r"blk\.(\d+)\.", n))})
    out = []
    for b in blocks:
        if by == "layer":
            out.append((f"blk.{b}", rf"^blk\.{b}\."))
        else:
            out += [(f"blk.{b}.{k}", rf"^blk\.{b}\.{k}\.") for k in KINDS if f"blk.{b}.{k}.weight" in names]
    out += [(n.removesuffix(".weight"), rf"^{re.escape(n)}$") for n in ("token_embd.weight", "output.weight") if n in names]
    return out


def quantize_group(reference: Path, dest: Path, variant: str, regex: str | None, *, n_threads: int = 0) -> None:
    """``reference`` (f16/f32 GGUF) with only the tensors matching ``regex`` quantized as ``variant``
    (None: all of them, the plain ``variant``)."""
    quantize(reference, dest, variant, n_threads=n_threads, types=None if regex is None else isolate(regex))


def isolate(regex: str) -> list[tuple[str, str]]:
    """The override that pins every tensor outside the group at f16."""
    return [(f"^(?!{regex.lstrip('^')})", "f16")]


class GgufGroups:
    """The family's sensitivity part (``Family.sensitivity``): its weight tensors' groups, the checkpoint
    quantized with per-group types by llama.cpp's quantizer from the float reference, run by llama.cpp."""

    reference_format = "gguf:f16"
    promote_default = "q8_0"

    def weight_names(self, checkpoint: Path, reference: Path) -> list[str]:
        import gguf

        return [t.name for t in gguf.GGUFReader(str(reference)).tensors if len(t.shape) > 1]

    groups = staticmethod(groups)
    isolate = staticmethod(isolate)

    @staticmethod
    def promote(group_regex: str, to: str) -> tuple[str, str]:
        """The override that keeps a group at ``to`` (a recipe's step)."""
        return group_regex.lstrip("^"), to

    @contextmanager
    def quantized(self, checkpoint: Path, reference: Path, req, types: list[tuple[str, str]] | None,
                  scratch: Path, threads: int | None, texts: dict | None = None) -> Iterator[tuple[object, int]]:
        """(llama.cpp's runtime on the reference quantized as ``req`` — its importance matrix (from ``texts``,
        the request's texts by name) and its own overrides after ``types`` — and the file's size); ``req``
        None: the reference itself."""
        from converters.gguf.runtime import LlamaModel

        path = reference
        if req is not None:
            path = scratch / f"probe{reference.suffix}"
            own = parse_types(req.params.get("types") or "", req.name)
            quantize(reference, path, req.info.variant, n_threads=threads or 0, types=[*(types or []), *own] or None,
                     imatrix=_imatrix(checkpoint, req, texts or {}, threads))
        try:
            with LlamaModel(path, n_ctx=512, n_threads=threads) as m:
                yield m, path.stat().st_size
        finally:
            if path != reference:
                path.unlink(missing_ok=True)


_IMATRICES: dict[tuple, object] = {}   # (checkpoint, text digest, chunks) -> the last importance matrix


def _imatrix(checkpoint: Path, req, texts: dict, threads: int | None):
    """The request's importance matrix (``?imatrix=``), computed once per text and chunk count."""
    from converters.gguf.imatrix import compute
    from converters.gguf.tables import IMATRIX_CHUNKS
    from edge.measure.tokens import token_stream

    spec = req.params.get("imatrix")
    if not spec:
        return None
    chunks = int(req.params.get("imatrix_chunks") or IMATRIX_CHUNKS.default)
    key = (str(checkpoint), texts[spec].sha256, chunks)
    if key not in _IMATRICES:
        stream = token_stream(checkpoint, texts[spec].text)
        _IMATRICES.clear()
        _IMATRICES[key] = compute(checkpoint, stream.ids, stream.bos, max_chunks=chunks, n_threads=threads)
    return _IMATRICES[key]


PLAN = GgufGroups()
