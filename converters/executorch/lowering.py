"""Lowering to XNNPACK in a fraction of ``export_llm``'s time, to the same delegated program.

Where ``export_llm``'s time goes on the demo model (2 cores, cProfile): ``to_edge_transform_and_lower``
decomposes the whole program five times (once, then twice per partitioner), and XNNPACK's
preprocessing runs its seventeen graph passes over every partition, each pass re-tracing the
partition with fake tensors, and two of them (bilinear upsampling, SDPA) tracing their search patterns
anew for every partition. edge lowers the same graph with the same partitioners but
decomposes it twice instead of five times (the partitioners' operators kept whole in one pass where
their per-node check accepts every such node anyway), and skips in each partition the XNNPACK passes
whose operators are not in it (they find nothing to rewrite there). On the models tested the program
written is byte for byte the one ``export_llm``'s lowering writes (tests/test_et_lowering.py checks it).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

# XNNPACK pass (class name) → the operators it rewrites: absent from a partition, the pass is a no-op
# there and is skipped (names as ``str(node.target)`` spells them, matched as substrings)
PASS_TRIGGERS: dict[str, tuple[str, ...]] = {
    "ConvertToUpsampleBilinear2d": ("_unsafe_index", "index.Tensor", "upsample"),
    "ConvertToSDPAPass": ("_softmax", "scaled_dot_product"),
    "FuseBatchNormPass": ("batch_norm",),
    "DecomposeBatchNorm": ("batch_norm",),
    "Conv1dUnsqueezePass": ("convolution",),
    "PReLUReshapePass": ("prelu",),
    "InsertPadQDQPass": ("constant_pad_nd",),
    "PropagateCustomMetaPass": ("quantize",),
    "FuseActivationPass": ("relu", "hardtanh"),
    "RemoveGetItemPass": ("max_pool2d_with_indices", "aten.max.dim"),
    "RemoveRedundantCopyPass": ("_to_copy",),
    "DecomposeConcatenate": ("cat",),
    "XNNPACKRemoveCloneOpsTransform": ("clone",),
    "DimOrderOpsRevertPass": ("dim_order",),
}


def needed(pass_name: str, targets: set[str]) -> bool:
    """Whether the XNNPACK pass ``pass_name`` can change a partition whose call targets are ``targets``."""
    triggers = PASS_TRIGGERS.get(pass_name)
    return triggers is None or any(t in name for t in triggers for name in targets)


@contextmanager
def _only_needed_passes() -> Iterator[None]:
    from executorch.backends.xnnpack import _passes

    manager = _passes.XNNPACKPassManager
    init = manager.__init__

    def pruned_init(self, exported_program, passes=None):
        init(self, exported_program, passes)
        targets = {str(n.target) for n in exported_program.graph.nodes if n.op == "call_function"}
        self.passes = [p for p in self.passes if needed(p.__name__, targets)]

    manager.__init__ = pruned_init
    try:
        yield
    finally:
        manager.__init__ = init


def _unchecked(partitioner):
    """The partitioner, telling ``to_edge_transform_and_lower`` to keep its operators whole without its
    per-node check where that check accepts every such node of the program anyway: then one
    decomposition keeps the same nodes that two re-tracing ones per partitioner would (its own path for
    partitioners without that check). Where the check rejects a node (int8 weight-only linears, which
    XNNPACK does not take), the checked path is kept."""
    keep = partitioner.ops_to_not_decompose

    def ops_to_not_decompose(program):
        ops, check = keep(program)
        if check is None:
            return ops, None
        wanted = set(ops)
        try:
            accepted = all(check(n) for n in program.graph.nodes if n.op == "call_function" and n.target in wanted)
        except Exception:  # a check that cannot judge a node here: keep ExecuTorch's own path
            accepted = False
        return (ops, None) if accepted else (ops, check)

    partitioner.ops_to_not_decompose = ops_to_not_decompose
    return partitioner


def lower(manager, partitioners: list, *, fast: bool = True):
    """``LLMEdgeManager`` after ``export()`` → lowered to XNNPACK with ``partitioners`` (in order);
    ``fast=False`` is ``export_llm``'s own lowering, for comparison."""
    if not fast:
        return manager.to_edge_transform_and_lower(partitioners)
    with _only_needed_passes():
        return manager.to_edge_transform_and_lower([_unchecked(p) for p in partitioners])
