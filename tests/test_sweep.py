"""The surveyor (`autoresearch sweep`): SEARCH_SPACE validation, the byte-exact PARAMS rewrite, and real
sweeps in a real temporary project: budget, pruning, hand-off to `step`, two workers on one study, and a
sweep killed with -9 that the next sweep resumes.
"""

from __future__ import annotations

import ast
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import make_project

from autoresearch import ledger, search_space
from autoresearch.processes import alive
from autoresearch.search_space import SearchSpaceError

BUDGET = 90  # trial caps end each sweep early on an idle machine; the budget is for a loaded one

TRAIN = '''"""LightGBM with a deliberately slow learning rate, and the knobs the sweep may turn."""
import lightgbm as lgb

from prepare import N_JOBS, SEED

HYPOTHESIS = "LightGBM, knobs declared"
CATEGORY = "model"
PARAMS = {
    "n_estimators": 40,
    "learning_rate": 0.006,  # far too slow for 40 trees
    "num_leaves": 60,
    "min_child_samples": 90,
    "seed": SEED,
}
SEARCH_SPACE = {
    "learning_rate": {"low": 0.005, "high": 0.4, "log": True},
    "num_leaves": {"low": 4, "high": 64, "log": True},
    "min_child_samples": {"low": 5, "high": 100},
}


def build_pipeline(params):
    return lgb.LGBMClassifier(n_estimators=params["n_estimators"], learning_rate=params["learning_rate"],
                              num_leaves=params["num_leaves"], min_child_samples=params["min_child_samples"],
                              random_state=params["seed"], n_jobs=N_JOBS, verbose=-1)
'''


# ---------------------------------------------------------------------------
# SEARCH_SPACE validation (no subprocess)

PARAMS = {"lr": 0.1, "leaves": 31, "model": "gbdt", "flag": True}


@pytest.mark.parametrize(
    "space, expect",
    [
        ({}, "SEARCH_SPACE is empty"),
        ([1, 2], "must be a dict"),
        ({"depth": {"low": 1, "high": 8}}, "'depth' is not a key of PARAMS"),
        ({"lr": {"low": 0.3, "high": 0.3}}, "the range is empty"),
        ({"lr": {"low": 0.3, "high": 0.01}}, "the range is inverted"),
        ({"lr": {"low": 0.0, "high": 0.3, "log": True}}, "'log': True needs low > 0"),
        ({"lr": {"low": 0.01, "high": 0.05}}, "outside 0.01..0.05"),
        ({"leaves": {"low": 8.0, "high": 128.0}}, "is an int but the range 8.0..128.0 has floats"),
        ({"model": {"low": 1, "high": 3}}, "is a str, but the range is numeric"),
        ({"flag": {"low": 0, "high": 1}}, "is a bool, but the range is numeric"),
        ({"lr": {"low": 0.01, "high": 0.3, "step": 0.01}}, "unknown field 'step'"),
        ({"lr": {"low": 0.01}}, "'high' is missing"),
        ({"lr": {"low": 0.01, "high": 0.3, "log": "yes"}}, "'log' = 'yes' must be True or False"),
        ({"model": {"choices": ["dart", "goss"]}}, "'gbdt' is not among the choices"),
        ({"model": {"choices": ["gbdt", "dart"], "low": 1}}, "unknown field 'low' next to 'choices'"),
        ({"model": {"choices": ["gbdt"]}}, "at least two values"),
        ({"model": {"choices": ["gbdt", "gbdt", "dart"]}}, "lists a value twice"),
        ({"lr": [0.01, 0.3]}, "must be a dict"),
    ],
)
def test_space_errors_name_the_key_and_the_fix(space, expect):
    with pytest.raises(SearchSpaceError) as e:
        search_space.validate(space, PARAMS)
    assert expect in str(e.value) and str(e.value).startswith("train.py")


