"""The run's own state under .autoresearch/: which run is active, its record, the step journal, the lock.

.autoresearch/active.json                {"tag": ...}: the run the commands and the hooks act on
.autoresearch/runs/<tag>/run.json        records.Run: branch, status, incumbent, baseline, counters
.autoresearch/runs/<tag>/pending.json    records.Pending: a step in flight, to finish or undo after a kill
.autoresearch/runs/<tag>/iters/<n>.json  records.Record: one iteration in full
.autoresearch/runs/<tag>/logs/<n>.log    the sandbox's capped output
.autoresearch/runs/<tag>/holdout.jsonl   holdout scores of the baseline and kept commits (the report's only)
.autoresearch/lock                       flock held by the command that changes the run
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path

from autoresearch import layout
from autoresearch.errors import NotCounted, UserError
from autoresearch.files import read_json, write_json
from autoresearch.records import Pending, Record, Run

TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_tag(tag: str) -> str:
    if not TAG_RE.match(tag) or ".." in tag or tag.endswith((".lock", ".")):
        raise UserError(
            f"tag {tag!r} is not usable as a branch name; use letters, digits, '-', '_' or '.', "
            "starting with a letter or digit (e.g. nov23 or churn-lgbm)"
        )
    return tag


def state_dir(root: Path) -> Path:
    return root / layout.STATE


def run_dir(root: Path, tag: str) -> Path:
    return state_dir(root) / "runs" / tag


def active_tag(root: Path) -> str | None:
    tag = (read_json(state_dir(root) / "active.json") or {}).get("tag")
    return tag if isinstance(tag, str) and TAG_RE.match(tag) else None


def set_active(root: Path, tag: str) -> None:
    write_json(state_dir(root) / "active.json", {"tag": tag})


def load_run(root: Path, tag: str) -> Run | None:
    return Run.from_json(read_json(run_dir(root, tag) / "run.json"))


def save_run(root: Path, run: Run) -> None:
    write_json(run_dir(root, run.tag) / "run.json", run.to_json())


def current_run(root: Path) -> Run:
    tag = active_tag(root)
    run = load_run(root, tag) if tag else None
    if run is None:
        raise UserError("no run has been started here: start one with `uv run autoresearch start <tag>`")
    return run


def pending_path(root: Path, tag: str) -> Path:
    return run_dir(root, tag) / "pending.json"


def load_pending(root: Path, tag: str) -> Pending | None:
    return Pending.from_json(read_json(pending_path(root, tag)))


def save_pending(root: Path, pending: Pending) -> None:
    write_json(pending_path(root, pending.tag), pending.to_json())


def save_record(root: Path, rec: Record) -> None:
    write_json(run_dir(root, rec.tag) / "iters" / f"{rec.iter}.json", rec.to_json())


def load_record(root: Path, tag: str, it: int) -> Record | None:
    return Record.from_json(read_json(run_dir(root, tag) / "iters" / f"{it}.json"))


class Lock:
    """An exclusive flock: released by the kernel even when the holder is killed with -9."""

    def __init__(self, root: Path):
        self.path = state_dir(root) / "lock"

    def __enter__(self):
        self.path.parent.mkdir(exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise NotCounted(
                f"another autoresearch command (pid {holder}) is running on this project; "
                "wait for it to finish (one step at a time)"
            ) from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)
        return self

    def __exit__(self, *exc):
        os.close(self.fd)
