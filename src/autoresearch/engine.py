"""The trusted side of every evaluation: cross-validation, the second look, the holdout, sweep trials, export
and `uv run train.py` all come through here.

A Lane (autoresearch.lane) is one sandboxed worker for one train.py. For each fold the parent opens a fresh
socket pair, hands one end to the worker, which forks the fold's process onto it; the parent then sends that
process its rows (positions to fit, their labels, positions to predict) and reads back predictions only. The
labels of the predicted rows never leave this process, and the metric is computed here (autoresearch.metrics),
so train.py can neither see what it is scored on nor touch the scorer. One wall-clock deadline and one memory
cap cover the whole evaluation (autoresearch.processes).
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from pathlib import Path

from autoresearch import layout
from autoresearch.config import Config
from autoresearch.errors import UserError
from autoresearch.files import read_json
from autoresearch.lane import Ended, FoldOutput, Lane

# a fold's wall time is noisy: an evaluation stops early only when its folds so far project it this far past
# its budget (between 1 and this, it runs on to the deadline and may still finish)
PROJECTED_SLACK = 1.2


class Pruned(Exception):
    """Raised by an on_fold callback to stop a cross-validation early (the sweep's pruner)."""


@dataclasses.dataclass
class Outcome:
    """One evaluation, as the trusted side measured it."""

    status: str  # ok | crash | timeout | invalid | pruned
    reason: str | None = None
    scores: list[float] = dataclasses.field(default_factory=list)
    fit_s: list[float] = dataclasses.field(default_factory=list)  # per fold, as the fold reported it
    fold_s: list[float] = dataclasses.field(default_factory=list)  # per fold, wall time seen from here
    cpu_s: list[float] = dataclasses.field(default_factory=list)  # per fold, CPU seconds as its exit reported
    wall_s: float = 0.0
    tail: str = ""
    log_path: Path | None = None
    violations: list[str] = dataclasses.field(default_factory=list)
    holdout: float | None = None
    model: bytes | None = None
    classes: list | None = None
    n_folds: int = 0
    isolation: str = ""

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores) if self.scores else math.nan

    @property
    def se(self) -> float:
        n = len(self.scores)
        if n < 2:
            return 0.0 if n else math.nan
        m = self.mean
        return math.sqrt(sum((s - m) ** 2 for s in self.scores) / (n - 1) / n)


# ---------------------------------------------------------------------------
# The prepared data, as the trusted side reads it (numpy only: no pandas here)


@dataclasses.dataclass
class Prepared:
    manifest: dict
    labels: dict  # "train" / "holdout" -> np.ndarray
    folds: list  # [(fit positions, predict positions)]
    metric: object

    @classmethod
    def load(cls, cfg: Config, folds: str | None = "cv") -> Prepared:
        import numpy as np

        from autoresearch.metrics import resolve_metric
        from autoresearch.splits import load_folds

        manifest = read_json(cfg.data_dir / layout.MANIFEST)
        if manifest is None:
            raise UserError("data/manifest.json is missing: run `uv run prepare.py`")
        with np.load(cfg.data_dir / layout.LABELS, allow_pickle=False) as z:
            labels = {k: z[k] for k in z.files}
        fold_list = load_folds(cfg.data_dir / layout.FOLD_FILES[folds]) if folds else []
        metric = resolve_metric(manifest["metric"], manifest["task"], check_task=False)
        return cls(manifest, labels, fold_list, metric)


# ---------------------------------------------------------------------------
# Evaluations


