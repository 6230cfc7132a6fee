"""edge artifacts as an lm-eval model (the optional extra ``edge-llm[lm-eval]``): a team's lm-eval task
YAMLs over its own data files run on the artifact's real runtime (llama.cpp, ExecuTorch,
onnxruntime-genai), in this process.

    import lm_eval, edge.lm_eval_model                      # registers the model "edge"
    lm_eval.simple_evaluate(model="edge", model_args="artifact=artifacts/m/m-q4_k_m.gguf", tasks=[...])

or ``edge lm-eval ARTIFACT --tasks NAME --include DIR``. Text is tokenized by the source checkpoint's
tokenizer (the manifest's, or ``source=``), as ``edge eval`` does, so the runtimes see the same ids; a
loglikelihood batch groups the requests that share a context, whose KV cache its continuations reuse
(``edge.measure.tasks.score_choices``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model

from edge.artifacts import open_artifact
from edge.core.errors import EdgeError
from edge.core.family import FAMILIES
from edge.core.jobs import Job, JobConfig
from edge.measure.tasks import generate, score_choices


@register_model("edge")
class EdgeLM(TemplateLM):
    def __init__(self, artifact: str, source: str | None = None, max_length: int = 2048, threads: int | None = None,
                 max_gen_toks: int = 256, **kwargs: Any) -> None:
        super().__init__()
        from edge.measure.tokens import load_tokenizer, special_flags

        self.art = open_artifact(artifact)
        folder = Path(source) if source else Path(self.art.manifest.source.get("path") or "")
        if not (folder / "config.json").exists():
            raise EdgeError(f"{self.art.path.name}: its source checkpoint is not at {folder}: pass source=CHECKPOINT")
        self.tokenizer = load_tokenizer(folder)
        self.flags = special_flags(folder, self.tokenizer)
        limit = self.art.manifest.details.get("max_seq_len")
        self.max_length = min(int(max_length), int(limit)) if limit else int(max_length)
        self.max_gen_toks = int(max_gen_toks)
        job = Job(family=self.art.family, artifact=str(self.art.path), perf=False,
                  config=JobConfig(threads=None if threads is None else int(threads), reps=0, chunks=None,
                                   n_task=self.max_length), max_context=limit,
                  tokenizer=None if self.art.tokenizer_path is None else str(self.art.tokenizer_path))
        self.m = FAMILIES.get(self.art.family).load("runtime")(job)

    @property
    def eot_token_id(self) -> int:
        return int(self.flags.eos_id if self.flags.eos_id is not None else self.tokenizer.eos_token_id)

    @property
    def prefix_token_id(self) -> int:
        return int(self.flags.bos_id) if self.flags.add_bos and self.flags.bos_id is not None else self.eot_token_id

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        ids = list(self.tokenizer(string, add_special_tokens=False, split_special_tokens=True)["input_ids"])
        add = self.flags.add_bos if add_special_tokens is None else add_special_tokens
        return [self.flags.bos_id] + ids if add and self.flags.add_bos and self.flags.bos_id is not None else ids

    def tok_decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _fit(self, ctx: list[int], cont: list[int]) -> tuple[list[int], int]:
        seq = (ctx + cont)[-self.max_length:]
        return seq, max(1, len(seq) - len(cont))

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs: Any) -> list[tuple[float, bool]]:
        """One batch: the requests grouped by their context, each group's prefix decoded once."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, (_, ctx, _) in enumerate(requests):
            groups.setdefault(tuple(ctx), []).append(i)
        out: list[tuple[float, bool] | None] = [None] * len(requests)
        for members in groups.values():
            fitted = [self._fit(list(requests[i][1]), list(requests[i][2])) for i in members]
            scored = score_choices(self.m, [s for s, _ in fitted], [c for _, c in fitted])
            for i, (ll, greedy) in zip(members, scored):
                out[i] = (ll, greedy)
        return out  # type: ignore[return-value]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """A whole text's log-likelihood in windows of max_length (lm-eval's rolling windows)."""
        from lm_eval.utils import get_rolling_token_windows, make_disjoint_window

        out = []
        for (text,) in [r.args for r in requests]:
            windows = map(make_disjoint_window, get_rolling_token_windows(
                token_list=self.tok_encode(text, add_special_tokens=False), prefix_token=self.prefix_token_id,
                max_seq_len=self.max_length, context_len=1))
            out.append(sum(ll for ll, _ in self._loglikelihood_tokens([(None, list(c), list(t)) for c, t in windows])))
        return out

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        """Greedy decoding to EOS, ``max_gen_toks`` or the first ``until`` string."""
        from edge.tasks.checks import cut_at_stop

        out = []
        for context, gen_kwargs in [r.args for r in requests]:
            kw = dict(gen_kwargs or {})
            until = kw.get("until") or []
            until = [until] if isinstance(until, str) else list(until)
            n = int(kw.get("max_gen_toks", self.max_gen_toks))
            prompt = self.tok_encode(context)[-max(1, self.max_length - n):]
            ids = generate(self.m, prompt, n, [self.eot_token_id])
            out.append(cut_at_stop(self.tok_decode(ids), tuple(until)))
        return out
