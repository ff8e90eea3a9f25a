"""The keep rule in isolation: the corrected t-test against scipy, and each verdict on hand-made fold scores."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from autoresearch import keep_rule as kr

INC = [0.80, 0.82, 0.79, 0.81, 0.83, 0.80, 0.78, 0.82, 0.81, 0.80]


def shifted(by: float, wobble: float = 0.002) -> list[float]:
    return [x + by + (wobble if i % 2 else -wobble) for i, x in enumerate(INC)]


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


@pytest.mark.parametrize("cand, kw, status", [
    (shifted(0.01), {}, kr.KEEP),                           # a clear gain
    (shifted(-0.01), {}, kr.DISCARD),                       # a clear loss
    (shifted(0.0005, wobble=0.01), {}, kr.NOOP),            # noise
    (shifted(0.0005, wobble=0.01), {"fewer_lines": True}, kr.SIMPLIFY),
    (shifted(0.01), {"min_delta": 0.02}, kr.NOOP),          # significant but below min_delta
    (shifted(-0.01), {"fewer_lines": True}, kr.DISCARD),    # shorter but worse is still worse
    (shifted(0.0005, wobble=0.01), {"rule": "strict"}, kr.KEEP),  # strict keeps any higher mean
    (list(INC), {}, kr.NOOP),                               # identical scores
])
def test_verdicts(cand, kw, status):
    assert kr.decide(cand, INC, higher_is_better=True, ratio=0.25, **kw).status == status


def test_lower_is_better_flips_the_sign():
    v = kr.decide(shifted(-0.01), INC, higher_is_better=False, ratio=0.25)
    assert v.status == kr.KEEP and v.delta == pytest.approx(0.01)
