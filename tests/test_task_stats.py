"""edge.tasks.stats against independent oracles: hand-counted synthetic items, closed forms, exact
binomial sums in exact integers / Fraction, and a naive item-resampling bootstrap."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from edge.tasks import stats
from edge.tasks.stats import Delta, Estimate, accuracy, choice_kl, choose, flips, mcnemar_p, paired_delta


def _exact_mcnemar(b: int, c: int) -> float:
    m = b + c
    if m == 0:
        return 1.0
    term, total = 1, 1  # C(m, 0); C(m, k + 1) = C(m, k)·(m − k)/(k + 1), exact in integers
    for k in range(min(b, c)):
        term = term * (m - k) // (k + 1)
        total += term
    tail = Fraction(total, 2 ** m)
    return float(min(Fraction(1), 2 * tail))


def _fixed_sets(n: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """A right on items 0..69, R right on 0..59 and 70..84: 10 A-only, 15 R-only."""
    a, r = np.zeros(n, bool), np.zeros(n, bool)
    a[:70] = True
    r[:60] = True
    r[70:85] = True
    return a, r


# ---------------------------------------------------------------------------------------- accuracy

def test_accuracy_and_its_se_by_hand():
    a, r = _fixed_sets()
    est = accuracy(a)
    assert est == Estimate(0.7, est.se, 100)
    assert math.isclose(est.se, math.sqrt(0.7 * 0.3 / 99), rel_tol=1e-12)  # p(1-p)/(n-1): ddof=1
    assert math.isclose(accuracy(r).value, 0.75, rel_tol=1e-12)
    assert accuracy([1, 0, 1, 1]).value == 0.75  # 0/1 integers are right/wrong too


def test_single_item_has_no_se():
    assert accuracy([True]) == Estimate(1.0, None, 1)
    d = paired_delta([True], [False])
    assert d.se is None and d.delta == d.lo == d.hi == 1.0


def test_all_right_has_zero_se():
    assert accuracy(np.ones(10, bool)) == Estimate(1.0, 0.0, 10)


# -------------------------------------------------------------------------------------- paired Δacc

def test_paired_delta_on_fixed_sets():
    a, r = _fixed_sets()
    d = paired_delta(a, r)
    assert isinstance(d, Delta)
    assert math.isclose(d.delta, -0.05, abs_tol=1e-15)
    assert (d.n, d.a_only, d.r_only) == (100, 10, 15)
    # per-item d ∈ {-1, 0, 1}: Σd² = b + c, mean = (b - c)/n → var(ddof=1) = (b + c - (b - c)²/n) / (n - 1)
    assert math.isclose(d.se, math.sqrt((25 - 25 / 100) / 99 / 100), rel_tol=1e-12)
    assert math.isclose(d.p_mcnemar, _exact_mcnemar(10, 15), rel_tol=1e-12)
    assert d.lo <= d.delta <= d.hi


def test_mcnemar_by_hand():
    assert mcnemar_p(8, 2) == pytest.approx(0.109375, rel=1e-12)  # 2·(1 + 10 + 45)/2^10
    assert mcnemar_p(2, 8) == pytest.approx(0.109375, rel=1e-12)  # two-sided: symmetric
    assert mcnemar_p(0, 10) == pytest.approx(2 / 1024, rel=1e-12)
    assert mcnemar_p(0, 0) == 1.0
    assert mcnemar_p(5, 5) == 1.0  # 2·P[X ≤ 5] > 1 is capped
    assert mcnemar_p(0, 1) == 1.0


@pytest.mark.parametrize("b,c", [(1, 0), (3, 7), (17, 40), (120, 95), (3000, 2800), (6000, 5000)])
def test_mcnemar_against_exact_fractions(b, c):
    assert mcnemar_p(b, c) == pytest.approx(_exact_mcnemar(b, c), rel=1e-9, abs=1e-300)


def test_mcnemar_tail_does_not_underflow_early():
    # 2·2^-1074 would be the smallest float; 2^-1000 (b=1000, c=0) is well inside the range
    assert mcnemar_p(1000, 0) == pytest.approx(2.0 ** -999, rel=1e-9)
    with pytest.raises(ValueError):
        mcnemar_p(-1, 3)


def test_bootstrap_contains_true_delta_for_a_large_sample():
    rng = np.random.default_rng(123)
    n = 20_000
    r = rng.random(n) < 0.6
    # R right → A wrong with p 0.10; R wrong → A right with p 0.05: Δ = 0.4·0.05 − 0.6·0.10 = −0.04
    u = rng.random(n)
    a = np.where(r, u >= 0.10, u < 0.05)
    d = paired_delta(a, r, seed=7)
    assert d.lo < -0.04 < d.hi
    assert d.hi < 0  # a measured loss at this n
    # large n: the percentile interval is the normal one, delta ± 1.96 se
    assert d.hi - d.lo == pytest.approx(2 * 1.959964 * d.se, rel=0.1)


def _exact_sample(n: int, a_only: float = 0.10, r_only: float = 0.05, both: float = 0.5):
    a, r = np.zeros(n, bool), np.zeros(n, bool)
    i, j, k = int(a_only * n), int(r_only * n), int(both * n)
    a[:i] = True
    r[i:i + j] = True
    a[i + j:i + j + k] = r[i + j:i + j + k] = True
    return a, r


def test_bootstrap_width_shrinks_as_one_over_sqrt_n():
    small, large = paired_delta(*_exact_sample(400)), paired_delta(*_exact_sample(6400))
    assert small.delta == pytest.approx(large.delta) == pytest.approx(0.05)
    ratio = (small.hi - small.lo) / (large.hi - large.lo)
    assert 3.3 < ratio < 4.8  # sqrt(6400 / 400) = 4


def test_bootstrap_is_reproducible_for_a_seed():
    a, r = _exact_sample(500)
    assert paired_delta(a, r, seed=3) == paired_delta(a, r, seed=3)
    others = {(d.lo, d.hi) for d in (paired_delta(a, r, seed=s, n_boot=500) for s in range(6))}
    assert len(others) > 1  # the seed is used


def test_bootstrap_agrees_with_naive_item_resampling():
    rng = np.random.default_rng(5)
    n, n_boot = 300, 10_000
    r = rng.random(n) < 0.55
    a = np.where(rng.random(n) < 0.2, ~r, r)
    idx = np.random.default_rng(99).integers(0, n, size=(n_boot, n))
    naive = (a[idx].astype(int) - r[idx].astype(int)).mean(axis=1)
    lo, hi = np.quantile(naive, [0.025, 0.975])
    d = paired_delta(a, r, seed=1, n_boot=n_boot)
    assert d.lo == pytest.approx(lo, abs=0.3 * d.se)
    assert d.hi == pytest.approx(hi, abs=0.3 * d.se)
    narrow = paired_delta(a, r, seed=1, n_boot=n_boot, level=0.5)
    assert d.lo < narrow.lo <= narrow.hi < d.hi


def test_bootstrap_in_chunks_is_the_same_bootstrap(monkeypatch):
    a, r = _exact_sample(1000)
    whole = paired_delta(a, r, seed=2)
    monkeypatch.setattr(stats, "_BOOT_CHUNK", 7)
    chunked = paired_delta(a, r, seed=2)
    assert chunked.lo == pytest.approx(whole.lo, abs=0.3 * whole.se)
    assert chunked.hi == pytest.approx(whole.hi, abs=0.3 * whole.se)


def test_no_discordant_pairs():
    a = np.array([True, False, True, True])
    d = paired_delta(a, a.copy())
    assert (d.delta, d.lo, d.hi, d.se, d.a_only, d.r_only, d.p_mcnemar) == (0.0, 0.0, 0.0, 0.0, 0, 0, 1.0)


# ----------------------------------------------------------------------------------------- flips

def test_flips_by_hand():
    f = flips([0, 1, 2, 3, 0], [0, 2, 2, 0, 0])
    assert f.value == pytest.approx(0.4) and f.n == 5
    assert f.se == pytest.approx(math.sqrt(0.4 * 0.6 / 4))
    assert flips([1, 2], [1, 2]) == Estimate(0.0, 0.0, 2)


# -------------------------------------------------------------------------------------- choice KL

def test_choice_kl_of_identical_lls_is_exactly_zero():
    lls = [np.array([-3.2, -1.1, -7.0]), np.array([-0.5, -0.4]), np.array([-12.0, -11.0, -15.5, -9.0])]
    assert choice_kl(lls, [x.copy() for x in lls]) == Estimate(0.0, 0.0, 3)


def test_choice_kl_two_choices_closed_form():
    # P_R(first) = sigmoid(l0 - l1): 2 for R, -1 for A; KL(R‖A) = p ln(p/q) + (1-p) ln((1-p)/(1-q))
    p, q = 1 / (1 + math.exp(-2.0)), 1 / (1 + math.exp(1.0))
    kl_ra = p * math.log(p / q) + (1 - p) * math.log((1 - p) / (1 - q))
    kl_ar = q * math.log(q / p) + (1 - q) * math.log((1 - q) / (1 - p))
    assert not math.isclose(kl_ra, kl_ar, rel_tol=1e-3)  # so the direction is tested
    est = choice_kl([[-1.0, -3.0]], [[-4.0, -3.0]])
    assert est.value == pytest.approx(kl_ra, rel=1e-12) and est.se is None and est.n == 1


def test_choice_kl_mean_and_se_over_items():
    lls_r = [[0.0, 0.0], [-1.0, -3.0], [0.0, -1.0, -2.0]]
    lls_a = [[0.0, -1.0], [-4.0, -3.0], [-2.0, -1.0, 0.0]]

    def kl(lr, la):  # plain softmax with math: the values are small
        pr = [math.exp(x) / sum(math.exp(y) for y in lr) for x in lr]
        pa = [math.exp(x) / sum(math.exp(y) for y in la) for x in la]
        return sum(a * math.log(a / b) for a, b in zip(pr, pa))

    per = [kl(r, a) for r, a in zip(lls_r, lls_a)]
    mean = sum(per) / 3
    se = math.sqrt(sum((x - mean) ** 2 for x in per) / 2 / 3)
    est = choice_kl(lls_r, lls_a)
    assert est.value == pytest.approx(mean, rel=1e-12) and est.se == pytest.approx(se, rel=1e-12)


def test_choice_kl_ignores_a_constant_added_to_one_item():
    rng = np.random.default_rng(0)
    lls_r = [rng.normal(size=k) * 3 for k in (2, 4, 3, 5)]
    lls_a = [x + rng.normal(scale=0.7, size=x.size) for x in lls_r]
    base = choice_kl(lls_r, lls_a)
    assert base.value > 0.01
    shifted_r = [x + (1e4 if i == 1 else 0.0) for i, x in enumerate(lls_r)]
    shifted_a = [x - (5e3 if i == 2 else 0.0) for i, x in enumerate(lls_a)]  # summed lls are often ≪ 0
    for r, a in ((shifted_r, lls_a), (lls_r, shifted_a), (shifted_r, shifted_a)):
        moved = choice_kl(r, a)
        assert moved.value == pytest.approx(base.value, rel=1e-9)
        assert moved.se == pytest.approx(base.se, rel=1e-9)


def test_choice_kl_needs_matching_choice_counts():
    with pytest.raises(ValueError, match="item 2"):
        choice_kl([[0.0, 1.0]] * 3, [[0.0, 1.0], [0.0, 1.0], [0.0, 1.0, 2.0]])
    with pytest.raises(ValueError, match="not finite"):
        choice_kl([[0.0, float("nan")]], [[0.0, 1.0]])


# ----------------------------------------------------------------------------------------- choose

def test_choose_ties_go_to_the_lowest_index():
    pred, pred_norm = choose([[-1.0, -1.0, -2.0], [-4.0, -8.0]], [[3, 3, 3], [2, 4]])
    assert pred.tolist() == [0, 0]
    assert pred_norm.tolist() == [0, 0]  # -4/2 == -8/4: a tie, the first wins


def test_choose_length_normalisation_can_flip_the_choice():
    pred, pred_norm = choose([[-10.0, -12.0]], [[5, 20]])  # per char: -2 vs -0.6
    assert pred.tolist() == [0] and pred_norm.tolist() == [1]
    assert pred.dtype == np.int64


def test_choose_rejects_bad_lengths():
    with pytest.raises(ValueError, match="item 1"):
        choose([[-1.0, -2.0], [-1.0, -2.0]], [[1, 2], [0, 2]])
    with pytest.raises(ValueError, match="item 0"):
        choose([[-1.0, -2.0]], [[1, 2, 3]])
    with pytest.raises(ValueError):
        choose([[-1.0, -2.0]], [[1, 2], [1, 2]])


# -------------------------------------------------------------------------------------- bad input

def test_different_item_counts_raise():
    with pytest.raises(ValueError, match="same items"):
        paired_delta([True, False, True], [True, False])
    with pytest.raises(ValueError, match="same items"):
        flips([0, 1], [0, 1, 2])
    with pytest.raises(ValueError, match="same items"):
        choice_kl([[0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]])


def test_other_bad_input_raises():
    with pytest.raises(ValueError, match="no items"):
        accuracy([])
    with pytest.raises(ValueError, match="bool"):
        accuracy([0, 2, 1])
    with pytest.raises(ValueError, match="shape"):
        accuracy([[True, False]])
    with pytest.raises(ValueError, match="level"):
        paired_delta([True, False], [False, True], level=1.0)
    with pytest.raises(ValueError, match="n_boot"):
        paired_delta([True, False], [False, True], n_boot=0)