def test_space_kinds_and_static_read():
    dims = search_space.validate(
        {
            "lr": {"low": 0.01, "high": 0.3, "log": True},
            "leaves": {"low": 8, "high": 128},
            "model": {"choices": ["gbdt", "dart"]},
        },
        PARAMS,
    )
    assert [(d.name, d.kind, d.log) for d in dims] == [
        ("lr", "float", True),
        ("leaves", "int", False),
        ("model", "categorical", False),
    ]
    # a float knob may have whole-number bounds
    assert search_space.validate({"lr": {"low": 0, "high": 1}}, PARAMS)[0].kind == "float"
    # computed PARAMS values are fine unless searched; the space is read without running train.py
    params, dims = search_space.load(TRAIN)
    assert params["seed"] is search_space.NOT_LITERAL and [d.name for d in dims] == list(
        ast.literal_eval(TRAIN.split("SEARCH_SPACE = ")[1].split("\n}\n")[0] + "}")
    )
    with pytest.raises(SearchSpaceError, match="PARAMS\\['seed'\\] is computed"):
        search_space.validate({"seed": {"low": 0, "high": 9}}, params)
    with pytest.raises(SearchSpaceError, match="has no SEARCH_SPACE"):
        search_space.load(TRAIN.split("SEARCH_SPACE")[0] + "\n")
    with pytest.raises(SearchSpaceError, match="must be written out as a literal"):
        search_space.load(TRAIN.replace('"high": 0.4', '"high": 2 * 0.2'))


def test_storage_urls_are_checked_and_never_leak_a_password(tmp_path):
    from autoresearch.config import Config
    from autoresearch.errors import UserError
    from autoresearch.sweep import _storage_spec, redact

    assert redact("postgresql://ann:s3cr:et@db.example:5432/opt") == "postgresql://ann:***@db.example:5432/opt"
    assert redact("sqlite:///x.db") == "sqlite:///x.db"
    cfg = Config(root=tmp_path)
    assert _storage_spec(cfg, f"sqlite:///{tmp_path}/s.db", tmp_path).kind == "rdb"
    with pytest.raises(UserError, match=r"driver \(pymysql\) is not installed.*uv run --with pymysql") as e:
        _storage_spec(cfg, "mysql+pymysql://u:hunter2@h/db", tmp_path)
    assert "hunter2" not in str(e.value)
    assert _storage_spec(cfg, "shared.journal", tmp_path).where == str(tmp_path / "shared.journal")
    with pytest.raises(UserError, match="not an Optuna RDB URL") as e:
        _storage_spec(cfg, "redis://u:hunter2@h/0", tmp_path)
    assert "hunter2" not in str(e.value)
    with pytest.raises(UserError, match="does not exist"):
        _storage_spec(cfg, "no/such/dir/x.journal", tmp_path)


# ---------------------------------------------------------------------------
# The rewrite: only the changed values (and the two declarations) move

TRICKY = '''# -*- coding: utf-8 -*-
"""Ünïcode before the values shifts byte offsets: ast columns count bytes."""
from prepare import SEED

HYPOTHESIS = 'an older idea'   # trailing comment stays
CATEGORY = "model"
PARAMS: dict = {
    "lr": 0.05,      # ← a comment with non-ASCII
    'leaves' : 31,
    "alpha": -1.5e-3, "model": "gbdt",
    "nested": {"keep": [1, 2, 3]},
    "seed": SEED + 1,
    "scale": (
        2.0
    ),
}
SEARCH_SPACE = {"lr": {"low": 0.01, "high": 0.3}}
'''


def _spans(source: str, keys: list[str]) -> list[tuple[int, int]]:
    """Byte spans of PARAMS[key] values and of the HYPOTHESIS / CATEGORY literals, found independently."""
    data, tree = source.encode(), ast.parse(source)
    starts = [0] + [i + 1 for i, b in enumerate(data) if b == 10]
    nodes = []
    for stmt in tree.body:
        target = stmt.targets[0] if isinstance(stmt, ast.Assign) else getattr(stmt, "target", None)
        name = getattr(target, "id", None)
        if name in ("HYPOTHESIS", "CATEGORY"):
            nodes.append(stmt.value)
        elif name == "PARAMS":
            nodes += [v for k, v in zip(stmt.value.keys, stmt.value.values, strict=True) if k.value in keys]
    return sorted((starts[n.lineno - 1] + n.col_offset, starts[n.end_lineno - 1] + n.end_col_offset) for n in nodes)


