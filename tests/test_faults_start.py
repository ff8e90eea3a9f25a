"""Issue 7, `start` with bad configuration or bad data: a clear one-line error, exit code 2, and nothing
written (no data/, no ledger, no run state, no branch). The loader's messages themselves are checked in
test_data.py and test_config.py; this checks what the real `start` command does with them.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from conftest import make_project


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    p = make_project(tmp_path_factory.mktemp("start") / "proj")
    # the tables stay out of git, as a user's data usually does, so none of them makes the tree dirty
    p.write(".gitignore", p.read(".gitignore") + "tables/\n")
    p.commit_all("ignore the tables")
    (p.path / "tables").mkdir()
    return p


def frame(n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"num": rng.normal(size=n), "cat": rng.choice(["a", "b", "c"], size=n)})
    df["y"] = np.where(df["num"] + rng.normal(size=n) > 0, "yes", "no")
    return df


def csv(df: pd.DataFrame) -> bytes:
    return df.to_csv(index=False).encode()


def with_nan_target() -> bytes:
    df = frame()
    df.loc[[3, 7], "y"] = None
    return csv(df)


LATIN1 = ("name,y\n" + "".join(f"caf\xe9 {i},{i % 2}\n" for i in range(30))).encode("latin-1")

# id: (data path, bytes to write there or a maker, extra config, the message's telling part)
CASES = {
    "no-such-file": (
        "tables/nope.csv",
        None,
        {},
        "data = 'tables/nope.csv': no such file ({root}/tables/nope.csv); fix the path in pyproject.toml",
    ),
    "a-folder": ("tables", None, {}, "data = 'tables': {root}/tables is a folder, not a file"),
    "a-fifo": ("tables/pipe.csv", "fifo", {}, "data = 'tables/pipe.csv': {root}/tables/pipe.csv is"),
    "unreadable": ("tables/locked.csv", "chmod000", {}, "cannot read {root}/tables/locked.csv (permission denied)"),
    "latin-1": ("tables/latin.csv", LATIN1, {}, "latin.csv is not UTF-8"),
    "one-class": (
        "tables/one.csv",
        csv(frame().assign(y="yes")),
        {},
        "target 'y' has a single value ('yes'): there is nothing to learn; pick another target",
    ),
    "nan-target": (
        "tables/nan.csv",
        with_nan_target(),
        {},
        "target 'y' is missing in 2 of 120 rows; drop those rows from the file",
    ),
    "reserved-column": (
        "tables/reserved.csv",
        csv(frame().rename(columns={"cat": "__index_level_0__"})),
        {},
        "column '__index_level_0__' starts with '__', which the harness and pandas/pyarrow reserve",
    ),
    "bad-config": (
        "tables/ok.csv",
        csv(frame()),
        {"folds": 1},
        "pyproject.toml [tool.autoresearch]: field 'folds' = 1 is invalid; use a whole number from 2 to 50",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_start_refuses_bad_config_and_data_and_writes_nothing(proj, case):
    data, content, extra, message = CASES[case]
    path = proj.path / data
    if content == "chmod000":
        if os.geteuid() == 0:
            pytest.skip("root reads a chmod 000 file anyway; the folder and FIFO cases cover unreadable paths")
        path.write_bytes(csv(frame()))
        path.chmod(0)
    elif content == "fifo":
        if not path.exists():
            os.mkfifo(path)
    elif content is not None:
        path.write_bytes(content)
    proj.set_config(**{"data": data, "target": "y", "folds": 3, "repeats": 1, **extra})
    proj.commit_all(f"config for {case}")
    r = proj.cli("start", "bad", timeout=120)  # a FIFO must not block the reader
    assert r.returncode == 2 and r.stdout == "", r.stdout + r.stderr
    assert r.stderr.startswith("error: ") and r.stderr.count("\n") == 1, r.stderr
    assert message.format(root=proj.path) in r.stderr, r.stderr
    # nothing written: no prepared data, no ledger, no run, no branch, still on main with a clean tree
    assert not (proj.path / "data").exists() and not (proj.path / "results.tsv").exists()
    state = proj.path / ".autoresearch"
    assert not state.exists() or sorted(os.listdir(state)) == ["lock"]
    assert proj.git("branch", "--format=%(refname:short)") == "main"
    assert proj.git("status", "--porcelain") == ""
