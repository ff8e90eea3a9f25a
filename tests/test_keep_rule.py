"""The keep rule in isolation: the corrected t-test against scipy, and each verdict on hand-made fold scores."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from autoresearch import keep_rule as kr

INC = [0.80, 0.82, 0.79, 0.81, 0.83, 0.80, 0.78, 0.82, 0.81, 0.80]


def shifted(by: float, wobble: float = 0.002) -> list[float]:
    return [x + by + (wobble if i % 2 else -wobble) for i, x in enumerate(INC)]


M = kr.margin_of(0.0046)  # about INC's standard error of the mean
SIMPLER = {"lighter": kr.Lighter(simpler=True), "margin": M}


@pytest.mark.parametrize("t, df", [(0.3, 9), (1.383, 9), (-2.0, 5), (4.5, 19), (0.0, 3)])
def test_t_sf_matches_scipy(t, df):
    assert kr.t_sf(t, df) == pytest.approx(stats.t.sf(t, df), abs=1e-12)


@pytest.mark.parametrize("alpha, df", [(0.1, 9), (0.05, 9), (0.2, 5), (0.01, 19)])
def test_keep_threshold_is_the_t_quantile(alpha, df):
    assert kr.keep_threshold(alpha, df) == pytest.approx(stats.t.isf(alpha, df), abs=1e-9)


def test_corrected_p_matches_the_formula():
    d = kr.improvements(shifted(0.004), INC, higher_is_better=True)
    n, mean, var = len(d), sum(d) / len(d), stats.tvar(d)
    t = mean / math.sqrt((1 / n + 0.25) * var)
    better, worse = kr.corrected_paired_p(d, 0.25)
    assert better == pytest.approx(stats.t.sf(t, n - 1), abs=1e-12) and better + worse == pytest.approx(1.0)


@pytest.mark.parametrize(
    "cand, kw, status",
    [
        (shifted(0.01), {}, kr.KEEP),  # a clear gain
        (shifted(-0.01), {}, kr.DISCARD),  # a clear loss
        (shifted(0.0005, wobble=0.01), {}, kr.NOOP),  # noise
        (shifted(0.0005), SIMPLER, kr.SIMPLIFY),  # not better, shown not worse, and simpler
        (shifted(-0.0005), SIMPLER, kr.SIMPLIFY),  # a hair worse on the mean, well inside the margin
        (shifted(0.0005, wobble=0.01), SIMPLER, kr.NOOP),  # too noisy to show it is not worse
        (shifted(0.0005), {**SIMPLER, "lighter": kr.Lighter(faster=True)}, kr.FASTER),
        (shifted(0.0005), {**SIMPLER, "lighter": kr.Lighter(knob=True)}, kr.KNOB),
        (shifted(0.0005), {"margin": M}, kr.NOOP),  # not worse, but nothing else for it
        (shifted(0.01), {"min_delta": 0.02}, kr.NOOP),  # significant but below min_delta
        (shifted(-0.01), SIMPLER, kr.DISCARD),  # shorter but worse is still worse
        (list(INC), {"lighter": kr.Lighter(simpler=True)}, kr.SIMPLIFY),  # identical scores, less code
        (shifted(0.0005, wobble=0.01), {"rule": "strict"}, kr.KEEP),  # strict keeps any higher mean
        (list(INC), {}, kr.NOOP),  # identical scores
    ],
)
def test_verdicts(cand, kw, status):
    kw = dict(kw)
    rule = kw.pop("rule", "paired")
    assert kr.decide(cand, INC, kr.Terms(True, 0.25, 0.1, **kw), rule=rule).status == status


def test_lower_is_better_flips_the_sign():
    v = kr.decide(shifted(-0.01), INC, kr.Terms(False, 0.25, 0.1))
    assert v.status == kr.KEEP and v.delta == pytest.approx(0.01)


def test_not_worse_is_a_non_inferiority_test_against_scipy():
    d = kr.improvements(shifted(-0.001, wobble=0.004), INC, higher_is_better=True)
    n, mean = len(d), sum(d) / len(d)
    se = math.sqrt((1 / n + 0.25) * stats.tvar(d))
    assert kr.not_worse_p(d, 0.25, M) == pytest.approx(stats.t.sf((mean + M) / se, n - 1), abs=1e-12)
    # worse by the margin on the mean: "not worse" is no better supported than a coin toss
    at_margin = kr.improvements(shifted(-M, wobble=0.004), INC, higher_is_better=True)
    assert kr.not_worse_p(at_margin, 0.25, M) == pytest.approx(0.5, abs=1e-9)


def test_faster_needs_wall_and_cpu_time_to_drop():
    assert kr.faster(60, 50, 100, 90, budget_s=120)  # 40% less wall, 44% less CPU, 40 s saved
    assert not kr.faster(60, 85, 100, 90, budget_s=120)  # the wall time moved, the CPU time did not
    assert not kr.faster(1.0, 0.5, 2.0, 1.5, budget_s=120)  # half the time, but 1 s is noise at this budget
    assert not kr.faster(60, 50, math.nan, math.nan, budget_s=120)  # an incumbent measured before CPU times


@pytest.mark.parametrize(
    "status, delta, p, near",
    [
        ("noop", 0.002, 0.09, True),
        ("noop", 0.002, 0.1, False),
        ("noop", -0.001, 0.01, False),
        ("keep", 0.01, 0.001, False),
    ],
)
def test_a_near_miss_is_a_close_noop(status, delta, p, near):
    assert kr.near_miss(status, delta, p) is near


# ---------------------------------------------------------------------------
# The second look


@pytest.mark.parametrize("p", [1e-9, 0.01, 0.3, 0.5, 0.9])
def test_z_of_p_inverts_the_normal_tail(p):
    assert kr.z_of_p(p) == pytest.approx(stats.norm.isf(p), abs=1e-9)
    assert kr.normal_sf(kr.z_of_p(p)) == pytest.approx(p, rel=1e-9)


def first_look(cand, **kw):
    return kr.decide(cand, INC, kr.Terms(True, 0.25, 0.1, **kw), second_look=True)


def test_a_strong_first_look_keeps_without_a_second():
    v = first_look(shifted(0.01))
    assert v.status == kr.KEEP and not v.look_again and v.p_value < 0.1 * kr.STRONG_SHARE


def test_a_borderline_first_look_asks_for_a_second_and_is_not_kept_yet():
    cand = shifted(0.004, wobble=0.01)
    one_look = kr.decide(cand, INC, kr.Terms(True, 0.25, 0.1))
    v = first_look(cand)
    assert 0.1 * kr.STRONG_SHARE <= v.p_value < kr.LOOK_P
    assert v.look_again and v.status == kr.NOOP and one_look.status == kr.NOOP


@pytest.mark.parametrize(
    "cand, kw",
    [
        (shifted(-0.004, wobble=0.01), {}),  # worse on the mean: nothing to confirm
        (shifted(0.0005), SIMPLER),  # kept as a simplification anyway
        (shifted(-0.01), {}),  # clearly worse
    ],
)
def test_no_second_look(cand, kw):
    assert not first_look(cand, **kw).look_again


def test_the_second_look_combines_both_p_values_stouffer():
    cand = shifted(0.004, wobble=0.01)
    v1 = first_look(cand)
    inc2 = [x + 0.01 for x in INC]
    cand2 = [x + 0.004 + (0.006 if i % 3 else -0.004) for i, x in enumerate(inc2)]
    p2, _ = kr.corrected_paired_p(kr.improvements(cand2, inc2, True), 0.25)
    v = kr.confirm(v1, cand2, inc2, kr.Terms(True, 0.25, 0.1))
    z = (stats.norm.isf(v1.p_value) + stats.norm.isf(p2)) / math.sqrt(2)
    assert v.p_value == pytest.approx(stats.norm.sf(z), abs=1e-9) and v.looks == 2
    assert v.status == (kr.KEEP if v.p_value < 0.1 else kr.NOOP)
    assert v.delta == pytest.approx((v1.delta * 10 + sum(c - i for c, i in zip(cand2, inc2, strict=True))) / 20)


def test_a_second_look_that_shows_nothing_is_a_noop():
    v1 = first_look(shifted(0.004, wobble=0.01))
    flat = [x + (0.01 if i % 2 else -0.01) for i, x in enumerate(INC)]
    v = kr.confirm(v1, flat, INC, kr.Terms(True, 0.25, 0.1))
    assert v.status == kr.NOOP and v.p_value > v1.p_value and v.reason.startswith("second look:")


def test_confirm_scores_are_tested_in_blocks_the_size_of_the_first_look():
    v1 = first_look(shifted(0.004, wobble=0.01))
    a = [x + 0.003 + (0.004 if i % 2 else -0.004) for i, x in enumerate(INC)]
    b = [x + 0.001 + (0.006 if i % 3 else -0.005) for i, x in enumerate(INC)]
    v = kr.confirm(v1, a + b, INC + INC, kr.Terms(True, 0.25, 0.1), first_n=10)
    za, zb = (stats.norm.isf(kr.corrected_paired_p(kr.improvements(c, INC, True), 0.25)[0]) for c in (a, b))
    assert v.p_value == pytest.approx(stats.norm.sf((stats.norm.isf(v1.p_value) + za + zb) / math.sqrt(3)), abs=1e-9)
