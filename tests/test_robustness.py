"""Issue 13, end to end: nothing the agent writes or a neighbour does can wedge a night. Hostile declarations
through real steps (each a row, one line, and every later command works), random bytes as hypotheses, a
journal recovery that fails, the refusals that name the real problem first, no INVALID for what someone
else did, and cards that hold all they promise.
"""

from __future__ import annotations

import json
import random
import subprocess
import threading
import time

import pandas as pd
import pytest
from conftest import fake_estimator, make_project

from autoresearch import ledger

TAG = "tough"


def source(hypothesis_literal: str, category: str = '"robust"') -> str:
    """A cheap train.py (numpy only) whose declarations are given as Python source."""
    return (
        f"import numpy as np\n\nHYPOTHESIS = {hypothesis_literal}\nCATEGORY = {category}\nPARAMS = {{}}\n"
        + fake_estimator()
    )


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    p = make_project(tmp_path_factory.mktemp("tough") / "proj", config={"folds": 3, "repeats": 1, "budget_s": 60})
    p.write("train.py", source('"a constant"'))
    p.commit_all("a constant baseline")
    r = p.cli("start", TAG)
    assert r.returncode == 0, r.stdout + r.stderr
    return p


def step_with(proj, literal: str, category: str = '"robust"', salt: str = ""):
    proj.write("train.py", source(literal, category) + salt)
    return proj.cli("step")


def iter_lines(stdout: str) -> list[str]:
    return [x for x in stdout.splitlines() if x.startswith("iter ")]


def still_works(proj) -> None:
    """Every command a night needs answers normally afterwards."""
    for args in (["status"], ["start", TAG]):
        r = proj.cli(*args)
        assert r.returncode == 0 and "Traceback" not in r.stdout + r.stderr, (args, r.stdout, r.stderr)


# ---------------------------------------------------------------------------
# Hostile declarations: the cases that wedged a run or broke the ledger


HOSTILE = {  # the literal in train.py, and the text it becomes (the ledger turns " into ')
    "lone surrogate": (r'"\udcff bad byte"', "\\udcff bad byte"),
    "high surrogate": (r'"\ud800"', "\\ud800"),
    "nul": (r'"a\x00b"', "a\\x00b"),
    "quote first": ('"\\"quoted\\" start"', '"quoted" start'),
    "newline": (r'"two\nlines"', None),  # not one line: INVALID, and the INVALID itself is one line
    "carriage return": (r'"a\rb"', "a b"),
    "tab": (r'"a\tb"', "a b"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_a_hostile_hypothesis_is_one_row_and_one_line(proj, case):
    literal, shown = HOSTILE[case]
    before = ledger.read(proj.path, TAG)
    r = step_with(proj, literal, salt=f"# {case}\n")
    lines = iter_lines(r.stdout)
    assert len(lines) == 1 and "\r" not in r.stdout and "\x00" not in r.stdout, r.stdout + r.stderr
    rows = ledger.read(proj.path, TAG)
    assert len(rows) == len(before) + 1, r.stdout + r.stderr
    if shown is None:
        assert rows[-1]["status"] == "invalid" and "HYPOTHESIS must be one line of text" in lines[0]
    else:
        assert rows[-1]["hypothesis"] == shown.replace('"', "'") and shown in lines[0], (rows[-1], lines)
        rec = json.loads((proj.path / f".autoresearch/runs/{TAG}/iters/{rows[-1]['iter']}.json").read_text())
        assert rec["hypothesis"] == shown
        if rows[-1]["commit"]:
            subject = proj.git("log", "-1", "--format=%s", f"refs/autoresearch/{TAG}/discarded/{rows[-1]['iter']}")
            assert subject == shown
    # pandas, the csv module and cut all read every row
    assert len(pd.read_csv(proj.path / "results.tsv", sep="\t", keep_default_na=False)) == len(rows)
    cut = subprocess.run(["cut", "-f", "1", str(proj.path / "results.tsv")], capture_output=True, text=True)
    assert cut.stdout.split()[1:] == [x["iter"] for x in rows]
    proj.git("checkout", "--", "train.py")
    still_works(proj)


def test_a_long_hypothesis_is_capped_on_screen_and_whole_in_the_record(proj):
    long = "x" * 10_000
    r = step_with(proj, repr(long))
    line = iter_lines(r.stdout)[0]
    assert len(line) < 400 and line.rstrip().endswith("…"), line
    row = ledger.read(proj.path, TAG)[-1]
    rec = json.loads((proj.path / f".autoresearch/runs/{TAG}/iters/{row['iter']}.json").read_text())
    assert rec["hypothesis"] == long and len(row["hypothesis"]) <= 1000
    proj.git("checkout", "--", "train.py")


def test_random_bytes_as_hypotheses_never_wedge_the_run(proj):
    """A property test through real steps: seeded random byte strings, raw in the HYPOTHESIS literal (so some
    files are not even UTF-8), each one a row of its own, and the run goes on after each."""
    rng = random.Random(1234)
    before = len(ledger.read(proj.path, TAG))
    for i in range(6):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60))).replace(b'"', b"").replace(b"\\", b"")
        path = proj.path / "train.py"
        path.write_bytes(source('"X"').encode().replace(b'"X"', b'"' + junk + b'"') + f"# {i}\n".encode())
        r = proj.cli("step")
        # one line, and no traceback of the harness's own (a crash's tail may quote train.py's, indented)
        assert len(iter_lines(r.stdout)) == 1 and "Traceback" not in r.stderr, (junk, r.stdout, r.stderr)
        assert len(ledger.read(proj.path, TAG)) == before + i + 1, (junk, r.stdout, r.stderr)
        subprocess.run(["git", "checkout", "--", "train.py"], cwd=proj.path, check=True)
    still_works(proj)


