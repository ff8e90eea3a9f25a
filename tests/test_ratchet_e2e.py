"""The ratchet end to end, through the real commands in a real temporary git repository:
baseline → a real improvement KEPT → a worse change reverted (its commit reachable under refs) → a
seed-only change NOOP → a syntax error CRASH → a hang TIMEOUT within budget + 2 s → an edit to
prepare.py INVALID with nothing run → a kill -9 mid-step recovered. Afterwards the ledger has exactly
one row per step and the branch holds exactly the kept commits.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_project

from autoresearch import keep_rule, ledger

BUDGET = 30

LGBM = """
import lightgbm as lgb

from prepare import N_JOBS, SEED

HYPOTHESIS = "{hypothesis}"
CATEGORY = "{category}"
PARAMS = {{"n_estimators": {n}, "learning_rate": {lr}, "num_leaves": 15, "seed": SEED + {seed}}}


def build_pipeline(params):
    return lgb.LGBMClassifier(n_estimators=params["n_estimators"], learning_rate=params["learning_rate"],
                              num_leaves=params["num_leaves"], random_state=params["seed"],
                              n_jobs=N_JOBS, verbose=-1)
{extra}
"""


def lgbm(hypothesis, category="model", n=200, lr=0.05, seed=0, extra=""):
    return LGBM.format(hypothesis=hypothesis, category=category, n=n, lr=lr, seed=seed, extra=extra)


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    p = make_project(tmp_path_factory.mktemp("ratchet") / "proj", config={"folds": 3, "repeats": 2, "budget_s": BUDGET})
    return p


OUTPUTS: list[str] = []


def step(proj, expect_rc=None):
    r = proj.cli("step")
    OUTPUTS.append(r.stdout + r.stderr)
    if expect_rc is not None:
        assert r.returncode == expect_rc, r.stdout + r.stderr
    return r


def rows(proj):
    return ledger.read(proj.path)


def test_ratchet_sequence(proj):
    # -- start: branch, prepare, baseline row
    r = proj.cli("start", "e2e")
    assert r.returncode == 0, r.stderr
    assert "run:       e2e on branch autoresearch/e2e (new)" in r.stdout
    strong = keep_rule.keep_threshold(0.04 * keep_rule.STRONG_SHARE, 6 - 1)  # 3 folds x 2 repeats
    assert "keep rule: paired corrected t-test on the 6 fold scores, alpha 0.04; t = Δ / ± of the step line" in r.stdout
    assert f"KEPT       t > {strong:.2f} at once;" in r.stdout, r.stdout
    OUTPUTS.append(r.stdout + r.stderr)
    assert proj.git("rev-parse", "--abbrev-ref", "HEAD") == "autoresearch/e2e"
    base_commit = proj.git("rev-parse", "HEAD")
    assert [x["status"] for x in rows(proj)] == ["baseline"]

    # -- an improvement is KEPT: the branch advances by exactly that commit
    proj.write("train.py", lgbm("LightGBM instead of logistic regression"))
    r = step(proj, 0)
    line = r.stdout.strip().splitlines()[-1]
    assert line.startswith("iter 1 | roc_auc ") and "| KEPT |" in line, r.stdout
    assert "model: LightGBM instead of logistic regression" in line
    kept1 = proj.git("rev-parse", "HEAD")
    assert proj.git("log", "-1", "--format=%s") == "LightGBM instead of logistic regression"
    assert proj.git("rev-parse", "HEAD~1") == base_commit
    assert proj.git("status", "--porcelain") == ""

    # -- a clearly worse change is reverted; its commit stays reachable
    worse = lgbm("far fewer, slower trees", category="params", n=3, lr=0.01)
    proj.write("train.py", worse)
    r = step(proj, 0)
    assert "| DISCARDED (reverted to iter 1) |" in r.stdout, r.stdout
    assert proj.git("rev-parse", "HEAD") == kept1
    assert proj.read("train.py") == lgbm("LightGBM instead of logistic regression")
    discarded = proj.git("rev-parse", "refs/autoresearch/e2e/discarded/2")
    assert proj.git("show", f"{discarded}:train.py").strip() == worse.strip()
    assert proj.git("rev-parse", f"{discarded}~1") == kept1

    # -- a seed-only change moves nothing: NOOP, reverted
    proj.write("train.py", lgbm("seed only", category="params", seed=1))
    r = step(proj, 0)
    assert "| NOOP (reverted" in r.stdout, r.stdout  # plain or near-miss: reverted either way
    assert proj.git("rev-parse", "HEAD") == kept1

    # -- a syntax error is a CRASH with the error's tail, at most 15 lines
    proj.write("train.py", lgbm("broken on purpose", extra="def oops(:\n"))
    r = step(proj, 1)
    out = r.stdout.strip().splitlines()
    assert "| CRASH (reverted to iter 1) |" in out[0] and "SyntaxError" in out[0], r.stdout
    assert 1 <= len(out) - 1 <= 15
    assert proj.git("rev-parse", "HEAD") == kept1

    # -- a hang is a TIMEOUT within budget + 2 s
    proj.write("train.py", lgbm("hang", extra="import time\nwhile True:\n    time.sleep(1)\n"))
    t0 = time.monotonic()
    r = step(proj, 1)
    took = time.monotonic() - t0
    assert "| TIMEOUT (reverted to iter 1) |" in r.stdout, r.stdout
    it5 = json.loads((proj.path / ".autoresearch/runs/e2e/iters/5.json").read_text())
    assert it5["eval_s"] <= BUDGET + 2, it5["eval_s"]
    assert took < BUDGET + 15  # the step's own bookkeeping on top of the child's budget

    # -- an edit to prepare.py is INVALID: nothing committed, nothing run, the harness restored
    prepare_before = proj.read("prepare.py")
    proj.write("prepare.py", prepare_before + "\nFOLDS = 2\n")
    proj.write("train.py", lgbm("sneaky harness edit", n=250))
    r = step(proj, 1)
    assert "| INVALID, nothing committed |" in r.stdout and "prepare.py" in r.stdout, r.stdout
    assert proj.read("prepare.py") == prepare_before
    assert not (proj.path / ".autoresearch/runs/e2e/logs/6.log").exists()  # nothing ran
    assert proj.git("rev-parse", "HEAD") == kept1

    # -- kill -9 in the middle of a step: the next command records it, the branch is consistent
    proj.write("train.py", lgbm("killed mid-step", n=220))
    env = {**os.environ}
    child = subprocess.Popen(
        [sys.executable, "-m", "autoresearch.cli", "step"],
        cwd=proj.path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pending = proj.path / ".autoresearch/runs/e2e/pending.json"
    deadline = time.monotonic() + 60
    while not pending.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pending.exists(), "the step never reached evaluation"
    time.sleep(1.0)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert proj.git("rev-parse", "HEAD") == kept1  # never in between
    r = proj.cli("status")  # the next command recovers and records what happened
    assert r.returncode == 0
    assert "recovered: iter 7 was interrupted" in r.stdout, r.stdout + r.stderr
    r = proj.cli("start", "e2e")  # resuming prints the card
    assert r.returncode == 0 and "resumed at iter 7" in r.stdout, r.stdout + r.stderr
    assert not pending.exists()
    assert proj.git("rev-parse", "refs/autoresearch/e2e/discarded/7")
    assert proj.git("status", "--porcelain") == ""

    # -- the ledger: one row per step, in order, with the right statuses
    statuses = [(x["iter"], x["status"]) for x in rows(proj)]
    assert statuses == [
        ("0", "baseline"),
        ("1", "keep"),
        ("2", "discard"),
        ("3", "noop"),
        ("4", "crash"),
        ("5", "timeout"),
        ("6", "invalid"),
        ("7", "crash"),
    ]
    # -- the branch holds exactly the kept commits
    log = proj.git("log", "--format=%s", "main..autoresearch/e2e").splitlines()
    assert log == ["LightGBM instead of logistic regression"]
    # -- the holdout: scored for the baseline and the kept commit, never printed
    hold = [json.loads(x) for x in (proj.path / ".autoresearch/runs/e2e/holdout.jsonl").read_text().splitlines()]
    assert [h["iter"] for h in hold] == [0, 1] and all(0.5 < h["holdout"] <= 1 for h in hold)
    status = proj.cli("status").stdout
    # the card's attribution: the one keep is the only category with a summed Δ
    steps = rows(proj)[1:]
    tried = sum(1 for x in steps if x["category"] == "model")
    assert f"categories: model {tried} tried/1 kept/Σ{float(steps[0]['delta']):+.4f}" in status, status
    for h in hold:
        for text in [*OUTPUTS, status]:
            assert f"{h['holdout']:.4f}" not in text and f"{h['holdout']:.3f}" not in text
    # no leftover evaluation processes of this project (carrying a run token, working in the project)
    leftovers = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            tokened = b"AUTORESEARCH_RUN_TOKEN=" in open(f"/proc/{pid}/environ", "rb").read()
            if tokened and Path(os.readlink(f"/proc/{pid}/cwd")).is_relative_to(proj.path):
                leftovers.append(pid)
        except OSError:
            pass
    assert leftovers == []


def test_step_writes_the_hypothesis_and_category_it_is_given(proj):
    """The agent's Edit changes only code; `step --hypothesis --category` writes the two declarations into
    train.py before the commit. Without them, a HYPOTHESIS left at the incumbent's is refused, not logged."""
    kept = lgbm("LightGBM instead of logistic regression")
    assert proj.read("train.py") == kept  # the sequence above ends on its one keep
    n_rows = len(rows(proj))
    code_only = kept.replace('"n_estimators": 200', '"n_estimators": 230')
    proj.write("train.py", code_only)
    r = proj.cli("step")
    assert r.returncode == 2 and r.stdout == "", r.stdout + r.stderr
    assert r.stderr == (
        "error: train.py's HYPOTHESIS is still the incumbent's ('LightGBM instead of logistic regression'): say "
        "what this change tries: `uv run autoresearch step --category WORD --hypothesis 'what this change tries "
        "and why'`\n"
    )
    assert len(rows(proj)) == n_rows and proj.read("train.py") == code_only

    r = proj.cli("step", "--category", "two words", "--hypothesis", "x")
    assert r.returncode == 2 and "argument --category: CATEGORY must be one word" in r.stderr, r.stderr
    assert len(rows(proj)) == n_rows and proj.read("train.py") == code_only

    r = proj.cli("step", "--category", "params", "--hypothesis", "  30 more trees: is 200 short of enough?  ")
    assert r.returncode == 0, r.stdout + r.stderr
    row = rows(proj)[-1]
    assert len(rows(proj)) == n_rows + 1 and row["iter"] == "8", row
    assert (row["category"], row["hypothesis"]) == ("params", "30 more trees: is 200 short of enough?")
    assert r.stdout.rstrip().endswith("| params: 30 more trees: is 200 short of enough?"), r.stdout
    commit = row["commit"]
    declared = code_only.replace(
        'HYPOTHESIS = "LightGBM instead of logistic regression"\nCATEGORY = "model"',
        'HYPOTHESIS = "30 more trees: is 200 short of enough?"\nCATEGORY = "params"',
    )
    assert declared != code_only
    assert proj.git("show", f"{commit}:train.py") == declared.strip()  # every other byte as the agent wrote it
    assert proj.git("log", "-1", "--format=%s", commit) == "30 more trees: is 200 short of enough?"
    incumbent = proj.read("train.py")
    assert incumbent.strip() == proj.git("show", "HEAD:train.py") and proj.git("status", "--porcelain") == ""

    # an unparsable train.py cannot be rewritten: it crashes as before, and its row takes the flags' words
    proj.write("train.py", incumbent + "def oops(:\n")
    r = proj.cli("step", "--category", "features", "--hypothesis", "a slip")
    assert r.returncode == 1 and "| CRASH (reverted to iter " in r.stdout and "SyntaxError" in r.stdout, r.stdout
    assert (rows(proj)[-1]["category"], rows(proj)[-1]["hypothesis"]) == ("features", "a slip")
    assert proj.read("train.py") == incumbent
