"""The budgeted child runner: real processes that sleep, spin in native code, fork daemons, hog memory, flood.

Every misbehaving process records its pid and its run token in files, and the tests check /proc afterwards:
nothing that carries the run's token may be left running.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest
from conftest import make_project

from autoresearch.config import load_config
from autoresearch.harness import evaluate
from autoresearch.prepared import prepare
from autoresearch.runner import LOG_HEAD_BYTES, LOG_TAIL_BYTES, TOKEN_VAR, run_child

# One script, many behaviours: `python misbehave.py MODE OUT_DIR`. Every process it becomes appends
# "<mode> <pid>" to OUT_DIR/pids before misbehaving, so the test knows what must be dead afterwards.
MISBEHAVE = r'''
import os, re, signal, subprocess, sys, time

mode, out = sys.argv[1], sys.argv[2]

def record(kind):
    with open(os.path.join(out, "pids"), "a") as f:
        f.write(f"{kind} {os.getpid()}\n")
    token = os.environ.get("AUTORESEARCH_RUN_TOKEN")
    if token:
        with open(os.path.join(out, "token"), "w") as f:
            f.write(token)

def spawn(kind):
    return subprocess.Popen([sys.executable, __file__, kind, out])

def daemon(kind, clean_env):
    """The classic double fork: setsid in between, so the survivor has no session and no parent."""
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            fd = os.open(os.devnull, os.O_RDWR)
            for std in (0, 1, 2):
                os.dup2(fd, std)
            argv = [sys.executable, __file__, kind, out]
            os.execve(sys.executable, argv, {} if clean_env else dict(os.environ))
        os._exit(0)
    os.wait()

def wait_for(n):
    while sum(1 for _ in open(os.path.join(out, "pids"))) < n:
        time.sleep(0.01)

if mode == "sleep":
    record(mode)
    time.sleep(10**6)
elif mode == "ignore_term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    record(mode)
    while True:
        time.sleep(1)
elif mode == "spin":
    # catastrophic backtracking: hours inside the regex engine, holding the GIL, deaf to Python signal handlers
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    record(mode)
    re.match(r"(a|aa)+$", "a" * 64 + "b")
elif mode == "family":
    record(mode)
    spawn("sleep")
    spawn("ignore_term")
    daemon("sleep", clean_env=False)
    wait_for(4)
    time.sleep(10**6)
elif mode == "clean_daemon":
    record(mode)
    daemon("ignore_term", clean_env=True)
    wait_for(2)
    time.sleep(10**6)
elif mode == "hog":
    record(mode)
    hoard = []
    while True:
        hoard.append(b"x" * (16 << 20))  # written, so resident: not just reserved address space
        time.sleep(0.01)
elif mode == "hog_part":
    record(mode)
    wait_for(4)  # all started before any allocates: the cap must see their sum, not just one of them
    hoard = b"x" * (150 << 20)
    time.sleep(10**6)
elif mode == "hog_family":
    record(mode)
    for _ in range(3):
        spawn("hog_part")
    time.sleep(10**6)
elif mode == "flood":
    record(mode)
    line = b"flood " + b"x" * 1017 + b"\n"  # 1 KiB
    block = line * 1024
    for _ in range(100):
        sys.stdout.buffer.write(block)
    sys.stdout.buffer.write(b"THE END\n")
    sys.stdout.flush()
    from autoresearch.runner import emit
    emit({"event": "done", "mean": 1.0})
'''


def make_dirs(tmp_path: Path) -> tuple[Path, Path]:
    script = tmp_path / "misbehave.py"
    script.write_text(MISBEHAVE)
    out = tmp_path / "out"
    out.mkdir()
    (out / "pids").touch()
    return script, out


def recorded(out: Path) -> tuple[list[tuple[str, int]], str | None]:
    pids = [(line.split()[0], int(line.split()[1])) for line in (out / "pids").read_text().splitlines()]
    token = (out / "token").read_text() if (out / "token").exists() else None
    return pids, token


def run(tmp_path: Path, mode: str, budget_s: float = 2.0, memory_mb: int = 2048):
    script, out = make_dirs(tmp_path)
    t0 = time.monotonic()
    result = run_child(
        [sys.executable, str(script), mode, str(out)],
        cwd=tmp_path,
        budget_s=budget_s,
        memory_mb=memory_mb,
        log_path=tmp_path / "run.log",
    )
    return result, time.monotonic() - t0, *recorded(out)


def running(pid: int) -> bool:
    """Alive and not a zombie (a zombie is dead; it only waits to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def carrying(token: str) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                if f"{TOKEN_VAR}={token}".encode() in Path(f"/proc/{name}/environ").read_bytes():
                    found.append(int(name))
            except OSError:
                pass
    return [pid for pid in found if running(pid)]


def assert_all_dead(pids, token):
    assert token, "the run token never reached the child's environment"
    survivors = {pid: kind for kind, pid in pids if running(pid)} | {pid: "token" for pid in carrying(token)}
    for pid in survivors:  # do not leave them behind for the next test, then fail
        os.kill(pid, 9)
    assert not survivors, f"left running: {survivors}"


# ---------------------------------------------------------------------------
# The budget: every process is dead within budget_s + 2 s


@pytest.mark.parametrize("mode, n_procs", [("sleep", 1), ("spin", 1), ("family", 4), ("clean_daemon", 2)])
def test_killed_at_the_budget(tmp_path, mode, n_procs):
    result, elapsed, pids, token = run(tmp_path, mode, budget_s=2.0)
    assert_all_dead(pids, token)  # first: it also kills what survived, so no failure leaves strays behind
    assert len(pids) == n_procs, f"not every process started before the budget: {pids}"
    assert result.status == "timeout" and result.reason == "exceeded the 2 s budget"
    assert 2.0 <= elapsed < 2.0 + 2.0


def test_hanging_train_py_with_a_family_is_killed(tmp_path_factory, tmp_path):
    """The same through the harness: a train.py whose build_pipeline starts children and a daemon, then hangs."""
    proj = make_project(tmp_path_factory.mktemp("hang") / "proj")
    prepare(load_config(proj.path))
    script, out = make_dirs(tmp_path)
    train = proj.write(
        "train.py",
        (
            "import subprocess, sys, time\n"
            "HYPOTHESIS = 'hang'\nCATEGORY = 'test'\nPARAMS = {}\n\n"
            "def build_pipeline(params):\n"
            f"    subprocess.Popen([sys.executable, {str(script)!r}, 'family', {str(out)!r}])\n"
            "    time.sleep(10**6)\n"
        ),
    )
    # the child imports pandas and reads the folds before it reaches train.py: seconds on a quiet machine,
    # far more on a loaded one, so a budget spent before train.py got going is retried with a larger one
    for budget in (10, 40):
        (out / "pids").write_text("")
        t0 = time.monotonic()
        result = evaluate(load_config(proj.path), train, "cv", budget_s=budget)
        elapsed = time.monotonic() - t0
        pids, token = recorded(out)
        if pids:
            assert_all_dead(pids, token)
        if len(pids) == 4:
            break
    assert len(pids) == 4, f"train.py's family did not get going before the budget: {pids}"
    assert result.status == "timeout" and budget <= elapsed < budget + 2


# ---------------------------------------------------------------------------
# The memory cap (all the run's processes together)


@pytest.mark.parametrize("mode, n_procs", [("hog", 1), ("hog_family", 4)])
def test_memory_cap(tmp_path, mode, n_procs):
    result, elapsed, pids, token = run(tmp_path, mode, budget_s=60, memory_mb=300)
    assert result.status == "crash"
    assert result.reason.startswith("memory: used ") and result.reason.endswith("over the 300 MB cap")
    assert len(pids) == n_procs
    assert_all_dead(pids, token)


# ---------------------------------------------------------------------------
# Output


def test_output_flood_is_capped_and_the_run_ends_cleanly(tmp_path):
    result, _, pids, token = run(tmp_path, "flood", budget_s=60)
    assert (result.status, result.reason, result.returncode) == ("ok", None, 0)
    assert result.last("done") == {"event": "done", "mean": 1.0}
    log = (tmp_path / "run.log").read_bytes()
    assert LOG_HEAD_BYTES < len(log) <= LOG_HEAD_BYTES + LOG_TAIL_BYTES + 200
    assert log.startswith(b"flood xxx") and log.endswith(b"THE END\n")
    dropped = 100 * (1 << 20) + len(b"THE END\n") - LOG_HEAD_BYTES
    marker = log[LOG_HEAD_BYTES : log.index(b"]\n", LOG_HEAD_BYTES) + 2]
    assert marker.startswith(b"\n[... ") and marker.endswith(b" bytes omitted: output over the log cap ...]\n")
    kept = len(log) - LOG_HEAD_BYTES - len(marker)
    assert int(marker.split()[1]) + kept == dropped  # head + omitted + tail == everything written
    assert result.tail.endswith("THE END\n") and len(result.tail) <= LOG_TAIL_BYTES
    assert_all_dead(pids, token)


def test_stdout_cannot_forge_a_result(tmp_path):
    script = tmp_path / "forge.py"
    script.write_text('import json\nprint(json.dumps({"event": "done", "mean": 99.0}))\n')
    result = run_child([sys.executable, str(script)], cwd=tmp_path, budget_s=30, memory_mb=512, log_path=None)
    assert result.events == [] and result.status == "crash"
    assert result.reason.startswith("exited with code 0 before reporting a result")
    assert '"mean": 99.0' in result.tail
