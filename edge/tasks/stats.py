"""Statistics for the task-level quality of an artifact (A) against its source model (R) on the same items.

Every input is per item, in one item order shared by A and R: the comparison is *paired*. Two models
scored on the same 1,000 questions disagree on far fewer items than two independent samples would
suggest, so a paired interval is much narrower than the difference of two unpaired ones, and it is the
right one to ask "did quantization cost accuracy?".

What the numbers mean for a user:

- ``acc`` ± ``acc_se``: the share of items answered right, with lm-eval's standard error (``mean_stderr``,
  sample variance with ddof=1). It says how well the model does on this task, not how it compares.
- ``dacc`` = acc_A − acc_R, with a paired standard error and a percentile bootstrap interval over items.
  A Δacc whose interval contains 0 is not a measured loss (nor a measured gain): on these items the two
  models cannot be told apart.
- ``p_mcnemar``: McNemar's exact test on the discordant items (right for one model, wrong for the other).
  A small p says the disagreements lean one way more than chance allows; it does not say by how much.
- ``flips``: the share of items whose chosen answer changed. It can be large while Δacc ≈ 0 (gains and
  losses cancel): a model that flips 10 % of its answers is not the same model, whatever its accuracy.
- ``choice_kl``: KL(P_R ‖ P_A) in nats between the two models' distributions over each item's choices,
  averaged over items. It moves before accuracy does; 0 means the artifact ranks and weighs the choices
  exactly as the source model does.

A standard error needs two items at least: with one item it is ``None`` (not NaN), so that it is stored
as NULL and any arithmetic on it fails loudly instead of spreading NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from collections.abc import Sequence, Sized

import numpy as np

from edge.measure.metrics import log_softmax

# bootstrap replicates drawn per call to the generator: bounds the memory whatever n_boot is
_BOOT_CHUNK = 100_000


@dataclass(frozen=True)
class Estimate:
    """A mean over items: ``value`` ± ``se`` (standard error of the mean; ``None`` when ``n`` is 1)."""

    value: float
    se: float | None
    n: int


@dataclass(frozen=True)
class Delta:
    """Δacc = acc_A − acc_R on the same ``n`` items.

    ``lo``..``hi``: the percentile bootstrap interval (items resampled, pairs kept); an interval that
    contains 0 is not a measured loss. ``se``: the paired standard error (``None`` when ``n`` is 1).
    ``a_only`` / ``r_only``: items only A / only R answered right (the discordant pairs);
    ``p_mcnemar``: McNemar's exact two-sided p-value on them (1.0 when there are none).
    """

    delta: float
    lo: float
    hi: float
    se: float | None
    n: int
    a_only: int
    r_only: int
    p_mcnemar: float


# ---------------------------------------------------------------------------------------------- checks

def _per_item(x: object, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name}: one value per item expected, got an array of shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name}: no items")
    return arr


def _bools(x: object, name: str) -> np.ndarray:
    arr = _per_item(x, name)
    if arr.dtype != np.bool_:
        if not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name}: right/wrong per item expected (bool or 0/1)")
        arr = arr.astype(np.bool_)
    return arr


def _same_items(a: Sized, r: Sized, what: str) -> None:
    if len(a) != len(r):
        raise ValueError(f"{what}: the artifact has {len(a)} items, the reference {len(r)}: "
                         "a paired comparison needs the same items in the same order")


def _choices(lls: Sequence[Sequence[float]], name: str) -> list[np.ndarray]:
    if len(lls) == 0:
        raise ValueError(f"{name}: no items")
    out = []
    for i, item in enumerate(lls):
        arr = np.asarray(item, dtype=np.float64)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"{name}: item {i} has no 1-D array of choices (shape {arr.shape})")
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}: item {i} has a log-likelihood that is not finite: {arr.tolist()}")
        out.append(arr)
    return out


# ------------------------------------------------------------------------------------------- estimates

def _mean_se(x: np.ndarray) -> Estimate:
    """Mean and lm-eval's ``mean_stderr`` (sqrt(var(ddof=1) / n)); se ``None`` for a single item."""
    x = x.astype(np.float64)
    n = int(x.size)
    se = math.sqrt(float(x.var(ddof=1)) / n) if n > 1 else None
    return Estimate(float(x.mean()), se, n)


def accuracy(correct: Sequence[bool]) -> Estimate:
    """The share of items answered right, ± its standard error (lm-eval's ``mean_stderr``).

    How well the model does on this task; to compare an artifact with its source model use
    :func:`paired_delta`, not the difference of two accuracies and their errors.
    """
    return _mean_se(_bools(correct, "correct"))


def mcnemar_p(a_only: int, r_only: int) -> float:
    """McNemar's exact two-sided p-value from the discordant counts b = ``a_only``, c = ``r_only``.

    p = min(1, 2·P[X ≤ min(b, c)]), X ~ Bin(b + c, 1/2); 1.0 when b + c = 0. Computed in log space
    (log C(m, k) by a running sum of log ratios, then log-sum-exp), so that thousands of discordant
    items neither overflow nor lose the tail. A small p says the disagreements lean one way more than
    chance would make them; it says nothing about the size of the difference.
    """
    if a_only < 0 or r_only < 0:
        raise ValueError(f"discordant counts cannot be negative: {a_only}, {r_only}")
    m = a_only + r_only
    if m == 0:
        return 1.0
    k = np.arange(min(a_only, r_only), dtype=np.float64)
    log_comb = np.concatenate(([0.0], np.cumsum(np.log(m - k) - np.log(k + 1))))  # log C(m, 0..s)
    top = float(log_comb.max())
    log_tail = top + math.log(float(np.exp(log_comb - top).sum())) - m * math.log(2.0)
    return min(1.0, 2.0 * math.exp(log_tail))


