"""A local Hugging Face checkpoint folder, read lazily and validated up front.

Weights are read tensor by tensor from safetensors (sharded or not), so converting a model never
holds more than one tensor in memory. Pickle checkpoints (``pytorch_model*.bin``) are refused unless
the caller opts in, and then read with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edge.core.errors import CheckpointError
from edge.core.hashing import iter_file
from edge.core.hfconfig import Hparams

TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json")
SIDE_FILES = ("config.json", "generation_config.json", *TOKENIZER_FILES)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{path.parent}: no {path.name} ({what})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object")
    return data


@dataclass
class Checkpoint:
    path: Path
    config: dict[str, Any]
    weight_files: list[Path]
    pickle: bool = False
    _index: dict[str, Path] = field(default_factory=dict, repr=False)
    _shapes: dict[str, tuple[int, ...]] = field(default_factory=dict, repr=False)
    _dtypes: dict[str, str] = field(default_factory=dict, repr=False)
    _pickled: dict[str, Any] | None = field(default=None, repr=False)
    _hparams: Hparams | None = field(default=None, repr=False)

    # ----------------------------------------------------------------- opening
    @classmethod
    def open(cls, path: str | Path, *, allow_pickle: bool = False) -> Checkpoint:
        root = Path(path).expanduser()
        if not root.exists():
            raise CheckpointError(f"checkpoint folder not found: {root}")
        if not root.is_dir():
            raise CheckpointError(f"{root} is not a folder; give the Hugging Face model folder (config.json, *.safetensors, tokenizer)")
        config = _read_json(root / "config.json", "a Hugging Face model folder has one")
        files = cls._find_weights(root, allow_pickle)
        ckpt = cls(root.resolve(), config, files, pickle=files[0].suffix == ".bin")
        ckpt._scan()
        return ckpt

    @staticmethod
    def _find_weights(root: Path, allow_pickle: bool) -> list[Path]:
        index = root / "model.safetensors.index.json"
        if index.exists():
            weight_map = _read_json(index, "safetensors index").get("weight_map")
            if not isinstance(weight_map, dict) or not weight_map:
                raise CheckpointError(f"{index}: no weight_map")
            shards = sorted({root / name for name in weight_map.values()})
            missing = [s.name for s in shards if not s.exists()]
            if missing:
                raise CheckpointError(f"{root}: missing safetensors shard(s) named in the index: {', '.join(missing)}")
            return shards
        shards = sorted(root.glob("*.safetensors"))
        if shards:
            return shards
        bins = sorted(root.glob("pytorch_model*.bin"))
        if bins:
            if not allow_pickle:
                raise CheckpointError(
                    f"{root}: only pickle weights ({bins[0].name}); pass --allow-pickle to read them with "
                    "torch.load(weights_only=True), or save the model as safetensors")
            return bins
        raise CheckpointError(f"{root}: no *.safetensors weights found")

    def _scan(self) -> None:
        if self.pickle:
            import torch

            state: dict[str, Any] = {}
            for f in self.weight_files:
                try:
                    state.update(torch.load(f, map_location="cpu", weights_only=True))
                except Exception as exc:  # torch raises many kinds for corrupt pickles
                    raise CheckpointError(f"{f}: cannot be read as a weights-only torch checkpoint ({exc})") from None
            self._pickled = state
            for name, t in state.items():
                self._shapes[name] = tuple(t.shape)
                self._dtypes[name] = str(t.dtype).removeprefix("torch.")
            return
        from safetensors import SafetensorError, safe_open

        for f in self.weight_files:
            try:
                with safe_open(f, framework="pt") as sf:
                    for name in sf.keys():
                        sl = sf.get_slice(name)
                        self._index[name] = f
                        self._shapes[name] = tuple(sl.get_shape())
                        self._dtypes[name] = sl.get_dtype()
            except (SafetensorError, OSError, ValueError) as exc:
                raise CheckpointError(f"{f}: corrupt or truncated safetensors file ({exc})") from None
        if not self._index:
            raise CheckpointError(f"{self.path}: the safetensors files hold no tensors")

    # ----------------------------------------------------------------- facts
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def hparams(self) -> Hparams:
        """config.json read once, by the one reader every family uses (``edge.core.hfconfig``)."""
        if self._hparams is None:
            self._hparams = Hparams.from_config(self.config)
        return self._hparams

    @property
    def architecture(self) -> str:
        archs = self.config.get("architectures") or []
        if not archs or not isinstance(archs, list):
            raise CheckpointError(f"{self.path / 'config.json'}: no 'architectures' entry")
        return str(archs[0])

    def tensor_names(self) -> list[str]:
        return list(self._shapes)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name]

    def dtype(self, name: str) -> str:
        return self._dtypes[name]

    @property
    def parameter_count(self) -> int:
        return int(sum(int(np.prod(s)) for s in self._shapes.values()))

    def has(self, name: str) -> bool:
        return name in self._shapes

    def tensor(self, name: str) -> np.ndarray:
        """One tensor as float32 numpy (bf16/f16 upcast exactly)."""
        import torch

        if self._pickled is not None:
            t = self._pickled[name]
        else:
            from safetensors import SafetensorError, safe_open

            try:
                with safe_open(self._index[name], framework="pt") as sf:
                    t = sf.get_tensor(name)
            except (SafetensorError, OSError) as exc:
                raise CheckpointError(f"{self._index[name]}: cannot read tensor {name} ({exc})") from None
        return t.to(torch.float32).numpy()

    def side_files(self) -> list[Path]:
        return [self.path / n for n in SIDE_FILES if (self.path / n).exists()]

    def content_hash(self, on_bytes: Callable[[int], None] | None = None) -> str:
        """sha256 over config, tokenizer and weight files (names and bytes), in a stable order."""
        h = hashlib.sha256()
        for f in sorted([*self.side_files(), *self.weight_files], key=lambda p: p.name):
            h.update(f.name.encode() + b"\0")
            for chunk in iter_file(f):
                h.update(chunk)
                if on_bytes:
                    on_bytes(len(chunk))
        return h.hexdigest()

    def total_bytes(self) -> int:
        return sum(f.stat().st_size for f in [*self.side_files(), *self.weight_files])
