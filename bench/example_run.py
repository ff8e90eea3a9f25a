"""Regenerate docs/progress-example.png: a real run of 26 scripted iterations on the default table.

    nice -n 19 uv run python bench/example_run.py [--dir /tmp/autoresearch-example] [--keep-dir]

A throwaway copy of the project (default config shape: 5 folds x 2 repeats) is driven through the real
commands, `autoresearch start` then one `autoresearch step` per train.py variant: LightGBM, feature
ideas, regularisation, a worse model or two, two crashes, an INVALID step that reaches for the data,
and one sweep row: three settings scored with `python train.py`, the best handed to step with the
sweep.json contract that `autoresearch sweep` writes (a stand-in for the surveyor, to show how sweep
rows look in the report). The script follows the ratchet like an agent
would: a variant builds on the incumbent, so after a revert the next idea starts from the kept code.
Then `autoresearch report` writes the report and the image is copied to docs/.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("prepare.py", "train.py", "pyproject.toml", "uv.lock", "program.md", ".gitignore")
CONFIG = {"folds": 5, "repeats": 2, "budget_s": 600, "n_jobs": 1}  # one thread and a wide budget: shared CPUs
TAG = "example"

TEMPLATE = '''"""Example run: LightGBM on the churn table, features added one idea at a time."""

import lightgbm as lgb
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from prepare import N_JOBS, SEED

HYPOTHESIS = {hypothesis!r}
CATEGORY = {category!r}
PARAMS = {params!r}
{dead}

def add_features(X):
    X = X.copy()
{features}
    return X


def build_pipeline(params):
    model = lgb.LGBMClassifier(**params, random_state=SEED, n_jobs=N_JOBS, verbose=-1)
    return Pipeline([("features", FunctionTransformer(add_features)), ("model", model)])
{extra}'''

OTHER_MODEL = '''"""Example run: a different model family."""

from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import {cls}
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from prepare import N_JOBS, SEED

HYPOTHESIS = {hypothesis!r}
CATEGORY = "model"
PARAMS = {params!r}


def build_pipeline(params):
    encode = ColumnTransformer(
        [("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
          make_column_selector(dtype_include="category"))],
        remainder="passthrough")
    return Pipeline([("encode", encode), ("model", {cls}(**params, random_state=SEED, n_jobs=N_JOBS))])
'''

FEATURES = {
    "total_charge": 'X["total_charge"] = X[["total_day_charge", "total_eve_charge", "total_night_charge", '
    '"total_intl_charge"]].sum(axis=1)',
    "service_flag": 'X["many_service_calls"] = (X["number_customer_service_calls"] >= 4).astype(int)',
    "drop_state": 'X = X.drop(columns=["state"])',
    "intl_cross": 'X["intl_plan_charge"] = (X["international_plan"] == "yes") * X["total_intl_charge"]',
    "day_per_call": 'X["day_minutes_per_call"] = X["total_day_minutes"] / (X["total_day_calls"] + 1)',
    "total_minutes": 'X["total_minutes"] = X[["total_day_minutes", "total_eve_minutes", "total_night_minutes", '
    '"total_intl_minutes"]].sum(axis=1)',
    "vmail_flag": 'X["no_vmail"] = (X["number_vmail_messages"] == 0).astype(int)',
    "typo": 'X["total_charge2"] = X["total_day_charge"] + totl_eve_charge',  # NameError: a crash
}


def lgbm_source(state: dict, hypothesis: str, category: str, extra: str = "") -> str:
    feats = "\n".join(f"    {FEATURES[f]}" for f in state["features"]) or "    # no features yet"
    dead = "LEGACY_CUTOFF = 0.5  # left over from an earlier idea\n" if state["dead"] else ""
    return TEMPLATE.format(
        hypothesis=hypothesis, category=category, params=state["params"], features=feats, dead=dead, extra=extra
    )


def with_params(**kw):
    return lambda s: {**s, "params": {**s["params"], **kw}}


def with_feature(name):
    return lambda s: {**s, "features": [*s["features"], name]}


START = {"params": {"n_estimators": 40, "learning_rate": 0.05, "num_leaves": 31}, "features": [], "dead": True}
# (category, hypothesis, change of the incumbent's state, or a callable returning a whole source)
PLAN = [
    ("model", "LightGBM (40 trees) instead of logistic regression", lambda s: s),
    ("params", "more trees: 300 instead of 40", with_params(n_estimators=300)),
    ("features", "total minutes over the day", with_feature("total_minutes")),
    ("features", "total charge over day, evening, night and international", with_feature("total_charge")),
    ("features", "flag customers with 4 or more service calls", with_feature("service_flag")),
    ("params", "smaller trees: 15 leaves", with_params(num_leaves=15)),
    ("features", "total charge plus a typo in a new feature", with_feature("typo")),
    ("regularization", "L2 penalty reg_lambda=5", with_params(reg_lambda=5.0)),
    ("params", "slower learning, more trees: lr 0.02, 800 trees", with_params(learning_rate=0.02, n_estimators=800)),
    ("features", "drop the 51-level state column", with_feature("drop_state")),
    ("regularization", "column subsampling 0.7", with_params(colsample_bytree=0.7)),
    ("params", "far fewer trees: 15", with_params(n_estimators=15)),
    ("features", "international plan times international charge", with_feature("intl_cross")),
    ("model", "random forest of 400 trees", ("RandomForestClassifier", {"n_estimators": 400, "min_samples_leaf": 2})),
    ("features", "day minutes per day call", with_feature("day_per_call")),
    ("regularization", "min_child_samples 40", with_params(min_child_samples=40)),
    ("params", "depth cap 5", with_params(max_depth=5)),
    ("model", "extra trees of 400 trees", ("ExtraTreesClassifier", {"n_estimators": 400, "min_samples_leaf": 2})),
    ("features", "broken edit: unbalanced parenthesis", "syntax"),
    ("features", "no-voicemail flag", with_feature("vmail_flag")),
    ("params", "row bagging 0.8 every iteration", with_params(subsample=0.8, subsample_freq=1)),
    ("features", "peek at the raw data file for a lookup table", "invalid"),
    ("params", "tuned learning rate and leaves (sweep)", "sweep"),
    ("regularization", "min_split_gain 0.05", with_params(min_split_gain=0.05)),
    ("simplify", "remove a leftover constant that nothing uses", lambda s: {**s, "dead": False}),
    ("params", "learning rate 0.1 with 200 trees", with_params(learning_rate=0.1, n_estimators=200)),
]


def make_project(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    for name in PROJECT_FILES:
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, path / name)
    shutil.copytree(ROOT / "autoresearch", path / "autoresearch", ignore=shutil.ignore_patterns("__pycache__"))
    text = (path / "pyproject.toml").read_text()
    body = "".join(f"{k} = {v}\n" for k, v in CONFIG.items())
    (path / "pyproject.toml").write_text(text[: text.index("[tool.autoresearch]")] + "[tool.autoresearch]\n" + body)
    for cmd in (
        ["init", "-q", "-b", "main"],
        ["config", "user.email", "example@example.invalid"],
        ["config", "user.name", "example"],
        ["add", "-A"],
        ["commit", "-q", "-m", "example project"],
    ):
        subprocess.run(["git", *cmd], cwd=path, check=True)


def cli(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autoresearch.cli", *args], cwd=path, capture_output=True, text=True)


def candidate(path: Path, state: dict, category: str, hypothesis: str, change) -> tuple[str, dict]:
    if callable(change):
        new = change(state)
        return lgbm_source(new, hypothesis, category), new
    if isinstance(change, tuple):
        cls, params = change
        return OTHER_MODEL.format(cls=cls, hypothesis=hypothesis, params=params), state
    if change == "syntax":
        return lgbm_source(state, hypothesis, category, extra="\nFEATURE_LIST = (\n"), state
    if change == "invalid":  # the static check refuses it before anything runs
        return lgbm_source(state, hypothesis, category, extra='\nLOOKUP = open("data/train.parquet", "rb")\n'), state
    if change == "sweep":
        return _mini_sweep(path, state, category, hypothesis)
    raise ValueError(change)


def _mini_sweep(path: Path, state: dict, category: str, hypothesis: str) -> tuple[str, dict]:
    """A tiny real search (3 settings scored with `python train.py`), then the sweep.json contract that
    `autoresearch sweep` leaves for step, so the winner's row is marked as a sweep in the ledger."""
    best = None
    for lr, leaves in ((0.03, 20), (0.05, 24), (0.08, 12)):
        new = with_params(learning_rate=lr, num_leaves=leaves)(state)
        source = lgbm_source(new, hypothesis, category)
        (path / "train.py").write_text(source)
        out = subprocess.run([sys.executable, "train.py"], cwd=path, capture_output=True, text=True).stdout
        mean = next((float(x.split()[1]) for x in out.splitlines() if x.startswith("mean:")), float("-inf"))
        if best is None or mean > best[0]:
            best = (mean, source, new)
    mean, source, new = best
    info = {"train_sha256": hashlib.sha256(source.encode()).hexdigest(), "trials": 3, "pruned": 0, "best_value": mean}
    (path / ".autoresearch" / "runs" / TAG / "sweep.json").write_text(json.dumps(info))
    return source, new


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="/tmp/autoresearch-example", help="the throwaway project folder")
    ap.add_argument("--out", default=str(ROOT / "docs" / "progress-example.png"))
    args = ap.parse_args()
    path = Path(args.dir)
    t0 = time.monotonic()
    make_project(path)
    r = cli(path, "start", TAG)
    print(r.stdout or r.stderr, flush=True)
    if r.returncode:
        return 1
    state = START
    for category, hypothesis, change in PLAN:
        source, new = candidate(path, state, category, hypothesis, change)
        (path / "train.py").write_text(source)
        r = cli(path, "step")
        line = (r.stdout.strip().splitlines() or [r.stderr.strip()])[0]
        print(line, flush=True)
        if "| KEPT |" in line or "SIMPLIFIED" in line:
            state = new
    cli(path, "stop", "--reason", "example finished")
    r = cli(path, "report", "--show-holdout")
    print(r.stdout, r.stderr, flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path / "reports" / TAG / "progress.png", args.out)
    print(f"copied the plot to {args.out}; the run took {(time.monotonic() - t0) / 60:.1f} min", flush=True)
    return r.returncode


if __name__ == "__main__":
    sys.exit(main())
