"""The decision: which format to ship on each device and each tier, under a team's constraints.

For every device of a matrix (and every tier of the devices file) each format is checked against each
constraint the team gave, on that device's measured row. A format *fits* when it meets every constraint;
among those that fit the one with the best quality is chosen, and among the formats whose quality cannot
be told apart from the best (the difference within its 95 % uncertainty) the smallest file. A tier's answer
must fit on every device of the tier: a device with no measured row for a format makes the format "not
measured" for the tier; it is never extrapolated (a roofline estimate may be shown, labelled as one).

Uncertainty counts. Every measured value comes with a 95 % interval: KLD and ΔPPL ± 1.96 standard
errors, Δacc its paired bootstrap interval, speeds the t-interval of the mean over repetitions. A value
whose point passes a limit that lies inside its interval passes "within error bar" and is marked; one
whose point fails but whose interval reaches the limit fails "within error bar".
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from edge.core.errors import EdgeError
from edge.core.formats import display_name
from edge.core.registry import Registry
from edge.report import Matrix, build_matrices, ppl_delta_pct

Z95 = 1.96
# Student's t, 97.5 % quantile, by degrees of freedom (the 95 % interval of a mean of df + 1 repetitions)
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093,
        20: 2.086, 25: 2.060, 30: 2.042}


class ConstraintError(EdgeError):
    """A constraint that cannot be read (``--max-mem lots``) or cannot be checked (an unknown tier)."""

    exit_code = 2


class Measured(NamedTuple):
    """A measured value and its 95 % interval (lo == hi == value when it has no uncertainty)."""

    value: float
    lo: float
    hi: float


class Rule(NamedTuple):
    """One kind of constraint: the ``Constraints`` field that sets its limit, the measured value it checks
    (a key of ``Cell.values``), the side a value must stay on, and how it is shown."""

    key: str
    value: str
    sense: str          # "min": the value must be at least the limit; "max": at most
    label: str
    unit: str
    spec: str


# the constraints, in the order they are checked and shown (quality last: it also ranks the formats)
RULES: list[Rule] = [
    Rule("min_tg",       "tg",       "min", "decode",      " t/s", ".1f"),
    Rule("min_pp",       "pp",       "min", "prefill",     " t/s", ".0f"),
    Rule("max_ttft",     "ttft",     "max", "TTFT",        " s",   ".3f"),
    Rule("max_mem",      "mem",      "max", "peak memory", " MiB", ".0f"),
    Rule("max_kld",      "kld",      "max", "KLD",         "",     ".4g"),
    Rule("max_ppl_loss", "ppl_loss", "max", "ΔPPL",        " %",   "+.2f"),
    Rule("max_acc_drop", "acc_drop", "max", "acc drop",    " pts", "+.1f"),
]
QUALITY = {"kld": "KLD", "ppl_loss": "ΔPPL", "acc_drop": "accuracy drop", "bpw": "bits per weight (nothing measured)"}
QUALITY_UNIT = {"kld": "", "ppl_loss": " %", "acc_drop": " pts", "bpw": ""}
# quality differences too small to choose a larger file for, whatever their error bars: two formats closer
# than this tie (and the smaller is chosen). KLD 0.001 nats/token is below what llama.cpp's q8_0 costs on
# most models; 0.1 % of perplexity and half an accuracy point are below what a product team can notice.
NEGLIGIBLE = {"kld": 1e-3, "ppl_loss": 0.1, "acc_drop": 0.5, "bpw": 0.0}
_MIB = 2**20


@dataclass(frozen=True)
class Constraints:
    """What a team needs: speeds as floors, TTFT and memory (bytes, or a share of the device's RAM) and
    quality losses as ceilings. ``task`` names the task ``max_acc_drop`` is measured on."""

    min_tg: float | None = None
    min_pp: float | None = None
    max_ttft: float | None = None        # seconds
    max_mem: float | None = None         # bytes
    max_mem_share: float | None = None   # of the device's RAM, 0..1
    max_kld: float | None = None
    max_ppl_loss: float | None = None    # percent
    max_acc_drop: float | None = None    # accuracy points
    task: str | None = None
    tie: float | None = None             # a quality difference that counts as a tie (default: NEGLIGIBLE)

    def given(self) -> list[Rule]:
        return [r for r in RULES if getattr(self, r.key) is not None or (r.key == "max_mem" and self.max_mem_share is not None)]

    def describe(self) -> str:
        parts = []
        for r in self.given():
            if r.key == "max_mem":
                parts.append(f"peak memory ≤ {self.max_mem_share * 100:g} % of the device's RAM" if self.max_mem_share is not None
                             else f"peak memory ≤ {_size(self.max_mem)}")
            elif r.key == "max_acc_drop":
                parts.append(f"{self.task} acc drop ≤ {self.max_acc_drop:g} pts")
            else:
                limit = getattr(self, r.key)
                parts.append(f"{r.label} {'≥' if r.sense == 'min' else '≤'} {limit:g}{r.unit}")
        return " · ".join(parts) or "none"


_SIZE_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9,
               "kib": 2**10, "mib": 2**20, "gib": 2**30}


def _size(b: float) -> str:
    return f"{b / 2**30:.2f} GiB" if b >= 2**30 else f"{b / _MIB:.0f} MiB"


def parse_memory(text: str) -> tuple[float | None, float | None]:
    """``--max-mem``: ``1.5GiB``, ``800MB``, ``2e9`` (bytes), or ``40%`` of each device's RAM → (bytes, share)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*(%|[kmg]i?b?|b)?\s*", text.lower())
    if not m:
        raise ConstraintError(f"--max-mem {text!r}: give a size (1.5GiB, 800MB) or a share of the device's RAM (40%)")
    value, unit = float(m.group(1)), m.group(2) or ""
    if unit == "%":
        if not 0 < value <= 100:
            raise ConstraintError(f"--max-mem {text!r}: a share of RAM is between 0 and 100 %")
        return None, value / 100
    if value <= 0:
        raise ConstraintError(f"--max-mem {text!r}: must be more than 0")
    return value * _SIZE_UNITS[unit], None


def parse_percent(text: str, flag: str) -> float:
    """``3%`` or ``3`` → 3.0."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*%?\s*", text)
    if not m:
        raise ConstraintError(f"{flag} {text!r}: give a percentage, e.g. 3%")
    return float(m.group(1))


def constraints(*, min_tg: float | None = None, min_pp: float | None = None, max_ttft: float | None = None,
                max_mem: str | None = None, max_kld: float | None = None, max_ppl_loss: str | None = None,
                max_acc_drop: float | None = None, task: str | None = None, tie: float | None = None) -> Constraints:
    """The constraints from the command line's words, each refusal one line."""
    for flag, v in (("--min-tg", min_tg), ("--min-pp", min_pp), ("--max-ttft", max_ttft), ("--max-kld", max_kld),
                    ("--max-acc-drop", max_acc_drop), ("--tie", tie)):
        if v is not None and (not math.isfinite(v) or v < 0):
            raise ConstraintError(f"{flag} {v:g}: must be a number ≥ 0")
    mem, share = parse_memory(max_mem) if max_mem is not None else (None, None)
    if max_acc_drop is not None and not task:
        raise ConstraintError("--max-acc-drop needs --task NAME: the task whose accuracy must not drop "
                              "(scored with `edge eval`)")
    return Constraints(min_tg, min_pp, max_ttft, mem, share, max_kld,
                       parse_percent(max_ppl_loss, "--max-ppl-loss") if max_ppl_loss is not None else None,
                       max_acc_drop, task, tie)


# ---------------------------------------------------------------- measured cells


@dataclass
class Cell:
    """One format on one device: what was measured, as 95 % intervals, keyed like ``Rule.value``."""

    format: str
    device: str
    size_bytes: int
    bpw: float | None
    result_id: int | None
    values: dict[str, Measured] = field(default_factory=dict)
    ram_bytes: int | None = None
    bytes_per_token: float | None = None   # weights + KV read per decoded token (roofline)
    efficiency: float | None = None        # decode GB/s over the device's measured bandwidth
    membw_gbs: float | None = None         # the device's measured read bandwidth


def _t(n: int) -> float:
    """t(0.975) for the mean of ``n`` repetitions (the nearest tabled df below; 1.96 past 30)."""
    df = max(1, n - 1)
    return Z95 if df > 30 else T975[max(k for k in T975 if k <= df)]


def _speed(v: float | None, std: float | None, n: int | None) -> Measured | None:
    if v is None:
        return None
    if not std or not n or n < 2:
        return Measured(v, v, v)
    h = _t(n) * std / math.sqrt(n)
    return Measured(v, v - h, v + h)


def _se(v: float | None, se: float | None) -> Measured | None:
    if v is None:
        return None
    h = Z95 * (se or 0.0)
    return Measured(v, v - h, v + h)


def make_cell(r: Any, tasks: dict[str, Any], ram: int | None, task: str | None) -> Cell:
    """The cell of a store row (``edge.store.Result``), with its task row for ``task`` when scored."""
    values: dict[str, Measured | None] = {
        "tg": _speed(r.tg_tps, r.tg_tps_std, r.reps), "pp": _speed(r.pp_tps, r.pp_tps_std, r.reps),
        "ttft": _speed(r.ttft_s, r.ttft_s_std, r.reps),
        "mem": None if r.peak_rss_bytes is None else Measured(*(3 * [r.peak_rss_bytes / _MIB])),
        "kld": _se(r.kld_mean, r.kld_unc), "ppl_loss": _se(*ppl_delta_pct(r)),
    }
    t = tasks.get(task) if task else None
    if t is not None and t.dacc is not None:  # a drop is −Δacc, in points
        values["acc_drop"] = Measured(-100 * t.dacc, -100 * t.dacc_hi, -100 * t.dacc_lo)
    bpt = r.decode_gbs * 1e9 / r.tg_tps if r.decode_gbs and r.tg_tps else None
    eff = r.decode_gbs / r.membw_gbs if r.decode_gbs and r.membw_gbs else None
    return Cell(r.format, r.device, r.size_bytes, r.bits_per_weight, r.id,
                {k: v for k, v in values.items() if v is not None}, ram, bpt, eff, r.membw_gbs)


# ---------------------------------------------------------------- checks and decisions


@dataclass
class Check:
    """One constraint on one device: ``status`` is pass, pass within error bar, fail within error bar,
    fail, or not measured; ``miss`` the relative shortfall of a failing value (0.25 = 25 % off the limit)."""

    constraint: str
    device: str
    status: str
    limit: float | None
    value: float | None = None
    lo: float | None = None
    hi: float | None = None
    miss: float | None = None
    text: str = ""

    @property
    def passes(self) -> bool:
        return self.status in ("pass", "pass within error bar")


def _limit(c: Constraints, rule: Rule, cell: Cell) -> float | None:
    if rule.key == "max_mem":
        if c.max_mem_share is not None:
            return None if not cell.ram_bytes else c.max_mem_share * cell.ram_bytes / _MIB
        return c.max_mem / _MIB
    return getattr(c, rule.key)


def check(c: Constraints, rule: Rule, cell: Cell) -> Check:
    limit = _limit(c, rule, cell)
    m = cell.values.get(rule.value)
    what = f"{c.task} acc drop" if rule.key == "max_acc_drop" else rule.label
    if limit is None:
        return Check(rule.key, cell.device, "not measured", None, text=f"{what}: the device's RAM is unknown")
    if m is None:
        return Check(rule.key, cell.device, "not measured", limit, text=f"{what} not measured")
    minimum = rule.sense == "min"
    point_ok = m.value >= limit if minimum else m.value <= limit
    sure_ok = m.lo >= limit if minimum else m.hi <= limit
    sure_bad = m.hi < limit if minimum else m.lo > limit
    status = ("pass" if sure_ok else "pass within error bar") if point_ok else \
        ("fail" if sure_bad else "fail within error bar")
    miss = None
    if not point_ok:
        miss = (limit - m.value) / limit if minimum else ((m.value - limit) / limit if limit > 0 else math.inf)
    sign = ("≥" if point_ok else "<") if minimum else ("≤" if point_ok else ">")
    unc = "" if m.lo == m.hi else f" [{format(m.lo, rule.spec)}, {format(m.hi, rule.spec)}]"
    text = f"{what} {format(m.value, rule.spec)}{unc}{rule.unit} {sign} {format(limit, rule.spec.lstrip('+'))}{rule.unit}"
    if miss is not None:
        text += f" ({miss * 100:.0f} % off)" if miss < 1 or minimum else f" (×{m.value / limit:.1f})"
    if status.endswith("error bar"):
        text += f", {status}"
    return Check(rule.key, cell.device, status, limit, m.value, m.lo, m.hi, miss, text)


@dataclass
class Verdict:
    """One format in one scope (a device or a tier): fits, fails (the checks it fails) or not measured
    (on which devices), its quality (the worst of the scope's devices) and its size."""

    format: str
    status: str                 # fits | fails | not measured
    size_bytes: int | None
    bpw: float | None
    quality: Measured | None
    marginal: bool = False      # fits, but some check passes only within its error bar
    checks: list[Check] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)   # devices of the scope without a measured row
    estimate: str = ""          # a labelled roofline estimate where it was not measured
    note: str = ""
    in_tier: bool = False       # its checks name their device

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.status.startswith("fail")]

    def reason(self) -> str:
        if self.status == "not measured":
            parts = [f"not measured on {', '.join(self.missing)}"] if self.missing else []
            parts += [c.text + (f" on {c.device}" if self.in_tier else "") for c in self.checks if c.status == "not measured"]
            parts += [self.note] if self.note else []
            return "; ".join(parts) + (f" ({self.estimate})" if self.estimate else "")
        if self.status == "fails":
            return "; ".join([c.text + (f" on {c.device}" if self.in_tier else "") for c in self.failed]
                             + ([f"not measured on {', '.join(self.missing)}"] if self.missing else []))
        return "; ".join(c.text + (f" on {c.device}" if self.in_tier else "") for c in self.checks) or "fits"


