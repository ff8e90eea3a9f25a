"""`autoresearch sweep`: the surveyor. Optuna TPE over train.py's SEARCH_SPACE, then a hand-off to `step`.

The agent is the scout (which model, which features), Optuna the surveyor (which learning rate). A sweep:

  1. starts from the committed incumbent (clean train.py) and its SEARCH_SPACE, read without running it;
  2. runs one budgeted child (runner.run_child: hard kill at the budget, memory cap) that imports train.py
     once and runs many trials in-process, on folds of the sweep's OWN seed (so the ratchet's verdict on
     the winner, made on its own folds, is not biased by the search); trials report their running mean
     fold by fold and a median pruner (one that also stops ties) stops the bad ones after a fold or two;
     the current PARAMS are the first trial. With --workers K the child forks K workers sharing the study
     (cores split between them);
  3. writes the best PARAMS back into train.py's PARAMS literal (nothing else moves), says so in HYPOTHESIS
     and CATEGORY, and records .autoresearch/runs/<tag>/sweep.json, so the next `step` marks its row.

The study lives in an Optuna JournalStorage file under .autoresearch/runs/<tag>/sweep/ (resumable: the
same study name continues it) or in any Optuna storage URL (--storage), which workers on several machines
can share. The holdout is never loaded here.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import socket
import statistics
import sys
import threading
import time
import warnings
from pathlib import Path

from autoresearch import gitops, runstate, search_space
from autoresearch.config import Config, load_config
from autoresearch.errors import UserError
from autoresearch.runner import RESULT_FD_VAR, TOKEN_VAR, emit
from autoresearch.static_check import without_declarations

DEFAULT_BUDGET_S = 600.0
MIN_BUDGET_S = 10.0  # the worker alone needs ~6 s to import pandas, scikit-learn and optuna
SOFT_MARGIN_S = 1.5  # the worker stops starting folds this long before its hard kill
FOLD_SLACK = 1.3  # a fold starts only if 1.3x the slowest fold so far still ends before that
FINAL_READ_S = 1.0  # kept back, with a shared --storage, to read the study's best over all machines
HAND_OFF_S = 1.0  # kept back for writing train.py and sweep.json after the worker
TIES_AFTER = 3  # complete trials before a trial that only ties the median is pruned too
PRUNER_STARTUP_TRIALS = 1  # the incumbent PARAMS, in full, is the first yardstick (5: a third of the trials in 60 s)
MAX_FAILURES_IN_A_ROW = 5
JOURNAL = "optuna.journal"
SIG_DIGITS = 4  # floats are written back rounded: readable, and far below any knob's sensitivity


def sweep_dir(root: Path, tag: str) -> Path:
    return runstate.run_dir(root, tag) / "sweep"


# ---------------------------------------------------------------------------
# The command


def add_arguments_sweep(p) -> None:
    p.epilog = (
        "Searches train.py's SEARCH_SPACE, writes the best PARAMS into train.py, then `uv run autoresearch "
        "step` lets the ratchet judge it on its own folds."
    )
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


def run_sweep(args) -> int:
    t0 = _process_start()
    _check_args(args)
    cfg = load_config()
    with runstate.Lock(cfg.root):
        run, repo, source = _preflight(cfg)
        params, dims = search_space.load(source)
        from autoresearch.harness import ensure_prepared

        manifest = ensure_prepared(cfg, quiet=True)
        if manifest["id"] != run["manifest_id"]:
            raise UserError(
                f"run {run['tag']!r} was scored on prepared data {run['manifest_id']}, now "
                f"{manifest['id']} (config, data or harness changed): start a new tag, then sweep"
            )
        plan = _plan(cfg, args, run, params, dims, manifest, source)
        out = _Outcome(plan, manifest, tty=sys.stdout.isatty())
        result = _run_worker(cfg, plan, out, deadline=t0 + args.budget - HAND_OFF_S)
        out.end_progress()
        _postflight(cfg, source, result, out)
        return _hand_off(cfg, run, source, dims, plan, out, result, manifest, time.monotonic() - t0)


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
    from autoresearch.ratchet import recover

    run = runstate.current_run(cfg.root)
    if run["status"] != "active":
        raise UserError(
            f"run {run['tag']!r} is stopped; `uv run autoresearch start {run['tag']}` resumes it, then sweep"
        )
    repo = gitops.open_repo(cfg.root)
    for note in recover(cfg, repo, run):  # a step killed earlier is finished first
        print(note)
    run = runstate.load_run(cfg.root, run["tag"])
    inc = run["incumbent"]["commit"]
    if gitops.current_branch(repo) != run["branch"] or gitops.tip(repo, run["branch"]) != inc:
        raise UserError(
            f"the work tree is not at the run's incumbent ({run['branch']} at {inc[:8]}): "
            f"`git checkout {run['branch']}` (or `uv run autoresearch start {run['tag']}`), then sweep"
        )
    source = (cfg.root / gitops.TRAIN).read_text()
    if gitops.blob_of_worktree(repo) != gitops.blob_at(repo, inc) and without_declarations(
        source
    ) != without_declarations(gitops.show(repo, inc) + "\n"):
        raise UserError(
            f"train.py differs from the incumbent ({inc[:8]}) beyond SEARCH_SPACE, HYPOTHESIS and "
            "CATEGORY: the sweep tunes the incumbent's model. Run `uv run autoresearch step` on your "
            "change first, then sweep (a new SEARCH_SPACE alone may stay uncommitted: the sweep uses it)"
        )
    return run, repo, source


def _plan(cfg: Config, args, run: dict, params: dict, dims, manifest: dict, source: str) -> dict:
    tag, inc = run["tag"], run["incumbent"]["commit"]
    local = sweep_dir(cfg.root, tag)
    local.mkdir(parents=True, exist_ok=True)
    storage = _storage_spec(cfg, args.storage, local)
    if storage["kind"] == "journal" and storage.get("default"):
        _repair_journal(Path(storage["path"]))
    space = {d.name: [d.kind, d.low, d.high, d.log, list(d.choices)] for d in dims}
    study = args.study or f"{tag}-{inc[:8]}-{hashlib.sha256(json.dumps(space).encode()).hexdigest()[:8]}"
    k = args.workers
    trials = None if args.trials is None else [args.trials // k + (i < args.trials % k) for i in range(k)]
    return {
        "root": str(cfg.root),
        "train_py": str(cfg.root / gitops.TRAIN),
        "tag": tag,
        "study": study,
        "storage": storage,
        "workers": k,
        "trials": trials,
        "n_jobs": max(1, cfg.n_jobs // k),
        "direction": "maximize" if manifest["higher_is_better"] else "minimize",
        "dims": [[d.name, d.kind, d.low, d.high, d.log, list(d.choices)] for d in dims],
        "current": {d.name: params[d.name] for d in dims},
        "seed": _sweep_seed(cfg),
        "allow": [str(p) for p in _allowed_paths(cfg, storage, local)],
    }


def _sweep_seed(cfg: Config) -> int:
    from autoresearch.prepared import SWEEP_SEED_OFFSET

    return cfg.seed + SWEEP_SEED_OFFSET


# ---------------------------------------------------------------------------
# Storage


def _storage_spec(cfg: Config, url: str | None, local: Path) -> dict:
    if url is None:
        return {"kind": "journal", "path": str(local / JOURNAL), "default": True}
    if "://" in url:
        if not re.match(r"^(sqlite|postgresql|postgres|mysql|mariadb|oracle|mssql)(\+\w+)?://", url):
            raise UserError(
                f"--storage {redact(url)}: not an Optuna RDB URL; use postgresql://user:pass@host/db, "
                "mysql://..., sqlite:///path.db, or a journal file path"
            )
        _check_driver(url)
        return {"kind": "rdb", "url": url}
    path = Path(url).expanduser()
    path = path if path.is_absolute() else cfg.root / path
    if not path.parent.is_dir():
        raise UserError(f"--storage {url}: folder {path.parent} does not exist; create it or give another path")
    return {"kind": "journal", "path": str(path)}


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


def describe_storage(storage: dict, root: Path) -> str:
    if storage["kind"] == "rdb":
        return redact(storage["url"])
    path = Path(storage["path"])
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _allowed_paths(cfg: Config, storage: dict, local: Path) -> list[Path]:
    """What the guarded worker may write under .autoresearch/: the study's own files, nothing else."""
    places = [local]
    if storage["kind"] == "journal":
        places.append(Path(storage["path"]).parent)
    elif storage["url"].startswith("sqlite:///"):
        db = Path(storage["url"].removeprefix("sqlite:///"))
        places.append((db if db.is_absolute() else cfg.root / db).parent)
    private = (cfg.root / ".autoresearch").resolve()
    return [p for p in places if p.resolve() == private or private in p.resolve().parents]


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


