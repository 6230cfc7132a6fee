"""onnxruntime-genai behind the interface the measurement protocol and the verification use (that of
``converters.gguf.runtime.LlamaModel``): a Generator whose KV cache is rewound to 0 for a new
sequence, logits read from the model's ``logits`` output (the builder's graph computes every appended
position's; only the last one's is copied out unless more are asked for), threads set through the
session-options overlay. Text goes through the folder's Hugging Face ``tokenizer.json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.measure.runtime import HfTokenizerText, RuntimeModel, default_threads
from edge.core.jobs import Job
from edge.core.errors import ArtifactError, BenchError


class OgModel(HfTokenizerText, RuntimeModel):
    def __init__(self, folder: str | Path, *, n_threads: int | None = None, max_length: int = 2048) -> None:
        import onnxruntime_genai as og

        self.path = Path(folder)
        if not (self.path / "genai_config.json").exists():
            raise ArtifactError(f"{self.path} has no genai_config.json: not an onnxruntime-genai model folder")
        self.n_threads = int(n_threads or default_threads())
        genai = json.loads((self.path / "genai_config.json").read_text())
        self.n_ctx = min(max_length, int(genai["model"].get("context_length", max_length)))
        self.n_vocab = int(genai["model"]["vocab_size"])
        try:
            cfg = og.Config(str(self.path))
            cfg.overlay(json.dumps({"model": {"decoder": {"session_options": {
                "intra_op_num_threads": self.n_threads, "inter_op_num_threads": 1}}}}))
            self._model = og.Model(cfg)
            self._params = og.GeneratorParams(self._model)
            self._params.set_search_options(max_length=self.n_ctx)
            self._gen = og.Generator(self._model, self._params)
        except Exception as exc:  # onnxruntime reports load failures as RuntimeError/OrtException text
            raise ArtifactError(f"{self.path.name}: onnxruntime-genai cannot load this model ({exc})") from None
        self._pos = 0
        tok_file = self.path / "tokenizer.json"
        if not tok_file.exists():
            raise ArtifactError(f"{self.path} has no tokenizer.json")
        self._load_tokenizer(tok_file)

    def clear(self) -> None:
        if self._pos:
            try:
                self._gen.rewind_to(0)
            except RuntimeError:  # a sliding-window cache has evicted the start: a new generator, same model
                import onnxruntime_genai as og

                self._gen = og.Generator(self._model, self._params)
            self._pos = 0

    def rewind(self, n: int) -> None:
        if n == 0:
            self.clear()
        elif n < self._pos:
            try:
                self._gen.rewind_to(n)
            except RuntimeError as exc:
                raise BenchError(f"{self.path.name}: onnxruntime-genai cannot rewind to position {n} ({exc})") from None
            self._pos = n

    def decode(self, tokens: Sequence[int], *, start: int = 0, logits_from: int | None = None) -> np.ndarray | None:
        n = len(tokens)
        if start + n > self.n_ctx:
            raise BenchError(f"{n} tokens at position {start} exceed the model's context of {self.n_ctx}")
        if start != self._pos:
            if start != 0:
                raise BenchError(f"onnxruntime-genai continues a sequence at {self._pos}, not at {start}")
            self.clear()
        self._gen.append_tokens(np.asarray([list(tokens)], dtype=np.int32))
        self._pos = start + n
        if logits_from is None:  # the last position's only, as llama.cpp returns: no copy of every row
            return np.asarray(self._gen.get_logits(), dtype=np.float32).reshape(1, -1)
        if logits_from >= n:
            return None
        logits = self._gen.get_output("logits")[0]   # [n, vocab]: every appended position (a copy)
        return np.asarray(logits[logits_from:], dtype=np.float32)

    def close(self) -> None:
        self._gen = None
        self._model = None


def open_runtime(job: Job) -> OgModel:
    """The model folder a bench job measures, its generator long enough for every part of the protocol."""
    return OgModel(job.artifact, n_threads=job.config.threads, max_length=max(job.config.n_ctx + 1, 2048))
