"""A child process tree under a hard wall-clock deadline and a memory cap, with its output in a capped log.

The watchdog looks only at the tree it started: the child and its descendants, read from the kernel's
per-thread `children` lists, so a poll costs what the evaluation's own processes cost, not what the rest of
the machine runs. In the sandbox that tree is everything (a PID namespace: orphans stay inside, and killing
bubblewrap kills it all). Without the sandbox, processes that leave the tree by a double fork come back to
this process (a child subreaper) and are found by the run token in their environment, which is read only
for such orphans. At the deadline or over the cap, everything found gets SIGKILL.
"""

from __future__ import annotations

import collections
import ctypes
import os
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
LINUX = sys.platform.startswith("linux")
PAGE = os.sysconf("SC_PAGE_SIZE")
_ROOTS: set[int] = set()  # the processes Watched started and still owns, in this process


def new_token() -> str:
    return uuid.uuid4().hex


class Watched:
    """Start `argv`; `stop()` kills what is left and returns. `ended` says why the watchdog killed it
    ("timeout" or "memory"), with `reason` in words."""

    def __init__(
        self,
        argv: list[str],
        *,
        cwd: Path,
        env: dict,
        deadline: float,
        memory_mb: int,
        log_path: Path | None,
        pass_fds: tuple[int, ...] = (),
        token: str | None = None,
        sandboxed: bool = True,
    ):
        if not sandboxed:
            become_subreaper()
        self.token, self.sandboxed = token or new_token(), sandboxed
        self.deadline, self.memory_mb = deadline, memory_mb
        self.ended: str | None = None
        self.reason: str | None = None
        self.peak_mb = 0.0
        self._known = frozenset(children_of(os.getpid())) if not sandboxed else frozenset()
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env={**env, TOKEN_VAR: self.token},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=pass_fds,
            start_new_session=True,
        )
        _ROOTS.add(self.proc.pid)
        self.log = CappedLog(log_path)
        self._done = threading.Event()
        self._threads = [
            threading.Thread(target=self.log.pump, args=(self.proc.stdout,), daemon=True),
            threading.Thread(target=self._watch, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _watch(self) -> None:
        while not self._done.is_set() and self.proc.poll() is None:
            if time.monotonic() > self.deadline:
                self._end("timeout", None)
                return
            pids = self.tree()
            rss = rss_mb(pids)
            if rss > self.memory_mb:
                used = pss_mb(pids)  # forks share their parent's pages, which resident sizes count twice
                self.peak_mb = max(self.peak_mb, used)
                if used > self.memory_mb:
                    self._end("memory", f"memory: used {used:.0f} MB, over the {self.memory_mb} MB cap")
                    return
            else:
                self.peak_mb = max(self.peak_mb, rss)
            self._done.wait(POLL_S)

    def _end(self, why: str, reason: str | None) -> None:
        if self.ended is None:
            self.ended, self.reason = why, reason
        self.kill()

    def tree(self) -> list[int]:
        pids = descendants(self.proc.pid)
        if not self.sandboxed:
            # double-forked escapees come back to us, the subreaper: any child of ours that no Watched started
            # and that was not there before is one (a daemon that scrubbed its environment has no token)
            for p in children_of(os.getpid()):
                if p not in self._known and p not in _ROOTS:
                    pids += descendants(p)
        return pids

    def kill(self, timeout_s: float = 2.0) -> None:
        end = time.monotonic() + timeout_s
        while True:
            pids = [p for p in self.tree() if alive(p)]
            if not self.sandboxed:
                _signal_group(self.proc.pid)
            for pid in pids:
                _signal(pid)
            if not self.sandboxed:
                reap_orphans(self._known | _ROOTS)
            if not pids or time.monotonic() > end:
                return
            time.sleep(0.01)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> str:
        """Kill the tree, wait for the child, close the log; returns the output's tail."""
        self._done.set()
        self.kill()
        self.proc.wait()
        _ROOTS.discard(self.proc.pid)
        for t in self._threads:
            t.join(timeout=2)
        return self.log.close()

    @property
    def wall_s(self) -> float:
        return time.monotonic() - self.started


# ---------------------------------------------------------------------------
# The tree, and what it uses


def children_of(pid: int) -> list[int]:
    """The direct children of pid, from /proc/<pid>/task/<tid>/children (no scan of the machine)."""
    if not _HAS_CHILDREN_FILES:
        return [p for p, pp in _parents().items() if pp == pid]
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for t in tasks:
        try:
            with open(f"/proc/{pid}/task/{t}/children", "rb") as f:
                out.extend(int(x) for x in f.read().split())
        except OSError:
            continue
    return out


def descendants(pid: int) -> list[int]:
    """pid and every process below it."""
    if _HAS_CHILDREN_FILES:
        below = children_of
    else:  # one table of the machine for the whole walk, not one per process
        kids: dict[int, list[int]] = collections.defaultdict(list)
        for p, pp in _parents().items():
            kids[pp].append(p)
        below = kids.__getitem__
    out, stack = [], [pid]
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(p2 for p2 in below(p) if p2 != p)
    return out


def _parents() -> dict[int, int]:
    """pid -> ppid for the whole machine: only where the kernel has no children lists (`ps` where no /proc)."""
    if not _HAS_PROC:
        return {pid: row[0] for pid, row in _ps().items()}
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (st := _stat(int(name))):
            out[int(name)] = st[1]
    return out


def _ps(pids: list[int] | None = None) -> dict[int, tuple[int, str, int]]:
    """pid -> (ppid, state, rss KiB) from `ps` (POSIX -o fields; macOS has no /proc). Empty when ps fails."""
    which = ["-p", ",".join(map(str, pids))] if pids else ["-A"]
    try:
        raw = subprocess.run(
            ["ps", *which, "-o", "pid=,ppid=,state=,rss="], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    out = {}
    for line in raw.splitlines():
        f = line.split()
        if len(f) == 4 and f[0].isdigit() and f[1].isdigit() and f[3].isdigit():
            out[int(f[0])] = (int(f[1]), f[2], int(f[3]))
    return out


_HAS_PROC = os.path.isdir(f"/proc/{os.getpid()}")
_HAS_CHILDREN_FILES = os.path.exists(f"/proc/{os.getpid()}/task/{os.getpid()}/children")


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, ppid) of a process, or None when it is gone."""
    if not _HAS_PROC:
        row = _ps([pid]).get(pid)
        return None if row is None else (row[1][:1], row[0])
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2 :].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def rss_mb(pids: list[int]) -> float:
    if not _HAS_PROC:
        return sum(row[2] for row in _ps(pids).values()) / 1024 if pids else 0.0
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total * PAGE / (1 << 20)


def pss_mb(pids: list[int]) -> float:
    if not _HAS_PROC:
        return rss_mb(pids)  # no proportional figure there: shared pages count in full (stricter, never laxer)
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1])
                        break
        except (OSError, IndexError, ValueError):
            continue
    return total / 1024


def has_token(pid: int, token: str) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f"{TOKEN_VAR}={token}".encode() in f.read()
    except OSError:
        return False


def kill_token(token: str) -> int:
    """Kill every process carrying `token` (left behind when its parent was killed); how many. A scan of the
    machine, so only for recovery after a kill, never in a poll."""
    if not _HAS_PROC:  # no other process's environment to read there: the process groups are killed instead
        return 0
    pids = [int(n) for n in os.listdir("/proc") if n.isdigit() and alive(int(n)) and has_token(int(n), token)]
    for pid in pids:
        _signal(pid)
    return len(pids)


def _signal(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def become_subreaper() -> None:
    """Orphans of our children come to us instead of init, so the watchdog can still find and kill them."""
    if LINUX:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
        except (OSError, AttributeError):
            pass


def reap_orphans(keep: frozenset[int] | set[int]) -> None:
    """Reap killed orphans (as a subreaper we inherit them); children in `keep` are left to their owners."""
    for pid in children_of(os.getpid()):
        if pid not in keep and (_stat(pid) or ("",))[0] == "Z":
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


# ---------------------------------------------------------------------------
# The log


class CappedLog:
    """Keeps the first LOG_HEAD_BYTES and the last LOG_TAIL_BYTES of the child's output on disk."""

    def __init__(self, path: Path | None):
        self.path = path
        if path:
            path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, "wb") if path else None  # noqa: SIM115 - closed in close()
        self.head = 0
        self.dropped = 0
        self.tail: collections.deque = collections.deque()
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
            self.f = None
        return tail.decode("utf-8", errors="replace")