# ---------------------------------------------------------------------------
# Running the worker child, and what it reports


class _Outcome:
    """What the worker reported: the study as it was, and every trial since; a progress line on a TTY."""

    def __init__(self, plan: dict, manifest: dict, tty: bool):
        self.plan, self.metric, self.tty = plan, manifest["metric"], tty
        self.maximize = manifest["higher_is_better"]
        self.before: dict = {}
        self.final: dict | None = None
        self.trials: list[dict] = []
        self.errors: list[dict] = []
        self.deadline = math.inf
        self._lock = threading.Lock()
        self._shown = False

    def on_event(self, event: dict) -> str | None:
        kind = event.get("event")
        with self._lock:
            if kind == "study":
                self.before = event
            elif kind == "trial":
                self.trials.append(event)
            elif kind == "final":
                self.final = event
            elif kind in ("error", "violation"):
                self.errors.append(event)
            if kind == "trial" and self.tty:
                self._progress()
        return "stop" if kind == "done" else None

    def count(self, state: str) -> int:
        return sum(1 for t in self.trials if t["state"] == state)

    def better(self, a: float, b: float) -> bool:
        return a > b if self.maximize else a < b

    def best(self) -> dict | None:
        """The best complete trial of the study: the worker's last word, or what it reported on the way."""
        if self.final is not None:
            return self.final.get("best")
        best = self.before.get("best")
        for t in self.trials:
            if t["state"] == "complete" and (best is None or self.better(t["value"], best["value"])):
                best = {"number": t["number"], "value": t["value"], "params": t["params"]}
        return best

    def current_value(self) -> float | None:
        if self.final is not None and self.final.get("current_value") is not None:
            return self.final["current_value"]
        found = [t["value"] for t in self.trials if t["state"] == "complete" and t["params"] == self.plan["current"]]
        return found[0] if found else self.before.get("current_value")

    def totals(self) -> dict:
        """Trials in the whole study (earlier sweeps of it included): trials, complete, pruned, failed."""
        if self.final is not None:
            return {k: self.final[k] for k in ("trials", "complete", "pruned", "failed")}
        b = self.before
        return {
            "trials": b.get("trials", 0) + len(self.trials),
            "complete": b.get("complete", 0) + self.count("complete"),
            "pruned": b.get("pruned", 0) + self.count("pruned"),
            "failed": b.get("failed", 0) + self.count("fail") + self.count("cut"),
        }

    def _progress(self) -> None:
        best = self.best()
        left = max(0.0, self.deadline - time.monotonic())
        line = (
            f"sweep: {len(self.trials)} trials, {self.count('pruned')} pruned | best {self.metric} "
            + (f"{best['value']:.4f}" if best else "-")
            + f" | {left:.0f} s left"
        )
        sys.stdout.write("\r" + line + "\033[K")
        sys.stdout.flush()
        self._shown = True

    def end_progress(self) -> None:
        if self._shown:
            sys.stdout.write("\r\033[K")
            sys.stdout.flush()