class Session:
    """The lanes of one train.py under one deadline. Usually one lane for every fold; where the kernel will not
    isolate folds inside one sandbox, a fresh sandbox per fold (slower, and just as separate)."""

    def __init__(
        self,
        cfg: Config,
        train_py: Path,
        *,
        deadline: float,
        log_path: Path | None = None,
        parts: tuple[str, ...] = ("train",),
        n_jobs: int | None = None,
        token: str | None = None,
    ):
        self.args = dict(deadline=deadline, log_path=log_path, parts=parts, n_jobs=n_jobs, token=token)
        self.cfg, self.train_py, self.deadline = cfg, train_py, deadline
        self.current: Lane | None = None
        self.tails: list[str] = []
        self.ended: str | None = None
        self.reason: str | None = None
        self.isolation = ""
        self.imports_s = 0.0
        self.used = False  # a fold went through it (a session started early may be closed unused)

    def start(self) -> Session:
        """Start the sandbox without waiting for it: its imports run while this side does its own work (loads
        the labels and the metric, or a step's checks and commit)."""
        if self.current is None:
            self.current = Lane(self.cfg, self.train_py, **self.args)
            warm(self.current.prepare_values["METRIC"], self.current.prepare_values["TASK"])
        return self

    def set_deadline(self, deadline: float) -> None:
        """The evaluation's budget starts now: a sandbox started early does not pay for the caller's work."""
        self.deadline = self.args["deadline"] = deadline
        if self.current is not None:
            self.current.deadline = self.current.proc.deadline = deadline

    def lane(self, fresh: bool = False) -> Lane:
        self.used = True
        cur = self.current
        if cur is not None and cur.started and not (fresh and not cur.serves_folds):
            if cur.proc.alive():
                return cur
        if cur is not None and cur.started:
            self._retire()
        if time.monotonic() >= self.deadline:
            self.ended = self.ended or "timeout"
            raise Ended("out of time")
        self.start()
        try:
            self.current.ready()
        except Ended:
            self._retire()
            raise
        lane = self.current
        self.isolation = (
            "a fold of its own in one sandbox"
            if lane.isolated
            else "a sandbox per fold"
            if lane.kind == "bwrap"
            else lane.kind
        )
        self.imports_s += lane.import_s
        return lane

    def _retire(self) -> None:
        lane, self.current = self.current, None
        tail = lane.close()
        if tail.strip():
            self.tails.append(tail)
        if lane.proc.ended and self.ended is None:
            self.ended, self.reason = lane.proc.ended, lane.proc.reason

    def close(self) -> str:
        if self.current is not None:
            self._retire()
        return "".join(self.tails)[-(64 << 10) :]

    def judge(self, out: Outcome, budget_s: float) -> None:
        """The watchdog's word and the guard's reports override what the folds said."""
        if self.ended == "timeout":
            out.status, out.reason = "timeout", f"exceeded the {budget_s:g} s budget"
        elif self.ended == "memory":
            out.status, out.reason = "crash", self.reason
        if out.violations:
            out.status, out.reason = "invalid", out.violations[0]
        out.isolation = self.isolation


def run_folds(
    session: Session,
    data: Prepared,
    out: Outcome,
    *,
    params: dict | None = None,
    on_fold=None,
    budget: tuple[float, float] | None = None,
) -> None:
    """Score train.py on data.folds, fold by fold, into `out` (stops at the first failure). With `budget`
    (its start on the monotonic clock, its seconds), stops as a timeout as soon as the folds done so far
    project the whole evaluation past PROJECTED_SLACK times the budget: it would time out anyway, and a night
    should not pay the rest of the budget to learn that."""
    done: list = []  # the folds' outputs: a fold ended early reports its CPU time when the lane settles
    try:
        _run_folds(session, data, out, done, params, on_fold, budget)
    finally:
        if session.current is not None and session.current.started:
            try:
                session.current.settle()
            except Ended:
                pass  # the sandbox is gone: the watchdog's verdict says why
        out.cpu_s = [f.cpu_s for f in done]


def _run_folds(session, data, out, done, params, on_fold, budget) -> None:
    y = data.labels["train"]
    methods = data.metric.methods
    out.n_folds = n = len(data.folds)
    for i, (fit, test) in enumerate(data.folds):
        if budget is not None and out.fold_s:
            started, seconds = budget
            now = time.monotonic()
            projected = now - started + sum(out.fold_s) / len(out.fold_s) * (n - i)
            if projected > PROJECTED_SLACK * seconds:
                out.status = "timeout"
                out.reason = f"projected: {i} of {n} folds done, all of them would take ~{projected:.0f} s"
                return
        f = session.lane(fresh=i > 0).fold(i, fit, y[fit], "train", test, methods, params)
        out.violations += f.violations
        out.fold_s.append(f.wall_s)
        done.append(f)
        if f.status != "ok":
            out.status, out.reason = "crash", _fold_reason(f)
            return
        try:
            score = data.metric.score(y[test], f.method, f.values, f.classes, fit_labels=y[fit])
        except ValueError as e:  # metrics.PredictionError: the predictions break the contract
            out.status, out.reason = "crash", f"train.py contract: fold {i}: {e}"
            return
        out.scores.append(score)
        out.fit_s.append(f.fit_s)
        if on_fold is not None:
            on_fold(i, score, f.fit_s)