def _bootstrap(a_only: int, r_only: int, n: int, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """``n_boot`` bootstrap replicates of Δacc, each a resample of the ``n`` items with replacement.

    Δacc over a resample depends only on how many of its items are A-only and R-only, and resampling
    n items (pairs kept) draws those counts from Multinomial(n; b/n, c/n, rest): drawing the counts
    is the item bootstrap exactly, without an n_boot × n index array.
    """
    pvals = [a_only / n, r_only / n, (n - a_only - r_only) / n]
    reps = []
    for start in range(0, n_boot, _BOOT_CHUNK):
        counts = rng.multinomial(n, pvals, size=min(_BOOT_CHUNK, n_boot - start))
        reps.append((counts[:, 0] - counts[:, 1]) / n)
    return np.concatenate(reps)


def paired_delta(correct_a: Sequence[bool], correct_r: Sequence[bool], *, seed: int = 0,
                 n_boot: int = 2000, level: float = 0.95) -> Delta:
    """Δacc = acc_A − acc_R on the same items, with its paired uncertainty.

    ``se``: sqrt(var(d, ddof=1) / n) of the per-item differences d = A − R ∈ {−1, 0, 1};
    ``lo``, ``hi``: the ``level`` percentile bootstrap interval over items (seeded, reproducible);
    ``p_mcnemar``: see :func:`mcnemar_p`. A Δacc whose interval contains 0 is not a measured loss.
    """
    a, r = _bools(correct_a, "correct_a"), _bools(correct_r, "correct_r")
    _same_items(a, r, "paired_delta")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    diff = _mean_se(a.astype(np.int8) - r.astype(np.int8))
    a_only, r_only = int((a & ~r).sum()), int((r & ~a).sum())
    reps = _bootstrap(a_only, r_only, diff.n, np.random.default_rng(seed), n_boot)
    lo, hi = np.quantile(reps, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return Delta(diff.value, float(lo), float(hi), diff.se, diff.n, a_only, r_only, mcnemar_p(a_only, r_only))


def flips(pred_a: Sequence[int], pred_r: Sequence[int]) -> Estimate:
    """The share of items whose chosen answer differs between A and R, ± its standard error.

    Large flips with a small Δacc means gains and losses cancel: the artifact answers differently.
    """
    a, r = _per_item(pred_a, "pred_a"), _per_item(pred_r, "pred_r")
    _same_items(a, r, "flips")
    return _mean_se(a != r)


def _item_kl(lr: np.ndarray, la: np.ndarray) -> float:
    log_pr, log_pa = log_softmax(lr), log_softmax(la)
    return max(0.0, float(np.sum(np.exp(log_pr) * (log_pr - log_pa))))  # ≥ 0; rounding can dip below


def choice_kl(lls_r: Sequence[Sequence[float]], lls_a: Sequence[Sequence[float]]) -> Estimate:
    """Mean over items of KL(P_R ‖ P_A), in nats, ± its standard error.

    P is the softmax over one item's choices' summed log-likelihoods, in float64 with log-sum-exp, so a
    constant added to an item's log-likelihoods changes nothing. 0: the artifact weighs every item's
    choices exactly as the source model does. An item whose choice counts differ raises ValueError.
    """
    r, a = _choices(lls_r, "lls_r"), _choices(lls_a, "lls_a")
    _same_items(a, r, "choice_kl")
    for i, (ri, ai) in enumerate(zip(r, a)):
        if ri.size != ai.size:
            raise ValueError(f"choice_kl: item {i} has {ri.size} choices for the reference, {ai.size} for the artifact")
    return _mean_se(np.array([_item_kl(ri, ai) for ri, ai in zip(r, a)]))


def choose(lls: Sequence[Sequence[float]], lengths: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """The chosen choice per item: (``pred``, ``pred_norm``).

    ``pred``: argmax of the summed log-likelihoods (lm-eval's ``acc``); ``pred_norm``: argmax of the
    log-likelihood per character of the continuation (lm-eval's ``acc_norm`` / OLMES ``acc_per_char``),
    which stops long answers losing just for being long. Ties go to the lowest index. A length ≤ 0 or a
    length count that differs from the item's choice count raises ValueError.
    """
    items = _choices(lls, "lls")
    _same_items(items, lengths, "choose: lls and lengths")
    pred, pred_norm = np.empty(len(items), np.int64), np.empty(len(items), np.int64)
    for i, (ll, ln) in enumerate(zip(items, lengths)):
        ln = np.asarray(ln, dtype=np.float64)
        if ln.shape != ll.shape:
            raise ValueError(f"choose: item {i} has {ll.size} choices but {ln.size} lengths")
        if (ln <= 0).any():
            raise ValueError(f"choose: item {i} has a continuation of length ≤ 0: {ln.tolist()}")
        pred[i], pred_norm[i] = np.argmax(ll), np.argmax(ll / ln)
    return pred, pred_norm
