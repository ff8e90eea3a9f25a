"""How much of `uv run train.py` is the harness, not the model?

    uv run bench/harness_overhead.py [--runs 5]

Copies the project (with its real [tool.autoresearch] config: the default table, 5 folds x 2 repeats) to
a temporary folder, runs `uv run prepare.py` there once, then `uv run train.py` --runs times, each a real
subprocess, and prints per run:

    total_s     wall time of the whole `uv run train.py` command
    parent_s    total_s - child_s: uv, the parent importing train.py (and what it imports), checking data/
    child_s     the evaluation child's wall time (the `wall_s:` line)
    fit_s       the folds' summed fit time (the `fit_s:` line)
    overhead_s  total_s - fit_s: uv, the parent's imports and checks, the child's imports, data loading, scoring

and then what a fresh interpreter pays just to import the libraries an evaluation child imports
(median and min over fresh interpreters: the min is the least disturbed by other load).
uv runs against this repository's environment (`--project`), so nothing is installed or synced elsewhere.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ("prepare.py", "train.py", "pyproject.toml", "uv.lock", "README.md", ".gitignore")
DIRS = ("autoresearch", ".claude")
IMPORTS = {
    "python -c pass": "pass",
    "import numpy": "import numpy",
    "import pandas": "import pandas",
    "import sklearn": "import sklearn",
    "import lightgbm": "import lightgbm",
    "import pandas, sklearn, lightgbm": "import pandas, sklearn, lightgbm",
}


def copy_project(dest: Path) -> None:
    for name in FILES:
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, dest / name)
    for name in DIRS:
        if (ROOT / name).exists():
            shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))


def uv_run(args: list[str], cwd: Path) -> tuple[subprocess.CompletedProcess, float]:
    t0 = time.perf_counter()
    proc = subprocess.run(["uv", "run", "--project", str(ROOT), *args], cwd=cwd, capture_output=True, text=True)
    return proc, time.perf_counter() - t0


def field(stdout: str, name: str) -> float:
    m = re.search(rf"^{name}:\s+([0-9.]+)", stdout, re.M)
    if not m:
        raise SystemExit(f"no `{name}:` line in the output of train.py:\n{stdout}")
    return float(m.group(1))


def import_times(code: str, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - t0)
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="how many times to run `uv run train.py` (default 5)")
    ap.add_argument("--import-repeats", type=int, default=3, help="fresh interpreters per import timing")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="harness-overhead-") as tmp:
        proj = Path(tmp)
        copy_project(proj)
        proc, prep_s = uv_run(["prepare.py"], proj)
        if proc.returncode != 0:
            raise SystemExit(f"prepare failed:\n{proc.stderr}")
        print(proc.stdout.rstrip())
        print(f"(uv run prepare.py: {prep_s:.2f} s)\n")

        rows = []
        print(f"{'run':>6} {'total_s':>9} {'parent_s':>9} {'child_s':>9} {'fit_s':>9} {'overhead_s':>11}")
        for i in range(1, args.runs + 1):
            proc, total = uv_run(["train.py"], proj)
            if proc.returncode != 0:
                raise SystemExit(f"train.py failed:\n{proc.stdout}\n{proc.stderr}")
            row = (total, field(proc.stdout, "wall_s"), field(proc.stdout, "fit_s"))
            rows.append(row)
            total, child, fit = row
            print(f"{i:>6} {total:>9.2f} {total - child:>9.2f} {child:>9.2f} {fit:>9.2f} {total - fit:>11.2f}")
        for label, agg in (("median", statistics.median), ("min", min)):
            total, child, fit = (agg(r[k] for r in rows) for k in range(3))
            parent, over = agg(r[0] - r[1] for r in rows), agg(r[0] - r[2] for r in rows)
            print(f"{label:>6} {total:>9.2f} {parent:>9.2f} {child:>9.2f} {fit:>9.2f} {over:>11.2f}")

    print(f"\nchild startup: a fresh interpreter importing ({args.import_repeats} runs)   median_s   min_s")
    for label, code in IMPORTS.items():
        times = import_times(code, args.import_repeats)
        print(f"  {label:<34} {statistics.median(times):>18.2f} {min(times):>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
