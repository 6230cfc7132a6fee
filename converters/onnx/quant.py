"""Per-node quantization for onnxruntime-genai's builder: ``?types=PATTERN=int8|int4|float`` (a regex searched
in the graph's node names) resolved against the float graph's MatMul and Gather nodes into the builder's
own per-node overrides (``--target_options``' ``quant_config.weights.overrides``: an exact node name with a
type, or excluded from quantization), and ``?lm_head=8`` (its ``last_matmul`` preset).

A model with tied embeddings shares one 4-bit table between embedding and lm_head in the builder's plain
int4; once any node differs from the rest, edge unties them (a shared table with mixed types builds models
onnxruntime cannot load) and quantizes the embedding's Gather on its own, 4-bit, unless excluded.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from edge.core.errors import EdgeError
from edge.core.overrides import parse

VALUES = ("int8", "int4", "float")
EMBEDDING_NODE = "/model/embed_tokens/Gather"
LM_HEAD_NODE = "/lm_head/MatMul"
QUANTIZED_OPS = ("MatMul", "Gather")


def parse_types(raw: str | None, fmt: str) -> list[tuple[str, str]]:
    """``PATTERN=int8|int4|float;...`` (a regex searched in the builder's node names), or ``@recipe.txt``."""
    return parse(raw, fmt, VALUES, "layers\\.0/=int8")


def node_names(folder: Path) -> list[str]:
    """The weight-bearing nodes of a float graph the builder wrote (MatMul, and the embedding's Gather)."""
    import onnx

    graph = onnx.load(str(folder / "model.onnx"), load_external_data=False).graph
    weights = {t.name for t in graph.initializer}
    return [n.name for n in graph.node if n.op_type in QUANTIZED_OPS and any(i in weights for i in n.input)]


def overrides(names: list[str], types: list[tuple[str, str]], base: str) -> list[dict]:
    """The builder's overrides for the nodes a ``types`` entry decides (the first match wins), the rest left
    to ``base``; refuses what the builder cannot build, in one line."""
    out = []
    for name in names:
        value = next((v for p, v in types if re.search(p, name)), None)
        if value is None or value == base:
            continue
        if name.endswith("/Gather") and value == "int8":
            raise EdgeError(f"{name}: onnxruntime's quantized Gather takes 4-bit tables only (int4 or float)")
        out.append({"match": {"name": name}, "exclude": True} if value == "float" else {"match": {"name": name}, "type": value})
    return out


@dataclass(frozen=True)
class NodePlan:
    overrides: list[dict]     # the builder's per-node overrides (MatMuls)
    untie: bool               # a tied embedding made its own table (shared_embeddings=false)
    gather: bool              # the embedding's Gather quantized on its own, 4-bit (op_types_to_quantize)


def node_plan(names: list[str], types: list[tuple[str, str]], base: str, tied: bool) -> NodePlan:
    """``types`` over the graph's weight nodes. The embedding is the builder's to quantize: shared with a
    4-bit lm_head when tied (the plain int4), else float; an entry for it makes it 4-bit or float on its
    own, and any other override unties a tied table (kept 4-bit, as it was)."""
    emb = next((v for p, v in types if re.search(p, EMBEDDING_NODE)), None)
    over = overrides([n for n in names if n != EMBEDDING_NODE], types, base)
    untie = tied and (bool(over) or emb == "float")
    quantized = emb == "int4" or (emb is None and tied)
    return NodePlan(over, untie, quantized and (untie or not tied))


def target_options(over: list[dict]) -> str:
    return json.dumps({"quant_config": {"weights": {"overrides": over}}}, separators=(",", ":"))


def census(names: list[str], over: list[dict], base: str) -> dict[str, list[str] | int]:
    """The plan as the manifest records it: how many nodes at the base type, and the others by name."""
    by_name = {o["match"]["name"]: "float" if o.get("exclude") else o["type"] for o in over}
    out: dict[str, list[str] | int] = {base: sum(n not in by_name for n in names)}
    for name, t in by_name.items():
        out.setdefault(t, []).append(name)
    return out
