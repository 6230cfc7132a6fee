"""One small generic registry with did-you-mean errors.

Families (``gguf``), formats (``gguf:q4_k_m``), devices (``local``), transports (``ssh``) and evaluation
datasets (``pydoc``) are each a ``Registry``; lookups of unknown names raise ``UnknownNameError`` naming
the closest matches. An entry may be registered lazily as ``"module:attr"``: it is imported on first use,
so a registry can name plugins in higher layers without importing them.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from edge.core.errors import UnknownNameError

T = TypeVar("T")


class _Lazy:
    __slots__ = ("target",)

    def __init__(self, target: str) -> None:
        self.target = target

    def load(self):
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        key = name.lower()
        if key in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[key] = item
        return item

    def unregister(self, name: str) -> None:
        """Remove an entry (a plugin registered for a while, e.g. by a test)."""
        self._items.pop(name.strip().lower(), None)

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``"package.module:attr"``, imported the first time the entry is looked up."""
        self.register(name, _Lazy(target))  # type: ignore[arg-type]

    def _resolve(self, key: str) -> T:
        item = self._items[key]
        if isinstance(item, _Lazy):
            item = self._items[key] = item.load()
        return item

    def decorator(self, name: str) -> Callable[[T], T]:
        def wrap(item: T) -> T:
            return self.register(name, item)

        return wrap

    def get(self, name: str) -> T:
        key = name.strip().lower()
        if key not in self._items:
            raise UnknownNameError(self.unknown_message(name))
        return self._resolve(key)

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name.strip().lower(), self._items, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} (known: {', '.join(self._items)})"

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.strip().lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def items(self) -> list[tuple[str, T]]:
        return [(k, self._resolve(k)) for k in self._items]

    def values(self) -> list[T]:
        return [self._resolve(k) for k in self._items]

    def __len__(self) -> int:
        return len(self._items)
