"""The keep rule: is the candidate really better than the incumbent, or did it only move noise?

Both were scored on identical folds, so the per-fold differences are paired. The folds of repeated CV
overlap, which makes the naive t-test far too eager; Nadeau and Bengio's corrected resampled t-test
inflates the variance by the test/train size ratio to account for that:

    t = mean(d) / sqrt((1/n + n_test/n_train) * var(d))        d = per-fold improvement, n folds

A second look (group-sequential, two stages): a candidate whose first p is below LOOK_P but not below
alpha * STRONG_SHARE is scored again, with the incumbent, on fresh folds (other partitions of the same rows,
confirm_repeats of them). Each block of fresh folds as large as the first look gets the same corrected test,
and the one-sided p-values of all blocks are combined (Stouffer: z = sum z_i / sqrt m); the candidate is
kept when the combined p < alpha. This treats the blocks as independent evidence: true for the noise of
model seeds and fold partitions, which more folds average away, not for the sampling noise of the table
itself, which only the holdout sees. bench/keep_rule_bench.py measures the false keeps on no-op changes
and the power on real gains that the two looks give together.

Not worse (non-inferiority): a candidate that is not better but simpler (fewer executable statements), clearly
faster, or adds a knob for the sweep (Lighter) is kept when "worse by the margin or more" is rejected at alpha,
t = (Δ + margin) / se, and it is not significantly worse. The margin is MARGIN_SHARE of the incumbent's ±, so
at a true cost of exactly the margin such a keep happens at most alpha of the time; the benchmark measures it.

Pure Python on purpose: importing scipy costs more than the whole rest of a step's bookkeeping.
"""

from __future__ import annotations

import dataclasses
import math

KEEP, NOOP, DISCARD = "keep", "noop", "discard"
SIMPLIFY, FASTER, KNOB = "simplify", "faster", "knob"  # kept for what they are, when not worse
CRASH, TIMEOUT, INVALID, BASELINE = "crash", "timeout", "invalid", "baseline"
KEPT = (KEEP, SIMPLIFY, FASTER, KNOB)  # verdicts that advance the branch
FAILED = (CRASH, TIMEOUT, INVALID)
LOOK_P = 0.3  # a first look with p_better under this (and no outright keep) earns a second look
STRONG_SHARE = 0.25  # with a second look available, the first look alone keeps only at p < alpha * this
NOT_SHOWN = "not SIMPLIFIED"  # a simplification's NOOP reason when the non-inferiority test failed
NEAR_MISS_P = 0.1  # a NOOP with Δ > 0 whose last p is under this was close (program.md parks families on it)
# not worse: Δ > -margin at p < alpha, margin = this share of the incumbent's ± (the standard error of its CV
# mean: how well its score is known at all); bench/keep_rule_bench.py measures what it keeps
MARGIN_SHARE = 0.5
FASTER_SHARE = 0.3  # FASTER: at least this share less evaluation time on the same folds ...
FASTER_MIN_BUDGET = 0.05  # ... and at least this share of the budget, so timing noise does not qualify


@dataclasses.dataclass(frozen=True)
class Lighter:
    """What a candidate has besides its score; each earns a keep when the candidate is not worse."""

    simpler: bool = False  # fewer executable statements than the incumbent
    faster: bool = False  # clearly less evaluation time on the same folds
    knob: bool = False  # new PARAMS keys, each with its SEARCH_SPACE, for the sweep to tune

    def status(self) -> str | None:
        return SIMPLIFY if self.simpler else FASTER if self.faster else KNOB if self.knob else None


WHY_LIGHTER = {
    SIMPLIFY: "fewer executable statements",
    FASTER: "clearly faster",
    KNOB: "new PARAMS keys with their SEARCH_SPACE",
}


@dataclasses.dataclass(frozen=True)
class Verdict:
    status: str
    delta: float  # mean improvement, positive = better whatever the metric's direction
    p_value: float  # one-sided p of "the candidate is better" (nan for the strict rule)
    p_worse: float  # one-sided p of "the candidate is worse"
    reason: str
    se_delta: float = math.nan  # corrected standard error of delta: the scale a gain must clear
    look_again: bool = False  # borderline: score both on the confirm folds and call confirm()
    looks: int = 1
    p_not_worse: float = math.nan  # one-sided p of "worse by the margin or more" (non-inferiority)


def margin_of(incumbent_se: float) -> float:
    """The non-inferiority margin for an incumbent whose CV mean has this standard error."""
    return MARGIN_SHARE * incumbent_se if incumbent_se == incumbent_se and incumbent_se > 0 else 0.0