def test_a_recovery_that_fails_records_what_it_knows_and_moves_on(proj):
    """A journalled step whose finish cannot complete (its candidate commit is gone): recorded as a crash, the
    journal set aside, and the next commands work."""
    rows = ledger.read(proj.path, TAG)
    it = int(rows[-1]["iter"]) + 1
    run = json.loads((proj.path / f".autoresearch/runs/{TAG}/run.json").read_text())
    pending = {
        "iter": it,
        "tag": TAG,
        "incumbent": run["incumbent"]["commit"],
        "category": "robust",
        "hypothesis": "a journal that cannot finish",
        "lines": 9,
        "stage": "decided",
        "candidate": "1" * 40,
        "record": {"iter": it, "tag": TAG, "status": "noop", "commit": "1" * 40},
    }
    (proj.path / f".autoresearch/runs/{TAG}/pending.json").write_text(json.dumps(pending))
    r = proj.cli("status")
    assert r.returncode == 0, r.stderr
    assert f"recovered: iter {it} could not be finished (" in r.stdout and "recorded as a crash" in r.stdout
    row = ledger.read(proj.path, TAG)[-1]
    assert row["iter"] == str(it) and row["status"] == "crash" and "recovery failed" in row["note"]
    assert not (proj.path / f".autoresearch/runs/{TAG}/pending.json").exists()
    assert list((proj.path / f".autoresearch/runs/{TAG}").glob("pending.broken-*.json"))
    still_works(proj)


def test_an_unreadable_journal_is_set_aside(proj):
    (proj.path / f".autoresearch/runs/{TAG}/pending.json").write_text('{"iter": 5, "st')
    r = proj.cli("status")
    assert r.returncode == 0 and "recovered: the step journal was unreadable; moved it to " in r.stdout, r.stdout
    still_works(proj)


# ---------------------------------------------------------------------------
# Refusals name the real problem first; nobody else can void a step


def test_a_changed_frozen_file_is_named_and_restored_before_train_py_unchanged(proj):
    prepare_py = proj.read("prepare.py")
    proj.write("prepare.py", prepare_py + "\nFOLDS = 2\n")
    r = proj.cli("step")
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (
        "error: only train.py may change, but these differ from the incumbent: prepare.py (frozen files restored "
        "from git: prepare.py); and train.py itself is identical to the incumbent: edit it (one idea), then step\n"
    )
    assert proj.read("prepare.py") == prepare_py


def test_a_hypothesis_may_mention_the_holdout(proj):
    r = step_with(proj, '"iter 15 was INVALID on a holdout read: the same idea again"')
    row = ledger.read(proj.path, TAG)[-1]
    assert row["status"] != "invalid" and "points at the harness" not in r.stdout, r.stdout
    proj.git("checkout", "--", "train.py")


def test_someone_else_reading_the_holdout_voids_nothing(proj):
    """A human's report or an AutoML run reading data/holdout.parquet while a step evaluates: not the step's
    doing, so not its verdict (the sandbox keeps the step away from the file, so nothing watches it)."""
    stop = threading.Event()

    def neighbour():
        while not stop.is_set():
            (proj.path / "data/holdout.parquet").read_bytes()
            time.sleep(0.01)

    t = threading.Thread(target=neighbour, daemon=True)
    t.start()
    try:
        r = step_with(proj, '"a step while someone reads the holdout"', salt="# neighbour\n")
    finally:
        stop.set()
        t.join()
    row = ledger.read(proj.path, TAG)[-1]
    assert row["status"] in ("noop", "keep", "discard"), (row, r.stdout)
    proj.git("checkout", "--", "train.py")


# ---------------------------------------------------------------------------
# Cards that hold what they promise


def test_the_cards_list_every_feature_and_every_category(tmp_path):
    """A table with long column names and many categories: `features:` wraps and names every column whole;
    `categories:` names them all or says how many are left out."""
    cols = {f"a_rather_long_feature_name_number_{i:02d}": range(60) for i in range(24)}
    df = pd.DataFrame({**cols, "y": [0, 1] * 30})
    p = make_project(
        tmp_path / "wide", config={"data": "t.csv", "target": "y", "folds": 3, "repeats": 1, "budget_s": 60}
    )
    df.to_csv(p.path / "t.csv", index=False)
    p.write("train.py", source('"a constant"'))
    p.write(".gitignore", p.read(".gitignore") + "t.csv\n")
    p.commit_all("wide")
    r = p.cli("start", "wide")
    assert r.returncode == 0, r.stdout + r.stderr
    for i in range(9):  # nine categories of steps
        p.write("train.py", source(f'"idea {i}"', f'"kind{i}"'))
        p.cli("step")
    status = p.cli("status").stdout
    for card in (r.stdout, status):
        block = card[card.index("features:") :].split("\n")
        block = [block[0], *[x for x in block[1:] if x.startswith("     ")]]  # the label's line and its wraps
        for name in cols:
            assert f"{name} (int)" in " ".join(block), name
        assert len(block) > 1 and all(len(line) <= 120 for line in block), block
    cats = status[status.index("categories:") :]
    named = sum(f"kind{i} " in cats for i in range(9))
    assert named == 9 or f"... and {9 - named} more" in cats, cats
