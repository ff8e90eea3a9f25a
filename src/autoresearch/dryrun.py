"""`uv run train.py` (and `autoresearch train`): score train.py on the folds, in the sandbox, and print a
grep-able block. A dry run: nothing is committed or recorded, and the holdout is never touched."""

from __future__ import annotations

import sys
from pathlib import Path

from autoresearch import layout, manifest, sandbox
from autoresearch.config import load_config
from autoresearch.engine import cross_validate
from autoresearch.metrics import direction
from autoresearch.text import error_tail

LOG = "last_train_run.log"


def add_arguments_train(p) -> None:
    p.add_argument("path", nargs="?", help="the train.py to score (default: the project's train.py)")


def run_train(args) -> int:
    cfg = load_config(Path(args.path).resolve().parent if args.path else None)
    m = manifest.ensure(cfg)
    train_py = Path(args.path).resolve() if args.path else cfg.root / layout.TRAIN
    log = cfg.state_dir / LOG
    out = cross_validate(cfg, train_py, "cv", log_path=log)
    if out.status == "invalid":  # no score and no output: they may carry what train.py should not have seen
        print(f"---\nstatus:   invalid\nreason:   {out.reason}")
        return 1
    lines = ["---", f"metric:   {m['metric']} ({direction(m['higher_is_better'])})"]
    if out.status == "ok":
        lines += [f"mean:     {out.mean:.6f}", f"std_err:  {out.se:.6f}"]
    done = "" if out.status == "ok" else f"  ({len(out.scores)} of {m['n_folds']})"
    lines += [
        f"folds:    {' '.join(f'{s:.6f}' for s in out.scores)}{done}",
        f"fit_s:    {sum(out.fit_s):.2f}",
        f"wall_s:   {out.wall_s:.2f}",
        f"status:   {out.status}",
    ]
    if not cfg.sandbox:
        lines.append(f"warning:  {sandbox.UNPROTECTED}")
    if out.status != "ok":
        lines += [f"reason:   {out.reason}", f"log:      {log}"]
        lines += [f"  | {line}" for line in error_tail(out.tail)]
    print("\n".join(lines))
    return 0 if out.status == "ok" else 1


def main(train_py: str) -> None:
    """prepare.evaluate_cli: reached only when train.py ran as a script without the start-up hook, so its own
    top-level code has already run outside the sandbox (the hook routes `uv run train.py` before that)."""
    print(
        f"note: {Path(train_py).name}'s top-level code ran outside the sandbox; `uv run train.py` in the "
        "project folder does not do that (reinstall with `uv sync` if it did)",
        file=sys.stderr,
    )
    from autoresearch.cli import main as cli

    sys.exit(cli(["train", str(Path(train_py).resolve())]))