def _run_worker(cfg: Config, plan: dict, out: _Outcome, deadline: float):
    from autoresearch.harness import child_env
    from autoresearch.runner import kill_token, new_token, run_child

    local = sweep_dir(cfg.root, plan["tag"])
    marker = local / "worker.json"
    left = runstate.read_json(marker)
    if left and left.get("token"):
        kill_token(left["token"])  # a sweep killed with -9 earlier: nothing of it may still run
    budget = deadline - time.monotonic()
    if budget < MIN_BUDGET_S - HAND_OFF_S - 1:
        raise UserError(f"only {budget:.1f} s of the budget are left after the checks; give a larger --budget")
    token = new_token()
    plan = {**plan, "token": token, "deadline": time.monotonic() + budget - SOFT_MARGIN_S}
    out.deadline = plan["deadline"]
    runstate.write_json(marker, {"token": token, "pid": os.getpid(), "started": time.time()})
    env = child_env(cfg)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LOKY_MAX_CPU_COUNT"):
        env[var] = str(plan["n_jobs"])
    # spinning OpenMP threads are ruinous on a shared machine (a LightGBM fit measured 19 s instead of 3 s)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    logs = runstate.run_dir(cfg.root, plan["tag"]) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    try:
        # forked workers share pages with the parent, which their summed RSS counts again: scale the cap
        return run_child(
            [sys.executable, "-m", "autoresearch.sweep", "--worker", json.dumps(plan)],
            cwd=cfg.root,
            budget_s=budget,
            memory_mb=cfg.memory_mb * plan["workers"],
            log_path=logs / f"sweep-{time.strftime('%Y%m%d-%H%M%S')}.log",
            env=env,
            on_event=out.on_event,
            token=token,
        )
    finally:
        marker.unlink(missing_ok=True)


