"""The watchdog (autoresearch.processes): real processes that sleep, spin in native code, fork daemons, hog
memory and flood their output, run bare (sandbox = false) and inside bubblewrap.

Every process the script becomes carries a unique marker in its command line, so the test finds them in /proc
from outside, sandbox or not: nothing with the marker may be left running.
"""

from __future__ import annotations

import os
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import fake_estimator, make_project

from autoresearch import engine, sandbox
from autoresearch.config import load_config
from autoresearch.manifest import prepare
from autoresearch.processes import LOG_HEAD_BYTES, LOG_TAIL_BYTES, Watched

# `python misbehave.py MODE MARKER`: every process it becomes keeps MARKER in its argv.
MISBEHAVE = r'''
import os, re, signal, subprocess, sys, time

mode, marker = sys.argv[1], sys.argv[2]

def spawn(kind):
    return subprocess.Popen([sys.executable, __file__, kind, marker])

def daemon(kind, clean_env):
    """The classic double fork: setsid in between, so the survivor has no session and no parent."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            fd = os.open(os.devnull, os.O_RDWR)
            for std in (0, 1, 2):
                os.dup2(fd, std)
            os.execve(sys.executable, [sys.executable, __file__, kind, marker], {} if clean_env else dict(os.environ))
        os._exit(0)
    os.wait()

if mode == "sleep":
    time.sleep(10**6)
elif mode == "ignore_term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        time.sleep(1)
elif mode == "spin":
    # catastrophic backtracking: hours inside the regex engine, holding the GIL, deaf to Python signal handlers
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    re.match(r"(a|aa)+$", "a" * 64 + "b")
elif mode == "family":
    spawn("sleep")
    spawn("ignore_term")
    daemon("sleep", clean_env=False)
    time.sleep(10**6)
elif mode == "clean_daemon":
    daemon("ignore_term", clean_env=True)
    time.sleep(10**6)
elif mode == "hog":
    hoard = []
    while True:
        hoard.append(b"x" * (16 << 20))  # written, so resident: not just reserved address space
        time.sleep(0.01)
elif mode == "hog_part":
    time.sleep(1.0)  # all started before any allocates: the cap must see their sum, not just one of them
    hoard = b"x" * (150 << 20)
    time.sleep(10**6)
elif mode == "hog_family":
    for _ in range(3):
        spawn("hog_part")
    time.sleep(10**6)
elif mode == "flood":
    line = b"flood " + b"x" * 1017 + b"\n"  # 1 KiB
    block = line * 1024
    for _ in range(100):
        sys.stdout.buffer.write(block)
    sys.stdout.buffer.write(b"THE END\n")
    sys.stdout.flush()
'''
MODES = ["bare", "bwrap"]


def marked(marker: str, wrappers: bool = False) -> list[int]:
    """Live processes whose command line carries the marker (zombies are dead: they only wait to be reaped);
    bubblewrap's own processes, which carry it in the command they run, only with wrappers."""
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
            if marker.encode() in cmdline and (wrappers or not cmdline.split(b"\0")[0].endswith(b"bwrap")):
                stat = Path(f"/proc/{name}/stat").read_text()
                if stat[stat.rfind(")") + 2] not in "ZX":
                    found.append(int(name))
        except OSError:
            pass
    return found


def assert_all_dead(marker: str) -> None:
    survivors = marked(marker, wrappers=True)
    for pid in survivors:  # do not leave them behind for the next test, then fail
        os.kill(pid, 9)
    assert not survivors, f"left running: {survivors}"


