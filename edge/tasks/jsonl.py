"""The user's own tasks: one JSON object per line, of three documented kinds (see ``KINDS``), with an
optional first line ``{"edge_task": {...}}`` giving the task's name, licence, template, few-shot
examples and ``chat`` (generation prompts wrapped in the checkpoint's chat template, as an app would). A bad line is one error naming its line number; nothing of a task that failed to load is used."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from edge.core.errors import DatasetError
from edge.tasks.items import CHECKS, Choice, ChoiceItem, GenItem, Item, Task

TEMPLATE = "Question: {question}\nAnswer:"   # lm-eval / OLMES's cloze prompt; each choice follows with a space
KINDS = {
    "multiple choice": ("question", "choices", "answer"),
    "raw cloze": ("context", "continuations", "answer"),
    "generation": ("prompt", "target"),
}
OPTIONAL = {"id", "check", "max_tokens", "stop"}
HEADER_KEYS = {"name", "licence", "template", "fewshot", "separator", "chat"}


def _kind(obj: dict[str, Any]) -> str:
    for kind, keys in KINDS.items():
        if keys[0] in obj:
            missing = [k for k in keys if k not in obj]
            if missing:
                raise ValueError(f"a {kind} line needs {', '.join(keys)}; {', '.join(missing)} missing")
            extra = set(obj) - set(keys) - OPTIONAL
            if extra:
                raise ValueError(f"unknown key(s) {', '.join(sorted(extra))} for a {kind} line")
            return kind
    raise ValueError("expected one of: " + "; ".join(f"{k} ({', '.join(v)})" for k, v in KINDS.items()))


def _answer(answer: Any, options: list[str]) -> int:
    if isinstance(answer, bool) or not isinstance(answer, (int, str)):
        raise ValueError(f"answer must be an index or one of the choices, not {answer!r}")
    if isinstance(answer, str):
        if answer not in options:
            raise ValueError(f"answer {answer!r} is not one of the choices")
        return options.index(answer)
    if not 0 <= answer < len(options):
        raise ValueError(f"answer {answer} is out of range for {len(options)} choices")
    return answer


def _strings(value: Any, what: str, min_len: int = 1) -> list[str]:
    if not isinstance(value, list) or len(value) < min_len or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"{what} must be a list of at least {min_len} non-empty strings")
    return value


class _Format:
    """The task's prompt format: the template for multiple-choice lines and the few-shot prefix."""

    def __init__(self, header: dict[str, Any]) -> None:
        unknown = set(header) - HEADER_KEYS
        if unknown:
            raise ValueError(f"unknown edge_task key(s) {', '.join(sorted(unknown))} (known: {', '.join(sorted(HEADER_KEYS))})")
        self.template = header.get("template", TEMPLATE)
        if "{question}" not in self.template:
            raise ValueError("the template must contain {question}")
        self.separator = header.get("separator", "\n\n")
        shots = header.get("fewshot", [])
        if not isinstance(shots, list):
            raise ValueError("fewshot must be a list of multiple-choice examples")
        self.prefix = "".join(self._shot(s) + self.separator for s in shots)
        self.chat = header.get("chat", False)
        if not isinstance(self.chat, bool):
            raise ValueError("chat must be true or false")

    def question(self, q: str) -> str:
        return self.prefix + self.template.replace("{question}", q)

    def _shot(self, shot: Any) -> str:
        if not isinstance(shot, dict) or {"question", "choices", "answer"} - set(shot):
            raise ValueError("each few-shot example needs question, choices, answer")
        choices = _strings(shot["choices"], "a few-shot example's choices", 2)
        return self.template.replace("{question}", shot["question"]) + " " + choices[_answer(shot["answer"], choices)]


def _item(obj: dict[str, Any], fmt: _Format, default_id: str) -> Item:
    kind = _kind(obj)
    item_id = str(obj.get("id", default_id))
    if kind == "multiple choice":
        choices = _strings(obj["choices"], "choices", 2)
        ctx = fmt.question(str(obj["question"]))
        return ChoiceItem(item_id, tuple(Choice(ctx, " " + c) for c in choices), _answer(obj["answer"], choices))
    if kind == "raw cloze":
        conts = _strings(obj["continuations"], "continuations", 1)  # one: right when greedy (LAMBADA)
        return ChoiceItem(item_id, tuple(Choice(fmt.prefix + str(obj["context"]), c) for c in conts),
                          _answer(obj["answer"], conts))
    check = obj.get("check", "exact")
    if check not in CHECKS:
        raise ValueError(f"check must be one of {', '.join(CHECKS)}, not {check!r}")
    if check == "json":
        try:
            json.loads(str(obj["target"]))
        except json.JSONDecodeError:
            raise ValueError("a json check's target must be JSON text") from None
    if check == "regex":
        try:
            re.compile(str(obj["target"]))
        except re.error as exc:
            raise ValueError(f"target is not a valid regular expression ({exc})") from None
    max_tokens = obj.get("max_tokens", 64)
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= 4096:
        raise ValueError(f"max_tokens must be an integer from 1 to 4096, not {max_tokens!r}")
    stop = obj.get("stop", [])
    stop = [stop] if isinstance(stop, str) else stop
    return GenItem(item_id, fmt.prefix + str(obj["prompt"]), str(obj["target"]), check, max_tokens,
                   tuple(_strings(stop, "stop", 0)))


def load_jsonl(path: Path) -> Task:
    """The task in ``path`` (see the module's docstring); DatasetError naming the first bad line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror})") from None
    header: dict[str, Any] = {}
    fmt: _Format | None = None
    items: list[Item] = []
    seen: set[str] = set()
    for no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("each line must be a JSON object")
            if "edge_task" in obj:
                if fmt is not None or items:
                    raise ValueError("the edge_task line must come first")
                header = obj["edge_task"] if isinstance(obj["edge_task"], dict) else {}
                fmt = _Format(header)
                continue
            fmt = fmt or _Format({})
            item = _item(obj, fmt, f"{path.stem}/{no}")
            if item.id in seen:
                raise ValueError(f"id {item.id!r} is used twice")
            seen.add(item.id)
            items.append(item)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{no}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        except ValueError as exc:
            raise DatasetError(f"{path}:{no}: {exc}") from None
    if not items:
        raise DatasetError(f"{path}: no items (one JSON object per line; see `edge tasks --help`)")
    return Task(str(header.get("name", path.stem)), tuple(items), f"file {path}", str(header.get("licence", "the user's")),
                {"chat": bool(fmt and fmt.chat)})