def _outside(source: str, spans) -> list[bytes]:
    data, out, at = source.encode(), [], 0
    for a, b in spans:
        out.append(data[at:a])
        at = b
    return out + [data[at:]]


def test_rewrite_changes_only_the_values_and_declarations():
    changes = {"lr": 0.1234, "leaves": 57, "alpha": 0.25, "model": "dart", "scale": 3.5}
    new = search_space.rewrite(
        TRICKY, changes, {"HYPOTHESIS": "sweep: 9 trials (4 pruned) over lr", "CATEGORY": "params"}
    )
    keys = list(changes)
    assert _outside(new, _spans(new, keys)) == _outside(TRICKY, _spans(TRICKY, keys))
    params = search_space.read_params(new)
    assert {k: params[k] for k in keys} == changes and params["nested"] == {"keep": [1, 2, 3]}
    assert 'HYPOTHESIS = "sweep: 9 trials (4 pruned) over lr"   # trailing comment stays' in new
    assert '"lr": 0.1234,      # ← a comment with non-ASCII' in new
    # nothing to change: not a byte moves
    assert search_space.rewrite(TRICKY, {}) == TRICKY


# ---------------------------------------------------------------------------
# Real sweeps in one real project (module-scoped: the baseline is paid once)


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    p = make_project(
        tmp_path_factory.mktemp("sweep") / "proj", config={"folds": 3, "repeats": 1, "budget_s": 60, "n_jobs": 1}
    )
    p.write("train.py", TRAIN)
    p.commit_all("LightGBM with a SEARCH_SPACE")
    r = p.cli("start", "sw")
    assert r.returncode == 0, r.stdout + r.stderr
    return p


def study_trials(proj, name):
    import optuna
    from optuna.storages.journal import JournalFileBackend

    path = proj.path / ".autoresearch/runs/sw/sweep/optuna.journal"
    storage = optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    return optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)


def test_refusals(proj, tmp_path):
    fresh = make_project(tmp_path / "fresh", config={"folds": 3, "repeats": 1})
    r = fresh.cli("sweep", "--budget", "15")
    assert r.returncode == 2 and "no run has been started" in r.stderr, r.stderr
    proj.write("train.py", TRAIN.replace("0.006", "0.05"))
    r = proj.cli("sweep", "--budget", "15")
    assert r.returncode == 2 and "train.py differs from the incumbent" in r.stderr, r.stderr
    proj.write("train.py", TRAIN)
    r = proj.cli("sweep", "--budget", "3")
    assert r.returncode == 2 and "--budget 3: give at least 10 seconds" in r.stderr
    assert proj.git("status", "--porcelain") == ""