def cross_validate(
    cfg: Config,
    train_py: Path,
    folds: str = "cv",
    *,
    log_path: Path | None = None,
    budget_s: float | None = None,
    params: dict | None = None,
    on_fold=None,
    token: str | None = None,
    session: Session | None = None,
) -> Outcome:
    """Fit and score train.py on the prepared folds ("cv", "confirm" or "sweep") under one budget; in `session`
    when the caller started one early (it is closed here)."""
    budget = cfg.budget_s if budget_s is None else budget_s
    start = time.monotonic()
    out = Outcome("ok", log_path=log_path)
    if session is None:
        session = Session(cfg, train_py, deadline=start + budget, log_path=log_path, token=token)
    session.set_deadline(start + budget)
    try:
        session.start()  # the worker imports its libraries while this side loads the labels and the metric
        data = Prepared.load(cfg, folds)
        run_folds(session, data, out, params=params, on_fold=on_fold, budget=(start, budget))
    except Pruned:
        out.status = "pruned"
    except Ended:
        out.status, out.reason = "crash", "the sandbox ended before the evaluation did"
    finally:
        out.tail = session.close()
    session.judge(out, budget)
    out.wall_s = time.monotonic() - start
    return out


def fit_holdout(
    cfg: Config, train_py: Path, *, log_path: Path | None = None, export: bool = False, token: str | None = None
) -> Outcome:
    """Fit train.py on the whole train part, predict the holdout's features, score them here. With export, the
    fitted pipeline comes back too (pickled by the sandbox; stored, never loaded, by this side)."""
    start = time.monotonic()
    out = Outcome("ok", log_path=log_path)
    session = Session(
        cfg, train_py, deadline=start + cfg.budget_s, log_path=log_path, parts=("train", "holdout"), token=token
    )
    try:
        session.start()
        data = Prepared.load(cfg, folds=None)
        import numpy as np

        y = data.labels["train"]
        f = session.lane().fold(0, np.arange(len(y)), y, "holdout", None, data.metric.methods, export=export)
        out.violations, out.fold_s, out.fit_s, out.n_folds = f.violations, [f.wall_s], [f.fit_s], 1
        if f.status != "ok":
            out.status, out.reason = "crash", _fold_reason(f).replace("fold 0: ", "")
        else:
            try:
                out.holdout = data.metric.score(data.labels["holdout"], f.method, f.values, f.classes, fit_labels=y)
            except ValueError as e:
                out.status, out.reason = "crash", f"train.py contract: holdout: {e}"
            out.model = f.model
            out.classes = None if f.classes is None else f.classes.tolist()
    except Ended:
        out.status, out.reason = "crash", "the sandbox ended before the fit did"
    finally:
        out.tail = session.close()
    session.judge(out, cfg.budget_s)
    out.wall_s = time.monotonic() - start
    return out


def _fold_reason(f: FoldOutput) -> str:
    if f.status == "died":
        return f.reason
    return f"train.py contract: {f.reason}" if f.kind == "contract" else f.reason


_warmed: set[str] = set()


def warm(metric_name: str | None, task: str | None) -> None:
    """Import the metric's scoring code in the background, from the moment a sandbox starts: it then runs
    beside the worker's own imports (one core each) rather than beside the first folds' fits, and the first
    fold's score does not wait for it."""
    if not task or metric_name in _warmed:
        return
    _warmed.add(metric_name)
    from autoresearch.metrics import resolve_metric

    try:
        metric = resolve_metric(metric_name, task, check_task=False)
    except (KeyError, ValueError):
        return  # Prepared.load reports it
    threading.Thread(target=metric.warm, daemon=True).start()
