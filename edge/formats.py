"""The formats registry: every artifact kind edge can produce, named ``family:variant``.

A request may carry parameters after ``?`` (``executorch:8da4w?group=32``); parameters are
validated against what the format declares. Nothing here imports a heavy runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

from converters.executorch_tables import PARAMS as ET_PARAMS
from converters.executorch_tables import QUANTS as ET_QUANTS
from converters.gguf_tables import GGUF_TYPES
from converters.onnx_tables import PARAMS as ONNX_PARAMS
from converters.onnx_tables import VARIANTS as ONNX_VARIANTS
from edge.errors import EdgeError
from edge.registry import Registry


@dataclass(frozen=True)
class FormatInfo:
    family: str
    variant: str
    nominal_bpw: float
    quantized: bool
    description: str
    params: tuple[str, ...] = ()

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
        """The parameters as a file-name suffix: ``?group=32&embedding=4`` -> ``-embedding4-group32``."""
        return "".join(f"-{k}{v}" for k, v in sorted(self.params.items()) if v)


FORMATS: Registry[FormatInfo] = Registry("format")
for _t in GGUF_TYPES:
    FORMATS.register(f"gguf:{_t.name}", FormatInfo("gguf", _t.name, _t.nominal_bpw, _t.quantized, _t.description))
for _q in ET_QUANTS:
    _params = tuple(p for p in ET_PARAMS if p != "group" or _q.default_group is not None)
    FORMATS.register(f"executorch:{_q.variant}",
                     FormatInfo("executorch", _q.variant, _q.nominal_bpw, _q.qmode is not None, _q.description, _params))
for _v in ONNX_VARIANTS:
    FORMATS.register(f"onnx:{_v.variant}", FormatInfo("onnx", _v.variant, _v.nominal_bpw, _v.precision != "fp32",
                                                      _v.description, ONNX_PARAMS if _v.blocks else ()))


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
    unknown = sorted(set(params) - set(info.params))
    if unknown:
        allowed = ", ".join(info.params) or "none"
        raise EdgeError(f"format {info.name} takes no parameter {', '.join(unknown)} (allowed: {allowed})")
    return FormatRequest(info, params)


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
