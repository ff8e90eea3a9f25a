"""`autoresearch sweep`: the surveyor. Optuna TPE over train.py's SEARCH_SPACE, then a hand-off to `step`.

The agent is the scout (which model, which features), Optuna the surveyor (which learning rate). A sweep:

  1. starts from the committed incumbent (clean train.py) and its SEARCH_SPACE, read without running it;
  2. runs the study (autoresearch.study) under one hard budget: trials are scored on the sweep's own folds
     through the sandboxed engine, pruned fold by fold; the current PARAMS are the first trial;
  3. writes the best PARAMS back into train.py's PARAMS literal (nothing else moves), says so in HYPOTHESIS
     and CATEGORY, and records .autoresearch/runs/<tag>/sweep.json, so the step marks its row;
  4. steps it (unless --no-step): the ratchet judges the new PARAMS on its own folds, so a sweep is one
     command of the loop, and a kept sweep prints the declarations as they now stand in train.py.

The study lives in an Optuna JournalStorage file under .autoresearch/runs/<tag>/sweep/ (resumable: the
same study name continues it) or in any Optuna storage URL (--storage), which sweeps on several machines
can share. The holdout is never loaded here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

from autoresearch import gitops, integrity, layout, manifest, runstate, search_space, study, text
from autoresearch.config import Config, load_config
from autoresearch.errors import UserError
from autoresearch.files import write_json
from autoresearch.records import Run
from autoresearch.static_check import without_declarations

DEFAULT_BUDGET_S = 600.0
MIN_BUDGET_S = 10.0  # the sandbox alone needs ~6 s to import pandas and scikit-learn
HAND_OFF_S = 1.0  # kept back for writing train.py and sweep.json after the trials
JOURNAL = "optuna.journal"
SIG_DIGITS = 4  # floats are written back rounded: readable, and far below any knob's sensitivity


def sweep_dir(root: Path, tag: str) -> Path:
    return runstate.run_dir(root, tag) / "sweep"


# ---------------------------------------------------------------------------
# The command


def run_sweep(args) -> int:
    t0 = _process_start()
    _check_args(args)
    cfg = load_config()
    with runstate.Lock(cfg.root):
        run, repo, source = _preflight(cfg)
        params, dims = search_space.load(source)
        m = manifest.ensure(cfg, quiet=True)
        if m["id"] != run.manifest_id:
            raise UserError(
                f"run {run.tag!r} was scored on prepared data {run.manifest_id}, now {m['id']} (config, data or "
                "harness changed): start a new tag, then sweep"
            )
        plan = _plan(cfg, args, run, params, dims, m, deadline=t0 + args.budget - HAND_OFF_S)
        log = study.Log(m["metric"], m["higher_is_better"], tty=sys.stdout.isatty())
        logs = runstate.run_dir(cfg.root, run.tag) / "logs"
        study.run(cfg, cfg.root / layout.TRAIN, plan, log, logs)
        log.end_progress()
        _postflight(cfg, source, log)
        rc, wrote = _hand_off(cfg, run, source, plan, log, m, time.monotonic() - t0, step=not args.no_step)
    if not wrote or args.no_step:
        return rc
    return _step(cfg, args.note)


def _step(cfg: Config, note: str | None) -> int:
    """The ratchet judges what the sweep wrote; when it keeps it, the lines the agent's next Edit starts from."""
    import argparse

    from autoresearch.ratchet import run_step

    before = runstate.current_run(cfg.root).incumbent.commit
    rc = run_step(argparse.Namespace(note=note))
    if runstate.current_run(cfg.root).incumbent.commit != before:
        source = (cfg.root / layout.TRAIN).read_text(encoding="utf-8", errors="replace")
        print("train.py's PARAMS are now (the rest is as it was):")
        print("\n".join(f"  {line}" for line in search_space.declaration_lines(source, ("PARAMS",))))
    return rc


