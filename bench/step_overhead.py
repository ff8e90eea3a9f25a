"""What does `uv run autoresearch step` cost beyond the evaluation it runs?

    nice -n 19 uv run python bench/step_overhead.py [--steps 8] [--keep DIR] [--profile auto|always|never]

Makes a throwaway copy of the project (tests/conftest.make_project) with the DEFAULT config (empty
[tool.autoresearch]: the default table, 5 folds x 2 repeats), gives it its own environment
(`uv sync --offline`, from uv's cache, nothing downloaded), runs `uv run autoresearch start bench`, then
--steps real `uv run autoresearch step` commands on alternating edits of train.py (some kept, most
noop/discard), and prints per step:

    wall_s      the whole command, as the agent waits for it
    cv_s        the CV child's wall time as the runner measured it (iters/<n>.json eval_s)
    hold_s      the holdout child's lifetime (kept steps only; not recorded by the harness, so a watcher
                thread polls /proc every 10 ms for the step's descendants running autoresearch.worker:
                first seen to gone, +-10 ms)
    look_s      a second look's children (candidate and, once per incumbent, incumbent on the confirm folds)
    overhead_s  wall_s - cv_s - hold_s - look_s: uv, the parent's imports, git, hashing, bookkeeping

Target: median overhead <= 1 s. Over target (or with --profile always), one more step runs under cProfile
and the parent's top functions are printed.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from conftest import make_project  # noqa: E402

TARGET_S = 1.0
TAG = "bench"

LGBM = """
import lightgbm as lgb

from prepare import N_JOBS, SEED

HYPOTHESIS = "{hyp}"
CATEGORY = "{cat}"
PARAMS = {{"n_estimators": {n}, "learning_rate": {lr}, "num_leaves": 15, "min_child_samples": {mcs},
          "seed": SEED + {seed}}}


def build_pipeline(params):
    return lgb.LGBMClassifier(n_estimators=params["n_estimators"], learning_rate=params["learning_rate"],
                              num_leaves=params["num_leaves"], min_child_samples=params["min_child_samples"],
                              subsample=0.8, subsample_freq=1, colsample_bytree=0.8,
                              random_state=params["seed"], n_jobs=N_JOBS, verbose=-1)