@dataclass
class Decision:
    """The answer for one device or one tier."""

    scope: str                  # device | tier
    name: str
    devices: list[str]
    choice: str | None
    why: str
    closest: str | None = None
    tied: list[str] = field(default_factory=list)
    verdicts: list[Verdict] = field(default_factory=list)


@dataclass
class Recommendation:
    model: str
    dataset: str | None
    header: str
    constraints: str
    quality: str                # the quality ranked by: kld | ppl_loss | acc_drop | bpw
    decisions: list[Decision] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def fits(self) -> bool:
        """Every device and tier has a format that fits."""
        return all(d.choice for d in self.decisions)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def quality_key(c: Constraints, cells: list[Cell]) -> str:
    """The quality formats are ranked by: the constrained one, else KLD, ΔPPL, the task, else bits per weight."""
    for r in c.given():
        if r.value in ("kld", "ppl_loss", "acc_drop"):
            return r.value
    for key in ("kld", "ppl_loss", "acc_drop"):
        if any(key in cell.values for cell in cells):
            return key
    return "bpw"


def _quality(cell: Cell, key: str) -> Measured | None:
    if key == "bpw":
        return None if cell.bpw is None else Measured(-cell.bpw, -cell.bpw, -cell.bpw)  # lower is better
    return cell.values.get(key)


