"""The second look, end to end through the real commands: a borderline candidate is re-scored with the
incumbent on the confirm folds and kept on both looks together; the incumbent's confirm scores are computed
once and reused; a step killed during its second look is recovered; confirm_repeats = 0 turns it off.

The candidates are deterministic (logistic regression, lbfgs): on the default table with 3 folds x 2
repeats, C = 0.3 against the baseline's C = 1 has a first-look p of ~0.08 (inside the band that earns a
second look) and ~0.02 on both looks together.
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

from autoresearch import cards, keep_rule, ledger
from autoresearch.records import Record

CONFIG = {"folds": 3, "repeats": 2, "budget_s": 60}


def with_c(base: str, c: str, extra: str = "") -> str:
    return (
        base.replace('"C": 1.0', f'"C": {c}')
        .replace('HYPOTHESIS = "baseline: impute, scale, one-hot, then a linear model"', f'HYPOTHESIS = "C {c}"')
        .replace('CATEGORY = "baseline"', 'CATEGORY = "params"')
        + extra
    )


def run_dir(proj) -> Path:
    return proj.path / ".autoresearch/runs/look"


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    p = make_project(tmp_path_factory.mktemp("look") / "proj", config=CONFIG)
    r = p.cli("start", "look")
    assert r.returncode == 0, r.stderr
    assert "gets a second look on 18 fresh folds" in r.stdout, r.stdout
    # the data card printed while preparing does not repeat the start card's metric, folds and budget
    both = r.stdout + r.stderr
    assert "data:     " in r.stderr and both.count("metric:") == 1 and both.count("budget:") == 1, both
    return p


def test_a_borderline_gain_is_kept_after_a_second_look(proj):
    base = proj.read("train.py")
    proj.write("train.py", with_c(base, "0.3"))
    r = proj.cli("step")
    line = r.stdout.strip().splitlines()[-1]
    assert r.returncode == 0 and "| 2nd look (18 fresh folds): Δ +" in line and "| KEPT |" in line, r.stdout
    rec = json.loads((run_dir(proj) / "iters/1.json").read_text())
    assert rec["looks"] == 2 and len(rec["confirm_scores"]) == 18 and len(rec["scores"]) == 6
    assert rec["p_first"] >= 0.1 * keep_rule.STRONG_SHARE and rec["p_value"] < 0.04 < rec["p_first"]
    assert f"p={rec['p_first']:.2g}" in line and f"all looks p={rec['p_value']:.2g}" in line
    assert f"± {rec['confirm_se']:.4f}" in line
    # the baseline was re-scored on the confirm folds once, from its commit, outside the work tree
    assert (run_dir(proj) / "logs/incumbent-0.confirm.log").is_file()
    assert (run_dir(proj) / "logs/1.confirm.log").is_file()
    row = ledger.read(proj.path, "look")[-1]
    assert row["status"] == "keep" and float(row["p_value"]) == pytest.approx(rec["p_value"], rel=1e-5)
    assert "second look" in row["note"]
    # the kept candidate becomes the incumbent with its confirm scores: the next look needs no re-scoring
    run = json.loads((run_dir(proj) / "run.json").read_text())
    assert run["incumbent"]["iter"] == 1 and run["incumbent"]["confirm_scores"] == rec["confirm_scores"]
    assert proj.git("log", "-1", "--format=%s") == "C 0.3" and proj.git("status", "--porcelain") == ""


def test_a_step_killed_during_its_second_look_is_recovered(proj, tmp_path):
    # the same borderline change again, from the baseline's point of view: revert to C = 1 first is not
    # possible (the incumbent is C = 0.3), so the candidate is C = 1 plus a sleep in its confirm evaluation:
    # C = 1 is worse than C = 0.3, so instead make a fresh run from main for this one
    proj.git("checkout", "-q", "main")
    r = proj.cli("start", "look2")
    assert r.returncode == 0, r.stderr
    # every fold a little slow (folds cannot count across evaluations: each is a process of its own in the
    # sandbox), so the candidate's own second look, which starts its log, lasts long enough to be killed in
    slow = (
        "\n\n_build = build_pipeline\n\n\ndef build_pipeline(params):\n"
        "    import time\n    time.sleep(0.4)\n    return _build(params)\n"
    )
    proj.write("train.py", with_c(proj.read("train.py"), "0.3", slow))
    child = subprocess.Popen(
        [sys.executable, "-P", "-m", "autoresearch.cli", "step"],
        cwd=proj.path,
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pending = proj.path / ".autoresearch/runs/look2/pending.json"
    own_look = proj.path / ".autoresearch/runs/look2/logs/1.confirm.log"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        stage = (json.loads(pending.read_text()) if pending.exists() else {}).get("stage")
        if stage == "confirming" and own_look.exists():
            break
        time.sleep(0.1)
    else:
        child.kill()
        pytest.fail("the step never reached its second look")
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    main_tip = proj.git("rev-parse", "main")
    assert proj.git("rev-parse", "HEAD") == main_tip  # the branch never moved
    r = proj.cli("status")
    assert "recovered: iter 1 was interrupted" in r.stdout and "(its second look)" in r.stdout, r.stdout + r.stderr
    assert [x["status"] for x in ledger.read(proj.path, "look2")] == ["baseline", "crash"]
    assert proj.git("status", "--porcelain") == "" and not pending.exists()


def test_confirm_repeats_zero_is_one_look(tmp_path):
    p = make_project(tmp_path / "proj", config={**CONFIG, "confirm_repeats": 0})
    r = p.cli("start", "one")
    assert r.returncode == 0 and "KEPT       t > " in r.stdout and "second look" not in r.stdout, r.stdout
    assert not (p.path / "data/confirm_folds.npz").exists()
    p.write("train.py", with_c(p.read("train.py"), "0.3"))
    r = p.cli("step")
    # one look at the default alpha (0.04): p ~0.08 is not enough, and nothing looks again
    assert "| NOOP (reverted to iter 0, near-miss) |" in r.stdout and "2nd look" not in r.stdout, r.stdout
    assert not (p.path / ".autoresearch/runs/one/logs/1.confirm.log").exists()


@pytest.mark.parametrize("status, whose", [("keep", ""), ("noop", " (this reverted candidate)")])
def test_the_budget_warning_says_whose_evaluation_it_was(status, whose):
    rec = {
        "iter": 4,
        "tag": "t",
        "status": status,
        "hypothesis": "a vote",
        "category": "ensemble",
        "mean": 0.9,
        "delta": 0.001,
        "se_delta": 0.004,
        "p_value": 0.4,
        "wall_s": 99.0,
        "budget_share": 0.82,
    }
    assert cards.step_line(Record(**rec), "roc_auc").endswith(f"| warning: used 82% of the evaluation budget{whose}")


@pytest.mark.parametrize(
    "extra, near",
    [
        ({"delta": 0.002, "p_value": 0.09}, True),  # Δ > 0 and p < NEAR_MISS_P
        ({"delta": 0.002, "p_value": 0.21}, False),  # earned a second look once, but was not close
        ({"delta": 0.002, "p_value": 0.10}, False),  # p = NEAR_MISS_P: not a near-miss
        ({"delta": -0.001, "p_value": 0.6}, False),
        (
            {
                "delta": 0.003,
                "p_value": 0.08,
                "p_first": 0.15,
                "looks": 2,
                "confirm_delta": 0.0,
                "confirm_scores": [0.9],
                "confirm_se": 0.001,
            },
            True,
        ),  # a second look that did not confirm, but both looks together came close
        (
            {
                "delta": 0.003,
                "p_value": 0.25,
                "p_first": 0.15,
                "looks": 2,
                "confirm_delta": 0.0,
                "confirm_scores": [0.9],
                "confirm_se": 0.001,
            },
            False,
        ),  # "all looks p=0.25" is not close
    ],
)
def test_near_misses_are_marked_on_the_step_line(extra, near):
    rec = {
        "iter": 3,
        "tag": "t",
        "status": "noop",
        "hypothesis": "h",
        "category": "features",
        "mean": 0.9,
        "se_delta": 0.004,
        "wall_s": 9.0,
        **extra,
    }
    label = "| NOOP (reverted, near-miss) |" if near else "| NOOP (reverted) |"
    assert label in cards.step_line(Record(**rec), "roc_auc")


def test_the_second_near_miss_of_a_category_since_the_last_gain_says_park_it():
    def row(status, category, delta="0.002", p="0.05"):
        return {"status": status, "category": category, "delta": delta, "p_value": p}

    rec = Record(
        iter=6, tag="t", status="noop", hypothesis="h", category="features", mean=0.9, delta=0.002, se_delta=0.004,
        p_value=0.05, wall_s=9.0,
    )  # fmt: skip
    park = "near-miss 2 in features since the last gain: park that kind of change"
    earlier = [row("keep", "model"), row("noop", "features", p="0.3"), row("noop", "model")]
    assert park not in cards.step_line(rec, "roc_auc", steps=[*earlier, row("noop", "features")])
    steps = [*earlier, row("noop", "features"), row("noop", "features")]  # the last row is this step's own
    assert park in cards.step_line(rec, "roc_auc", steps=steps)
    # a near-miss before the last gain is history: the family was worth going on with
    assert park not in cards.step_line(rec, "roc_auc", steps=[row("noop", "features"), *steps[:1], steps[-1]])