def _postflight(cfg: Config, source: str, result, out: _Outcome) -> None:
    """train.py ran in the worker: make sure it left train.py (as the sweep read it, an uncommitted
    SEARCH_SPACE included) and the harness as they were."""
    from autoresearch.prepared import load_manifest, problems

    path = cfg.root / gitops.TRAIN
    if path.read_text() != source:
        path.write_text(source)
        raise UserError(
            "train.py was written to while the sweep ran (by code in train.py, or by an edit during "
            "the sweep); it is back as the sweep read it and nothing else was written. Edit "
            "train.py only between commands, then sweep again"
        )
    violations = [e["reason"] for e in out.errors if e.get("event") == "violation"]
    drift = problems(cfg, load_manifest(cfg) or {})
    if violations or drift:
        raise UserError(
            "the sweep stopped: "
            + "; ".join((violations + drift)[:3])
            + ". Nothing was written; `uv run autoresearch step` repairs the harness, and train.py "
            "must not touch data/, .autoresearch/ or the harness files"
        )
    fatal = [e for e in out.errors if e.get("event") == "error"]
    if fatal and not out.trials:
        tail = "\n".join(f"  | {line}" for line in result.tail.strip().splitlines()[-10:])
        raise UserError(f"the sweep's worker failed: {fatal[-1].get('reason')}\n{tail}")
    if result.status != "ok" and not out.trials and not out.before:
        tail = "\n".join(f"  | {line}" for line in result.tail.strip().splitlines()[-10:])
        raise UserError(
            f"the sweep's worker did not start ({result.status}: {result.reason}); log: {result.log_path}\n{tail}"
        )


# ---------------------------------------------------------------------------
# The hand-off to the ratchet