def _estimate(fmt: str, device: str, cells: dict[tuple[str, str], Cell]) -> str:
    """A decode speed for a format not measured on ``device``: the device's measured bandwidth × its
    median roofline efficiency over the formats it did run ÷ the format's bytes per token (measured
    elsewhere). Shown labelled as an estimate, never used to choose."""
    bpt = next((c.bytes_per_token for (f, _), c in cells.items() if f == fmt and c.bytes_per_token), None)
    own = [c for (_, d), c in cells.items() if d == device and c.efficiency and c.membw_gbs]
    if not (bpt and own):
        return ""
    effs = sorted(c.efficiency for c in own)
    tg = own[0].membw_gbs * 1e9 * effs[len(effs) // 2] / bpt
    return f"estimate, not measured: decode ≈ {tg:.0f} t/s on {device} from its bandwidth and roofline efficiency"


def decide(scope: str, name: str, devices: list[str], formats: list[str], cells: dict[tuple[str, str], Cell],
           c: Constraints, key: str) -> Decision:
    rules = c.given()
    verdicts = []
    for fmt in formats:
        here = [cells.get((fmt, d)) for d in devices]
        present = [x for x in here if x is not None]
        missing = [d for d, x in zip(devices, here) if x is None]
        if scope == "device" and missing:
            continue  # a device's answer is over the formats measured on it; a tier's over all
        size = next((x.size_bytes for x in present), None)
        bpw = next((x.bpw for x in present), None)
        checks = [check(c, r, x) for x in present for r in rules]
        qs = [_quality(x, key) for x in present]
        quality = None if not qs or any(q is None for q in qs) else max(qs, key=lambda q: q.value)
        v = Verdict(fmt, "fits", size, bpw, quality, checks=checks, missing=missing, in_tier=len(devices) > 1)
        v.estimate = "; ".join(e for e in (_estimate(fmt, d, cells) for d in missing) if e)
        if v.failed:  # fails where it was measured: whatever the other devices would say
            v.status = "fails"
        elif missing:
            v.status = "not measured"
        elif any(ch.status == "not measured" for ch in checks):
            v.status = "not measured"
        elif quality is None:
            v.status, v.note = "not measured", f"{QUALITY[key]} not measured"
        v.marginal = v.status == "fits" and any(ch.status == "pass within error bar" for ch in checks)
        verdicts.append(v)
    fitting = [v for v in verdicts if v.status == "fits"]
    d = Decision(scope, name, devices, None, "", verdicts=verdicts)
    if fitting:
        best = min(fitting, key=lambda v: (v.quality.value, v.size_bytes))
        tie = NEGLIGIBLE[key] if c.tie is None else c.tie
        tied = [v for v in fitting if _tied(v.quality, best.quality, tie)]
        # among the tied, one that passes outright before one that passes only within its error bar
        pick = min(tied, key=lambda v: (v.marginal, v.size_bytes, v.quality.value))
        d.choice, d.tied = pick.format, [v.format for v in tied if v is not pick]
        d.why = _why(pick, best, tied, fitting, verdicts, key)
        return d
    measured = [v for v in verdicts if v.status == "fails"]
    if measured:
        closest = min(measured, key=lambda v: (max(ch.miss or 0 for ch in v.failed), v.size_bytes or 0))
        d.closest = closest.format
        d.why = f"nothing fits; closest: {display_name(closest.format)} ({closest.reason()})"
    elif verdicts and all(v.missing for v in verdicts):
        absent = sorted({m for v in verdicts for m in v.missing}, key=devices.index)
        d.why = (f"nothing fits: no format was measured on {', '.join(absent)} "
                 f"(`edge bench ARTIFACT... -d {','.join(absent)}`)")
    elif verdicts:
        d.why = "nothing fits: no format was measured for every constraint here"
    else:
        d.why = "nothing measured on " + ", ".join(devices)
    return d


def _tied(q: Measured, best: Measured, negligible: float) -> bool:
    """Two qualities that cannot be told apart (the difference within the combined 95 % half-widths) or
    whose difference is negligible."""
    return abs(q.value - best.value) <= max(negligible, math.hypot((q.hi - q.lo) / 2, (best.hi - best.lo) / 2))


def value_pm(v: float, h: float, sign: bool = False) -> str:
    """``v ± h`` with ``h`` to two significant digits and ``v`` to the same decimal (scientific below 1e-3)."""
    plus = "+" if sign else ""
    if v != 0 and abs(v) < 1e-3:
        return f"{v:{plus}.2e} ± {h:.1e}"
    decimals = 3 if h <= 0 else min(8, max(0, 1 - math.floor(math.log10(h))))
    return f"{v:{plus}.{decimals}f} ± {h:.{decimals}f}"


def _qtext(q: Measured, key: str) -> str:
    if key == "bpw":
        return f"{-q.value:.2f} bpw"
    return f"{QUALITY[key]} {value_pm(q.value, (q.hi - q.lo) / 2, sign=key != 'kld')}{QUALITY_UNIT[key]}"


def _why(pick: Verdict, best: Verdict, tied: list[Verdict], fitting: list[Verdict], verdicts: list[Verdict], key: str) -> str:
    out = f"{_qtext(pick.quality, key)}, {_size(pick.size_bytes)}; {len(fitting)} of {len(verdicts)} formats fit"
    if pick is not best:
        out += f"; quality tied with the best, {display_name(best.format)} ({_qtext(best.quality, key)}), and smaller"
    elif len(tied) > 1:
        out += f"; tied in quality with {', '.join(display_name(v.format) for v in tied if v is not pick)}, and the smallest"
    if key == "bpw":
        out += "; no quality measured: ranked by bits per weight"
    if pick.marginal:
        out += "; passes only within its error bar"
    return out


# ---------------------------------------------------------------- from the store


def recommend(results: list[Any], constraints_: Constraints, *, tasks: list[Any] | None = None,
              ram: dict[str, int] | None = None, tiers: dict[str, list[str]] | None = None,
              tier: str | None = None) -> list[Recommendation]:
    """One recommendation per matrix (model × text × protocol) of ``results``: a decision per device and
    per tier (only ``tier`` when given). ``ram``: each device's RAM in bytes (for --max-mem N%)."""
    tiers = tiers or {}
    if tier is not None and tier not in tiers:
        import difflib

        hint = difflib.get_close_matches(tier, list(tiers), n=1)
        raise ConstraintError(f"unknown tier {tier!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                              + (f"; the devices file declares: {', '.join(tiers)}" if tiers else
                                 "; declare tiers in the devices file: [tiers] name = [\"device\", ...]"))
    if not results:
        raise EdgeError("the results store is empty: run `edge bench ARTIFACT...` first (or `edge demo`)")
    out = []
    for m in build_matrices(results, tasks):
        out.append(_recommend_matrix(m, constraints_, ram or {}, tiers, tier))
    return out


