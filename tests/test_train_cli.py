"""`uv run train.py` and `uv run prepare.py` as the agent sees them: real commands on a real prepared project.

One project is prepared per module (3 folds x 1 repeat); `train.py` is run for real once and its output shared.
"""

from __future__ import annotations

import json
import math
import re

import pytest
from conftest import fake_estimator, make_project

from autoresearch.config import load_config
from autoresearch.engine import cross_validate, fit_holdout
from autoresearch.layout import MANIFEST
from autoresearch.manifest import prepare

# A train.py whose first fold's fit raises from deep in a recursion: a long traceback.
CRASHING = """
HYPOTHESIS = "a model that raises"
CATEGORY = "test"
PARAMS = {}


class Deep:
    def fit(self, X, y, depth=0):
        if depth < 30:
            return self.down(X, y, depth)  # two alternating frames: Python collapses only identical ones
        raise ValueError("boom at the bottom")

    def down(self, X, y, depth):
        return self.fit(X, y, depth + 1)

    def predict(self, X):
        return [0] * len(X)


def build_pipeline(params):
    return Deep()


if __name__ == "__main__":
    from prepare import evaluate_cli

    evaluate_cli(__file__)
"""


# Contract breakers: no scikit-learn needed, so each child evaluation stays cheap.
def breaker(proba: str) -> str:
    return (
        'import numpy as np\n\nHYPOTHESIS = "breaks the contract"\nCATEGORY = "test"\nPARAMS = {}\n'
        + fake_estimator(proba)
    )


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    proj = make_project(tmp_path_factory.mktemp("cli") / "proj")
    prepare(load_config(proj.path))
    return proj


@pytest.fixture(scope="module")
def train_run(proj):
    return proj.run("train.py")


def block(stdout: str) -> dict[str, str]:
    body = stdout[stdout.rindex("---\n") + 4 :]
    return {m.group(1): m.group(2) for m in re.finditer(r"^(\w+):\s+(.*)$", body, re.M)}


# ---------------------------------------------------------------------------
# The ok block


def test_train_prints_the_block(proj, train_run):
    assert train_run.returncode == 0, train_run.stderr
    out = block(train_run.stdout)
    assert list(out) == ["metric", "mean", "std_err", "folds", "fit_s", "wall_s", "status"]
    assert out["metric"] == "roc_auc (higher is better)" and out["status"] == "ok"
    folds = [float(x) for x in out["folds"].split()]
    assert len(folds) == 3 and all(0.6 < s < 1 for s in folds)
    mean, se = float(out["mean"]), float(out["std_err"])
    assert abs(mean - sum(folds) / 3) < 1e-5
    assert abs(se - math.sqrt(sum((s - mean) ** 2 for s in folds) / 2 / 3)) < 1e-5
    assert 0 < float(out["fit_s"]) < float(out["wall_s"])
    assert train_run.stderr == ""


def test_holdout_is_never_shown(proj, train_run):
    cfg = load_config(proj.path)
    result = fit_holdout(cfg, proj.path / "train.py")
    assert result.status == "ok", result.reason
    holdout = result.holdout
    assert 0.6 < holdout < 1
    shown = train_run.stdout + train_run.stderr + (proj.path / ".autoresearch" / "last_train_run.log").read_text()
    for text in (f"{holdout:.6f}", f"{holdout:.5f}", repr(holdout)):
        assert text not in shown
    assert "holdout" not in shown.lower()


# ---------------------------------------------------------------------------
# The crash block


def test_crash_prints_reason_and_a_short_tail(proj):
    proj.write("train_crash.py", CRASHING)
    proc = proj.run("train_crash.py")
    assert proc.returncode == 1
    out = block(proc.stdout)
    assert out["status"] == "crash" and "mean" not in out and out["folds"] == "(0 of 3)"
    assert out["reason"] == "fold 0: fit raised ValueError: boom at the bottom"
    assert out["log"].endswith(".autoresearch/last_train_run.log")
    tail = [line for line in proc.stdout.splitlines() if line.startswith("  | ")]
    log_lines = [line for line in (proj.path / out["log"]).read_text().splitlines() if line.strip()]
    assert len(log_lines) > 15, "the traceback should be long enough to need trimming"
    # the error train.py raised, from its own frames: not the harness's frames or its fold-naming wrapper
    assert len(tail) == 15 and tail[-1] == "  | ValueError: boom at the bottom", tail
    assert all("autoresearch/" not in line and "RuntimeError" not in line for line in tail), tail
    assert any('train_crash.py", line ' in line and ", in fit" in line for line in tail[-4:]), tail


# ---------------------------------------------------------------------------
# Contract failures: one line naming the contract and the problem