def _hand_off(
    cfg: Config, run: dict, source: str, dims, plan: dict, out: _Outcome, result, manifest: dict, wall_s: float
) -> int:
    totals, best, metric = out.totals(), out.best(), manifest["metric"]
    names = [d.name for d in dims]
    here = (
        f"{len(out.trials)} trials in {wall_s:.0f} s: {out.count('complete')} complete, "
        f"{out.count('pruned')} pruned, {out.count('fail') + out.count('cut')} failed or cut by the budget"
    )
    print(
        f"sweep: {here} (study {plan['study']}: {totals['trials']} trials in all, on "
        f"{describe_storage(plan['storage'], cfg.root)})"
    )
    for e in [e for e in out.errors if e.get("event") == "error"][-1:]:
        print(f"worker: {e.get('reason')}")
    if result.status != "ok":
        print(f"worker: {result.status} ({result.reason}); the trials it finished count")
    if best is None:
        print("no trial completed, so train.py is unchanged; give a larger --budget (or a cheaper train.py)")
        return 1
    current = out.current_value()
    base = f" (current PARAMS: {current:.4f})" if current is not None else ""
    print(f"search best: {metric} {best['value']:.4f} on the sweep's own folds, trial {best['number']}{base}")
    changes = _changes(best["params"], plan["current"], dims)
    info = {
        "study": plan["study"],
        "storage": describe_storage(plan["storage"], cfg.root),
        **totals,
        "best_value": best["value"],
        "best_trial": best["number"],
        "best_params": {**plan["current"], **changes},
        "current_value": current,
        "changed": {k: [plan["current"][k], v] for k, v in changes.items()},
        "incumbent": run["incumbent"]["commit"],
        "metric": metric,
        "wall_s": round(wall_s, 2),
        "this_sweep": {
            "trials": len(out.trials),
            "complete": out.count("complete"),
            "pruned": out.count("pruned"),
            "failed": out.count("fail") + out.count("cut"),
        },
        "time": time.time(),
    }
    path = cfg.root / gitops.TRAIN
    if not changes:
        print(
            "the current PARAMS are the best the sweep found: train.py is unchanged. Next: a structural change "
            "(features, model), or widen SEARCH_SPACE"
        )
        info["train_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    else:
        hypothesis = f"sweep: {totals['trials']} trials ({totals['pruned']} pruned) over {', '.join(names)}"
        new = search_space.rewrite(source, changes, {"HYPOTHESIS": hypothesis, "CATEGORY": "params"})
        path.write_text(new)
        info["train_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        print(
            "best params: "
            + ", ".join(f"{k} {plan['current'][k]!r} -> {v!r}" for k, v in changes.items())
            + "".join(f", {k} unchanged" for k in names if k not in changes)
        )
        print(
            "train.py now has these PARAMS (HYPOTHESIS and CATEGORY say it was a sweep); run "
            "`uv run autoresearch step`: the ratchet judges it on its own folds, keeps it or reverts it"
        )
    runstate.write_json(runstate.run_dir(cfg.root, run["tag"]) / "sweep.json", info)
    return 0


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


# ---------------------------------------------------------------------------
# The worker child: `python -m autoresearch.sweep --worker PLAN`


class _Pruned(Exception):
    pass


class _OutOfTime(Exception):
    pass


def worker_main(plan: dict) -> int:
    import optuna
    import pandas as pd

    from autoresearch.evaluate import Violation, import_train, install_guard, pipeline_problems
    from autoresearch.metrics import resolve_metric
    from autoresearch.prepared import TRAIN, load_manifest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    root = Path(plan["root"])
    cfg = load_config(root)
    manifest = load_manifest(cfg)
    metric = resolve_metric(manifest["metric"], manifest["task"], check_task=False)
    train = pd.read_parquet(cfg.data_dir / TRAIN)  # the train part only: the holdout is never loaded
    X, y = train.drop(columns=[manifest["target"]]), train[manifest["target"]]
    folds = sweep_folds(cfg, train, manifest)
    study = _open_study(plan, optuna)
    before = _study_state(study, plan, optuna)
    plan["trials_before"] = before["trials"]
    emit({"event": "study", **before})
    _close(study)
    sys.path.insert(0, str(root))
    prepare = __import__("prepare")  # reads the config before the guard goes up; its N_JOBS is split per worker
    prepare.N_JOBS = plan["n_jobs"]
    install_guard(root, allow=[Path(p) for p in plan["allow"]])
    try:
        module = import_train(Path(plan["train_py"]))
        problems = pipeline_problems(module)
        if problems:
            raise RuntimeError(f"train.py contract: {problems[0]}")
    except Violation:
        return 0  # already reported by the guard
    except BaseException as e:  # noqa: BLE001 - train.py's import failing is reported, not raised
        emit({"event": "error", "reason": f"importing train.py: {type(e).__name__}: {e}"})
        return 0
    shared, final_by = not plan["storage"].get("default"), plan["deadline"]
    if shared:  # trials stop early enough to read the shared study once more before the hard kill
        plan["deadline"] -= FINAL_READ_S
    kids = [_fork_worker(i, plan, module, X, y, folds, metric) for i in range(1, plan["workers"])]
    _work(0, plan, module, X, y, folds, metric)
    for pid in kids:
        os.waitpid(pid, 0)
    if shared and time.monotonic() < final_by:
        # a shared study has grown on other machines meanwhile: its best and totals are the study's, not ours
        study = _open_study(plan, optuna, load=True)
        emit({"event": "final", **_study_state(study, plan, optuna)})
    emit({"event": "done"})  # the parent stops this process right away: no interpreter teardown to wait for
    return 0


def sweep_folds(cfg: Config, train, manifest: dict):
    """Folds of the same shape as the ratchet's, drawn with the sweep's own seed."""
    from autoresearch.splits import make_folds

    col = lambda name: train[name] if name else None  # noqa: E731
    repeats = 1 if cfg.time_column else cfg.repeats
    return make_folds(
        train[manifest["target"]],
        manifest["task"],
        cfg.folds,
        repeats,
        _sweep_seed(cfg),
        col(cfg.group_column),
        col(cfg.time_column),
    )


def _median_pruner(optuna):
    """Median pruning that also stops a tie: on small tables many configurations score exactly the same on
    a fold (Optuna's MedianPruner keeps ties, so a converged TPE was never pruned), and finishing a trial
    that is no better than the median buys nothing. Ties are rare on continuous scores of larger tables,
    where this is the median rule."""
    state = optuna.trial.TrialState

    class TieMedianPruner(optuna.pruners.BasePruner):
        def prune(self, study, trial) -> bool:
            step = trial.last_step
            if step is None:
                return False
            done = [
                t.intermediate_values[step]
                for t in study.get_trials(deepcopy=False, states=(state.COMPLETE,))
                if step in t.intermediate_values
            ]
            if len(done) < PRUNER_STARTUP_TRIALS:
                return False
            median = statistics.median(done)
            mine = trial.intermediate_values[step]
            if math.isnan(mine):
                return True
            worse = median - mine if study.direction == optuna.study.StudyDirection.MAXIMIZE else mine - median
            # a tie is pruned only against a median of several trials: against the first trial alone, a
            # fold that every configuration scores perfectly would stop all of them (measured: 420 of 421)
            return worse > 0 or (worse == 0 and len(done) >= TIES_AFTER)

    return TieMedianPruner()


def _open_study(plan: dict, optuna, load: bool = False, worker: int = 0):
    if plan["storage"]["kind"] == "rdb":
        storage = _rdb_storage(plan["storage"]["url"], optuna)
    else:
        from optuna.storages.journal import JournalFileBackend

        storage = optuna.storages.JournalStorage(JournalFileBackend(plan["storage"]["path"]))
    # a resumed study or another worker must not replay the same random start: the seed moves with both
    seed = plan["seed"] + 1009 * worker + plan.get("trials_before", 0)
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    pruner = _median_pruner(optuna)
    if load:
        return optuna.load_study(study_name=plan["study"], storage=storage, sampler=sampler, pruner=pruner)
    study = optuna.create_study(
        study_name=plan["study"],
        storage=storage,
        direction=plan["direction"],
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    _fail_dead_trials(study, plan, optuna)
    state = optuna.trial.TrialState
    live = (state.COMPLETE, state.PRUNED, state.RUNNING, state.WAITING)
    names = list(plan["current"])
    # the incumbent's PARAMS come first, unless already scored or queued (a killed sweep's try does not count)
    if not any(_picked(t, names) == plan["current"] for t in study.get_trials(deepcopy=False, states=live)):
        study.enqueue_trial(plan["current"])
    return study


def _rdb_storage(url: str, optuna, attempts: int = 6):
    """Machines that open a new shared database at the same moment all try to create its schema; one wins
    and the others fail on a duplicate row. Opening again finds the schema in place."""
    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url)
        except SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1) + 0.1 * (os.getpid() % 5))