def add_arguments_sweep(p) -> None:
    p.epilog = (
        "Searches train.py's SEARCH_SPACE, writes the best PARAMS into train.py, then steps it: the ratchet "
        "judges them on its own folds (one more evaluation after the budget) and keeps or reverts them."
    )
    p.add_argument(
        "--no-step",
        action="store_true",
        help="write the best PARAMS into train.py and stop there; `uv run autoresearch step` judges them later",
    )
    p.add_argument("--note", metavar="TEXT", help="a line for notes.md, added by the step (see `step --help`)")
    p.add_argument("--trials", type=int, help="stop after this many trials (default: as many as the budget allows)")
    p.add_argument(
        "--budget",
        type=float,
        default=DEFAULT_BUDGET_S,
        metavar="SECONDS",
        help=f"wall-clock budget of the whole sweep, hard (default {DEFAULT_BUDGET_S:g})",
    )
    p.add_argument(
        "--storage",
        metavar="URL",
        help="an Optuna storage several machines can share: an RDB URL (postgresql://..., mysql://..., "
        "sqlite:///...) or a journal file path (default: .autoresearch/runs/<tag>/sweep/"
        "optuna.journal)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="K",
        help="local worker processes on one study; n_jobs is split between them (default 1)",
    )
    p.add_argument(
        "--study",
        metavar="NAME",
        help="study name; the same name continues a study (default: from the tag, the incumbent commit "
        "and SEARCH_SPACE, so a new structure starts a new study)",
    )


def _process_start() -> float:
    """time.monotonic() when this process started: the budget covers the interpreter's start-up too."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return time.monotonic() - min(max(0.0, age), 60.0)
    except (OSError, ValueError, IndexError, AttributeError):
        return time.monotonic()


def _check_args(args) -> None:
    if args.trials is not None and args.trials < 1:
        raise UserError(f"--trials {args.trials}: give a whole number >= 1 (or leave it out: the budget decides)")
    if not args.budget >= MIN_BUDGET_S:
        raise UserError(
            f"--budget {args.budget:g}: give at least {MIN_BUDGET_S:g} seconds (the worker alone "
            "needs about 6 s to start)"
        )
    if not 1 <= args.workers <= 64:
        raise UserError(f"--workers {args.workers}: give a whole number from 1 to 64")
    if args.study is not None and not args.study.strip():
        raise UserError("--study: give a non-empty name (or leave it out for the default)")


def _preflight(cfg: Config):
    """The run is active, on its branch at the incumbent, and train.py is exactly the incumbent's."""
    from autoresearch.finish import recover

    run = runstate.current_run(cfg.root)
    if run.status != "active":
        raise UserError(f"run {run.tag!r} is stopped; `uv run autoresearch start {run.tag}` resumes it, then sweep")
    repo = gitops.open_repo(cfg.root)
    integrity.refuse_plants(cfg, repo)
    for note in recover(cfg, repo, run):  # a step killed earlier is finished first
        print(note)
    run = runstate.load_run(cfg.root, run.tag)
    inc = run.incumbent.commit
    if gitops.current_branch(repo) != run.branch or gitops.tip(repo, run.branch) != inc:
        raise UserError(
            f"the work tree is not at the run's incumbent ({run.branch} at {inc[:8]}): "
            f"`git checkout {run.branch}` (or `uv run autoresearch start {run.tag}`), then sweep"
        )
    source = (cfg.root / layout.TRAIN).read_text(encoding="utf-8", errors="replace")
    if gitops.blob_of_worktree(repo) != gitops.blob_at(repo, inc) and without_declarations(
        source
    ) != without_declarations(gitops.show(repo, inc) + "\n"):
        raise UserError(
            f"train.py differs from the incumbent ({inc[:8]}) beyond SEARCH_SPACE, HYPOTHESIS and "
            "CATEGORY: the sweep tunes the incumbent's model. Run `uv run autoresearch step` on your "
            "change first, then sweep (a new SEARCH_SPACE alone may stay uncommitted: the sweep uses it)"
        )
    return run, repo, source


