"""The importance matrix llama.cpp's quantizer weighs its rounding error with, computed from calibration
text on the source checkpoint.

llama-imatrix's semantics: for each weight matrix of a block (``blk.N.*``; the output layer and the
embedding are not collected, as llama-imatrix does without ``--process-output``), used as ``x @ W.T``, the
mean over every token of the calibration text of ``x_j²`` for each input column ``j``. The text is one
token stream (the source tokenizer, llama.cpp's BOS rule) cut into chunks of ``n_ctx`` tokens whose first
token is BOS, as llama-imatrix cuts it; every token of every chunk counts. The activations are
transformers' own, in fp32, on the source checkpoint; llama.cpp then reads the matrix through
``llama_model_quantize_params.imatrix`` (an array of ``{name, data, size}`` ending in a null name).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.errors import ConversionError

N_CTX = 512          # llama-imatrix's default context
MAX_CHUNKS = 64      # llama-imatrix runs the whole text; edge stops here by default (32k tokens)


@dataclass
class Imatrix:
    """Per GGUF tensor name, the mean of squared inputs per column; and what it was computed from."""

    data: dict[str, np.ndarray]
    tokens: int
    chunks: int
    n_ctx: int

    def as_c_array(self) -> Any:
        """A ``llama_model_imatrix_data[]`` ending in a null name (the arrays kept alive on the result)."""
        import llama_cpp

        arr = (llama_cpp.llama_model_imatrix_data * (len(self.data) + 1))()
        keep = []
        for i, (name, values) in enumerate(sorted(self.data.items())):
            v = np.ascontiguousarray(values, dtype=np.float32)
            keep.append(v)
            arr[i].name = name.encode()
            arr[i].data = v.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            arr[i].size = v.size
        arr[len(self.data)].name = None
        arr._keep = keep  # type: ignore[attr-defined]
        return arr


def _gguf_names(model: Any, checkpoint_arch: str, n_layer: int) -> dict[str, str]:
    """HF Linear module name in the blocks -> GGUF tensor name (gguf-py's own map, as the writer uses)."""
    import gguf
    import torch

    from converters.gguf.writer import arch_spec

    names = gguf.get_tensor_name_map(getattr(gguf.MODEL_ARCH, arch_spec(checkpoint_arch).gguf_arch), n_layer)
    out = {}
    for mod_name, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            new = names.get_name(mod_name + ".weight", try_suffixes=(".weight",))
            if new and new.startswith("blk."):
                out[mod_name] = new
    return out


def compute(checkpoint: Path, tokens: np.ndarray, bos: int | None, *, n_ctx: int = N_CTX,
            max_chunks: int | None = MAX_CHUNKS, n_threads: int | None = None, on_chunk=None) -> Imatrix:
    """The importance matrix of ``tokens`` (a token stream: BOS first when the tokenizer adds one) on the
    checkpoint's transformers model in fp32. ``on_chunk(i, n)`` reports progress."""
    from edge.measure.activations import collect

    def names(model: Any) -> dict[str, str]:
        mapping = _gguf_names(model, model.config.architectures[0], model.config.num_hidden_layers)
        if not mapping:
            raise ConversionError(f"{checkpoint}: no block weights found to compute an importance matrix for")
        return mapping

    stats = collect(checkpoint, tokens, bos, names, statistic="sumsq", n_ctx=n_ctx, max_chunks=max_chunks,
                    n_threads=n_threads, on_chunk=on_chunk, purpose="an importance matrix")
    data = {name: v.numpy().astype(np.float32) for name, v in stats.data.items()}
    return Imatrix(data, stats.tokens, stats.chunks, stats.n_ctx)


def read_llama_imatrix(path: Path) -> dict[str, np.ndarray]:
    """llama-imatrix's GGUF output (``<name>.in_sum2`` and ``<name>.counts``) as llama-quantize reads it:
    the sums divided by the counts (for checks against edge's own)."""
    import gguf

    r = gguf.GGUFReader(str(path))
    tensors = {t.name: np.asarray(t.data, dtype=np.float64).reshape(-1) for t in r.tensors}
    out = {}
    for name, sums in tensors.items():
        if name.endswith(".in_sum2"):
            base = name[: -len(".in_sum2")]
            count = tensors[base + ".counts"]
            out[base] = (sums / count[0]).astype(np.float32)
    return out
