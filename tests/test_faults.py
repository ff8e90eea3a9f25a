"""Issue 7, step level: whatever train.py does and whatever happens to the machine, the run goes on, loses
no ledger row, keeps the harness intact and reports each failure in one line.

Every case goes through the real `autoresearch step` (or a kill -9 of it) on one started project
(3 folds x 1 repeat), and checks the status, the message, the ledger and the git state afterwards.
Each test measures "before" itself, so the order of the tests only decides the iteration numbers.
The runner-level faults (each way of hanging, process families, the log format) are in test_runner.py,
`uv run train.py`'s contract messages in test_train_cli.py, bad data at the loader in test_data.py,
`start` refusing bad config and data in test_faults_start.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import fake_estimator, make_project

from autoresearch import ledger
from autoresearch.config import load_config
from autoresearch.manifest import load_manifest, problems
from autoresearch.processes import LOG_HEAD_BYTES, LOG_TAIL_BYTES, TOKEN_VAR

TAG = "faults"
# every legitimate evaluation here (the LightGBM one is the slowest) must fit on a loaded 2-core box,
# and the timeout case costs exactly this; a much busier machine can raise it
BUDGET = int(os.environ.get("AUTORESEARCH_FAULTS_BUDGET", 25))
MEMORY_MB = 800
BRANCH = f"autoresearch/{TAG}"


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    p = make_project(
        tmp_path_factory.mktemp("faults") / "proj",
        config={"folds": 3, "repeats": 1, "budget_s": BUDGET, "memory_mb": MEMORY_MB},
    )
    p.write("train.py", model("baseline: a constant"))  # numpy only: every evaluation here stays cheap
    p.commit_all("a cheap baseline")
    r = p.cli("start", TAG)
    assert r.returncode == 0, r.stdout + r.stderr
    return p


@pytest.fixture(autouse=True)
def settled(proj):
    """The tests share one project: a test that failed half-way leaves its step unrecorded, which the next
    command would recover first; settle it here so one failure stays one failure."""
    yield
    if pending_path(proj).exists():
        proj.cli("status")


# ---------------------------------------------------------------------------
# train.py variants: small, and without scikit-learn where they can, so each child is cheap


def source(hypothesis: str, body: str, imports: str = "import numpy as np\n") -> str:
    return f'{imports}\nHYPOTHESIS = "{hypothesis}"\nCATEGORY = "faults"\nPARAMS = {{}}\n\n{body}\n'


def model(hypothesis: str, proba: str = "np.full((n, 2), 0.5)", extra: str = "", imports: str = "") -> str:
    return source(hypothesis, fake_estimator(proba) + extra, "import numpy as np\n" + imports)


# ---------------------------------------------------------------------------
# Observing the project


class Before:
    """What must hold after a failed step: the incumbent's train.py, its commit, the earlier rows."""

    def __init__(self, proj):
        self.rows = rows(proj)
        self.head = proj.git("rev-parse", "HEAD")
        self.train = proj.read("train.py")
        self.run = run_json(proj)
        self.ledger_bytes = (proj.path / "results.tsv").read_bytes()
        self.iter = int(self.rows[-1]["iter"]) + 1


def rows(proj) -> list[dict]:
    return ledger.read(proj.path, TAG)


def run_json(proj) -> dict:
    return json.loads((proj.path / f".autoresearch/runs/{TAG}/run.json").read_text())


def iter_json(proj, it: int) -> dict:
    return json.loads((proj.path / f".autoresearch/runs/{TAG}/iters/{it}.json").read_text())


def pending_path(proj) -> Path:
    return proj.path / f".autoresearch/runs/{TAG}/pending.json"


def ref(proj, name: str) -> str | None:
    r = subprocess.run(["git", "rev-parse", "-q", "--verify", name], cwd=proj.path, capture_output=True, text=True)
    return r.stdout.strip() or None


def harness_problems(proj) -> list[str]:
    cfg = load_config(proj.path)
    return problems(cfg, load_manifest(cfg))


def verdict(r, it: int) -> str:
    return verdict_of(r.stdout, it)


def verdict_of(stdout: str, it: int) -> str:
    lines = [x for x in stdout.splitlines() if x.startswith(f"iter {it} | ")]
    assert len(lines) == 1, stdout
    return lines[0]


