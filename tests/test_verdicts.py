"""The verdicts besides KEPT, through real steps on the shipped train.py: SIMPLIFIED counts executable
statements only, FASTER needs wall and CPU time to drop, KNOB ADDED lets a new PARAMS key arrive with its
SEARCH_SPACE; the start card states every threshold and the machine."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import FAST_CONFIG, make_project

from autoresearch import cards, keep_rule

TAG = "verdicts"
# a CPU-burning fit, its length a PARAMS value: a change of that value moves no statement
BURN = '''
def model(params):
    """The estimator, after burning params["burn_s"] of CPU time in every fit."""
    import time

    from sklearn.linear_model import LogisticRegression

    class Burning(LogisticRegression):
        def fit(self, X, y):
            time.sleep(params.get("sleep_s", 0))
            end = time.process_time() + params["burn_s"]
            while time.process_time() < end:
                pass
            return super().fit(X, y)

    return Burning(C=params["C"], max_iter=2000)
'''


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    p = make_project(tmp_path_factory.mktemp("verdicts") / "proj", config={**FAST_CONFIG, "n_jobs": 1})
    r = p.cli("start", TAG)
    assert r.returncode == 0, r.stdout + r.stderr
    p.card = r.stdout
    return p


def step_line(p, it: int) -> str:
    r = p.cli("step")
    lines = [x for x in r.stdout.splitlines() if x.startswith(f"iter {it} |")]
    assert lines, r.stdout + r.stderr
    return lines[0]


def record(p, it: int) -> dict:
    return json.loads((p.path / f".autoresearch/runs/{TAG}/iters/{it}.json").read_text())


def declare(source: str, hypothesis: str, category: str) -> str:
    head, rest = source.split("HYPOTHESIS = ", 1)
    rest = rest.split("\n", 2)[2]  # past HYPOTHESIS and CATEGORY
    return f'{head}HYPOTHESIS = "{hypothesis}"\nCATEGORY = "{category}"\n{rest}'


def test_the_card_states_every_threshold_and_the_machine(proj):
    card = proj.card
    base = json.loads((proj.path / f".autoresearch/runs/{TAG}/run.json").read_text())["incumbent"]
    margin = keep_rule.margin_of(base["se"])
    worse = keep_rule.keep_threshold(0.04, 3 - 1)
    assert f"DISCARDED  t < -{worse:.2f}" in card, card
    assert f"not worse  Δ > -{margin:.4f} (0.5 × the best's ±) at p < 0.04, and not DISCARDED" in card, card
    flat = " ".join(card.split())  # the card wraps its prose wherever the width falls
    assert "as FASTER with >= 30% and >= 3 s less time on the folds" in flat, card
    assert "a near-miss when Δ > 0 and its last p < 0.1" in flat, card
    assert "and not DISCARDED (checked before a second look, so it needs none)" in flat, card
    cores = len(os.sched_getaffinity(0))
    assert f"N_JOBS = 1 (threads a model may use), {cores} cores on this machine" in card, card
    assert "data:      target 'churn' (str): 'no' 85.9%, 'yes' 14.1%" in card, card


def test_deleting_a_docstring_is_not_a_simplification(proj):
    src = proj.read("train.py")
    doc = '    """The estimator the features feed.'
    assert doc in src
    cut = src.replace(src[src.index(doc) : src.index('"""\n', src.index(doc) + 10) + 4], "")
    proj.write("train.py", declare(cut, "drop model's docstring", "simplify"))
    line = step_line(proj, 1)
    assert "| roc_auc " in line and "(Δ +0.0000 ± 0.0000" in line and "| NOOP (reverted to iter 0) |" in line, line
    # a simplification that was not worse says what SIMPLIFIED and FASTER would have needed
    n = record(proj, 0)["statements"]
    assert f"| not worse, not lighter: {n} statements (SIMPLIFIED needs < {n}), " in line, line
    assert "s on the folds (FASTER needs <= " in line and len(line) < 400, line


def test_deleting_an_unused_branch_is_simplified(proj):
    src = proj.read("train.py")
    start = src.index('    if TASK == "regression":\n')
    branch = src[start : src.index("\n", src.index("\n", start) + 1) + 1]  # the regression branch of model()
    assert "return Ridge(" in branch
    assert branch in src
    proj.write("train.py", declare(src.replace(branch, ""), "drop the regression branch", "simplify"))
    line = step_line(proj, 2)
    n = record(proj, 0)["statements"]
    assert "| SIMPLIFIED (kept) |" in line and f"| {n} -> {n - 2} executable statements |" in line, line
    assert "(Δ +0.0000 ± 0.0000, p(worse by the margin)=0)" in line, line  # the test it passed, not p=0.5
    rec = record(proj, 2)
    assert (
        rec["status"] == "simplify" and rec["p_not_worse"] == 0.0 and rec["statements"] < record(proj, 0)["statements"]
    )


