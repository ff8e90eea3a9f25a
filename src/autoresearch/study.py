"""The surveyor's study: Optuna TPE over train.py's SEARCH_SPACE, driven from the trusted side.

Optuna, its storage and the scores all live in this process; each trial's folds go through lanes of the
sandboxed engine like every other evaluation (a fresh process per fold, predictions only), on the sweep's
own folds (data/sweep_folds.npz) so the ratchet's verdict on the winner is not biased by the search. A median
pruner that also stops ties ends bad trials after a fold or two; the incumbent's PARAMS are the first trial.
With several workers, each is a thread with a lane of its own on one study.
"""

from __future__ import annotations

import dataclasses
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

from autoresearch import engine, search_space, text
from autoresearch.config import Config
from autoresearch.errors import UserError

SOFT_MARGIN_S = 1.5  # trials stop starting folds this long before the hard deadline
FOLD_SLACK = 1.3  # a fold starts only if 1.3x the slowest fold so far still ends before that
FINAL_READ_S = 1.0  # kept back, with a shared storage, to read the study's best over all machines
TIES_AFTER = 3  # complete trials before a trial that only ties the median is pruned too
PRUNER_STARTUP_TRIALS = 1  # the incumbent PARAMS, in full, is the first yardstick
MAX_FAILURES_IN_A_ROW = 5
SQLITE_BUSY_S = 60


@dataclasses.dataclass(frozen=True)
class Storage:
    kind: str  # journal | rdb
    where: str  # the journal's path or the database URL
    default: bool = False  # the run's own journal under .autoresearch/ (ours alone: the project lock is held)


@dataclasses.dataclass
class Plan:
    """What one sweep does (typed; sweep.json records its outcome)."""

    tag: str
    study: str
    storage: Storage
    workers: int
    trials: list[int] | None  # a quota per worker, or none (the budget decides)
    n_jobs: int
    maximize: bool
    dims: list[search_space.Dim]
    current: dict
    seed: int
    deadline: float  # monotonic: no fold starts that would end after it
    trials_before: int = 0


class SweepViolation(Exception):
    """A trial reached for the harness: the sweep stops, and nothing is written."""


# ---------------------------------------------------------------------------
# What the trials did


class Log:
    """Every trial of this sweep, the study as it was before, errors; a progress line on a terminal."""

    def __init__(self, metric: str, maximize: bool, tty: bool):
        self.metric, self.maximize, self.tty = metric, maximize, tty
        self.before: dict = {}
        self.final: dict | None = None
        self.trials: list[dict] = []
        self.errors: list[str] = []
        self.violations: list[str] = []
        self.deadline = math.inf
        self._lock = threading.Lock()
        self._shown = False

    def add(self, trial: dict) -> None:
        with self._lock:
            self.trials.append(trial)
            if self.tty:
                self._progress()

    def error(self, reason: str) -> None:
        with self._lock:
            self.errors.append(reason)

    def count(self, state: str) -> int:
        return sum(1 for t in self.trials if t["state"] == state)

    def better(self, a: float, b: float) -> bool:
        return a > b if self.maximize else a < b

    def best(self) -> dict | None:
        if self.final is not None:
            return self.final.get("best")
        best = self.before.get("best")
        for t in self.trials:
            if t["state"] == "complete" and (best is None or self.better(t["value"], best["value"])):
                best = {"number": t["number"], "value": t["value"], "params": t["params"]}
        return best

    def current_value(self, current: dict) -> float | None:
        if self.final is not None and self.final.get("current_value") is not None:
            return self.final["current_value"]
        found = [t["value"] for t in self.trials if t["state"] == "complete" and t["params"] == current]
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


# ---------------------------------------------------------------------------
# The study