def faster_wall_limit(incumbent_wall_s: float, budget_s: float) -> float:
    """The most wall time on the folds that FASTER allows: FASTER_SHARE less than the incumbent's, and at
    least FASTER_MIN_BUDGET of the budget less."""
    return incumbent_wall_s - max(FASTER_SHARE * incumbent_wall_s, FASTER_MIN_BUDGET * budget_s)


def faster(wall_s: float, cpu_s: float, incumbent_wall_s: float, incumbent_cpu_s: float, budget_s: float) -> bool:
    """FASTER's time test, on the same folds: wall time within faster_wall_limit, and FASTER_SHARE less CPU
    time too (a busy or stolen machine moves wall time, not CPU time). Unknown (nan) times are never faster."""
    return (
        wall_s <= faster_wall_limit(incumbent_wall_s, budget_s)
        and incumbent_cpu_s - cpu_s >= FASTER_SHARE * incumbent_cpu_s
    )


def near_miss(status: str, delta: float | None, p_value: float | None) -> bool:
    """A NOOP that was close: Δ > 0 and its last p (both looks together after a second look) < NEAR_MISS_P."""
    return status == NOOP and (delta or 0) > 0 and p_value is not None and p_value < NEAR_MISS_P


def improvements(candidate: list[float], incumbent: list[float], higher_is_better: bool) -> list[float]:
    if len(candidate) != len(incumbent):
        raise ValueError(f"{len(candidate)} candidate folds vs {len(incumbent)} incumbent folds: not paired")
    sign = 1.0 if higher_is_better else -1.0
    return [sign * (c - i) for c, i in zip(candidate, incumbent, strict=True)]


@dataclasses.dataclass(frozen=True)
class Terms:
    """What a comparison is judged by: the metric's direction, the folds' test/train ratio and the thresholds."""

    higher_is_better: bool
    ratio: float  # n_test / n_train of one fold, for the corrected variance
    alpha: float
    min_delta: float = 0.0
    margin: float = 0.0  # the non-inferiority margin (margin_of the incumbent's ±)
    lighter: Lighter = Lighter()


def decide(
    candidate: list[float], incumbent: list[float], terms: Terms, *, rule: str = "paired", second_look: bool = False
) -> Verdict:
    """The first look. With second_look, a borderline candidate comes back with look_again set."""
    d = improvements(candidate, incumbent, terms.higher_is_better)
    delta = sum(d) / len(d)
    se = corrected_se(d, terms.ratio)
    if rule == "strict":
        # the classic autoresearch rule, kept for comparison: any higher mean wins
        status = KEEP if delta > 0 else (terms.lighter.status() or NOOP) if delta == 0 else DISCARD
        why = "strict: mean improved" if delta > 0 else "strict: mean not improved"
        return Verdict(status, delta, math.nan, math.nan, why, se)
    p_better, p_worse = corrected_paired_p(d, terms.ratio)
    strong = terms.alpha * STRONG_SHARE if second_look else terms.alpha
    p_ok = not_worse_p(d, terms.ratio, terms.margin)
    v = _settle(terms, delta, p_better, p_worse, p_ok, se, strong, 1)
    if not second_look or v.status != NOOP:
        return v
    if p_better < LOOK_P and delta > 0:
        return dataclasses.replace(v, reason="borderline: a second look on fresh folds", look_again=True)
    return dataclasses.replace(
        v,
        reason=f"no significant difference (p={p_better:.3g}; a second look needs Δ > 0 "
        f"and p < {LOOK_P:g}, keeping at once p < {strong:g})",
    )