def assert_failed_step(proj, before: Before, status: str, candidate: str, committed: bool = True) -> dict:
    """One new row with `status`, the branch at the incumbent, train.py back to it (or, when nothing was
    committed, left as the agent wrote it), a clean tree, the harness as prepared."""
    it = before.iter
    new = rows(proj)
    assert new[:-1] == before.rows, "an earlier row changed"
    assert [new[-1]["iter"], new[-1]["status"]] == [str(it), status], new[-1]
    rec = iter_json(proj, it)
    assert rec["status"] == status
    assert proj.git("rev-parse", "HEAD") == before.head
    assert proj.git("rev-parse", "--abbrev-ref", "HEAD") == BRANCH
    assert not pending_path(proj).exists() and ref(proj, f"refs/autoresearch/{TAG}/pending") is None
    if committed:
        assert proj.read("train.py") == before.train
        assert proj.git("status", "--porcelain") == ""
        kept = ref(proj, f"refs/autoresearch/{TAG}/discarded/{it}")
        assert kept and proj.git("show", f"{kept}:train.py") == candidate.strip()
        assert new[-1]["commit"] == kept[:12]
    else:
        assert proj.read("train.py") == candidate and new[-1]["commit"] == ""
        assert ref(proj, f"refs/autoresearch/{TAG}/discarded/{it}") is None
    assert harness_problems(proj) == []
    assert run_json(proj)["incumbent"] == before.run["incumbent"]
    return rec


def step(proj, candidate: str, rc: int):
    proj.write("train.py", candidate)
    r = proj.cli("step")
    assert r.returncode == rc, r.stdout + r.stderr
    return r


# ---------------------------------------------------------------------------
# Processes