def test_sweep_prunes_writes_params_and_steps_them(proj):
    t0 = time.monotonic()
    inc = proj.git("rev-parse", "HEAD")
    r = proj.cli("sweep", "--budget", str(BUDGET), "--trials", "16")  # the trial cap ends it early on a fast machine
    took = time.monotonic() - t0
    assert r.returncode in (0, 1), r.stdout + r.stderr
    info = json.loads((proj.path / ".autoresearch/runs/sw/sweep.json").read_text())
    # the search kept to its budget; the step after it is one evaluation more (60 s budget here)
    assert took <= BUDGET + 2 + 60 + 15, took
    assert info["wall_s"] <= BUDGET + 2, info
    assert info["this_sweep"]["pruned"] >= 1, r.stdout
    assert info["complete"] >= 5 and info["trials"] == info["this_sweep"]["trials"] >= 6
    assert info["changed"] and "search best: roc_auc" in r.stdout and "the step judges them" in r.stdout
    # the sweep stepped what it wrote: one ledger row, its candidate is the rewritten train.py
    row = ledger.read(proj.path, "sw")[-1]
    assert row["iter"] == "1" and row["category"] == "params", r.stdout + r.stderr
    assert row["note"].startswith(f"sweep: {info['trials']} trials ({info['pruned']} pruned)"), row
    written = proj.git("show", f"{row['commit']}:train.py") + "\n"
    assert info["train_sha256"] == __import__("hashlib").sha256(written.encode()).hexdigest()
    params = search_space.read_params(written)
    assert params["learning_rate"] != 0.006
    assert {k: params[k] for k in info["best_params"]} == info["best_params"]
    assert f'HYPOTHESIS = "sweep: {info["trials"]} trials ({info["pruned"]} pruned) over learning_rate, ' in written
    assert 'CATEGORY = "params"' in written
    lines = [x for x in r.stdout.splitlines() if x.startswith("iter 1 |")]
    assert len(lines) == 1, r.stdout
    now = proj.read("train.py")
    if row["status"] in ("keep", "knob", "simplify", "faster"):
        # the agent's next Edit starts from the printed PARAMS: exactly the file's lines
        after = r.stdout.split("train.py's PARAMS are now (the rest is as it was):\n", 1)[1].splitlines()
        shown = list(itertools.takewhile(lambda x: x.startswith("  "), after))
        assert [x[2:] for x in shown] == search_space.declaration_lines(now, ("PARAMS",)) and now == written
        assert shown[0].startswith("  PARAMS = ") and shown[-1] == "  }", shown
    else:
        assert "PARAMS are now" not in r.stdout and now == proj.git("show", f"{inc}:train.py") + "\n"
    assert proj.git("status", "--porcelain") == ""
    # the search ran on folds of its own: the incumbent's CV mean is not the sweep's score of the same PARAMS
    run = json.loads((proj.path / ".autoresearch/runs/sw/run.json").read_text())
    assert info["current_value"] is not None and info["current_value"] != pytest.approx(
        run["baseline"]["mean"], abs=1e-12
    )
    # the holdout is neither computed nor printed by the sweep (a kept step adds the step's own entry)
    hold = [json.loads(x) for x in (proj.path / ".autoresearch/runs/sw/holdout.jsonl").read_text().splitlines()]
    assert all(f"{h['holdout']:.4f}" not in r.stdout + r.stderr for h in hold)


def test_a_sweep_that_finds_nothing_better_steps_nothing(proj):
    """One trial is the current PARAMS themselves: nothing to write, so nothing is stepped or recorded."""
    rows = len(ledger.read(proj.path, "sw"))
    r = proj.cli("sweep", "--trials", "1", "--budget", str(BUDGET), "--study", "one")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no trial beat the current PARAMS on the sweep's folds: train.py is unchanged and there is nothing to " in (
        r.stdout
    )
    assert "on the run's own journal)" in r.stdout, r.stdout
    assert len(ledger.read(proj.path, "sw")) == rows and "iter " not in r.stdout
    assert proj.git("status", "--porcelain") == ""


def test_two_workers_share_one_study(proj):
    r = proj.cli("sweep", "--no-step", "--workers", "2", "--trials", "8", "--budget", str(BUDGET), "--study", "pair")
    assert r.returncode == 0, r.stdout + r.stderr
    trials = study_trials(proj, "pair")
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert {t.user_attrs["sweep"]["worker"] for t in trials} == {0, 1}
    assert len({t._trial_id for t in trials}) == len(trials)
    info = json.loads((proj.path / ".autoresearch/runs/sw/sweep.json").read_text())
    assert info["trials"] == len(trials) and info["study"] == "pair"
    proj.git("checkout", "--", "train.py")  # leave the incumbent for the next test


def test_an_uncommitted_search_space_is_swept_and_kept(proj):
    """The agent may declare a new SEARCH_SPACE without a step (program.md says so): the sweep uses it, and the
    hand-off keeps it in train.py (dogfood round 3: the check after the worker compared with the commit)."""
    text = proj.read("train.py")
    start = text.index("SEARCH_SPACE = {")
    end = text.index("\n}\n", start) + 3
    narrowed = (
        text[:start]
        + 'SEARCH_SPACE = {\n    "learning_rate": {"low": 0.01, "high": 0.3, "log": True},\n}\n'
        + text[end:]
    )
    proj.write("train.py", narrowed)
    r = proj.cli("sweep", "--no-step", "--trials", "6", "--budget", str(BUDGET), "--study", "narrow")
    assert r.returncode == 0, r.stdout + r.stderr
    after = proj.read("train.py")
    assert '"learning_rate": {"low": 0.01, "high": 0.3, "log": True},\n}' in after and '"num_leaves": {' not in after
    info = json.loads((proj.path / ".autoresearch/runs/sw/sweep.json").read_text())
    assert set(info["changed"]) <= {"learning_rate"}
    proj.git("checkout", "--", "train.py")


