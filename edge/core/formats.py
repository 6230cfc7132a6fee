"""The formats registry: every artifact kind edge can produce, named ``family:variant``, built from the
families' own variant tables (``edge.core.family.FAMILIES``).

A request may carry parameters after ``?`` (``executorch:8da4w?group=32``); parameters are validated
against the variant's typed ``Param`` rows. Nothing here imports a heavy runtime.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from edge.core.errors import EdgeError
from edge.core.family import FAMILIES, Family, Param, Variant
from edge.core.registry import Registry


@dataclass(frozen=True)
class FormatInfo:
    family_spec: Family
    spec: Variant

    @property
    def family(self) -> str:
        return self.family_spec.name

    @property
    def variant(self) -> str:
        return self.spec.name

    @property
    def nominal_bpw(self) -> float:
        return self.spec.nominal_bpw

    @property
    def quantized(self) -> bool:
        return self.spec.quantized

    @property
    def description(self) -> str:
        return self.spec.description

    @property
    def params(self) -> tuple[Param, ...]:
        return self.spec.params

    @property
    def name(self) -> str:
        return f"{self.family}:{self.variant}"


@dataclass(frozen=True)
class FormatRequest:
    info: FormatInfo
    params: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        if not self.params:
            return self.info.name
        query = "&".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.info.name}?{query}"

    @property
    def file_suffix(self) -> str:
        """The parameters as a file-name suffix: ``?group=32&embedding=4`` -> ``-embedding4-group32``; a value
        that is not a plain word (a regex, a path) by the first 8 hex digits of its sha256 (the manifest's
        params hold the value itself)."""
        def word(v: str) -> str:
            return v if re.fullmatch(r"[A-Za-z0-9._+-]{1,32}", v) else hashlib.sha256(v.encode()).hexdigest()[:8]

        return "".join(f"-{k}{word(v)}" for k, v in sorted(self.params.items()) if v)


FORMATS: Registry[FormatInfo] = Registry("format")
for _family in FAMILIES.values():
    for _variant in _family.variants:
        FORMATS.register(f"{_family.name}:{_variant.name}", FormatInfo(_family, _variant))


def parse_format(text: str) -> FormatRequest:
    """Parse one format spec such as ``gguf:q4_k_m`` or ``executorch:8da4w?group=32``."""
    spec = text.strip()
    base, _, query = spec.partition("?")
    if ":" not in base:
        # a bare variant is accepted when exactly one family has it ("q4_k_m" -> "gguf:q4_k_m")
        matches = [name for name in FORMATS if name.split(":", 1)[1] == base.lower()]
        if len(matches) == 1:
            base = matches[0]
    info = FORMATS.get(base)
    params = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False)) if query else {}
    declared = {p.name: p for p in info.params}
    unknown = sorted(set(params) - set(declared))
    if unknown:
        allowed = ", ".join(declared) or "none"
        raise EdgeError(f"format {info.name} takes no parameter {', '.join(unknown)} (allowed: {allowed})")
    req = FormatRequest(info, params)
    for key, raw in params.items():
        declared[key].check(req.name, raw)
    return req


def parse_formats(text: str | list[str]) -> list[FormatRequest]:
    """Parse a comma-separated list (or a list of such strings); duplicates are dropped, order kept."""
    parts = text.split(",") if isinstance(text, str) else [p for t in text for p in t.split(",")]
    out: dict[str, FormatRequest] = {}
    for part in parts:
        if part.strip():
            req = parse_format(part)
            out.setdefault(req.name, req)
    if not out:
        raise EdgeError("no format given; try --format gguf:f16,gguf:q8_0,gguf:q4_k_m")
    return list(out.values())


def display_name(name: str, limit: int = 24) -> str:
    """A format name as tables and plots show it: a parameter value longer than ``limit`` (a recipe's
    overrides) as its entry count and the first 8 hex digits of its sha256 — the same digest as the
    artifact's file name; JSON, CSV and the store keep the whole name."""
    base, sep, query = name.partition("?")
    if not sep:
        return name
    parts = []
    for item in query.split("&"):
        k, eq, v = item.partition("=")
        if eq and len(v) > limit:
            n = len([e for e in v.split(";") if e])
            v = f"<{n} entries #{hashlib.sha256(v.encode()).hexdigest()[:8]}>"
        parts.append(f"{k}{eq}{v}")
    return f"{base}?{'&'.join(parts)}"