def test_a_new_knob_arrives_with_its_search_space(proj):
    src = proj.read("train.py")
    src = src.replace('PARAMS = {"C": 1.0}', 'PARAMS = {"C": 1.0, "tol": 0.0001}')
    tol = '"tol": {"low": 1e-6, "high": 1e-2, "log": True}'
    src = src.replace('"log": True}}', '"log": True}, ' + tol + "}")
    src = src.replace("max_iter=2000)", 'max_iter=2000, tol=params["tol"])')
    # without a range for it, a new key is a NOOP like any other no-op change
    bare = src.replace(", " + tol + "}", "}")
    proj.write("train.py", declare(bare, "read tol from PARAMS, no range", "params"))
    assert "| NOOP (reverted to iter 2) |" in step_line(proj, 3)
    # a new knob at another value than the model used moves the scores: a change of the model, not a knob
    moved = src.replace('"tol": 0.0001}', '"tol": 0.003}')
    proj.write("train.py", declare(moved, "read tol from PARAMS at 0.003", "params"))
    line = step_line(proj, 4)
    assert (
        "| NOOP (reverted to iter 2) |" in line and "| not worse, not KNOB ADDED: new knobs tol, but the fold " in line
    ), line
    proj.write("train.py", declare(src, "read tol from PARAMS for the sweep", "params"))
    line = step_line(proj, 5)
    assert "| KNOB ADDED (kept) |" in line and "| new knobs tol, same fold scores: sweep them next |" in line, line
    assert proj.git("log", "-1", "--format=%s") == "read tol from PARAMS for the sweep"


def burning_template(src: str) -> str:
    """The shipped train.py with model() replaced by BURN."""
    start = src.index("def model(params):")
    return src[:start] + BURN.strip() + src[src.index("\n\n\n", start) :]


def test_faster_needs_clearly_less_time_on_the_folds(tmp_path):
    p = make_project(tmp_path / "proj", config={**FAST_CONFIG, "n_jobs": 1}, commit=False)
    src = p.read("train.py")
    burning = burning_template(src)
    p.write("train.py", burning.replace('PARAMS = {"C": 1.0}', 'PARAMS = {"C": 1.0, "burn_s": 3.0}'))
    p.commit_all("a baseline that burns 3 s of CPU per fit")
    assert p.cli("start", TAG).returncode == 0
    base = record(p, 0)
    assert base["cpu_s"] > 3 * 3.0 * 0.9 and sum(base["fold_s"]) > 3 * 3.0 * 0.9, base
    # only a PARAMS value changes: the same statements, the same scores, a fraction of the time
    p.write("train.py", declare(p.read("train.py").replace('"burn_s": 3.0', '"burn_s": 0.0'), "stop burning", "model"))
    line = step_line(p, 1)
    assert "(Δ +0.0000 ± 0.0000" in line and "| FASTER (kept) |" in line, line
    rec = record(p, 1)
    assert rec["cpu_s"] < 0.7 * base["cpu_s"] and sum(rec["fold_s"]) < 0.7 * sum(base["fold_s"]), rec


def test_less_wall_time_with_the_same_cpu_time_is_not_faster_and_the_line_says_so(tmp_path):
    """Dogfood round 7: dense input let a forest use both threads, the folds took 20 s instead of 47 s on the
    same CPU time, and the NOOP line said nothing of FASTER. Here the incumbent waits in every fit."""
    p = make_project(tmp_path / "proj", config={**FAST_CONFIG, "n_jobs": 1}, commit=False)
    slow = burning_template(p.read("train.py")).replace(
        'PARAMS = {"C": 1.0}', 'PARAMS = {"C": 1.0, "burn_s": 0.5, "sleep_s": 2.5}'
    )
    p.write("train.py", slow)
    p.commit_all("a baseline that waits 2.5 s and burns 0.5 s of CPU per fit")
    assert p.cli("start", TAG).returncode == 0
    p.write("train.py", declare(slow.replace('"sleep_s": 2.5', '"sleep_s": 0.0'), "stop waiting", "model"))
    line = step_line(p, 1)
    assert "| NOOP (reverted to iter 0) |" in line and "| not worse, not FASTER: " in line, line
    assert "CPU-s (the incumbent's" in line and "FASTER needs 30% less CPU time too" in line, line


