"""Evaluation text for perplexity and KL divergence, with no download at run time.

``pydoc`` (default) is the English reference documentation that ships inside every Python
(``pydoc_data.topics``). The optional extra ``edge-llm[corpora]`` installs the ``exllamav2`` wheel,
whose calibration texts give named domains (wiki, c4, tiny, technical, code, multilingual); they
are read as files, the package is never imported. Any file works through ``--dataset FILE``.

``NAME:calib`` and ``NAME:heldout`` are the first and second half of a text (cut at the paragraph break
nearest its middle): calibrate on one, evaluate on the other, two disjoint parts of one text.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

from edge.core.errors import DatasetError
from edge.core.registry import Registry


@dataclass(frozen=True)
class Dataset:
    name: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def _pydoc() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k].strip() for k in sorted(topics))


def _exllamav2_file(stem: str) -> str:
    spec = importlib.util.find_spec("exllamav2")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetError(f"dataset {stem!r} needs the corpora extra: pip install 'edge-llm[corpora]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "conversion" / "standard_cal_data" / f"{stem}.utf8"
    if not path.exists():
        raise DatasetError(f"{path} is missing from the installed exllamav2 package")
    return path.read_text(encoding="utf-8")


DATASETS: Registry[object] = Registry("dataset")
DATASETS.register("pydoc", _pydoc)
for _stem in ("wiki", "c4", "tiny", "technical", "code", "multilingual"):
    DATASETS.register(_stem, lambda s=_stem: _exllamav2_file(s))


# a text's halves (``wiki:calib``, ``./ours.txt:heldout``), one entry a line: suffix -> which half
HALVES: dict[str, int] = {
    "calib": 0,
    "heldout": 1,
}


def halves(text: str) -> tuple[str, str]:
    """The text cut in two at the paragraph break (else line break) nearest its middle."""
    mid = len(text) // 2
    for sep in ("\n\n", "\n"):
        cuts = [i for i in (text.rfind(sep, 0, mid), text.find(sep, mid)) if i > 0]
        if cuts:
            cut = min(cuts, key=lambda i: abs(i - mid))
            return text[:cut], text[cut + len(sep):]
    return text[:mid], text[mid:]


def load_dataset(spec: str | Path | None) -> Dataset:
    """A registered dataset name, or a path to a UTF-8 text file; either with ``:calib`` or ``:heldout``
    for its first or second half."""
    if spec is None:
        spec = "pydoc"
    if isinstance(spec, str) and spec.rpartition(":")[2] in HALVES and spec.rpartition(":")[0]:
        base, _, half = spec.rpartition(":")
        whole = load_dataset(base)
        part = halves(whole.text)[HALVES[half]]
        if not part.strip():
            raise DatasetError(f"{spec}: the {half} half of {base} is empty")
        return Dataset(f"{whole.name}:{half}", part)
    if isinstance(spec, str) and spec in DATASETS:
        return Dataset(spec, DATASETS.get(spec)())
    path = Path(spec)
    if not path.exists():
        if isinstance(spec, str) and "/" not in spec and "." not in spec:
            raise DatasetError(DATASETS.unknown_message(spec) + " or a path to a text file")
        raise DatasetError(f"dataset file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot be read ({exc.strerror})") from None
    if not text.strip():
        raise DatasetError(f"{path}: empty")
    return Dataset(path.name, text)
