"""Run one evaluation in a child process under a hard wall-clock budget and a memory cap.

An in-process alarm cannot stop native code, so the budget is enforced from outside: the child runs in
its own session, every process it starts carries a token in its environment, and at the budget (or at
the memory cap) all of them get SIGKILL. The parent is a child subreaper, so grandchildren that
double-fork and leave the session are re-parented here and killed too.

The child reports over a pipe of its own (JSON lines), never over stdout, so train.py's prints cannot
forge a result. stdout and stderr go to a log capped on disk: the head and a tail are kept.
"""

from __future__ import annotations

import collections
import ctypes
import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

LOG_HEAD_BYTES = 1 << 20
LOG_TAIL_BYTES = 64 << 10
POLL_S = 0.05
TOKEN_VAR = "AUTORESEARCH_RUN_TOKEN"
RESULT_FD_VAR = "AUTORESEARCH_RESULT_FD"
PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclasses.dataclass
class RunResult:
    status: str  # ok | crash | timeout
    reason: str | None
    events: list[dict]
    wall_s: float
    returncode: int | None
    log_path: Path | None
    tail: str

    def last(self, kind: str) -> dict | None:
        return next((e for e in reversed(self.events) if e.get("event") == kind), None)


def run_child(
    argv: list[str],
    *,
    cwd: Path,
    budget_s: float,
    memory_mb: int,
    log_path: Path | None,
    env: dict | None = None,
    on_event=None,
    token: str | None = None,
) -> RunResult:
    """Run argv; the child writes JSON lines to the fd named in $AUTORESEARCH_RESULT_FD.

    on_event(event) may return "stop" to have the child killed early (not a failure). `token` marks
    every process of this run; a caller that may itself be killed records it, so kill_token can
    clean up after it.
    """
    _become_subreaper()
    token = token or new_token()
    known = _children_of_mine()  # anything already ours is not this run's: never kill or reap it
    rfd, wfd = os.pipe()
    child_env = dict(os.environ if env is None else env)
    child_env.update({TOKEN_VAR: token, RESULT_FD_VAR: str(wfd), "PYTHONUNBUFFERED": "1"})
    t0 = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=child_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        pass_fds=(wfd,),
        start_new_session=True,
        preexec_fn=lambda: _limit_child(memory_mb),
    )
    os.close(wfd)
    log = _CappedLog(log_path)
    events: list[dict] = []
    stop_early = threading.Event()
    threads = [
        threading.Thread(target=log.pump, args=(proc.stdout,), daemon=True),
        threading.Thread(target=_read_events, args=(rfd, events, on_event, stop_early), daemon=True),
    ]
    for t in threads:
        t.start()

    status, reason = None, None
    while proc.poll() is None:
        if time.monotonic() - t0 > budget_s:
            status, reason = "timeout", f"exceeded the {budget_s:g} s budget"
            break
        if stop_early.is_set():
            status = "ok"
            break
        rss = _tree_rss_mb(proc.pid, token, known)
        if rss > memory_mb:
            status, reason = "crash", f"memory: used {rss:.0f} MB, over the {memory_mb} MB cap"
            break
        time.sleep(POLL_S)
    kill_tree(proc.pid, token, known=known)
    proc.wait()
    for t in threads:
        t.join(timeout=2)
    wall = time.monotonic() - t0
    tail = log.close()
    if status is None:
        status, reason = _judge_exit(proc.returncode, events)
    return RunResult(status, reason, events, wall, proc.returncode, log_path, tail)


def _judge_exit(code: int, events: list[dict]) -> tuple[str, str | None]:
    err = next((e for e in reversed(events) if e.get("event") == "error"), None)
    if err:
        return "crash", err.get("reason", "the evaluation failed")
    if any(e.get("event") == "done" for e in events):
        return ("ok", None) if code == 0 else ("crash", f"exited with code {code} after reporting")
    if code == -signal.SIGKILL:
        return "crash", "memory: killed by the kernel (SIGKILL), most likely out of memory"
    if code is not None and code < 0:
        return "crash", f"killed by signal {signal.Signals(-code).name}"
    return "crash", f"exited with code {code} before reporting a result (sys.exit or os._exit in train.py?)"


# ---------------------------------------------------------------------------
# The child's side of the pipe


def emit(event: dict) -> None:
    """Called in the child: send one event to the parent (no-op when run outside the runner)."""
    fd = os.environ.get(RESULT_FD_VAR)
    if fd is None:
        return
    os.write(int(fd), (json.dumps(event) + "\n").encode())