@pytest.mark.parametrize(
    "source, reason",
    [
        (
            'HYPOTHESIS = "x"\nCATEGORY = "test"\nPARAMS = {}\n',
            "build_pipeline(params) is missing; define it to return a fresh unfitted estimator or Pipeline",
        ),
        (
            'HYPOTHESIS = "x"\nCATEGORY = "test"\nPARAMS = {}\ndef build_pipeline(params):\n    return params["C"]\n',
            "build_pipeline(params) raised KeyError: 'C'",
        ),
        (
            'HYPOTHESIS = "x"\nCATEGORY = "test"\nPARAMS = {}\ndef build_pipeline(params):\n    return {"model": 1}\n',
            "build_pipeline(params) returned dict, not an estimator (it needs fit() and predict()",
        ),
        (breaker("np.full((n, 2), np.nan)"), "fold 0: predict_proba() returned NaN or infinite values"),
        (breaker("np.full((n - 1, 2), 0.5)"), "fold 0: predict_proba() returned {m} rows for {n} inputs"),
        (breaker('np.full((n, 2), "yes")'), "fold 0: predict_proba() returned <U3 values; it must return numbers"),
        (breaker("None"), "fold 0: predict_proba() returned NoneType, not one row per input"),
    ],
    ids=["missing", "raising", "not-an-estimator", "nan", "wrong-length", "strings", "none"],
)
def test_contract_failures(proj, source, reason):
    path = proj.write("train_contract.py", source)
    result = cross_validate(load_config(proj.path), path, "cv", budget_s=60)
    n = _first_fold_size(proj)
    assert result.status == "crash" and "\n" not in result.reason
    assert result.reason.startswith("train.py contract: " + reason.format(m=n - 1, n=n)), result.reason


def sleeper(seconds: float) -> str:
    """A train.py whose every fit sleeps: its folds' wall time, whatever the machine's load."""
    head = 'import time\n\nimport numpy as np\n\nHYPOTHESIS = "slow"\nCATEGORY = "test"\nPARAMS = {}\n'
    return head + fake_estimator().replace(
        "        return self", f"        time.sleep({seconds})\n        return self", 1
    )


def test_an_evaluation_that_cannot_finish_stops_early(proj):
    # 3 folds of 8 s against 20 s: after the first, the projection is ~26 s, past 1.2 x the budget
    out = cross_validate(load_config(proj.path), proj.write("train_slow.py", sleeper(8)), "cv", budget_s=20)
    assert out.status == "timeout" and out.reason.startswith("projected: 1 of 3 folds done, all of them would take ~")
    assert out.wall_s < 20 and len(out.scores) == 1
    # a projection under the budget runs on
    out = cross_validate(load_config(proj.path), proj.write("train_ok.py", sleeper(1)), "cv", budget_s=20)
    assert out.status == "ok" and len(out.scores) == 3


def _first_fold_size(proj) -> int:
    from autoresearch.splits import load_folds

    return len(load_folds(proj.path / "data" / "folds.npz")[0][1])


# ---------------------------------------------------------------------------
# prepare: idempotent, and a config change after results exist needs --force


def test_prepare_is_idempotent(proj):
    before = json.loads((proj.path / "data" / MANIFEST).read_text())
    proc = proj.run("prepare.py")
    assert proc.returncode == 0, proc.stderr
    assert f"prepared: unchanged in {proj.path / 'data'}/ (manifest {before['id']})" in proc.stdout
    assert "folds:    3 folds x 1 repeats = 3 scores per evaluation" in proc.stdout
    assert json.loads((proj.path / "data" / MANIFEST).read_text()) == before


def test_config_change_after_results_needs_force(project):
    cfg = load_config(project.path)
    first, _ = prepare(cfg)
    project.write("results.tsv", "commit\tstatus\tmean\n")
    project.set_config(folds=3, repeats=1, budget_s=60, seed=1)
    # no experiments yet: a config change simply re-prepares
    second, written = prepare(load_config(project.path))
    assert written and second["id"] != first["id"] and second["config"]["seed"] == 1
    project.write("results.tsv", "commit\tstatus\tmean\nabc1234\tkeep\t0.8\n")
    project.set_config(folds=3, repeats=1, budget_s=60, seed=2)
    proc = project.run("prepare.py")
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(
        "error: the prepared data no longer matches: pyproject.toml [tool.autoresearch] changed (seed)"
    )
    assert "run `uv run prepare.py --force`" in proc.stderr
    assert json.loads((project.path / "data" / MANIFEST).read_text())["id"] == second["id"]
    third, written = prepare(load_config(project.path), force=True)
    assert written and third["config"]["seed"] == 2 and third["id"] not in (first["id"], second["id"])
