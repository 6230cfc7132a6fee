"""What a finished ``.pte`` program reads from memory per generated token, from its own flatbuffer.

A program from this converter keeps its weights in two places: the constants outside the delegate
(``tok_embeddings``, norms, RoPE tables; sized from each constant tensor's shape and type) and the
XNNPACK delegates' weights (named-data segments). Every weight is read once per token except the
embedding table, which is only gathered: one row per token, unless the same constant also feeds another
call (a tied output layer, read whole). Only the flatbuffer head of the file is read, not its segments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from converters.executorch.tables import ELEMENT_BYTES, EMBEDDING_OP

HEAD_BYTES = 64              # enough for the flatbuffer header and ExecuTorch's extended header


def read_program(path: Path):
    """The program's flatbuffer (``executorch.exir.schema.Program``), without its data segments."""
    from executorch.exir._serialize._program import _flatbuffer_to_program, _get_extended_header

    with open(path, "rb") as fh:
        eh = _get_extended_header(fh.read(HEAD_BYTES))
        fh.seek(0)
        return _flatbuffer_to_program(fh.read(eh.program_size) if eh else fh.read())


def _tensor_bytes(t) -> int:
    from executorch.exir.scalar_type import ScalarType

    n = 1
    for d in t.sizes:
        n *= d
    return n * ELEMENT_BYTES[ScalarType(t.scalar_type).name]


def _constants(plan) -> dict[int, Any]:
    """Value index -> tensor, for the plan's constant tensors (stored data, no planned allocation)."""
    return {i: v.val for i, v in enumerate(plan.values)
            if type(v.val).__name__ == "Tensor" and v.val.data_buffer_idx > 0 and v.val.allocation_info is None}


def _calls(plan) -> list[tuple[str, list[int]]]:
    """(operator name or "delegate", argument value indices) of every instruction that calls something."""
    out = []
    for chain in plan.chains:
        for ins in chain.instructions:
            args = ins.instr_args
            kind = type(args).__name__
            if kind == "KernelCall":
                out.append((plan.operators[args.op_index].name, list(args.args)))
            elif kind == "DelegateCall":
                out.append(("delegate", list(args.args)))
    return out


def weights_per_token(path: Path, method: str = "forward") -> dict[str, Any]:
    """``weight_bytes_per_token`` and its ``weight_basis`` for the manifest's model dict."""
    program = read_program(path)
    plan = next(p for p in program.execution_plan if p.name == method)
    constants = _constants(plan)
    named = sum(program.segments[n.segment_index].size for n in program.named_data or [])  # none: no delegate weights
    total = named + sum(_tensor_bytes(t) for t in constants.values())
    calls = _calls(plan)
    table = {i for op, args in calls if EMBEDDING_OP in op for i in args if i in constants}
    if not table:
        return {"weight_bytes_per_token": total, "weight_basis": "program constants + delegate weights (no embedding op)"}
    if any(i in table for op, args in calls if EMBEDDING_OP not in op for i in args):
        return {"weight_bytes_per_token": total,
                "weight_basis": "program constants + delegate weights; embedding read whole (tied)"}
    rows = max(constants[i].sizes[0] if constants[i].sizes else 1 for i in table)
    emb = sum(_tensor_bytes(constants[i]) for i in table)
    return {"weight_bytes_per_token": total - emb + emb // rows,
            "weight_basis": "program constants + delegate weights; embedding one row per token (gathered)"}
