"""A thin, explicit layer over llama.cpp's C API (through llama-cpp-python's ctypes bindings).

Used by the GGUF verifier and the GGUF bench runner. It does exactly what llama-bench and
llama-perplexity do: batches of tokens at explicit positions, logits only where asked, KV cache
cleared between repetitions. llama.cpp's own log lines are kept in a ring buffer (not printed) so an
error can quote the reason llama.cpp gave.
"""

from __future__ import annotations

import ctypes
from collections import deque
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edge.measure.runtime import RuntimeModel, default_threads
from edge.core.jobs import Job
from edge.core.errors import ArtifactError, BenchError

_LOG: deque[str] = deque(maxlen=50)
_initialized = False
_log_cb = None  # the ctypes callback must stay referenced


def init_backend() -> None:
    """Route llama.cpp's log into the ring buffer and initialise its backend (once per process)."""
    global _initialized, _log_cb
    if _initialized:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback
    def _collect(level, text, user_data):  # pragma: no cover - called from C
        line = text.decode("utf-8", "replace").rstrip()
        if line:
            _LOG.append(line)

    _log_cb = _collect
    llama_cpp.llama_log_set(_log_cb, ctypes.c_void_p(0))
    llama_cpp.llama_backend_init()
    _initialized = True


def last_log(n: int = 3) -> str:
    lines = [line for line in _LOG if line.strip()]
    return " | ".join(lines[-n:])


class LlamaModel(RuntimeModel):
    """One GGUF model with one context of ``n_ctx`` tokens."""

    def __init__(self, path: str | Path, *, n_ctx: int = 512, n_batch: int = 512, n_threads: int | None = None,
                 use_mmap: bool = True, f32_kv_cache: bool = False, perf_counters: bool = False) -> None:
        init_backend()
        import llama_cpp

        self._lib = llama_cpp
        self.path = Path(path)
        mparams = llama_cpp.llama_model_default_params()
        mparams.use_mmap = use_mmap
        mparams.n_gpu_layers = 0
        self._model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), mparams)
        if not self._model:
            raise ArtifactError(f"{self.path}: llama.cpp cannot load this GGUF ({last_log() or 'no reason given'})")
        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = n_ctx
        cparams.n_batch = n_batch
        cparams.n_ubatch = n_batch
        cparams.n_threads = cparams.n_threads_batch = n_threads or default_threads()
        cparams.no_perf = not perf_counters  # llama.cpp's own eval timers (benchmarks/bench_comparable.py reads them)
        if f32_kv_cache:  # exact attention for verification; the bench keeps llama.cpp's defaults
            cparams.type_k = cparams.type_v = llama_cpp.GGML_TYPE_F32
            cparams.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self._ctx = llama_cpp.llama_init_from_model(self._model, cparams)
        if not self._ctx:
            llama_cpp.llama_model_free(self._model)
            raise BenchError(f"{self.path}: llama.cpp could not create a context ({last_log()})")
        self.n_ctx = n_ctx
        self.n_batch = n_batch
        self.n_threads = int(cparams.n_threads)
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self._vocab))
        self.bos = int(llama_cpp.llama_vocab_bos(self._vocab))
        self.eos = int(llama_cpp.llama_vocab_eos(self._vocab))
        self.add_bos = bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)

    # ------------------------------------------------------------------ facts
    @property
    def n_params(self) -> int:
        return int(self._lib.llama_model_n_params(self._model))

    @property
    def model_bytes(self) -> int:
        return int(self._lib.llama_model_size(self._model))

    # ------------------------------------------------------------------ text
    def tokenize(self, text: str, *, add_special: bool = False, parse_special: bool = False) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 16
        buf = (self._lib.llama_token * cap)()
        n = self._lib.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            buf = (self._lib.llama_token * cap)()
            n = self._lib.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, parse_special)
        return list(buf[:n])

    # ------------------------------------------------------------------ compute
    def clear(self) -> None:
        self._lib.llama_memory_clear(self._lib.llama_get_memory(self._ctx), True)

    def rewind(self, n: int) -> None:
        self._lib.llama_memory_seq_rm(self._lib.llama_get_memory(self._ctx), 0, n, -1)

    def decode(self, tokens: Sequence[int], *, start: int = 0, logits_from: int | None = None) -> np.ndarray | None:
        """Evaluate ``tokens`` at positions ``start...``; return logits for positions >= ``logits_from``.

        ``logits_from=None`` asks for the last token's logits only (what generation needs);
        ``logits_from=len(tokens)`` asks for none. Returns an array (n_out, n_vocab) or None.
        """
        n = len(tokens)
        if start + n > self.n_ctx:
            raise BenchError(f"{n} tokens at position {start} exceed the context of {self.n_ctx}")
        want_from = n - 1 if logits_from is None else logits_from
        out: list[np.ndarray] = []
        b = self._batch
        for lo in range(0, n, self.n_batch):
            hi = min(n, lo + self.n_batch)
            b.n_tokens = hi - lo
            n_out = 0
            for j, i in enumerate(range(lo, hi)):
                b.token[j] = tokens[i]
                b.pos[j] = start + i
                b.n_seq_id[j] = 1
                b.seq_id[j][0] = 0
                b.logits[j] = i >= want_from
                n_out += i >= want_from
            rc = self._lib.llama_decode(self._ctx, b)
            if rc != 0:
                raise BenchError(f"llama_decode failed with code {rc} ({last_log()})")
            if n_out:
                ptr = self._lib.llama_get_logits(self._ctx)
                arr = np.ctypeslib.as_array(ptr, shape=(n_out, self.n_vocab))
                out.append(arr.copy())
        if not out:
            return None
        return out[0] if len(out) == 1 else np.concatenate(out)

    def close(self) -> None:
        if getattr(self, "_ctx", None):
            self._lib.llama_batch_free(self._batch)
            self._lib.llama_free(self._ctx)
            self._lib.llama_model_free(self._model)
            self._ctx = None

    def __del__(self) -> None:  # pragma: no cover
        try:
            self.close()
        except Exception:
            pass


def open_runtime(job: Job) -> LlamaModel:
    """The model a bench job measures: one context large enough for every part of the protocol."""
    cfg = job.config
    return LlamaModel(job.artifact, n_ctx=cfg.n_ctx, n_batch=cfg.n_batch, n_threads=cfg.threads)