def test_a_note_rides_on_the_step_and_the_line_says_plateau(tmp_path):
    p = make_project(tmp_path / "proj", config={**FAST_CONFIG, "n_jobs": 1, "plateau_after": 2})
    assert p.cli("start", TAG).returncode == 0
    src = p.read("train.py")
    p.write("train.py", declare(src.replace('"C": 1.0', '"C": 1.01'), "a hair more C", "params"))
    r = p.cli("step", "--note", "knob nudges\tdo nothing here;\nparked")
    assert r.stdout.splitlines()[-1] == "note: added to notes.md", r.stdout
    first = next(x for x in r.stdout.splitlines() if x.startswith("iter 1 |"))
    assert "| NOOP (reverted to iter 0) |" in first and "plateau" not in first, first
    notes = p.read("notes.md").splitlines()
    assert notes[-1] == "- iter 1 (NOOP (reverted)): knob nudges do nothing here; parked", notes
    p.write("train.py", declare(src.replace('"C": 1.0', '"C": 0.99'), "a hair less C", "params"))
    line = step_line(p, 2)
    hint = "plateau: 2 without a gain (change category or sweep, and --note what you learnt)"
    assert line.endswith(f"s | {hint} | params: a hair less C"), line
    assert p.read("notes.md").splitlines()[-1] == notes[-1]  # no --note, no line
    assert p.cli("step", "--note", "never written").returncode != 0  # train.py unchanged: not an iteration
    assert "never written" not in p.read("notes.md")
    p.write("train.py", declare(src.replace('"C": 1.0', '"C": 0.98'), "a bit less C", "params"))
    assert "s | plateau: 3 without a gain (change category or sweep) | params: a bit less C" in step_line(p, 3)


def test_the_line_says_why_a_second_look_did_not_happen():
    from autoresearch.cards import step_line, timeout_reason
    from autoresearch.config import Config
    from autoresearch.records import Record

    cfg = Config(root=Path("."), n_jobs=2)
    rec = Record(1, TAG, "noop", "model", "bigger", mean=0.8, delta=0.01, p_value=0.06, se_delta=0.005, eval_s=50)
    rec.reason = "borderline; the second look timeout: exceeded the 360 s budget"
    line = step_line(rec, "roc_auc", cfg, back_to=0)
    assert "| 2nd look timeout: exceeded the 360 s budget | NOOP (reverted to iter 0, near-miss) |" in line, line
    rec.reason = "borderline; no second look: the incumbent's re-scoring crash: boom"
    assert "| no 2nd look: the incumbent's re-scoring crash: boom |" in step_line(rec, "roc_auc", cfg, back_to=0)
    # a timeout whose folds got half of their two threads' cores says so
    slow = Record(2, TAG, "timeout", eval_s=120, fold_s=[60.0, 60.0], cpu_s=100.0)
    why = timeout_reason(slow, cfg, 10, [58.0, 59.0])
    assert why.startswith("over the 120 s budget after 2/10 folds (~58 s fit per fold; all folds need ~585 s)")
    assert why.endswith(
        "the folds used 0.8 of their 2 threads' cores (the machine is busy): make the model itself cheaper "
        "and keep n_jobs=N_JOBS"
    )
    slow.cpu_s = 230.0
    assert "threads' cores" not in timeout_reason(slow, cfg, 10, [58.0, 59.0])


def test_a_keep_that_does_not_raise_the_score_does_not_end_a_plateau():
    rows = [{"status": s} for s in ("baseline", "keep", "noop", "knob", "noop", "simplify", "faster", "discard")]
    assert cards.since_gain(rows) == 6
    assert cards.since_gain([*rows, {"status": "keep"}]) == 0


def test_a_simplification_not_shown_not_worse_says_so(tmp_path):
    p = make_project(tmp_path / "proj", config={**FAST_CONFIG, "n_jobs": 1})
    assert p.cli("start", TAG).returncode == 0
    # a much stronger penalty: no fewer statements, and the folds cannot show it is not worse
    p.write("train.py", p.read("train.py").replace('"C": 1.0', '"C": 0.03'))
    r = p.cli("step", "--category", "simplify", "--hypothesis", "a much smaller C")
    line = next(x for x in r.stdout.splitlines() if x.startswith("iter 1 |"))
    assert "| NOOP (reverted to iter 0) |" in line, line
    assert "| not SIMPLIFIED: p(worse by the margin " in line and ", not worse needs < 0.04 | NOOP" in line, line
