"""The parent's side of an evaluation: make sure the data is prepared, run the child, print the result."""

from __future__ import annotations

import ctypes
import os
import struct
import sys
from pathlib import Path

from autoresearch.config import Config, load_config
from autoresearch.errors import UserError
from autoresearch.prepared import data_card, prepare
from autoresearch.runner import RunResult, run_child
from autoresearch.text import TAIL_LINES
from autoresearch.text import error_tail as _error_tail


def child_env(cfg: Config) -> dict:
    import os

    env = dict(os.environ)
    threads = str(cfg.n_jobs)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LOKY_MAX_CPU_COUNT"):
        env[var] = threads
    # OpenMP threads that spin while waiting turn a busy machine into timeouts (seen: LightGBM with
    # 2 threads on 2 loaded cores went from seconds to past a 120 s budget); sleeping costs little
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def ensure_prepared(cfg: Config, quiet: bool = False, omit: tuple[str, ...] = ()) -> dict:
    """omit: data-card lines (by label) that the caller's own card already shows."""
    manifest, written = prepare(cfg)
    if written and not quiet:
        lines = data_card(manifest, cfg).splitlines()
        print("\n".join(x for x in lines if x.split(":", 1)[0] not in omit), file=sys.stderr)
    return manifest


def evaluate(
    cfg: Config,
    train_py: Path,
    mode: str = "cv",
    log_path: Path | None = None,
    budget_s: float | None = None,
    token: str | None = None,
) -> RunResult:
    argv = [sys.executable, "-m", "autoresearch.evaluate", mode, str(train_py)]
    watch = ReadWatch(secret_paths(cfg)) if mode != "holdout" else None  # only the holdout mode may read them
    try:
        result = run_child(
            argv,
            cwd=cfg.root,
            budget_s=budget_s or cfg.budget_s,
            memory_mb=cfg.memory_mb,
            log_path=log_path,
            env=child_env(cfg),
            token=token,
        )
    finally:
        opened = watch.close() if watch else []
    for path in opened:
        result.events.append(
            {
                "event": "violation",
                "reason": (
                    f"{path.relative_to(cfg.root)} was opened during the run: only the harness reads the holdout "
                    "(train.py, a library it called or a process it started read it)"
                ),
            }
        )
    return result


def secret_paths(cfg: Config) -> list[Path]:
    """What a CV evaluation must never open: the holdout rows and the holdout scores of kept commits."""
    return [cfg.data_dir / "holdout.parquet", *sorted(cfg.state_dir.glob("runs/*/holdout.jsonl"))]


class ReadWatch:
    """inotify on files nobody may open while train.py runs. The in-child audit guard sees Python's open()
    only: pandas and pyarrow open files natively, and a subprocess carries no guard at all. The kernel sees
    every open, by any process (so a concurrent reader, e.g. `autoresearch report`, also trips it).
    Best effort: where inotify is unavailable it watches nothing."""

    IN_ACCESS, IN_OPEN = 0x01, 0x20

    def __init__(self, paths: list[Path]):
        self.fd, self.watched = -1, {}
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            for path in paths:
                wd = (
                    libc.inotify_add_watch(self.fd, os.fsencode(path), self.IN_OPEN | self.IN_ACCESS)
                    if self.fd >= 0 and path.is_file()
                    else -1
                )
                if wd >= 0:
                    self.watched[wd] = path
        except (OSError, AttributeError):
            self.fd = -1

    def close(self) -> list[Path]:
        """Stop watching; the watched paths that were opened or read since the start."""
        if self.fd < 0:
            return []
        hit: set[int] = set()
        try:
            while buf := os.read(self.fd, 65536):
                at = 0
                while at + 16 <= len(buf):
                    wd, mask, _, size = struct.unpack_from("iIII", buf, at)
                    at += 16 + size
                    if mask & (self.IN_OPEN | self.IN_ACCESS):
                        hit.add(wd)
        except BlockingIOError:
            pass
        finally:
            os.close(self.fd)
            self.fd = -1
        return [self.watched[wd] for wd in sorted(hit) if wd in self.watched]


def error_tail(result: RunResult, lines: int = TAIL_LINES) -> list[str]:
    return _error_tail(result.tail, lines)


def fold_scores(result: RunResult) -> list[float]:
    done = result.last("done")
    if done and "scores" in done:
        return done["scores"]
    return [e["score"] for e in result.events if e.get("event") == "fold"]


def train_main(train_py: str) -> None:
    """`uv run train.py`: evaluate train.py on the train part's folds and print a grep-able block."""
    try:
        cfg = load_config(Path(train_py).resolve().parent)
        manifest = ensure_prepared(cfg)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    log = cfg.state_dir / "last_train_run.log"
    log.parent.mkdir(exist_ok=True)
    result = evaluate(cfg, Path(train_py).resolve(), "cv", log)
    violations = [e["reason"] for e in result.events if e.get("event") == "violation"]
    if violations:  # no score and no output: they may carry what train.py should not have seen
        print(f"---\nstatus:   invalid\nreason:   {violations[0]}")
        sys.exit(1)
    done = result.last("done") or {}
    scores = fold_scores(result)
    direction = "higher" if manifest["higher_is_better"] else "lower"
    print("---")
    print(f"metric:   {manifest['metric']} ({direction} is better)")
    if result.status == "ok":
        print(f"mean:     {done['mean']:.6f}")
        print(f"std_err:  {done['se']:.6f}")
    print(
        f"folds:    {' '.join(f'{s:.6f}' for s in scores)}"
        + ("" if result.status == "ok" else f"  ({len(scores)} of {manifest['n_folds']})")
    )
    fit_s = done.get("fit_s", sum(e.get("fit_s", 0) for e in result.events if e.get("event") == "fold"))
    print(f"fit_s:    {fit_s:.2f}")
    print(f"wall_s:   {result.wall_s:.2f}")
    print(f"status:   {result.status}")
    if result.status != "ok":
        print(f"reason:   {result.reason}")
        print(f"log:      {log}")
        for line in error_tail(result):
            print(f"  | {line}")
        sys.exit(1)
