"""What an onnxruntime-genai model folder reads from memory per generated token: the initializers of its
``model.onnx`` (whose data may sit in ``model.onnx.data``), sized from their shapes and types — not the
folder's size, which also holds the tokenizer and config files.

Every initializer is read once per token except an embedding table that is only gathered (the data of
the Gather / GatherBlockQuantized that takes ``input_ids``, traced back through reshapes and transposes
to its initializers): one row per token, unless the same initializer also feeds another node (the
builder's shared embeddings: the lm_head, read whole).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from converters.onnx.tables import GATHER_TABLE_INPUTS, PACKED_BITS, PASS_THROUGH, TOKEN_INPUT


def initializer_bytes(t) -> int:
    """Bytes of one initializer's data, from its dims and type (4-bit types pack two to a byte)."""
    import numpy as np
    from onnx import helper

    n = 1
    for d in t.dims:
        n *= d
    bits = PACKED_BITS.get(t.data_type)
    if bits:
        return (n * bits + 7) // 8
    return n * np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize


def _token_tensors(graph) -> set[str]:
    """``input_ids`` and what only casts or reshapes it."""
    ids = {TOKEN_INPUT}
    for node in graph.node:
        if node.op_type in PASS_THROUGH and node.input and node.input[0] in ids:
            ids.update(node.output)
    return ids


def _initializer_of(name: str, producers: dict[str, Any], inits: set[str], path: set[str]) -> str | None:
    """The initializer ``name`` is, or is only reshaped / transposed from (the nodes on the way go in ``path``)."""
    while name not in inits:
        node = producers.get(name)
        if node is None or node.op_type not in PASS_THROUGH:
            return None
        path.add(node.name)
        name = node.input[0]
    return name


def embedding_tables(graph, inits: set[str]) -> tuple[set[str], set[str]]:
    """The initializers gathered by token id, and the names of the nodes on the way from them to the gather."""
    ids = _token_tensors(graph)
    producers = {out: node for node in graph.node for out in node.output}
    tables: set[str] = set()
    path: set[str] = set()
    for node in graph.node:
        picks = GATHER_TABLE_INPUTS.get(node.op_type)
        if picks is None or len(node.input) < 2 or node.input[1] not in ids:
            continue
        if any(a.name == "axis" and a.i != 0 for a in node.attribute):
            continue
        path.add(node.name)
        for i in picks:
            if i < len(node.input) and node.input[i]:
                found = _initializer_of(node.input[i], producers, inits, path)
                if found is not None:
                    tables.add(found)
    return tables, path


def _vocab(folder: Path, dims: list[list[int]]) -> int:
    try:
        return int(json.loads((folder / "genai_config.json").read_text())["model"]["vocab_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return max((d[0] for d in dims if d), default=1)


def weights_per_token(folder: Path) -> dict[str, Any]:
    """``weight_bytes_per_token`` and its ``weight_basis`` for the manifest's model dict."""
    import onnx

    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
    sizes = {t.name: initializer_bytes(t) for t in graph.initializer}
    total = sum(sizes.values())
    tables, path = embedding_tables(graph, set(sizes))
    if not tables:
        return {"weight_bytes_per_token": total, "weight_basis": "model.onnx initializers (no token embedding Gather)"}
    if any(i in tables for node in graph.node if node.name not in path for i in node.input):
        return {"weight_bytes_per_token": total,
                "weight_basis": "model.onnx initializers; embedding read whole (shared with the lm_head)"}
    rows = _vocab(folder, [list(t.dims) for t in graph.initializer if t.name in tables])
    emb = sum(sizes[n] for n in tables)
    return {"weight_bytes_per_token": total - emb + emb // max(rows, 1),
            "weight_basis": "model.onnx initializers; embedding one row per token (gathered)"}
