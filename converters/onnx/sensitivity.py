"""Per-layer sensitivity for ONNX: the checkpoint built by onnxruntime-genai's builder with one group of
nodes quantized (every other node excluded from quantization, kept float), through the builder's own
per-node overrides, each folder run by onnxruntime-genai (about 8 s a build for a 135M model)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from converters.onnx.quant import EMBEDDING_NODE, LM_HEAD_NODE, node_names


def groups(names: list[str], by: str) -> list[tuple[str, str]]:
    """(label, regex) of the builder's weight nodes: ``layer`` (one decoder layer each) or ``tensor`` (each
    MatMul of a layer), plus lm_head and the embedding."""
    blocks = sorted({int(m.group(1)) for n in names if (m := re.match(r"/model/layers\.(\d+)/", n))})
    out = []
    for b in blocks:
        if by == "layer":
            out.append((f"layers.{b}", rf"^/model/layers\.{b}/"))
        else:
            out += [(n.removeprefix("/model/").removesuffix("/MatMul"), rf"^{re.escape(n)}$")
                    for n in names if n.startswith(f"/model/layers.{b}/")]
    return out + [(label, rf"^{re.escape(n)}$") for label, n in (("lm_head", LM_HEAD_NODE), ("embed_tokens", EMBEDDING_NODE))
                  if n in names]


def isolate(regex: str) -> list[tuple[str, str]]:
    return [(f"^(?!{regex.lstrip('^')})", "float")]


class OnnxGroups:
    """The family's sensitivity part (``Family.sensitivity``): real builder folders, run by onnxruntime-genai."""

    reference_format = "onnx:fp32"
    promote_default = "int8"

    def weight_names(self, checkpoint: Path, reference: Path) -> list[str]:
        return node_names(reference)

    groups = staticmethod(groups)
    isolate = staticmethod(isolate)

    @staticmethod
    def promote(group_regex: str, to: str) -> tuple[str, str]:
        return group_regex.lstrip("^"), to

    @contextmanager
    def quantized(self, checkpoint: Path, reference: Path, req, types: list[tuple[str, str]] | None,
                  scratch: Path, threads: int | None, texts: dict | None = None) -> Iterator[tuple[object, int]]:
        """(onnxruntime-genai on the builder's folder for ``req`` with ``types`` ahead of its own, the folder's
        size); ``req`` None: the float reference."""
        from converters.onnx.convert import builder_options, plan_nodes, run_builder
        from converters.onnx.runtime import OgModel
        from edge.core.checkpoint import Checkpoint
        from edge.core.hashing import tree_size

        folder = reference
        if req is not None:
            ckpt = Checkpoint.open(checkpoint)
            _, plan = plan_nodes(req, ckpt, reference, types or [])
            folder = scratch / "probe"
            run_builder(ckpt, req.info.spec.recipe["precision"], builder_options(req, ckpt, plan), folder,
                        scratch / "cache", req.name, plan.overrides if plan else [])
        try:
            with OgModel(folder, n_threads=threads) as m:
                yield m, tree_size(folder)
        finally:
            if folder != reference:
                shutil.rmtree(folder, ignore_errors=True)


PLAN = OnnxGroups()