def _plan(cfg: Config, args, run: Run, params: dict, dims, m: dict, deadline: float) -> study.Plan:
    local = sweep_dir(cfg.root, run.tag)
    local.mkdir(parents=True, exist_ok=True)
    storage = _storage_spec(cfg, args.storage, local)
    if storage.default:
        _repair_journal(Path(storage.where))
    space = {d.name: [d.kind, d.low, d.high, d.log, list(d.choices)] for d in dims}
    name = (
        args.study
        or f"{run.tag}-{run.incumbent.commit[:8]}-{hashlib.sha256(json.dumps(space).encode()).hexdigest()[:8]}"
    )
    k = args.workers
    trials = None if args.trials is None else [args.trials // k + (i < args.trials % k) for i in range(k)]
    return study.Plan(
        tag=run.tag,
        study=name,
        storage=storage,
        workers=k,
        trials=trials,
        n_jobs=max(1, cfg.n_jobs // k),
        maximize=m["higher_is_better"],
        dims=list(dims),
        current={d.name: params[d.name] for d in dims},
        seed=cfg.seed + manifest.SWEEP_SEED_OFFSET,
        deadline=deadline - study.SOFT_MARGIN_S,
    )


# ---------------------------------------------------------------------------
# Storage


def _storage_spec(cfg: Config, url: str | None, local: Path) -> study.Storage:
    if url is None:
        return study.Storage("journal", str(local / JOURNAL), default=True)
    if "://" in url:
        if not re.match(r"^(sqlite|postgresql|postgres|mysql|mariadb|oracle|mssql)(\+\w+)?://", url):
            raise UserError(
                f"--storage {redact(url)}: not an Optuna RDB URL; use postgresql://user:pass@host/db, "
                "mysql://..., sqlite:///path.db, or a journal file path"
            )
        _check_driver(url)
        return study.Storage("rdb", url)
    path = Path(url).expanduser()
    path = path if path.is_absolute() else cfg.root / path
    if not path.parent.is_dir():
        raise UserError(f"--storage {url}: folder {path.parent} does not exist; create it or give another path")
    return study.Storage("journal", str(path))


def _check_driver(url: str) -> None:
    """The database's Python driver imports here, not only in the worker, so a missing one says what to do."""
    from sqlalchemy import create_engine  # an Optuna dependency; creating an engine imports the driver, no I/O

    try:
        create_engine(url).dispose()
    except ModuleNotFoundError as e:
        raise UserError(
            f"--storage {redact(url)}: its database driver ({e.name}) is not installed; add it for this "
            f"command only (pyproject.toml stays frozen): `uv run --with {DRIVERS.get(e.name, e.name)} "
            "autoresearch sweep ...`"
        ) from None


# module -> what to add with `uv run --with`
DRIVERS = {
    "psycopg": "'psycopg[binary]'",
    "psycopg2": "psycopg2-binary",
    "MySQLdb": "mysqlclient",
    "pymysql": "pymysql",
}


def redact(url: str) -> str:
    """A storage URL without its password, fit for printing and for sweep.json."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def describe_storage(storage: study.Storage, root: Path) -> str:
    if storage.kind == "rdb":
        return redact(storage.where)
    path = Path(storage.where)
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _repair_journal(path: Path) -> None:
    """The default journal is ours alone (the project lock is held): a hard kill mid-write can leave a torn
    last line (which would make every later read fail) or a stale lock (a 30 s wait); undo both."""
    for stale in path.parent.glob(path.name + ".lock*"):
        stale.unlink(missing_ok=True)
    if not path.is_file():
        return
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        keep = raw.rfind(b"\n") + 1
        (path.parent / f"{path.name}.torn-{int(time.time())}").write_bytes(raw[keep:])
        with open(path, "r+b") as f:
            f.truncate(keep)


def _postflight(cfg: Config, source: str, log: study.Log) -> None:
    """The trials ran in the sandbox, which cannot write train.py or the harness; checked anyway, and train.py
    (as the sweep read it, an uncommitted SEARCH_SPACE included) put back if it moved."""
    path = cfg.root / layout.TRAIN
    if path.read_text(encoding="utf-8", errors="replace") != source:
        path.write_text(source)
        raise UserError(
            "train.py was written to while the sweep ran (an edit during the sweep?); it is back as the sweep "
            "read it and nothing else was written. Edit train.py only between commands, then sweep again"
        )
    drift = manifest.problems(cfg, manifest.load_manifest(cfg) or {})
    if log.violations or drift:
        raise UserError(
            "the sweep stopped: "
            + "; ".join((log.violations + drift)[:3])
            + ". Nothing was written; `uv run autoresearch step` repairs the harness, and train.py must not touch "
            "data/, .autoresearch/ or the harness files"
        )
    if log.errors and not log.trials:
        raise UserError(f"the sweep's trials could not run: {log.errors[-1]}")


# ---------------------------------------------------------------------------
# The hand-off to the ratchet


def _hand_off(
    cfg: Config, run: Run, source: str, plan: study.Plan, log: study.Log, m: dict, wall_s: float, step: bool
) -> tuple[int, bool]:
    """Report the sweep, write the best PARAMS into train.py when they differ; (exit code, written)."""
    totals, best, metric = log.totals(), log.best(), m["metric"]
    names = [d.name for d in plan.dims]
    here = (
        f"{len(log.trials)} trials in {wall_s:.0f} s: {log.count('complete')} complete, "
        f"{log.count('pruned')} pruned (stopped behind the complete trials' median on their first folds; they "
        f"still steer the search), {log.count('fail')} failed, {log.count('cut')} cut by the budget's end"
    )
    failed = [t for t in log.trials if t["state"] == "fail" and t.get("reason")]
    if failed:
        here += f" (last failure: {text.shown(failed[-1]['reason'], 200)})"
    where = "the run's own journal" if plan.storage.default else describe_storage(plan.storage, cfg.root)
    print(f"sweep: {here} (study {plan.study}: {totals['trials']} trials in all, on {where})")
    for reason in log.errors[-1:]:
        print(f"sweep stopped: {reason}")
    if best is None:
        print(
            "no trial completed, so train.py is unchanged and there is nothing to step; give a larger --budget "
            "(or a cheaper train.py)"
        )
        return 1, False
    current = log.current_value(plan.current)
    base = f" (current PARAMS: {current:.4f})" if current is not None else ""
    print(f"search best: {metric} {best['value']:.4f} on the sweep's own folds, trial {best['number']}{base}")
    edges = search_space.at_edge(plan.dims, {**plan.current, **best["params"]})
    if edges:
        print(f"at the edge: {'; '.join(edges)}: the best may lie beyond it, so widen SEARCH_SPACE that way")
    changes = _changes(best["params"], plan.current, plan.dims)
    if current is not None and not log.better(best["value"], current):
        changes = {}  # a tie with other PARAMS is no evidence: stepping it would spend an evaluation on nothing
    info = {
        "study": plan.study,
        "storage": describe_storage(plan.storage, cfg.root),
        **totals,
        "best_value": best["value"],
        "best_trial": best["number"],
        "best_params": {**plan.current, **changes},
        "current_value": current,
        "changed": {k: [plan.current[k], v] for k, v in changes.items()},
        "incumbent": run.incumbent.commit,
        "metric": metric,
        "wall_s": round(wall_s, 2),
        "this_sweep": {
            "trials": len(log.trials),
            "complete": log.count("complete"),
            "pruned": log.count("pruned"),
            "failed": log.count("fail") + log.count("cut"),
        },
        "time": time.time(),
    }
    path = cfg.root / layout.TRAIN
    if not changes:
        print(
            "no trial beat the current PARAMS on the sweep's folds: train.py is unchanged and there is nothing "
            "to step (not an iteration; these knobs are done). Next: a structural change (features, model), or "
            "widen SEARCH_SPACE"
        )
    else:
        hypothesis = f"sweep: {totals['trials']} trials ({totals['pruned']} pruned) over {', '.join(names)}"
        path.write_text(search_space.rewrite(source, changes, {"HYPOTHESIS": hypothesis, "CATEGORY": "params"}))
        print(
            "best params: "
            + ", ".join(f"{k} {plan.current[k]!r} -> {v!r}" for k, v in changes.items())
            + "".join(f", {k} unchanged" for k in names if k not in changes)
        )
        print(
            "train.py now has these PARAMS (HYPOTHESIS and CATEGORY say it was a sweep); "
            + (
                "the step judges them on its own folds:"
                if step
                else "run `uv run autoresearch step`: the ratchet judges them on its own folds, keeps or reverts them"
            )
        )
    info["train_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    write_json(runstate.run_dir(cfg.root, run.tag) / "sweep.json", info)
    return 0, bool(changes)


def _changes(best: dict, current: dict, dims) -> dict:
    """The searched keys whose rounded best value differs from the current one."""
    out = {}
    for d in dims:
        value = best.get(d.name, current[d.name])
        if d.kind == "categorical" and value not in d.choices:
            continue  # a study reused (--study) across a changed space: keep what train.py says
        if d.kind != "categorical":
            value = min(max(value, d.low), d.high)
        if d.kind == "float":
            value = min(max(float(f"{value:.{SIG_DIGITS}g}"), d.low), d.high)
        if value != current[d.name] or type(value) is not type(current[d.name]):
            out[d.name] = value
    return out
