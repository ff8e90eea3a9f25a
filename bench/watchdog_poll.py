"""What one watchdog poll costs with many unrelated processes on the machine (issue 13: 6.4 ms per poll with
97 processes, 96 ms with 497, against a 50 ms poll interval, taken from the budgeted evaluation).

    uv run python bench/watchdog_poll.py [--extra 100,500] [--polls 200]

Starts a watched tree like an evaluation's (a parent with three children), then N unrelated sleeping
processes, and times, side by side in one run:

    before   the earlier runner's poll: read /proc/*/stat of every process on the machine, /proc/*/environ of
             every live one (the run token), and walk the tree from that list (re-implemented here as it was)
    now      processes.Watched's poll: the tree from its root by the kernel's per-thread children lists,
             then the resident size of those processes only

Prints the median and 90th percentile milliseconds per poll, and the share of one core at the 50 ms interval.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from autoresearch.processes import POLL_S, TOKEN_VAR, Watched, descendants, new_token, rss_mb

TREE = (
    "import subprocess, sys, time\n"
    "[subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']) for _ in range(3)]\n"
    "time.sleep(600)\n"
)


HERD = (
    "import subprocess, sys, time\n"
    "[subprocess.Popen(['sleep', '600']) for _ in range(int(sys.argv[1]))]\n"
    "time.sleep(600)\n"
)


def old_poll(child_pid: int, token: str) -> float:
    """The earlier runner's _tree_rss_mb, as it was: every process's stat, every live one's environ."""
    me = os.getpid()
    live = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read().decode(errors="replace")
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2 :].split()
        live.append((int(name), int(fields[1]), int(fields[3]), fields[0], int(fields[21])))
    live = [p for p in live if p[3] != "Z" and p[0] != me]

    def has_token(pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                return f"{TOKEN_VAR}={token}".encode() in f.read()
        except OSError:
            return False

    found = {pid for pid, ppid, sid, _, _ in live if pid == child_pid or sid == child_pid or has_token(pid)}
    while True:
        more = {pid for pid, ppid, _, _, _ in live if ppid in found and pid not in found}
        if not more:
            break
        found |= more
    return sum(rss for pid, _, _, _, rss in live if pid in found) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)


def timed(fn, polls: int) -> list[float]:
    out = []
    for _ in range(polls):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--extra", default="100,500", help="unrelated processes to start, comma-separated counts")
    ap.add_argument("--polls", type=int, default=200)
    args = ap.parse_args()
    print(f"poll interval {POLL_S * 1000:.0f} ms; the watched tree is a parent with three children")
    print(
        "| unrelated processes | processes on the machine | before: ms/poll (p90) | now: ms/poll (p90) | "
        "before: core share | now: core share |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for n in (int(x) for x in args.extra.split(",")):
        # the herd: a process of its own with n sleeping children, started before the watch, so it is not
        # mistaken for the watched tree's escaped daemons (as a subreaper, those come back to us)
        herd = subprocess.Popen([sys.executable, "-c", HERD, str(n)], start_new_session=True)
        while len(descendants(herd.pid)) < n + 1:
            time.sleep(0.1)
        token = new_token()
        w = Watched(
            [sys.executable, "-c", TREE],
            cwd=Path.cwd(),
            env=dict(os.environ),
            deadline=time.monotonic() + 3600,
            memory_mb=1 << 20,
            log_path=None,
            token=token,
            sandboxed=False,
        )
        try:
            while len(w.tree()) < 4:
                time.sleep(0.05)
            total = sum(1 for x in os.listdir("/proc") if x.isdigit())
            before = timed(lambda w=w, token=token: old_poll(w.proc.pid, token), args.polls)
            now = timed(lambda w=w: rss_mb(w.tree()), args.polls)
            b, a = statistics.median(before), statistics.median(now)
            q = lambda xs: statistics.quantiles(xs, n=10)[-1]  # noqa: E731
            print(
                f"| {n} | {total} | {b:.2f} ({q(before):.2f}) | {a:.3f} ({q(now):.3f}) | "
                f"{b / (b + POLL_S * 1000):.1%} | {a / (a + POLL_S * 1000):.2%} |"
            )
        finally:
            w.stop()
            os.killpg(herd.pid, 9)
            herd.wait()


if __name__ == "__main__":
    main()