def marked(marker: str) -> list[int]:
    """Live processes whose command line carries the marker: the sandbox is seen from outside through /proc."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            if marker.encode() in cmdline and not cmdline.split(b"\0")[0].endswith(b"bwrap") and running(int(name)):
                found.append(int(name))
    return found


def running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"  # a zombie is dead, only waiting to be reaped


def carrying(token: str) -> list[int]:
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            if f"{TOKEN_VAR}={token}".encode() in Path(f"/proc/{name}/environ").read_bytes() and running(int(name)):
                found.append(int(name))
        except OSError:
            pass
    return found


def left_in(proj) -> list[str]:
    """Live processes working in the project (a step's evaluations and git commands all run there)."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            cwd = os.readlink(f"/proc/{name}/cwd")
            if (cwd == str(proj.path) or cwd.startswith(f"{proj.path}/")) and running(int(name)):
                found.append(Path(f"/proc/{name}/cmdline").read_bytes().replace(b"\0", b" ").decode())
    return found


def spawn(proj, *args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    return subprocess.Popen(
        [sys.executable, "-m", "autoresearch.cli", *args],
        cwd=proj.path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def kill9(p: subprocess.Popen) -> None:
    os.kill(p.pid, signal.SIGKILL)
    p.communicate()


# ---------------------------------------------------------------------------
# The budget and the memory cap, through step

HANG = r"""
MARKER = "{marker}"
DAEMON = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(10**6)"


def build_pipeline(params):
    if os.fork() == 0:  # the classic double fork: the daemon leaves the session and the process tree
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", DAEMON, MARKER])
        os._exit(0)
    os.wait()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    re.match(r"(a|aa)+$", "a" * 64 + "b")  # hours inside the regex engine, holding the GIL
"""


def test_timeout_kills_the_whole_family_and_a_second_step_is_refused(proj):
    """A native busy loop that ignores SIGTERM, with a double-forked SIGTERM-deaf daemon grandchild
    (the other ways to hang are in test_processes.py); a second `step` and a `status` meanwhile."""
    before = Before(proj)
    marker = f"hang-{uuid.uuid4().hex}"
    cand = source(
        "hang: a native busy loop and a deaf daemon",
        HANG.format(marker=marker),
        "import os\nimport re\nimport signal\nimport sys\n",
    )
    proj.write("train.py", cand)
    first = spawn(proj, "step")
    try:
        wait_for(lambda: marked(marker), BUDGET + 30, "train.py to start its daemon")
        token = json.loads(pending_path(proj).read_text())["token"]
        t0 = time.monotonic()
        second = proj.cli("step")
        assert time.monotonic() - t0 < 10  # fails fast: does not wait for the lock
        assert second.returncode == 2 and second.stdout == ""
        assert second.stderr == (
            f"error: another autoresearch command (pid {first.pid}) is running on this project; "
            "wait for it to finish (one step at a time)\n"
        )
        status = proj.cli("status")
        assert status.returncode == 0 and "a step is running right now" in status.stdout
        out, err = first.communicate(timeout=BUDGET + 60)
    finally:
        if first.poll() is None:
            kill9(first)
    assert first.returncode == 1, out + err
    it = before.iter
    assert re.fullmatch(
        rf"iter {it} \| TIMEOUT \(reverted to iter \d+\) \| (exceeded|over) the {BUDGET} s budget[^|]* \| "
        rf"eval [\d.]+s of {BUDGET}s(, fit ~[\d.]+s/fold)?, step [\d.]+s \| "
        rf"faults: hang: a native busy loop and a deaf daemon",
        verdict_of(out, it),
    )
    rec = assert_failed_step(proj, before, "timeout", cand)
    assert BUDGET <= rec["eval_s"] <= BUDGET + 2
    assert marked(marker) == [] and carrying(token) == [] and left_in(proj) == []
    assert len(rows(proj)) == len(before.rows) + 1  # none for the refused second step
    assert run_json(proj)["harness_errors"] == 0  # a busy lock is not a harness failure


def test_memory_blowup_is_stopped_at_the_cap(proj):
    before = Before(proj)
    cand = source(
        "hoard memory",
        """
def build_pipeline(params):
    hoard = []
    while True:
        hoard.append(np.ones(1 << 24))  # 128 MB, written: resident, not just reserved
        time.sleep(0.05)
""",
        "import time\n\nimport numpy as np\n",
    )
    r = step(proj, cand, 1)
    line = verdict(r, before.iter)
    assert re.search(
        rf"\| CRASH \(reverted to iter \d+\) \| memory: used \d+ MB, over the {MEMORY_MB} MB cap \|", line
    ), line
    rec = assert_failed_step(proj, before, "crash", cand)
    assert rec["reason"].startswith("memory: used ")
    assert rec["eval_s"] < BUDGET  # stopped at the cap, long before the budget; the kernel never had to act
    assert "memory: used" in rows(proj)[-1]["note"]


def test_output_flood_is_capped_on_disk_and_on_screen(proj):
    """100 MB on stdout, 100 MB on stderr, a 4 MB line, then an exception with a 100 kB message."""
    before = Before(proj)
    cand = source(
        "flood the output",
        """
LINE = "flood " + "x" * 1017 + "\\n"
for _ in range(100):
    sys.stdout.write(LINE * 1024)
for _ in range(100):
    sys.stderr.write(LINE * 1024)
sys.stderr.write("y" * (4 << 20) + "\\n")
raise ValueError("z" * 100_000)
""",
        "import sys\n",
    )
    r = step(proj, cand, 1)
    rec = assert_failed_step(proj, before, "crash", cand)
    assert rec["reason"].startswith("ValueError: zzz") and len(rec["reason"]) <= 320
    out = r.stdout.splitlines()
    line = verdict(r, before.iter)
    assert out[0] == line and len(line) < 600
    tail = out[1:]
    assert 1 <= len(tail) <= 15 and all(t.startswith("  | ") and len(t) <= 400 for t in tail), tail
    assert len(r.stdout) < 8000 and r.stderr == ""
    log = (proj.path / f".autoresearch/runs/{TAG}/logs/{before.iter}.log").read_bytes()
    assert LOG_HEAD_BYTES < len(log) <= LOG_HEAD_BYTES + LOG_TAIL_BYTES + 200
    assert log.startswith(b"flood xxx") and b"bytes omitted: output over the log cap" in log
    assert log.rstrip().endswith(b"z" * 1000)


# ---------------------------------------------------------------------------
# The contract: each break is a crash with one line naming it

CONTRACT = {
    "nan": (
        model("predictions NaN", "np.full((n, 2), np.nan)"),
        "fold 0: predict_proba() returned NaN or infinite values",
    ),
    "inf": (
        model("predictions infinite", "np.full((n, 2), np.inf)"),
        "fold 0: predict_proba() returned NaN or infinite values",
    ),
    "length": (
        model("one prediction short", "np.full((n - 1, 2), 0.5)"),
        "fold 0: predict_proba() returned {short} rows for {n} inputs",
    ),
    "strings": (
        model("strings for roc_auc", 'np.full((n, 2), "yes")'),
        "fold 0: predict_proba() returned <U3 values; it must return numbers",
    ),
    "not-an-estimator": (
        source("a dict, not an estimator", "def build_pipeline(params):\n    return {'model': 1}\n"),
        "build_pipeline(params) returned dict, not an estimator (it needs fit() and predict(); "
        "return a scikit-learn estimator or Pipeline)",
    ),
    "missing": (
        source("no build_pipeline", "MODEL = None\n"),
        "build_pipeline(params) is missing; define it to return a fresh unfitted estimator or Pipeline",
    ),
    "raising": (
        source("build_pipeline raises", "def build_pipeline(params):\n    return params['C']\n"),
        "build_pipeline(params) raised KeyError: 'C'",
    ),
}


@pytest.mark.parametrize("case", list(CONTRACT))
def test_contract_break_is_a_crash_naming_the_contract(proj, case):
    cand, reason = CONTRACT[case]
    before = Before(proj)
    r = step(proj, cand, 1)
    n = first_fold_size(proj)
    reason = "train.py contract: " + reason.format(short=n - 1, n=n)
    rec = assert_failed_step(proj, before, "crash", cand)
    assert rec["reason"] == reason
    assert re.search(rf"\| CRASH \(reverted to iter \d+\) \| {re.escape(reason)} \|", verdict(r, before.iter))
    assert rows(proj)[-1]["note"] == reason


def first_fold_size(proj) -> int:
    from autoresearch.splits import load_folds

    return len(load_folds(proj.path / "data" / "folds.npz")[0][1])


# ---------------------------------------------------------------------------
# Damage between steps (hostile train.py at run time: tests/test_trust.py)


def test_damage_between_steps_is_undone_before_anything_runs(proj):
    """The agent's shell broke the harness before the step: a frozen file edited, a new file in the package,
    the prepared data overwritten. Refused before the commit; everything put back."""
    before = Before(proj)
    prepare_py = (proj.path / "prepare.py").read_bytes()
    (proj.path / "prepare.py").write_bytes(prepare_py + b"\nFOLDS = 2\n")
    (proj.path / "src/autoresearch/evil.py").write_text("x = 1\n")
    (proj.path / "data/train.parquet").write_bytes(b"garbage")
    cand = model("step after damaging the harness by hand")
    r = step(proj, cand, 1)
    rec = assert_failed_step(proj, before, "invalid", cand, committed=False)
    assert rec["reason"] == (
        "only train.py may change, but these differ from the incumbent: prepare.py, "
        "src/autoresearch/evil.py (frozen files restored from git: prepare.py)"
    )
    assert rec["tail"] == [
        "the harness differs from its manifest: data/train.parquet was modified or removed; "
        "frozen file src/autoresearch/evil.py was added (restored)"
    ]
    assert f"| INVALID, nothing committed | {rec['reason']} |" in verdict(r, before.iter)
    assert (proj.path / "prepare.py").read_bytes() == prepare_py
    assert not (proj.path / "src/autoresearch/evil.py").exists()
    proj.write("train.py", before.train)


# ---------------------------------------------------------------------------
# The static check: invalid before anything is committed or run

STATIC = {
    "literal-path": (
        'HOLD = "data/holdout.parquet"\n',
        r"train\.py line \d+: the string 'data/holdout\.parquet' points at the harness's data",
    ),
    "import-prepare": ("import prepare\n", r"train\.py line \d+: `import prepare` exposes the harness"),
    "from-autoresearch": (
        "from autoresearch.prepared import load_train\n",
        r"train\.py line \d+: `from autoresearch\.prepared import \.\.\.` is not allowed",
    ),
    "eval-exec": ('X = eval("1 + 1")\nexec("Y = 2")\n', r"train\.py line \d+: eval\(\) runs code this check cannot"),
}


@pytest.mark.parametrize("case", list(STATIC))
def test_static_check_refuses_before_anything_runs(proj, case):
    code, pattern = STATIC[case]
    before = Before(proj)
    cand = model(f"static: {case}", extra=code)
    r = step(proj, cand, 1)
    rec = assert_failed_step(proj, before, "invalid", cand, committed=False)
    assert re.match(pattern, rec["reason"]), rec["reason"]
    if case == "eval-exec":
        assert any("exec() runs code this check cannot see" in t for t in rec["tail"])
    assert "| INVALID, nothing committed |" in verdict(r, before.iter)
    assert rec["eval_s"] == 0.0 and not (proj.path / f".autoresearch/runs/{TAG}/logs/{before.iter}.log").exists()
    proj.write("train.py", before.train)


def test_torn_last_line_is_moved_aside(proj):
    before = Before(proj)
    torn = b"999\tfaults\t2025-01-01T00:00:00\tdeadbeef\tke"  # a row cut off mid-write, no newline
    with open(proj.path / "results.tsv", "ab") as f:
        f.write(torn)
    cand = model("after a torn row", extra="import prepare\n")
    r = step(proj, cand, 1)
    note = next(x for x in r.stdout.splitlines() if x.startswith("recovered: results.tsv had a torn last line"))
    aside = proj.path / note.rsplit("moved it to ", 1)[1]
    assert aside.parent == proj.path / ".autoresearch" and aside.name.startswith("results.torn-")
    assert aside.read_bytes() == torn
    assert_failed_step(proj, before, "invalid", cand, committed=False)
    text = (proj.path / "results.tsv").read_bytes()
    assert text.startswith(before.ledger_bytes) and text[len(before.ledger_bytes) :].count(b"\n") == 1
    assert text.endswith(b"\n") and b"deadbeef" not in text
    proj.write("train.py", before.train)


# ---------------------------------------------------------------------------
# The work tree and the branch


def test_dirty_tree_is_invalid_naming_the_files(proj):
    before = Before(proj)
    readme = proj.read("README.md")
    proj.write("README.md", readme + "\nedited by hand\n")
    proj.write("helper.py", "def smuggled():\n    return 1\n")
    cand = model("step with other files changed")
    r = step(proj, cand, 1)
    rec = iter_json(proj, before.iter)
    assert rec["status"] == "invalid" and rec["reason"] == (
        "only train.py may change, but these differ from the incumbent: README.md, helper.py; "
        "undo them (git checkout -- FILE, or delete new files)"
    )
    assert f"| INVALID, nothing committed | {rec['reason']} |" in verdict(r, before.iter)
    # the human's files are theirs: named, not touched
    assert proj.read("README.md").endswith("edited by hand\n") and (proj.path / "helper.py").exists()
    proj.git("checkout", "--", "README.md")
    (proj.path / "helper.py").unlink()
    assert_failed_step(proj, before, "invalid", cand, committed=False)
    proj.write("train.py", before.train)


def test_detached_head_and_a_moved_branch_are_refused(proj):
    before = Before(proj)
    cand = model("step off the branch")
    proj.write("train.py", cand)
    proj.git("checkout", "-q", "--detach")
    r = proj.cli("step")
    assert (r.returncode, r.stdout) == (2, ""), r.stdout + r.stderr
    assert r.stderr == (
        f"error: the work tree is on a detached HEAD, not on the run's branch {BRANCH}: "
        f"`git checkout {BRANCH}` (or `uv run autoresearch start {TAG}`), then step again\n"
    )
    assert proj.git("rev-parse", "HEAD") == before.head and proj.read("train.py") == cand
    proj.git("checkout", "-q", BRANCH)

    proj.git("commit", "-q", "--allow-empty", "-m", "a commit by hand")
    moved = proj.git("rev-parse", "HEAD")
    r = proj.cli("step")
    assert (r.returncode, r.stdout) == (2, ""), r.stdout + r.stderr
    assert r.stderr == (
        f"error: branch {BRANCH} was moved by hand to {moved[:8]}; the ratchet's incumbent is "
        f"{before.head[:8]}. Put it back with `git reset --keep {before.head[:12]}` (your commit "
        "stays in the reflog), then step again\n"
    )
    assert proj.git("rev-parse", "HEAD") == moved and proj.read("train.py") == cand
    proj.git("reset", "-q", "--keep", before.head)
    # nothing was recorded or changed by either refusal
    assert rows(proj) == before.rows and (proj.path / "results.tsv").read_bytes() == before.ledger_bytes
    assert ref(proj, f"refs/autoresearch/{TAG}/discarded/{before.iter}") is None
    assert run_json(proj)["harness_errors"] == 2  # counted, so the stop gate can let a stuck agent go
    proj.write("train.py", before.train)
    assert proj.git("status", "--porcelain") == ""


# ---------------------------------------------------------------------------
# kill -9 of `step` at each stage; the next command finishes or undoes it and records it


def test_kill_before_the_commit(proj):
    before = Before(proj)
    # a train.py the pre-checks take a while to parse: a window between the lock and the commit
    cand = model("killed during the pre-checks", extra="".join(f"_v{i} = {i}\n" for i in range(30_000)))
    proj.write("train.py", cand)
    lock = proj.path / ".autoresearch/lock"
    p = spawn(proj, "step")
    try:
        wait_for(lambda: lock.read_text().strip() == str(p.pid), 30, "the step to take the lock")
    finally:
        kill9(p)
    assert not pending_path(proj).exists(), "the kill came after the commit"
    assert ref(proj, f"refs/autoresearch/{TAG}/pending") is None
    r = proj.cli("status")
    assert r.returncode == 0 and "recovered" not in r.stdout and left_in(proj) == []
    # no iteration began: no row, nothing committed, the agent's edit still in place
    assert rows(proj) == before.rows and proj.git("rev-parse", "HEAD") == before.head
    assert proj.git("status", "--porcelain") == "M train.py" and proj.read("train.py") == cand
    proj.write("train.py", before.train)


SLEEPER = r"""
MARKER = "{marker}"


def build_pipeline(params):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", MARKER, "grandchild"])
    time.sleep(600)
"""


def test_kill_during_evaluation(proj):
    """A kill -9 of the step takes the whole sandbox with it (bubblewrap dies with its parent, and with it the
    PID namespace): the grandchild train.py started is gone at once; the next command records the step."""
    before = Before(proj)
    marker = f"sleeper-{uuid.uuid4().hex}"
    cand = source(
        "killed during evaluation", SLEEPER.format(marker=marker), "import subprocess\nimport sys\nimport time\n"
    )
    proj.write("train.py", cand)
    p = spawn(proj, "step")
    try:
        wait_for(lambda: marked(marker), BUDGET + 30, "the evaluation to start a grandchild")
        pending = json.loads(pending_path(proj).read_text())
        assert pending["stage"] == "evaluating"
    finally:
        kill9(p)
    # the kernel tears the PID namespace down at once, but on a busy machine the dying take a moment to exit
    wait_for(lambda: not marked(marker) and not carrying(pending["token"]), 15, "the sandbox to die with the step")
    assert proj.git("rev-parse", "HEAD") == before.head and rows(proj) == before.rows
    r = proj.cli("status")
    assert r.returncode == 0, r.stderr
    assert (
        f"recovered: iter {before.iter} was interrupted and is now recorded as CRASH (reverted) "
        "(interrupted: the step was killed during evaluation)"
    ) in r.stdout
    assert left_in(proj) == []
    rec = assert_failed_step(proj, before, "crash", cand)
    assert rec["reason"] == "interrupted: the step was killed during evaluation"


SLOW_HOLDOUT = r"""
def pause_on_the_whole_train_part(X):
    if len(X) > 3000:  # CV fits see ~2667 rows; only the holdout fit, after the verdict, sees all 4000
        time.sleep(3)
    return X


def build_pipeline(params):
    model = lgb.LGBMClassifier(n_estimators=200, learning_rate=0.05, num_leaves=15, random_state=SEED,
                               n_jobs=N_JOBS, verbose=-1)
    return make_pipeline(FunctionTransformer(pause_on_the_whole_train_part), model)
"""


def test_kill_between_the_verdict_and_the_ledger(proj):
    """A kept candidate: killed while its holdout is scored, after the verdict is journalled and before the
    branch moves or the row is written. The next command scores it again, moves the branch, writes the row."""
    before = Before(proj)
    cand = source(
        "LightGBM, killed before its row",
        SLOW_HOLDOUT,
        "import time\n\nimport lightgbm as lgb\nfrom sklearn.pipeline import make_pipeline\n"
        "from sklearn.preprocessing import FunctionTransformer\n\nfrom prepare import N_JOBS, SEED\n",
    )
    proj.write("train.py", cand)
    p = spawn(proj, "step")
    try:
        wait_for(
            lambda: (
                (json.loads(pending_path(proj).read_text()) if pending_path(proj).exists() else {}).get("stage")
                == "decided"
            ),
            BUDGET + 30,
            "the verdict",
        )
    finally:
        kill9(p)
    pending = json.loads(pending_path(proj).read_text())
    assert pending["record"]["status"] == "keep", pending["record"]
    cand_commit = pending["candidate"]
    assert proj.git("rev-parse", "HEAD") == before.head  # not moved yet, and never in between
    assert rows(proj) == before.rows
    r = proj.cli("status")
    assert r.returncode == 0, r.stderr
    assert re.search(
        rf"recovered: iter {before.iter} was interrupted and is now recorded as KEPT \(better with p=", r.stdout
    ), r.stdout
    new = rows(proj)
    assert new[:-1] == before.rows and [new[-1]["iter"], new[-1]["status"]] == [str(before.iter), "keep"]
    assert proj.git("rev-parse", "HEAD") == cand_commit and proj.git("rev-parse", "HEAD~1") == before.head
    assert proj.git("log", "-1", "--format=%s") == "LightGBM, killed before its row"
    assert proj.read("train.py") == cand and proj.git("status", "--porcelain") == ""
    assert not pending_path(proj).exists() and run_json(proj)["incumbent"]["commit"] == cand_commit
    hold = [json.loads(x) for x in (proj.path / f".autoresearch/runs/{TAG}/holdout.jsonl").read_text().splitlines()]
    mine = [h for h in hold if h["iter"] == before.iter]
    assert len(mine) == 1 and mine[0]["status"] == "ok" and mine[0]["commit"] == cand_commit
    assert f"{mine[0]['holdout']:.4f}" not in r.stdout + r.stderr  # the recovery does not show it either
    assert harness_problems(proj) == [] and left_in(proj) == []


HOLD_REVERT = """#!/bin/sh
# test fault injection: hold a file checkout (the revert of train.py) until released
if [ "$3" = "0" ] && [ -e "{out}/hold" ]; then
    : > "{out}/reverting"
    i=0
    while [ ! -e "{out}/release" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done
    : > "{out}/released"
fi
exit 0
"""


def test_kill_during_the_revert(proj, tmp_path):
    """The revert of train.py held by a git hook, put in once the step is past its checks (a git hook is a
    plant the step would refuse up front), then the step killed."""
    before = Before(proj)
    hook = proj.path / ".git/hooks/post-checkout"
    (tmp_path / "hold").touch()
    cand = source("crash, then a slow revert", "raise RuntimeError('crash on purpose')\n", "")
    proj.write("train.py", cand)
    p = spawn(proj, "step")
    try:
        wait_for(pending_path(proj).exists, BUDGET + 30, "the step to commit its candidate")
        hook.write_text(HOLD_REVERT.format(out=tmp_path))
        hook.chmod(0o755)
        wait_for(lambda: (tmp_path / "reverting").exists(), BUDGET + 30, "the revert")
    finally:
        kill9(p)
        (tmp_path / "release").touch()
        try:
            wait_for(lambda: (tmp_path / "released").exists(), 10, "the held git checkout to end")
        finally:
            hook.unlink(missing_ok=True)  # a hook left behind would refuse every later test's step
    pending = json.loads(pending_path(proj).read_text())
    assert pending["stage"] == "decided" and pending["record"]["status"] == "crash"
    assert proj.git("rev-parse", "HEAD") == before.head and rows(proj) == before.rows
    r = proj.cli("status")
    assert r.returncode == 0, r.stderr
    assert (
        f"recovered: iter {before.iter} was interrupted and is now recorded as CRASH (reverted) "
        "(RuntimeError: crash on purpose)"
    ) in r.stdout
    assert_failed_step(proj, before, "crash", cand)
    assert left_in(proj) == []


# ---------------------------------------------------------------------------
# A full disk during the ledger append

PAGE = 4096


def pad_ledger(proj, size: int) -> None:
    """Rows of an earlier run (another tag) until results.tsv is exactly `size` bytes."""
    path = proj.path / "results.tsv"
    row = lambda i, n: ledger.format_row(
        {
            "iter": i,
            "tag": "earlier",
            "time": "2024-01-01T00:00:00",  # noqa: E731
            "status": "discard",
            "hypothesis": "x" * n,
        }
    ).encode()
    stub = len(row(0, 0)) + 2  # iteration numbers may take more digits
    rows_, gap, i = [], size - path.stat().st_size, 0
    while gap > 0:
        i += 1
        n = gap if gap <= 400 else 200
        r = row(i, max(0, n - len(row(i, 0))))
        assert len(r) == n or n < stub, "cannot pad the ledger exactly"
        rows_.append(r)
        gap -= len(r)
    assert gap == 0
    with open(path, "ab") as f:
        f.write(b"".join(rows_))


class TmpfsDisk:
    """results.tsv on a tiny tmpfs of our own (needs root): a real ENOSPC."""

    error = "No space left on device"

    def __init__(self, proj, where: Path):
        self.proj, self.mnt = proj, where / "disk"
        self.mnt.mkdir()
        size = 64 * PAGE
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},nr_inodes=16", "tmpfs", str(self.mnt)], capture_output=True
        )
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()}); the rlimit variant covers it")
        ledger_file = proj.path / "results.tsv"
        (self.mnt / "results.tsv").write_bytes(ledger_file.read_bytes())
        ledger_file.unlink()
        ledger_file.symlink_to(self.mnt / "results.tsv")

    def fill(self) -> None:
        # the append must need a new page: tmpfs only runs out when a page is allocated
        size = (self.proj.path / "results.tsv").stat().st_size
        pad_ledger(self.proj, (size // PAGE + 2) * PAGE - 10)
        with open(self.mnt / "fill", "wb", buffering=0) as f, contextlib.suppress(OSError):
            while True:
                f.write(b"\0" * PAGE)

    def step(self):
        return self.proj.cli("step")

    def free(self) -> None:
        (self.mnt / "fill").unlink()

    def close(self) -> None:
        ledger_file = self.proj.path / "results.tsv"
        data = (self.mnt / "results.tsv").read_bytes()
        ledger_file.unlink()
        ledger_file.write_bytes(data)
        subprocess.run(["umount", str(self.mnt)], check=True)


class RlimitDisk:
    """Without root: RLIMIT_FSIZE on the step process, SIGXFSZ ignored, so growing results.tsv past its
    current size fails with EFBIG. Every other file a step writes is far smaller than the padded ledger."""

    error = "File too large"

    def __init__(self, proj, where: Path):
        self.proj, self.limit = proj, None

    def fill(self) -> None:
        size = (self.proj.path / "results.tsv").stat().st_size
        pad_ledger(self.proj, max(size, 64 << 10))
        self.limit = (self.proj.path / "results.tsv").stat().st_size + 5  # a short write first, then EFBIG

    def step(self):
        limit = self.limit

        def cap():
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

        p = spawn(self.proj, "step", preexec_fn=cap)
        out, err = p.communicate(timeout=BUDGET + 60)
        return subprocess.CompletedProcess(p.args, p.returncode, out, err)

    def free(self) -> None:
        self.limit = None

    def close(self) -> None:
        pass


@pytest.mark.parametrize("disk_kind", [TmpfsDisk, RlimitDisk], ids=["tmpfs", "rlimit"])
def test_full_disk_during_the_ledger_append(proj, tmp_path, disk_kind):
    disk = disk_kind(proj, tmp_path)
    try:
        for cand, status, label in (
            (
                source("crash on a full disk", "raise RuntimeError('crash on purpose')\n", ""),
                "crash",
                "CRASH (reverted) (RuntimeError: crash on purpose)",
            ),
            (model("invalid on a full disk", extra="import prepare\n"), "invalid", "INVALID (train.py line"),
        ):
            before = Before(proj)
            disk.fill()
            full = (proj.path / "results.tsv").read_bytes()
            proj.write("train.py", cand)
            r = disk.step()
            assert (r.returncode, r.stdout) == (2, ""), r.stdout + r.stderr
            assert r.stderr == (
                f"error: {proj.path / 'results.tsv'}: could not append the row ({disk.error}); "
                "free disk space and run `uv run autoresearch status` to record it (the step's "
                "verdict is kept in .autoresearch/runs/<tag>/pending.json until then)\n"
            )
            assert (proj.path / "results.tsv").read_bytes() == full  # no torn row
            assert json.loads(pending_path(proj).read_text())["record"]["status"] == status
            assert proj.git("rev-parse", "HEAD") == before.head
            disk.free()
            r = proj.cli("status")
            assert r.returncode == 0, r.stderr
            assert f"recovered: iter {before.iter} was interrupted and is now recorded as {label}" in r.stdout
            assert_failed_step(proj, before, status, cand, committed=status != "invalid")
            assert (proj.path / "results.tsv").read_bytes().startswith(full)
            proj.write("train.py", before.train)
    finally:
        disk.close()