def run(tmp_path: Path, mode: str, how: str, budget_s: float = 2.0, memory_mb: int = 2048, want: int = 1):
    """Run the script until it ends or the watchdog ends it; (watched, elapsed, most processes seen, marker)."""
    script = tmp_path / "misbehave.py"
    script.write_text(MISBEHAVE)
    marker = f"marker-{uuid.uuid4().hex}"
    command = [sys.executable, str(script), mode, marker]
    if how == "bwrap":
        sandbox.check("bwrap")
        command = sandbox.bwrap_argv(sandbox.view(script, {}, None, 64), command)
    t0 = time.monotonic()
    w = Watched(
        command,
        cwd=tmp_path,
        env=dict(os.environ),
        deadline=t0 + budget_s,
        memory_mb=memory_mb,
        log_path=tmp_path / "run.log",
        sandboxed=how == "bwrap",
    )
    seen = 0
    while w.alive() and w.ended is None:
        seen = max(seen, len(marked(marker)))
        time.sleep(0.02)
    elapsed = time.monotonic() - t0
    w.tail = w.stop()
    return w, elapsed, seen, marker


# ---------------------------------------------------------------------------
# The budget: every process is dead within budget_s + 2 s


@pytest.mark.parametrize("how", MODES)
@pytest.mark.parametrize("mode, n_procs", [("sleep", 1), ("spin", 1), ("family", 4), ("clean_daemon", 2)])
def test_killed_at_the_budget(tmp_path, how, mode, n_procs):
    budget = 3.0 if how == "bwrap" else 2.0  # bwrap's own start is part of the budget
    w, elapsed, seen, marker = run(tmp_path, mode, how, budget_s=budget)
    assert_all_dead(marker)  # first: it also kills what survived, so no failure leaves strays behind
    assert seen == n_procs, f"not every process started before the budget: {seen} of {n_procs}"
    assert w.ended == "timeout"
    assert budget <= elapsed < budget + 2.0


@pytest.mark.parametrize("how", MODES)
@pytest.mark.parametrize("mode, n_procs", [("hog", 1), ("hog_family", 4)])
def test_memory_cap(tmp_path, how, mode, n_procs):
    w, elapsed, seen, marker = run(tmp_path, mode, how, budget_s=60, memory_mb=300)
    assert w.ended == "memory", (w.ended, w.reason)
    assert w.reason.startswith("memory: used ") and w.reason.endswith("over the 300 MB cap")
    assert seen == n_procs and elapsed < 30
    assert_all_dead(marker)


@pytest.mark.parametrize("mode, ended", [("family", "timeout"), ("clean_daemon", "timeout"), ("hog_family", "memory")])
def test_the_watchdog_without_proc(tmp_path, monkeypatch, mode, ended):
    """macOS has no /proc: the tree, liveness and memory come from `ps` there. The same path, forced here,
    must end the same misbehaviours as the /proc path does."""
    from autoresearch import processes

    monkeypatch.setattr(processes, "_HAS_PROC", False)
    monkeypatch.setattr(processes, "_HAS_CHILDREN_FILES", False)
    assert processes.alive(os.getpid()) and not processes.alive(2**22 + 7)
    assert os.getpid() in processes.descendants(os.getppid())
    assert processes.rss_mb([os.getpid()]) > 10  # this interpreter, with pytest loaded
    w, elapsed, seen, marker = run(tmp_path, mode, "bare", budget_s=3.0 if ended == "timeout" else 60, memory_mb=300)
    assert_all_dead(marker)
    assert w.ended == ended, (w.ended, w.reason)
    assert elapsed < (5.0 if ended == "timeout" else 30)


@pytest.mark.parametrize("how", MODES)
def test_output_flood_is_capped_and_the_run_ends_cleanly(tmp_path, how):
    w, _, _, marker = run(tmp_path, "flood", how, budget_s=60)
    assert w.ended is None and w.proc.returncode == 0
    log = (tmp_path / "run.log").read_bytes()
    assert LOG_HEAD_BYTES < len(log) <= LOG_HEAD_BYTES + LOG_TAIL_BYTES + 200
    assert log.startswith(b"flood xxx") and log.endswith(b"THE END\n")
    dropped = 100 * (1 << 20) + len(b"THE END\n") - LOG_HEAD_BYTES
    mark = log[LOG_HEAD_BYTES : log.index(b"]\n", LOG_HEAD_BYTES) + 2]
    assert mark.startswith(b"\n[... ") and mark.endswith(b" bytes omitted: output over the log cap ...]\n")
    kept = len(log) - LOG_HEAD_BYTES - len(mark)
    assert int(mark.split()[1]) + kept == dropped  # head + omitted + tail == everything written
    assert w.tail.endswith("THE END\n") and len(w.tail) <= LOG_TAIL_BYTES
    assert_all_dead(marker)


