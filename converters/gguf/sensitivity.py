"""Per-layer sensitivity for GGUF: one group of tensors quantized at a time, every other tensor kept at
f16, by llama.cpp's own quantizer (its ftype's own rules decide the group's types; the rest is pinned by a
tensor-type override whose regex matches every name outside the group)."""

from __future__ import annotations

import re
from pathlib import Path

from converters.gguf.quantize import quantize

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
    types = None if regex is None else [(f"^(?!{regex.lstrip('^')})", "f16")]
    quantize(reference, dest, variant, n_threads=n_threads, types=types)


class GgufGroups:
    """The family's sensitivity part (``Family.sensitivity``): its weight tensors' groups, one group
    quantized alone, and the float reference the groups are quantized from."""

    reference_format = "gguf:f16"

    def weight_names(self, reference: Path) -> list[str]:
        import gguf

        return [t.name for t in gguf.GGUFReader(str(reference)).tensors if len(t.shape) > 1]

    groups = staticmethod(groups)
    quantize_group = staticmethod(quantize_group)

    @staticmethod
    def quantize_types(reference: Path, dest: Path, variant: str, types: list[tuple[str, str]], *, n_threads: int = 0) -> None:
        quantize(reference, dest, variant, n_threads=n_threads, types=types)

    @staticmethod
    def promote(group_regex: str, to: str) -> tuple[str, str]:
        """The override that keeps a group at ``to`` (a recipe's step)."""
        return group_regex.lstrip("^"), to

    def open(self, path: Path, n_threads: int | None):
        from converters.gguf.runtime import LlamaModel

        return LlamaModel(path, n_ctx=512, n_threads=n_threads)


PLAN = GgufGroups()