"""


def lgbm(hyp: str, cat: str = "params", n: int = 200, lr: float = 0.05, mcs: int = 20, seed: int = 0) -> str:
    return LGBM.format(hyp=hyp, cat=cat, n=n, lr=lr, mcs=mcs, seed=seed)


# the incumbent moves only on a KEEP, so each edit is read against whichever came before it that was kept
EDITS = [
    lgbm("LightGBM instead of logistic regression", cat="model"),
    lgbm("another bagging seed", seed=1),
    lgbm("far fewer trees", n=5),
    lgbm("slightly slower learning rate", lr=0.045),
    lgbm("larger leaves minimum", mcs=40),
    lgbm("more, slower trees", n=400, lr=0.03),
    lgbm("yet another bagging seed", seed=2),
    lgbm("smaller leaves minimum", mcs=10),
]


class ChildWatcher:
    """Lifetimes of the evaluation children among the descendants of one process, by polling /proc."""

    def __init__(self, root_pid: int, poll_s: float = 0.01):
        self.root, self.poll_s = root_pid, poll_s
        self.tree = {root_pid}
        self.foreign: set[int] = set()
        self.children: dict[int, dict] = {}  # pid -> {"mode", "first", "last"}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            now = time.monotonic()
            for name in os.listdir("/proc"):
                if name.isdigit():
                    self._look(int(name), now)
            time.sleep(self.poll_s)

    def _look(self, pid: int, now: float) -> None:
        if pid in self.foreign:
            return
        if pid not in self.tree:
            if _ppid(pid) not in self.tree:
                self.foreign.add(pid)
                return
            self.tree.add(pid)
        if pid in self.children:
            self.children[pid]["last"] = now
            return
        argv = _cmdline(pid)
        if "autoresearch.worker" in argv and not argv[0].endswith("bwrap"):  # a sandboxed evaluation's worker
            self.children[pid] = {"mode": "sandbox", "first": now, "last": now}

    def finish(self) -> list[dict]:
        self.stop.set()
        self.thread.join()
        return [{"mode": c["mode"], "s": c["last"] - c["first"]} for c in self.children.values()]


def _ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
        return int(raw[raw.rfind(")") + 2 :].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def timed(cmd: list[str], cwd: Path, watch: bool = False) -> tuple[float, subprocess.CompletedProcess, list]:
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    watcher = ChildWatcher(proc.pid) if watch else None
    out, err = proc.communicate()
    wall = time.monotonic() - t0
    children = watcher.finish() if watcher else []
    return wall, subprocess.CompletedProcess(cmd, proc.returncode, out, err), children


def _env() -> dict:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)  # this script's venv is not the project's
    return env


def setup(base: Path) -> Path:
    proj = make_project(base / "proj", config={})  # empty table = every default: 5 folds x 2 repeats
    r = subprocess.run(
        ["uv", "sync", "--offline", "--frozen", "--quiet"], cwd=proj.path, capture_output=True, text=True, env=_env()
    )
    if r.returncode != 0:
        raise SystemExit(f"uv sync --offline failed in {proj.path} (a package missing from uv's cache?):\n{r.stderr}")
    return proj.path


def step_row(path: Path, it: int, wall: float, children: list[dict], out: str) -> dict:
    rec = json.loads((path / ".autoresearch" / "runs" / TAG / "iters" / f"{it}.json").read_text())
    cv_seen = sum(c["s"] for c in children if c["mode"] == "cv")
    hold = sum(c["s"] for c in children if c["mode"] == "holdout")
    return {
        "iter": it,
        "status": rec["status"],
        "wall_s": wall,
        "cv_s": rec["eval_s"],
        "cv_seen_s": cv_seen,
        "hold_s": hold,
        "look_s": rec.get("confirm_eval_s", 0.0),
        "overhead_s": wall - rec["eval_s"] - hold - rec.get("confirm_eval_s", 0.0),
        "line": out.strip().splitlines()[-1],
    }


def launcher_costs(path: Path, runs: int = 3) -> dict:
    """What a bare `uv run` and a bare interpreter cost in this project, for the breakdown."""
    py = str(path / ".venv" / "bin" / "python")
    cmds = {
        "uv run true": ["uv", "run", "true"],
        "python -c pass": [py, "-c", "pass"],
        "python -c 'import autoresearch.ratchet'": [py, "-c", "import autoresearch.ratchet"],
        "uv run autoresearch --help": ["uv", "run", "autoresearch", "--help"],
    }
    return {k: statistics.median(timed(c, path)[0] for _ in range(runs)) for k, c in cmds.items()}


def profile(path: Path, top: int = 15) -> str:
    """One more step (a seed-only edit, so no holdout child) under cProfile; the parent's top functions."""
    import io

    (path / "train.py").write_text(lgbm("profiled: another bagging seed", seed=7))
    prof = path.parent / "step.prof"
    wall, r, _ = timed(
        ["uv", "run", "python", "-m", "cProfile", "-o", str(prof), "-m", "autoresearch.cli", "step"], path
    )
    last = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr.strip()
    lines = [f"profiled step (cProfile of the parent; the child is not profiled): {wall:.2f} s wall | {last}"]
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(str(prof), stream=buf).strip_dirs().sort_stats(key).print_stats(top)
        body = buf.getvalue().splitlines()
        start = next(i for i, x in enumerate(body) if x.lstrip().startswith("ncalls"))
        lines += [f"--- top {top} by {key} ---", *body[start : start + top + 1]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--keep", type=Path, help="build the project here and leave it (default: a temp dir, removed)")
    ap.add_argument("--profile", choices=("auto", "always", "never"), default="auto")
    args = ap.parse_args(argv)
    base = args.keep or Path(tempfile.mkdtemp(prefix="step_overhead_"))
    try:
        path = setup(base)
        wall, r, kids = timed(["uv", "run", "autoresearch", "start", TAG], path, watch=True)
        if r.returncode != 0:
            raise SystemExit(f"start failed:\n{r.stdout}\n{r.stderr}")
        base_rec = json.loads((path / ".autoresearch" / "runs" / TAG / "iters" / "0.json").read_text())
        print(f"project: {path} (default config: 5 folds x 2 repeats, {sys.platform}, {os.cpu_count()} cores)")
        print(
            f"start: {wall:.2f} s (baseline cv child {base_rec['eval_s']:.2f} s, holdout child "
            f"{sum(k['s'] for k in kids if k['mode'] == 'holdout'):.2f} s)"
        )
        rows = []
        head = (
            f"{'iter':>4} {'status':<8} {'wall_s':>7} {'cv_s':>6} {'cv_seen':>7} {'hold_s':>6} {'look_s':>6} "
            f"{'overhead':>8}  line"
        )
        print(head)
        for i in range(args.steps):
            (path / "train.py").write_text(EDITS[i % len(EDITS)])
            wall, r, kids = timed(["uv", "run", "autoresearch", "step"], path, watch=True)
            row = step_row(path, i + 1, wall, kids, r.stdout or r.stderr)
            rows.append(row)
            print(
                f"{row['iter']:>4} {row['status']:<8} {row['wall_s']:>7.2f} {row['cv_s']:>6.2f} "
                f"{row['cv_seen_s']:>7.2f} {row['hold_s']:>6.2f} {row['look_s']:>6.2f} {row['overhead_s']:>8.2f}  "
                f"{row['line']}",
                flush=True,
            )
        over = [r["overhead_s"] for r in rows]
        med = statistics.median(over)
        print(
            f"overhead: median {med:.2f} s, max {max(over):.2f} s over {len(over)} steps "
            f"(target <= {TARGET_S:g} s median: {'met' if med <= TARGET_S else 'NOT met'})"
        )
        print("launchers (median of 3): " + ", ".join(f"{k} {v:.2f} s" for k, v in launcher_costs(path).items()))
        if args.profile == "always" or (args.profile == "auto" and med > TARGET_S):
            print(profile(path))
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