def test_two_machines_share_one_study_through_a_database(proj, tmp_path):
    """The README's multi-machine recipe with sqlite standing in for PostgreSQL: a clone of the run's branch
    on a second "machine" sweeps the same study at the same time; both read the study's best at the end."""
    other = tmp_path / "machine-b"
    subprocess.run(["git", "clone", "-q", "-b", "autoresearch/sw", str(proj.path), str(other)], check=True)
    for k, v in (("user.email", "b@example.invalid"), ("user.name", "b")):
        subprocess.run(["git", "config", k, v], cwd=other, check=True)
    r = subprocess.run(
        [sys.executable, "-P", "-m", "autoresearch.cli", "start", "sw"], cwd=other, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout + r.stderr
    url = f"sqlite:///{tmp_path}/optuna.db"
    # a trial cap ends it early on an idle machine; the budget leaves room for a loaded one
    args = [
        sys.executable,
        "-P",
        "-m",
        "autoresearch.cli",
        "sweep",
        "--no-step",
        "--storage",
        url,
        "--budget",
        "120",
        "--trials",
        "12",
        "--study",
        "net",
    ]
    machines = [
        subprocess.Popen(args, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for cwd in (proj.path, other)
    ]  # at the same moment: both create the database's schema
    outs = [m.communicate(timeout=180)[0] for m in machines]
    assert [m.returncode for m in machines] == [0, 0], outs
    import optuna

    trials = optuna.load_study(study_name="net", storage=url).get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    hosts = [json.loads((cwd / ".autoresearch/runs/sw/sweep.json").read_text()) for cwd in (proj.path, other)]
    counts = [h["this_sweep"]["trials"] for h in hosts]
    assert all(counts) and sum(counts) == len(trials), (counts, len(trials), [o[-800:] for o in outs])
    best = max((t for t in trials if t.state == optuna.trial.TrialState.COMPLETE), key=lambda t: t.value)
    # the machine whose sweep ended last saw every trial: its hand-off is the study's best
    assert best.number in [h["best_trial"] for h in hosts], (best.number, hosts)
    proj.git("checkout", "--", "train.py")


def test_a_storage_that_fails_is_said_not_traced(proj, tmp_path):
    """A database that is not one stops the sweep with its reason; a worker whose study cannot be read says
    why in the sweep's errors (a thread that died in silence once left a sweep of no trials that looked fine)."""
    from autoresearch import config, study

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database, " * 512)
    r = proj.cli("sweep", "--no-step", "--storage", f"sqlite:///{junk}", "--budget", "30", "--trials", "2")
    assert r.returncode != 0 and "Traceback" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert "could not be opened (DatabaseError: " in r.stdout + r.stderr, r.stdout + r.stderr
    assert proj.git("status", "--porcelain", "train.py") == ""

    cfg = config.load_config(proj.path)
    url = f"sqlite:///{tmp_path}/empty.db"
    plan = study.Plan(
        tag="sw", study="never-made", storage=study.Storage("rdb", url), workers=1, trials=[1], n_jobs=1,
        maximize=True, dims=[], current={}, seed=0, deadline=time.monotonic() + 30,
    )  # fmt: skip
    log = study.Log("roc_auc", True, tty=False)
    study._work(0, cfg, proj.path / "train.py", plan, None, log, tmp_path / "w.log")
    assert log.trials == [] and len(log.errors) == 1 and log.errors[0].startswith("worker 0: KeyError: "), log.errors

    leaky = study.Storage("rdb", "postgresql://ann:hunter2@db.example/opt")
    assert "hunter2" not in study.said(RuntimeError("auth for ann:hunter2 failed"), leaky)


def _workers(root: int) -> set[int]:
    """The sandboxed workers (and their bubblewrap) below process `root`: this sweep's, not those of whatever
    else runs on the machine (another test, another project)."""
    from autoresearch.processes import descendants

    out = set()
    for pid in descendants(root):
        try:
            if b"autoresearch.worker" in open(f"/proc/{pid}/cmdline", "rb").read():
                out.add(pid)
        except OSError:
            pass
    return out


def test_killed_sweep_resumes(proj):
    journal = proj.path / ".autoresearch/runs/sw/sweep/optuna.journal"
    child = subprocess.Popen(
        [sys.executable, "-P", "-m", "autoresearch.cli", "sweep", "--no-step", "--budget", "150", "--study", "resume"],
        cwd=proj.path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 140  # the sandbox's start and four trials: seconds idle, far more when loaded
    done = []
    while time.monotonic() < deadline and len(done) < 4:
        time.sleep(0.5)
        try:
            done = [t for t in study_trials(proj, "resume") if t.state.is_finished()]
        except KeyError:  # the study does not exist yet
            pass
    assert len(done) >= 4, "the sweep never got going"
    workers = _workers(child.pid)
    assert workers, "no sandboxed worker below the sweep"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    deadline = time.monotonic() + 5
    while [p for p in workers if alive(p)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [p for p in workers if alive(p)] == []  # the sandboxes died with the sweep
    before = study_trials(proj, "resume")
    # the worst a kill can leave: a torn last line and a stale lock; the next sweep repairs both
    with open(journal, "ab") as f:
        f.write(b'{"op_code":5,"worker_id":"torn')
    lock = Path(str(journal) + ".lock")
    lock.unlink(missing_ok=True)  # the kill may have left one already (the flake issue 13 names): make it so
    os.symlink(journal, lock)
    r = proj.cli("sweep", "--no-step", "--trials", "3", "--budget", str(BUDGET), "--study", "resume")
    assert r.returncode == 0, r.stdout + r.stderr
    after = study_trials(proj, "resume")
    assert len(after) > len(before)
    assert sorted(t.number for t in after) == list(range(len(after)))
    assert not [t for t in after if t.state.name == "RUNNING"]
    for t in before:  # a trial the kill interrupted is failed and marked, not left running forever
        if t.state.name == "RUNNING":
            assert after[t.number].state.name == "FAIL" and after[t.number].user_attrs["interrupted"]
    assert [t.params for t in after[: len(before)]] == [t.params for t in before]
    assert list(journal.parent.glob("optuna.journal.torn-*"))
    proj.git("checkout", "--", "train.py")


def test_a_best_value_at_a_bound_is_called_out():
    """The sweep says when its best sits at a bound of the range (dogfood round 7: min_samples_leaf 95 of
    5..100 was kept, and nothing said the best might lie beyond); log knobs are placed in log space."""
    dims = [
        search_space.Dim("leaf", "int", low=5, high=100),
        search_space.Dim("C", "float", low=1e-3, high=1e2, log=True),
        search_space.Dim("loss", "categorical", choices=("a", "b")),
    ]
    assert search_space.at_edge(dims, {"leaf": 95, "C": 1.0, "loss": "a"}) == [
        "leaf 95 is at the top of its range 5..100"
    ]
    assert search_space.at_edge(dims, {"leaf": 50, "C": 0.0012, "loss": "b"}) == [
        "C 0.0012 is at the bottom of its range 0.001..100.0"
    ]
    assert search_space.at_edge(dims, {"leaf": 50, "C": 0.01, "loss": "b"}) == []  # 20% up the log range
    near = [search_space.Dim("leaves", "int", low=2, high=32), search_space.Dim("mcs", "int", low=5, high=100)]
    assert search_space.at_edge(near, {"leaves": 5, "mcs": 13}) == []  # a tenth and 8% up: room below
    # nothing lies below a penalty of 0 or above a fraction of 1.0: no advice to widen there
    natural = [search_space.Dim("alpha", "float", low=0, high=10), search_space.Dim("sub", "float", low=0.5, high=1.0)]
    assert search_space.at_edge(natural, {"alpha": 0.44, "sub": 0.98}) == []
    assert search_space.at_edge(natural, {"alpha": 9.8, "sub": 0.51}) == [
        "alpha 9.8 is at the top of its range 0..10",
        "sub 0.51 is at the bottom of its range 0.5..1.0",
    ]