def run(cfg: Config, train_py: Path, plan: Plan, log: Log, log_dir: Path) -> None:
    """All workers' trials until the quotas, the deadline, or a run of failures; fills `log`."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        study = open_study(plan, optuna)
    except Exception as e:  # noqa: BLE001 - a database that is down, locked or not Optuna's: said, not traced
        raise UserError(
            f"--storage: the study {plan.study!r} could not be opened ({said(e, plan.storage)}); check the URL "
            "and that the database answers, then sweep again"
        ) from e
    log.before = study_state(study, plan, optuna)
    plan.trials_before = log.before["trials"]
    log.deadline = plan.deadline
    shared = not plan.storage.default
    if shared:  # stop early enough to read the shared study once more, before the hard deadline
        plan.deadline -= FINAL_READ_S
    data = engine.Prepared.load(cfg, "sweep")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    threads = [
        threading.Thread(
            target=_work, args=(i, cfg, train_py, plan, data, log, log_dir / f"sweep-{stamp}-{i}.log"), daemon=True
        )
        for i in range(plan.workers)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if shared and time.monotonic() < plan.deadline + FINAL_READ_S:
        # a shared study has grown on other machines meanwhile: its best and totals are the study's, not ours
        try:
            log.final = study_state(open_study(plan, optuna, load=True), plan, optuna)
        except Exception as e:  # noqa: BLE001 - this sweep's own trials are known and still handed off
            log.error(
                f"the shared study could not be read once more ({said(e, plan.storage)}); totals are this sweep's"
            )


def _work(i: int, cfg: Config, train_py: Path, plan: Plan, data, log: Log, log_path: Path) -> None:
    """One worker's trials. Whatever ends it early is said in `log`: a thread that died in silence would leave
    a sweep of no trials that still looks fine (seen: a shared study's storage failing mid-sweep)."""
    session = engine.Session(
        cfg, train_py, deadline=plan.deadline + SOFT_MARGIN_S, log_path=log_path, n_jobs=plan.n_jobs
    )
    try:
        _trials(i, session, plan, data, log)
    except engine.Ended as e:
        log.error(f"worker {i}: the sandbox ended ({session.reason or e})")
    except Exception as e:  # noqa: BLE001 - the storage, Optuna or this code: the sweep reports it, once
        log.error(f"worker {i}: {said(e, plan.storage)}")
    finally:
        session.close()


def _trials(i: int, session: engine.Session, plan: Plan, data, log: Log) -> None:
    import optuna

    study = open_study(plan, optuna, load=True, worker=i)
    quota = None if plan.trials is None else plan.trials[i]
    clock = {"fold_s": 0.0}
    done = failures = 0
    attrs = {"worker": i, "host": socket.gethostname(), "pid": os.getpid(), "started": _started(os.getpid())}
    states = optuna.trial.TrialState
    session.start()
    while (quota is None or done < quota) and time.monotonic() + FOLD_SLACK * clock["fold_s"] < plan.deadline:
        trial = study.ask()
        trial.set_user_attr("sweep", attrs)
        picked = {d.name: _suggest(trial, d) for d in plan.dims}
        t0 = time.monotonic()
        try:
            state, value, n, reason = _evaluate(session, data, picked, trial, plan.deadline, clock)
            if state == "complete":
                study.tell(trial, value)
            else:
                study.tell(trial, state=states.PRUNED if state == "pruned" else states.FAIL)
        except SweepViolation as e:
            study.tell(trial, state=states.FAIL)
            log.violations.extend(e.args[0])
            return
        except optuna.exceptions.UpdateFinishedTrialError:
            # another sweep on a shared storage finished this trial (two machines popped the same queued
            # trial, which SQLite's lack of row locks allows): its row counts it; this one asks the next
            continue
        done += 1
        log.add(
            {
                "worker": i,
                "number": trial.number,
                "state": state,
                "value": value,
                "folds": n,
                "s": round(time.monotonic() - t0, 3),
                "params": picked,
                "reason": reason,
            }
        )
        if state == "cut":
            return
        failures = failures + 1 if state == "fail" else 0
        if state == "fail" and (picked == plan.current or failures >= MAX_FAILURES_IN_A_ROW):
            why = "the current PARAMS fail" if picked == plan.current else f"{failures} trials in a row failed"
            log.error(f"{why}: {reason}")
            return


class _OutOfTime(Exception):
    pass


def _evaluate(session, data, params: dict, trial, deadline: float, clock: dict):
    """(state, value, folds done, reason): complete with the mean, pruned, cut by the deadline, or fail."""
    out = engine.Outcome("ok")

    def on_fold(i, score, fit_s):
        now = time.monotonic()
        clock["fold_s"] = max(clock["fold_s"], out.fold_s[-1])  # the fold's own time, not the sandbox's start
        trial.report(sum(out.scores) / len(out.scores), i)
        if i < len(data.folds) - 1:
            if trial.should_prune():
                raise engine.Pruned
            if now + FOLD_SLACK * clock["fold_s"] > deadline:
                raise _OutOfTime

    try:
        engine.run_folds(session, data, out, params=params, on_fold=on_fold)
    except engine.Pruned:
        return "pruned", sum(out.scores) / len(out.scores), len(out.scores), None
    except _OutOfTime:
        return "cut", None, len(out.scores), "the budget ran out mid-trial"
    except engine.Ended:
        if time.monotonic() >= deadline:
            return "cut", None, len(out.scores), "the budget ran out mid-trial"
        return "fail", None, len(out.scores), session.reason or "the sandbox ended during the trial"
    if out.violations:
        raise SweepViolation(out.violations)
    if out.status != "ok":
        return "fail", None, len(out.scores), out.reason
    return "complete", out.mean, len(out.scores), None


def _suggest(trial, d: search_space.Dim):
    if d.kind == "categorical":
        return trial.suggest_categorical(d.name, list(d.choices))
    if d.kind == "int":
        return trial.suggest_int(d.name, d.low, d.high, log=d.log)
    return trial.suggest_float(d.name, d.low, d.high, log=d.log)


def median_pruner(optuna):
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


def open_study(plan: Plan, optuna, load: bool = False, worker: int = 0):
    if plan.storage.kind == "rdb":
        storage = _rdb_storage(plan.storage.where, optuna)
    else:
        from optuna.storages.journal import JournalFileBackend

        storage = optuna.storages.JournalStorage(JournalFileBackend(plan.storage.where))
    # a resumed study or another worker must not replay the same random start: the seed moves with both
    seed = plan.seed + 1009 * worker + plan.trials_before
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
    pruner = median_pruner(optuna)
    if load:
        return optuna.load_study(study_name=plan.study, storage=storage, sampler=sampler, pruner=pruner)
    study = optuna.create_study(
        study_name=plan.study,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction="maximize" if plan.maximize else "minimize",
        load_if_exists=True,
    )
    _fail_dead_trials(study, plan, optuna)
    state = optuna.trial.TrialState
    live = (state.COMPLETE, state.PRUNED, state.RUNNING, state.WAITING)
    names = list(plan.current)
    # the incumbent's PARAMS come first, unless already scored or queued (a killed sweep's try does not count)
    if not any(_picked(t, names) == plan.current for t in study.get_trials(deepcopy=False, states=live)):
        study.enqueue_trial(plan.current)
    return study


def _rdb_storage(url: str, optuna, attempts: int = 6):
    """Machines that open a new shared database at the same moment all try to create its schema; one wins
    and the others fail on a duplicate row. Opening again finds the schema in place."""
    from sqlalchemy.exc import SQLAlchemyError

    # SQLite locks the whole file per write: sweeps sharing one wait for each other's writes (a busy machine
    # can hold one past SQLite's default 5 s) rather than fail with "database is locked"
    kwargs = {"connect_args": {"timeout": SQLITE_BUSY_S}} if url.startswith("sqlite") else {}
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
        except SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1) + 0.1 * (os.getpid() % 5))