def _recommend_matrix(m: Matrix, c: Constraints, ram: dict[str, int], tiers: dict[str, list[str]],
                      tier: str | None) -> Recommendation:
    cells = {key: make_cell(r, m.task_cells.get(key, {}), ram.get(r.device), c.task) for key, r in m.cells.items()}
    key = quality_key(c, list(cells.values()))
    rec = Recommendation(m.model, m.dataset, m.header(), c.describe(), key)
    if c.task and c.task not in m.tasks:
        rec.notes.append(f"task {c.task} was not scored on this matrix's artifacts (`edge eval ... --task {c.task}`)"
                         + (f"; scored: {', '.join(m.tasks)}" if m.tasks else ""))
    if tier is None:
        rec.decisions += [decide("device", d, [d], m.formats, cells, c, key) for d in m.devices]
    for name, members in tiers.items():
        if tier is None or name == tier:
            rec.decisions.append(decide("tier", name, members, m.formats, cells, c, key))
    return rec


def device_ram(runs: list[Any]) -> dict[str, int]:
    """Each device's RAM from the facts its latest run recorded."""
    out = {}
    for run in runs:
        b = (run.device_facts or {}).get("ram_bytes")
        if b:
            out[run.device] = int(b)
    return out


# ---------------------------------------------------------------- renderers