# ---------------------------------------------------------------------------
# Through the engine: a train.py whose build_pipeline starts children and a daemon, then hangs


def prepared_project(tmp_path_factory, name: str, sandboxed: bool):
    """A prepared project of 3 folds for engine.cross_validate, and a marker for train.py's processes."""
    proj = make_project(
        tmp_path_factory.mktemp(name) / "proj",
        config={"folds": 3, "repeats": 1, "budget_s": 60, "sandbox": sandboxed},
    )
    prepare(load_config(proj.path))
    return proj, f"marker-{uuid.uuid4().hex}"


@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandbox", "no-sandbox"])
def test_hanging_train_py_with_a_family_is_killed(tmp_path_factory, sandboxed):
    proj, marker = prepared_project(tmp_path_factory, "hang", sandboxed)
    train = proj.write(
        "train.py",
        f"import subprocess, sys, time\n\nMISBEHAVE = {MISBEHAVE!r}\n"
        "HYPOTHESIS = 'hang'\nCATEGORY = 'test'\nPARAMS = {}\n\n"
        "def build_pipeline(params):\n"
        "    subprocess.Popen([sys.executable, '-c', MISBEHAVE.replace('__file__', repr(__file__)), 'family', "
        f"{marker!r}])\n"
        "    time.sleep(10**6)\n",
    )
    # the sandbox imports pandas before it reaches train.py: seconds on a quiet machine, far more on a loaded
    # one, so a budget spent before train.py got going is retried with a larger one
    for budget in (12, 40):
        t0 = time.monotonic()
        out = engine.cross_validate(load_config(proj.path), train, "cv", budget_s=budget)
        elapsed = time.monotonic() - t0
        assert_all_dead(marker)
        if out.fold_s or "family" in out.tail or elapsed >= budget:
            break
    assert out.status == "timeout" and out.reason == f"exceeded the {budget} s budget"
    assert budget <= elapsed < budget + 2


@pytest.mark.parametrize("sandboxed", [True, False], ids=["sandbox", "no-sandbox"])
def test_a_fold_that_will_not_end_after_its_reply_is_ended(tmp_path_factory, sandboxed):
    """A train.py whose process hangs once its predictions are sent (its stdout never finishes flushing, and a
    child it started ignores SIGTERM): the harness ends each fold as soon as it has the reply, so the
    evaluation finishes on the folds' honest scores instead of waiting out the budget, and nothing is left."""
    proj, marker = prepared_project(tmp_path_factory, "linger", sandboxed)
    train = proj.write(
        "train.py",
        "import subprocess, sys, time\n\nimport numpy as np\n\n"
        f"MISBEHAVE = {MISBEHAVE!r}\n"
        "HYPOTHESIS = 'linger'\nCATEGORY = 'test'\nPARAMS = {}\n\n\n"
        "class Stuck:\n"
        "    def write(self, text):\n"
        "        return len(text)\n\n"
        "    def flush(self):\n"
        "        time.sleep(10**6)\n\n\n"
        "sys.stdout = Stuck()  # the fold's last act is to flush it: it never ends by itself\n"
        "subprocess.Popen([sys.executable, '-c', MISBEHAVE.replace('__file__', repr(__file__)), 'ignore_term', "
        f"{marker!r}])\n" + fake_estimator(),
    )
    t0 = time.monotonic()
    out = engine.cross_validate(load_config(proj.path), train, "cv", budget_s=45)
    elapsed = time.monotonic() - t0
    assert_all_dead(marker)
    assert out.status == "ok", (out.status, out.reason, out.tail[-2000:])
    assert out.scores == [0.5, 0.5, 0.5] and elapsed < 40
    assert all(c >= 0 for c in out.cpu_s) and len(out.cpu_s) == 3, out.cpu_s  # every exit was collected