def said(e: Exception, storage: Storage) -> str:
    """An exception on one line, without the storage's password: a database driver may echo what it was given."""
    words = str(e)
    secret = re.search(r"://[^:/@]+:([^@]+)@", storage.where)
    if secret:
        words = words.replace(secret.group(1), "***")
    return f"{type(e).__name__}: {text.shown(words, 300)}"


def _picked(trial, names: list[str]) -> dict:
    params = trial.system_attrs.get("fixed_params", trial.params)  # a queued trial has no params yet
    return {k: params.get(k) for k in names}


def _fail_dead_trials(study, plan: Plan, optuna) -> None:
    """Trials left RUNNING by a killed sweep. In the run's own journal every running trial is dead (the project
    lock is held); in a shared storage, only this machine's trials whose sweep process is gone."""
    state = optuna.trial.TrialState
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(state.RUNNING,)):
        who = t.user_attrs.get("sweep") or {}
        if plan.storage.default or (who.get("host") == host and not _alive(who.get("pid"), who.get("started"))):
            try:
                study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
                study._storage.set_trial_state_values(t._trial_id, state.FAIL)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass


def _started(pid: int):
    """A process's start time (clock ticks since boot): with the pid it names one process, even after reuse."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid, started) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return started is None or _started(pid) == started


def study_state(study, plan: Plan, optuna) -> dict:
    state = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    names = [d.name for d in plan.dims]
    complete = [t for t in trials if t.state == state.COMPLETE]
    best = None
    if complete:
        b = study.best_trial
        best = {"number": b.number, "value": b.value, "params": {k: b.params[k] for k in names if k in b.params}}
    current = [t.value for t in complete if _picked(t, names) == plan.current]
    # finished trials only: a queued or running one is counted by whoever finishes it
    return {
        "study": plan.study,
        "trials": sum(t.state.is_finished() for t in trials),
        "complete": len(complete),
        "pruned": sum(t.state == state.PRUNED for t in trials),
        "failed": sum(t.state == state.FAIL for t in trials),
        "best": best,
        "current_value": current[0] if current else None,
    }
