"""The parent's side of an evaluation: make sure the data is prepared, run the child, print the result."""

from __future__ import annotations

import sys
from pathlib import Path

from autoresearch.config import Config, load_config
from autoresearch.errors import UserError
from autoresearch.prepared import data_card, prepare
from autoresearch.runner import RunResult, run_child

TAIL_LINES = 15
TAIL_WIDTH = 300  # one printed tail line at most: a single 100 MB line must not flood the agent


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


def ensure_prepared(cfg: Config, quiet: bool = False) -> dict:
    manifest, written = prepare(cfg)
    if written and not quiet:
        print(data_card(manifest, cfg), file=sys.stderr)
    return manifest


def evaluate(cfg: Config, train_py: Path, mode: str = "cv", log_path: Path | None = None,
             budget_s: float | None = None, token: str | None = None) -> RunResult:
    argv = [sys.executable, "-m", "autoresearch.evaluate", mode, str(train_py)]
    return run_child(argv, cwd=cfg.root, budget_s=budget_s or cfg.budget_s, memory_mb=cfg.memory_mb,
                     log_path=log_path, env=child_env(cfg), token=token)


def error_tail(result: RunResult, lines: int = TAIL_LINES) -> list[str]:
    text = [_clip(line) for line in result.tail.splitlines() if line.strip()]
    return text[-lines:]


def _clip(line: str) -> str:
    return line if len(line) <= TAIL_WIDTH else f"{line[:TAIL_WIDTH]} [... {len(line) - TAIL_WIDTH} more characters]"


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
    done = result.last("done") or {}
    scores = fold_scores(result)
    direction = "higher" if manifest["higher_is_better"] else "lower"
    print("---")
    print(f"metric:   {manifest['metric']} ({direction} is better)")
    if result.status == "ok":
        print(f"mean:     {done['mean']:.6f}")
        print(f"std_err:  {done['se']:.6f}")
    print(f"folds:    {' '.join(f'{s:.6f}' for s in scores)}" + ("" if result.status == "ok"
                                                                 else f"  ({len(scores)} of {manifest['n_folds']})"))
    print(f"fit_s:    {done.get('fit_s', sum(e.get('fit_s', 0) for e in result.events if e.get('event') == 'fold')):.2f}")
    print(f"wall_s:   {result.wall_s:.2f}")
    print(f"status:   {result.status}")
    if result.status != "ok":
        print(f"reason:   {result.reason}")
        print(f"log:      {log}")
        for line in error_tail(result):
            print(f"  | {line}")
        sys.exit(1)
