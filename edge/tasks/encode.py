"""A task's items as token ids, fixed once by the source checkpoint's tokenizer and sent to every runtime
(the token-stream rule of ``edge.measure.tokens``: BOS by llama.cpp's rule, special-token strings as text).

Context and continuation are split as lm-eval does: trailing spaces of the context move to the
continuation, the pair is encoded whole and the continuation is what follows the context's own tokens;
an empty context is the BOS (or, without one, the EOS, lm-eval's prefix token)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge.core.errors import DatasetError
from edge.measure.tasks import ENCODED_VERSION
from edge.measure.tokens import SpecialFlags
from edge.tasks.items import ChoiceItem, Task


class Encoder:
    def __init__(self, tok, flags: SpecialFlags, chat: bool = False) -> None:
        self.tok, self.chat = tok, chat
        if chat and not getattr(tok, "chat_template", None):
            raise DatasetError("the task asks for the chat template (\"chat\": true) but the checkpoint's tokenizer has none")
        self.prefix = [flags.bos_id] if flags.add_bos and flags.bos_id is not None else []
        self.empty = self.prefix or ([flags.eos_id] if flags.eos_id is not None else [])
        self.stop_ids = [i for i in {flags.eos_id, getattr(tok, "eos_token_id", None)} if i is not None]

    def ids(self, text: str) -> list[int]:
        return list(self.tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])

    def pair(self, context: str, continuation: str) -> tuple[list[int], int]:
        """(context + continuation ids, the context's length in them)."""
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
        ctx = self.prefix + self.ids(context) if context else list(self.empty)
        whole = self.prefix + self.ids(context + continuation) if context else ctx + self.ids(continuation)
        if whole[:len(ctx)] != ctx:  # the tokenizer merged across the boundary: encode the parts apart
            whole = ctx + self.ids(continuation)
        if len(whole) <= len(ctx):
            raise DatasetError(f"a continuation {continuation!r} encodes to no tokens")
        return whole, len(ctx)

    def item(self, item) -> dict[str, Any]:
        if isinstance(item, ChoiceItem):
            pairs = [self.pair(c.context, c.continuation) for c in item.choices]
            return {"kind": "choice", "seqs": [p[0] for p in pairs], "n_ctx": [p[1] for p in pairs]}
        return {"kind": "gen", "prompt": self.chat_ids(item.prompt) if self.chat else self.prefix + self.ids(item.prompt),
                "max_tokens": item.max_tokens, "stop_seqs": [self.ids(s) for s in item.stop]}

    def chat_ids(self, prompt: str) -> list[int]:
        """The prompt as one user turn of the checkpoint's chat template, its control tokens parsed as such."""
        text = self.tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                            tokenize=False)
        ids = list(self.tok(text, add_special_tokens=False)["input_ids"])
        return ids if not self.prefix or ids[:1] == self.prefix else self.prefix + ids


def encode(task: Task, tok, flags: SpecialFlags, max_len: int) -> dict[str, Any]:
    """The task as the measuring process reads it (``edge.measure.tasks.score_items``)."""
    enc = Encoder(tok, flags, chat=bool(task.meta.get("chat")))
    return {"version": ENCODED_VERSION, "task": task.name, "items_sha256": task.sha256, "max_len": max_len,
            "stop_ids": enc.stop_ids, "items": [enc.item(i) for i in task.items]}


def write_encoded(encoded: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(encoded, separators=(",", ":")), encoding="utf-8")
    return path


def longest(encoded: dict[str, Any]) -> int:
    """The most positions one item needs (its longest sequence, or prompt + generated tokens)."""
    return max((max(len(s) for s in i["seqs"]) if i["kind"] == "choice" else len(i["prompt"]) + i["max_tokens"])
               for i in encoded["items"])