def choice_text(d: Decision) -> str:
    if not d.choice:
        return "nothing fits"
    v = next(v for v in d.verdicts if v.format == d.choice)
    return display_name(d.choice) + (" (within error bar)" if v.marginal else "")


def title(r: Recommendation) -> str:
    return (f"Recommendation for {r.model} — constraints: {r.constraints} "
            f"(95 % intervals; among the formats that fit, the "
            + ("most bits per weight, no quality measured" if r.quality == "bpw" else f"least {QUALITY[r.quality]}")
            + "; ties to the smallest)")


def scope_text(d: Decision) -> str:
    return f"device {d.name}" if d.scope == "device" else f"tier {d.name} ({', '.join(d.devices)})"


def verdict_rows(d: Decision, key: str) -> list[list[str]]:
    order = {"fits": 0, "fails": 1, "not measured": 2}
    rows = []
    for v in sorted(d.verdicts, key=lambda v: (v.format != d.choice, order[v.status], v.quality.value if v.quality else math.inf)):
        status = "chosen" if v.format == d.choice else ("fits" if v.status == "fits" else v.status)
        rows.append([display_name(v.format), status, "" if v.quality is None else _qtext(v.quality, key),
                     "" if v.size_bytes is None else _size(v.size_bytes), v.reason()])
    return rows