def _read_events(fd: int, events: list, on_event, stop_early: threading.Event) -> None:
    buf = b""
    with os.fdopen(fd, "rb", buffering=0) as f:
        while chunk := f.read(65536):
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                events.append(event)
                if on_event is not None and on_event(event) == "stop":
                    stop_early.set()


class _CappedLog:
    """Keeps the first LOG_HEAD_BYTES and the last LOG_TAIL_BYTES of the child's output on disk."""

    def __init__(self, path: Path | None):
        self.path = path
        self.f = open(path, "wb") if path else None
        self.head = 0
        self.dropped = 0
        self.tail = collections.deque()
        self.tail_bytes = 0

    def pump(self, stream) -> None:
        while chunk := stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536):
            room = LOG_HEAD_BYTES - self.head
            if room > 0 and self.f:
                self.f.write(chunk[:room])
                self.head += min(room, len(chunk))
            self.tail.append(chunk)
            self.tail_bytes += len(chunk)
            while self.tail_bytes - len(self.tail[0]) >= LOG_TAIL_BYTES:
                self.tail_bytes -= len(self.tail.popleft())
            if room <= 0 or len(chunk) > room:
                self.dropped += len(chunk) - max(room, 0)

    def close(self) -> str:
        tail = b"".join(self.tail)[-LOG_TAIL_BYTES:]
        if self.f:
            if self.dropped:
                omitted = max(0, self.dropped - len(tail))
                self.f.write(f"\n[... {omitted} bytes omitted: output over the log cap ...]\n".encode())
                self.f.write(tail[-min(len(tail), self.dropped) :])
            self.f.close()
        return tail.decode("utf-8", errors="replace")


# ---------------------------------------------------------------------------
# Limits and killing


def new_token() -> str:
    return uuid.uuid4().hex


def kill_token(token: str) -> int:
    """Kill every process carrying `token` (left behind when the parent was killed); returns how many."""
    pids = [pid for pid, _, _, state, _ in _processes() if state != "Z" and _has_token(pid, token)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    return len(pids)


def _limit_child(memory_mb: int) -> None:
    # if the parent (a step) is killed with -9, the child dies with it instead of running on unbudgeted
    ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    # Address space is a backstop for a single runaway allocation; the RSS watchdog is the real cap,
    # because thread stacks and arenas reserve far more address space than they ever touch.
    cap = (memory_mb * 4 + 2048) << 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def _become_subreaper() -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):
            pass


def _processes():
    """(pid, ppid, session, state, rss_pages) for every live process."""
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        yield int(name), int(fields[1]), int(fields[3]), fields[0], int(fields[21])


def _has_token(pid: int, token: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"{TOKEN_VAR}={token}".encode() in f.read()
    except OSError:
        return False


def _children_of_mine() -> frozenset[int]:
    me = os.getpid()
    return frozenset(pid for pid, ppid, _, _, _ in _processes() if ppid == me)


def _tree(child_pid: int, token: str, known: frozenset[int] = frozenset()) -> list[tuple[int, int]]:
    """(pid, rss_pages) of the child, its session, anything carrying its token, orphans re-parented here
    (a double-forked daemon that also scrubbed its environment has nothing else to find it by), and all
    their descendants."""
    me = os.getpid()
    live = [p for p in _processes() if p[3] != "Z" and p[0] != me]
    found = {
        pid
        for pid, ppid, sid, _, _ in live
        if pid == child_pid or sid == child_pid or (ppid == me and pid not in known) or _has_token(pid, token)
    }
    while True:
        more = {pid for pid, ppid, _, _, _ in live if ppid in found and pid not in found}
        if not more:
            return [(pid, rss) for pid, _, _, _, rss in live if pid in found]
        found |= more


def _tree_rss_mb(child_pid: int, token: str, known: frozenset[int] = frozenset()) -> float:
    return sum(rss for _, rss in _tree(child_pid, token, known)) * PAGE / (1 << 20)


def kill_tree(child_pid: int, token: str, timeout_s: float = 2.0, known: frozenset[int] = frozenset()) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.killpg(child_pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        alive = [pid for pid, _ in _tree(child_pid, token, known)]
        for pid in alive:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        _reap_orphans(child_pid, known)
        if not alive or time.monotonic() > deadline:
            return
        time.sleep(0.02)


def _reap_orphans(child_pid: int, known: frozenset[int] = frozenset()) -> None:
    """As a subreaper we inherit killed grandchildren; reap them so they do not linger as zombies.
    The child itself is left to Popen.wait, which needs its exit status, and so are our other children."""
    for pid, ppid, _, state, _ in list(_processes()):
        if ppid == os.getpid() and state == "Z" and pid != child_pid and pid not in known:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