def confirm(
    first: Verdict, candidate: list[float], incumbent: list[float], terms: Terms, *, first_n: int = 0
) -> Verdict:
    """The second look. The confirm scores are cut into blocks the size of the first look (first_n scores:
    whole repeats, as the folds are stored repeat-major); each block gets its own corrected p, and all the
    looks' p-values are combined (Stouffer). Δ and its ± are over every score of both looks."""
    ratio = terms.ratio
    d2 = improvements(candidate, incumbent, terms.higher_is_better)
    n1 = first_n or len(d2)
    k = max(len(d2) // n1, 1)
    blocks = [d2[i * n1 : (i + 1) * n1] for i in range(k - 1)] + [d2[(k - 1) * n1 :]]  # a remainder joins the last
    zs = [z_of_p(first.p_value)] + [z_of_p(corrected_paired_p(b, ratio)[0]) for b in blocks]
    p_better = normal_sf(sum(zs) / math.sqrt(len(zs)))
    delta = (first.delta * n1 + sum(d2)) / (n1 + len(d2))
    se = math.sqrt(first.se_delta**2 * n1**2 + corrected_se(d2, ratio) ** 2 * len(d2) ** 2) / (n1 + len(d2))
    m = terms.margin
    p_ok = _t_p(delta + m, se, n1 + len(d2) - 1) if se > 0 else (0.0 if delta + m >= 0 else 1.0)
    v = _settle(terms, delta, p_better, 1.0 - p_better, p_ok, se, terms.alpha, 2)
    return dataclasses.replace(v, reason=f"second look: {v.reason}")


def _settle(
    terms: Terms, delta: float, p_better: float, p_worse: float, p_ok: float, se: float, strong: float, looks: int
) -> Verdict:
    alpha, margin, kind = terms.alpha, terms.margin, terms.lighter.status()

    def verdict(status: str, why: str) -> Verdict:
        return Verdict(status, delta, p_better, p_worse, why, se, looks=looks, p_not_worse=p_ok)

    if p_better < strong and delta >= terms.min_delta and delta > 0:
        return verdict(KEEP, f"better with p={p_better:.3g} < {strong:g}")
    if p_worse < alpha:
        return verdict(DISCARD, f"worse with p={p_worse:.3g} < alpha={alpha:g}")
    if kind and p_ok < alpha:
        # Karpathy's "equal or better with less code", with evidence: Δ > -margin at the keep rule's alpha
        return verdict(kind, f"{WHY_LIGHTER[kind]} and not worse (Δ > -{margin:.3g} with p={p_ok:.3g} < {alpha:g})")
    why = (
        f"gain {delta:.3g} below min_delta {terms.min_delta:g}"
        if p_better < strong
        else f"p={p_better:.3g} >= {strong:g}"
    )
    if kind:
        why += f"; {WHY_LIGHTER[kind]} but not shown not worse (p={p_ok:.3g} for Δ > -{margin:.3g})"
    return verdict(NOOP, f"no significant difference ({why})")


def normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def z_of_p(p: float) -> float:
    """The z whose upper tail is p (clipped away from 0 and 1, where it is infinite)."""
    return _inverse_sf(normal_sf, min(max(p, 1e-15), 1 - 1e-15), -10.0, 10.0)


def _inverse_sf(sf, p: float, lo: float, hi: float) -> float:
    """The x in [lo, hi] with sf(x) = p, for a decreasing survival function: bisection, far below 1e-12."""
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sf(mid) > p else (lo, mid)
    return hi


def corrected_se(d: list[float], ratio: float) -> float:
    """The Nadeau-Bengio standard error of the mean improvement."""
    n = len(d)
    if n < 2:
        return math.nan
    mean = sum(d) / n
    return math.sqrt((1.0 / n + ratio) * sum((x - mean) ** 2 for x in d) / (n - 1))


def corrected_paired_p(d: list[float], ratio: float) -> tuple[float, float]:
    """One-sided p-values (better, worse) of the Nadeau-Bengio corrected t-test on improvements d."""
    n = len(d)
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1) if n > 1 else 0.0
    if var <= 1e-24:
        # identical differences on every fold: the sign is certain, zero means no change at all
        if abs(mean) <= 1e-12:
            return 0.5, 0.5
        return (0.0, 1.0) if mean > 0 else (1.0, 0.0)
    t = mean / math.sqrt((1.0 / n + ratio) * var)
    upper = t_sf(t, n - 1)
    return upper, 1.0 - upper


def not_worse_p(d: list[float], ratio: float, margin: float) -> float:
    """One-sided p of "worse by margin or more" (non-inferiority): small when Δ > -margin is well supported."""
    n = len(d)
    mean = sum(d) / n
    se = corrected_se(d, ratio)
    if not se > 1e-12:  # one fold, or the same difference on every fold: certain either way
        return 0.0 if mean + margin >= -1e-12 else 1.0
    return _t_p(mean + margin, se, n - 1)


def _t_p(excess: float, se: float, df: int) -> float:
    return t_sf(excess / se, max(df, 1))


def keep_threshold(alpha: float, df: int) -> float:
    """The t a keep needs: Δ must exceed this many times its corrected SE (the ± on a step line)."""
    return _inverse_sf(lambda t: t_sf(t, df), alpha, 0.0, 100.0)


# ---------------------------------------------------------------------------
# Student's t survival function via the regularized incomplete beta function (Numerical Recipes 6.4)


def t_sf(t: float, df: int) -> float:
    """P(T > t) for Student's t with df degrees of freedom."""
    x = df / (df + t * t)
    tail = 0.5 * _betainc(df / 2.0, 0.5, x)
    return tail if t > 0 else 1.0 - tail


def _betainc(a: float, b: float, x: float) -> float:
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    ln_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(ln_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(ln_front) * _betacf(b, a, 1.0 - x) / b


def _betacf(a: float, b: float, x: float, eps: float = 1e-15, max_iter: int = 500) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        for aa in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + aa * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + aa / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < eps:
            break
    return h