def _picked(trial, names: list[str]) -> dict:
    params = trial.system_attrs.get("fixed_params", trial.params)  # a queued trial has no params yet
    return {k: params.get(k) for k in names}


def _close(study) -> None:
    engine = getattr(study._storage, "engine", None)  # an RDB connection pool must not cross a fork
    if engine is not None:
        engine.dispose()


def _fail_dead_trials(study, plan: dict, optuna) -> None:
    """Trials left RUNNING by a killed sweep. In the default storage every running trial is dead (the
    project lock is held); in a shared one, only this machine's trials whose worker is gone."""
    state = optuna.trial.TrialState
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(state.RUNNING,)):
        tag = t.user_attrs.get("sweep") or {}
        if plan["storage"].get("default") or (tag.get("host") == host and not _token_alive(tag.get("token"))):
            try:
                study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
                study._storage.set_trial_state_values(t._trial_id, state.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass


def _token_alive(token: str | None) -> bool:
    if not token:
        return False
    needle = f"{TOKEN_VAR}={token}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read():
                    return True
        except OSError:
            continue
    return False


def _study_state(study, plan: dict, optuna) -> dict:
    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    names = [d[0] for d in plan["dims"]]
    complete = [t for t in trials if t.state == state.COMPLETE]
    best = None
    if complete:
        b = study.best_trial
        best = {"number": b.number, "value": b.value, "params": {k: b.params[k] for k in names if k in b.params}}
    current = [t.value for t in complete if _picked(t, names) == plan["current"]]
    # finished trials only: a queued or running one is counted by whoever finishes it
    return {
        "study": plan["study"],
        "trials": sum(t.state.is_finished() for t in trials),
        "complete": len(complete),
        "pruned": sum(t.state == state.PRUNED for t in trials),
        "failed": sum(t.state == state.FAIL for t in trials),
        "best": best,
        "current_value": current[0] if current else None,
    }


def _fork_worker(i: int, plan: dict, *args) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: die with the first worker
        _work(i, plan, *args)
        code = 0
    except BaseException as e:  # noqa: BLE001 - a forked worker must never fall back into the caller's code
        emit({"event": "error", "reason": f"worker {i}: {type(e).__name__}: {e}"})
    finally:
        os._exit(code)


def _work(i: int, plan: dict, module, X, y, folds, metric) -> None:
    """Ask, evaluate fold by fold, tell; until the trial quota, the deadline or a run of failures."""
    import optuna

    from autoresearch.evaluate import Violation

    study = _open_study(plan, optuna, load=True, worker=i)
    quota = None if plan["trials"] is None else plan["trials"][i]
    clock = {"fold_s": 0.0}
    done = failures = 0
    attrs = {"worker": i, "host": socket.gethostname(), "token": plan["token"]}
    while (quota is None or done < quota) and time.monotonic() + FOLD_SLACK * clock["fold_s"] < plan["deadline"]:
        trial = study.ask()
        trial.set_user_attr("sweep", attrs)
        picked = {
            name: _suggest(trial, name, kind, low, high, log, choices)
            for name, kind, low, high, log, choices in plan["dims"]
        }
        t0 = time.monotonic()
        try:
            state, value, scores, reason = _evaluate(
                trial, module, {**module.PARAMS, **picked}, X, y, folds, metric, plan["deadline"], clock
            )
        except Violation:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        states = optuna.trial.TrialState
        if state == "complete":
            study.tell(trial, value)
        else:
            study.tell(trial, state=states.PRUNED if state == "pruned" else states.FAIL)
        done += 1
        emit(
            {
                "event": "trial",
                "worker": i,
                "number": trial.number,
                "state": state,
                "value": value,
                "folds": len(scores),
                "s": round(time.monotonic() - t0, 3),
                "params": picked,
                "reason": reason,
            }
        )
        if state == "cut":
            return
        failures = failures + 1 if state == "fail" else 0
        if state == "fail" and (picked == plan["current"] or failures >= MAX_FAILURES_IN_A_ROW):
            why = "the current PARAMS fail" if picked == plan["current"] else f"{failures} trials in a row failed"
            emit({"event": "error", "reason": f"{why}: {reason}"})
            return


def _suggest(trial, name, kind, low, high, log, choices):
    if kind == "categorical":
        return trial.suggest_categorical(name, choices)
    if kind == "int":
        return trial.suggest_int(name, low, high, log=log)
    return trial.suggest_float(name, low, high, log=log)


def _evaluate(trial, module, params, X, y, folds, metric, deadline, clock):
    """(state, value, fold scores, reason): complete with the mean, pruned, cut by the deadline, or fail."""
    from autoresearch.evaluate import Violation, score_folds

    scores: list[float] = []
    last = [time.monotonic()]

    def on_fold(i, score, fit_s):
        now = time.monotonic()
        clock["fold_s"] = max(clock["fold_s"], now - last[0])
        last[0] = now
        scores.append(score)
        trial.report(sum(scores) / len(scores), i)
        if i < len(folds) - 1:
            if trial.should_prune():
                raise _Pruned
            if now + FOLD_SLACK * clock["fold_s"] > deadline:
                raise _OutOfTime

    try:
        score_folds(module, params, X, y, folds, metric, on_fold)
    except _Pruned:
        return "pruned", sum(scores) / len(scores), scores, None
    except _OutOfTime:
        return "cut", None, scores, "the budget ran out mid-trial"
    except Violation:
        raise
    except (Exception, MemoryError) as e:  # noqa: BLE001 - a configuration that breaks is a failed trial
        text = str(e).strip().splitlines()
        return "fail", None, scores, f"{type(e).__name__}: {text[0][:300] if text else ''}"
    return "complete", sum(scores) / len(scores), scores, None


def _main(argv: list[str]) -> int:
    if argv[:1] != ["--worker"] or len(argv) != 2 or RESULT_FD_VAR not in os.environ:
        print("this is the sweep's worker; run `uv run autoresearch sweep`", file=sys.stderr)
        return 2
    return worker_main(json.loads(argv[1]))


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