VERDICT_HEADS = ["format", "verdict", "quality", "size", "constraints"]


def render_table(recs: list[Recommendation]):
    from rich.console import Group
    from rich.table import Table

    parts: list[Any] = []
    for r in recs:
        t = Table("scope", "choice", "why", title=f"{title(r)}\n{r.header}", title_justify="left")
        for d in r.decisions:
            t.add_row(scope_text(d), choice_text(d), d.why)
        parts.append(t)
        for d in r.decisions:
            v = Table(*VERDICT_HEADS, title=f"{scope_text(d)}: every format", title_justify="left")
            for row in verdict_rows(d, r.quality):
                v.add_row(*row)
            parts.append(v)
        parts += [f"note: {n}" for n in r.notes]
    return Group(*parts)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def render_markdown(recs: list[Recommendation]) -> str:
    out = []
    for r in recs:
        lines = [f"### {title(r)}", "", r.header, "", "| scope | choice | why |", "|---|---|---|"]
        lines += [f"| {scope_text(d)} | `{choice_text(d)}` | {_md_cell(d.why)} |" for d in r.decisions]
        lines += [""] + [f"> note: {n}" for n in r.notes]
        for d in r.decisions:
            lines += ["", f"<details><summary>{scope_text(d)}: every format</summary>", "",
                      "| " + " | ".join(VERDICT_HEADS) + " |", "|" + "---|" * len(VERDICT_HEADS)]
            lines += ["| " + " | ".join(_md_cell(x) for x in row) + " |" for row in verdict_rows(d, r.quality)]
            lines += ["", "</details>"]
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def render_json(recs: list[Recommendation]) -> str:
    import json

    return json.dumps([{**r.as_dict(), "fits": r.fits} for r in recs], indent=2, default=str) + "\n"


RENDERERS: Registry[Any] = Registry("recommendation format")
RENDERERS.register("table", render_table)
RENDERERS.register("md", render_markdown)
RENDERERS.register("json", render_json)


def from_store(store: Any, c: Constraints, *, model: str | None = None, devices_file: Any = None,
               tier: str | None = None) -> list[Recommendation]:
    """``recommend`` over a results store (``edge.store.Store``): its rows, task rows, each device's RAM
    from its runs' facts, and the tiers of the devices file."""
    from device_bench.config import load_tiers

    if model and not store.results(model=model):
        known = sorted({r.model for r in store.results()})
        raise EdgeError(f"no results for model {model!r} in {store.path}"
                        + (f" (it holds: {', '.join(known)})" if known else " (it is empty: run `edge bench` first)"))
    return recommend(store.results(model=model), c, tasks=store.task_results(model=model),
                     ram=device_ram(store.runs()), tiers=load_tiers(devices_file), tier=tier)
