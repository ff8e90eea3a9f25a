"""Time `autoresearch profile` on a synthetic table: first call (computes and caches) and cached calls.

    nice -n 19 uv run python bench/profile_bench.py [--rows 200000] [--cols 60] [--dir /tmp/profile-bench]

Writes a mixed table (floats with missing values, integers, categoricals from 2 to 500 levels, booleans, a
date, correlated and relabelled copies) into a throwaway project, prepares it with manifest.write, then runs
the real command in a subprocess: once with no cache, three times cached. Prints the wall times, the
profile's own compute time and the output's size.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd


def table(rows: int, cols: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = {}
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    for i in range(cols - 5):
        kind = i % 6
        if kind in (0, 1, 2):
            v = rng.normal(size=rows) * (10**i % 7)
            out[f"num_{i}"] = np.where(rng.random(rows) < 0.02 * kind, np.nan, v)
        elif kind == 3:
            out[f"int_{i}"] = rng.poisson(1 + i % 4, size=rows)
        elif kind == 4:
            k = (2, 12, 50, 500)[i // 6 % 4]
            out[f"cat_{i}"] = rng.choice(months if k == 12 else [f"L{j}" for j in range(k)], size=rows)
        else:
            out[f"flag_{i}"] = rng.random(rows) < 0.3
    df = pd.DataFrame(out)
    df["when"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1500, size=rows), unit="D")
    df["num_0_copy"] = 3 * df["num_0"] + 1
    df["int_3_noisy"] = df["int_3"] + rng.normal(scale=0.01, size=rows)
    first_cat = next(c for c in df.columns if c.startswith("cat_"))
    df["cat_relabelled"] = "x_" + df[first_cat].astype(str)
    logit = 0.8 * np.nan_to_num(df["num_0"]) + 0.3 * df["int_3"] - 1.5
    df["y"] = np.where(rng.random(rows) < 1 / (1 + np.exp(-logit)), "yes", "no")
    return df


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, proc.stdout


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--cols", type=int, default=60)
    ap.add_argument("--dir", type=Path, default=Path("/tmp/profile-bench"))
    args = ap.parse_args()
    shutil.rmtree(args.dir, ignore_errors=True)
    args.dir.mkdir(parents=True)
    (args.dir / "pyproject.toml").write_text(
        '[tool.autoresearch]\ndata = "table.parquet"\ntarget = "y"\nfolds = 3\nrepeats = 1\nconfirm_repeats = 0\n'
    )
    df = table(args.rows, args.cols)
    df.to_parquet(args.dir / "table.parquet", index=False)
    from autoresearch import manifest
    from autoresearch.config import load_config

    t0 = time.perf_counter()
    m = manifest.write(load_config(args.dir))
    print(f"table {args.rows:,} rows x {df.shape[1] - 1} features; prepared in {time.perf_counter() - t0:.1f} s")
    cmd = [sys.executable, "-m", "autoresearch.cli", "profile"]
    cold, out = timed(cmd, args.dir)
    prof = json.loads((args.dir / ".autoresearch" / f"profile-{m['id']}.json").read_text())
    warm = sorted(timed(cmd, args.dir)[0] for _ in range(3))
    print(f"first call {cold:.2f} s wall (compute {prof['compute_s']:.2f} s); cached {warm[1]:.3f} s (median of 3)")
    print(f"output {len(out.encode()):,} bytes, {len(out.splitlines())} lines")
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
