"""Claude Code hooks: the rules of program.md made mechanical.

    autoresearch hook guard           PreToolUse: deny edits outside train.py/notes.md and Bash that would
                                      write a frozen path, run Python ad hoc, read the data or the holdout
    autoresearch hook stop            Stop: while the run is active, block the end of the turn and name the
                                      next action; let go when the human stopped it, a limit is reached, or
                                      the harness keeps failing in a way the agent cannot fix
    autoresearch hook session-start   SessionStart (startup, resume, compact): inject the status card

Each reads the hook's JSON on stdin. The guard acts only while a run is active (the permissions in
.claude/settings.json apply always); it is defence in depth behind them and the harness's own hashes.
Kept import-light: it runs before every tool call.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

from autoresearch import layout, runstate
from autoresearch.files import read_json, write_json

EDITABLE = {"train.py", "notes.md"}
HARNESS_FAILURES_TO_LET_GO = 3

FROZEN = (
    r"(prepare\.py|pyproject\.toml|uv\.lock|autoresearch/|\.claude/|data/|\.autoresearch/|results\.tsv"
    r"|program\.md)"
)
RULES = [
    # (pattern over the whole command, reason: what to do instead)
    (
        r"holdout|(^|[\s'\"/=])(reports|models)/",
        "the holdout and the reports are for the human only; judge experiments by `uv run autoresearch step` lines",
    ),
    (
        r"(^|[\s'\"=<>(])\.?/?data/",
        "the prepared data is read by the harness only; train.py gets X and y through build_pipeline",
    ),
    (
        r"\b(curl|wget|nc|ncat|ssh|scp|rsync|ftp|telnet)\b|\bpip3?\s+install|\buv\s+(add|remove|pip|sync|lock|tool)\b"
        r"|\b(npm|npx|yarn|pnpm|conda|mamba|apt|apt-get)\b",
        "no network and no new packages: use what pyproject.toml already installs (pandas, numpy, scikit-learn, "
        "lightgbm, scipy, optuna)",
    ),
    (
        r"\b(python3?|ipython|jupyter|pytest)\b|\buv\s+run\s+(?!(train\.py|prepare\.py|autoresearch)\b)",
        "no ad-hoc Python: evaluate with `uv run autoresearch step` (or `uv run train.py` for a dry run)",
    ),
    (
        r"\bautoresearch\s+(stop|report|export|predict)\b",
        "stopping and reporting are the human's (/autoresearch-stop, /autoresearch-report); keep iterating",
    ),
    (
        r"\bgit\s+(?!(log|diff|show|status|rev-parse|branch\s*$|branch\s+--list|ls-files|blame|shortlog|describe|"
        r"for-each-ref|cat-file|reflog(\s+show)?\b|checkout\s+refs/autoresearch/\S+\s+--\s+train\.py\s*$))",
        "git is read-only for you: `uv run autoresearch step` commits, keeps and reverts; to retry a crashed "
        "candidate use `git checkout refs/autoresearch/<tag>/discarded/<n> -- train.py`",
    ),
    (
        rf"(>|\btee\b|\bsed\s+-i|\bperl\s+-i|\b(cp|mv|rm|truncate|chmod|chown|touch|ln|install|dd|rmdir|mkdir)\b)"
        rf"[^|;&]*{FROZEN}",
        "the harness is frozen: only train.py changes (edit it with the Edit tool)",
    ),
    (
        r"(>|\btee\b|\bsed\s+-i|\bperl\s+-i)[^|;&]*\btrain\.py",
        "edit train.py with the Edit tool, not through the shell (so the guard and the diff see it)",
    ),
]


def _active_run(root: Path) -> dict | None:
    tag = runstate.active_tag(root)
    run = runstate.load_run(root, tag) if tag else None
    return run if run and run.status == "active" else None


# ---------------------------------------------------------------------------
# PreToolUse


def guard(payload: dict, root: Path) -> str | None:
    """A reason to deny this tool call, or None to let the permission system decide."""
    if _active_run(root) is None:
        return None
    tool, args = payload.get("tool_name", ""), payload.get("tool_input") or {}
    if tool in ("Edit", "Write", "MultiEdit", "NotebookEdit"):
        return _guard_edit(args.get("file_path") or args.get("notebook_path") or "", root)
    if tool == "Bash":
        return _guard_bash(args.get("command") or "")
    if tool in ("Read", "Grep", "Glob"):
        target = " ".join(str(args.get(k) or "") for k in ("file_path", "path", "pattern"))
        if re.search(RULES[0][0], target) or re.search(r"(^|/)data/|\.autoresearch/runs/[^/]+/holdout", target):
            return (
                "that file is private to the harness or the human (data, holdout, reports); use "
                "`uv run autoresearch status` for where the run stands"
            )
    if tool in ("WebFetch", "WebSearch"):
        return "no network during a run: rely on the research skill and what is installed"
    return None


def _guard_edit(file_path: str, root: Path) -> str | None:
    try:
        rel = Path(file_path).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        rel = None
    if rel in EDITABLE:
        return None
    shown = rel or file_path
    return (
        f"{shown} is not editable during a run: only train.py (and notes.md, your notes) may change. "
        "The harness (prepare.py, autoresearch/, pyproject.toml, data/) is frozen so every score stays "
        "comparable; put your idea into train.py instead"
    )


def _guard_bash(command: str) -> str | None:
    for pattern, reason in RULES:
        if re.search(pattern, command):
            return f"blocked by the autoresearch guard: {reason}"
    return None


# ---------------------------------------------------------------------------
# Stop


def stop(payload: dict, root: Path) -> str | None:
    """A reason to keep going (blocks the stop), or None to let the agent stop."""
    tag = runstate.active_tag(root)
    run = runstate.load_run(root, tag) if tag else None
    if run is None or run.status != "active":
        return None
    from autoresearch.config import load_config

    cfg = load_config(root)
    limit = _limit_reached(cfg, run)
    if limit:
        _mark_stopped(root, run, limit)
        return None
    if run.harness_errors >= HARNESS_FAILURES_TO_LET_GO:
        _gate_state(root, tag, let_go=run.last_harness_error or "repeated harness errors")
        return None
    state = _gate_state(root, tag)
    inc = run.incumbent
    manifest = read_json(root / layout.DATA / layout.MANIFEST) or {}
    nxt = "edit train.py with ONE new idea (set HYPOTHESIS and CATEGORY), then run `uv run autoresearch step`"
    if run.last_status in ("crash", "timeout", "invalid"):
        nxt = "read the last step's error lines, fix or simplify train.py, then run `uv run autoresearch step`"
    return (
        f"The autoresearch run '{tag}' is still active, so do not stop: the human ends it. "
        f"Best {manifest.get('metric', 'score')} so far {inc.mean:.4f} (iter {inc.iter}), "
        f"{run.iterations} iterations done. Next: {nxt}. If you are unsure where things stand, run "
        f"`uv run autoresearch status`; if ideas run dry, follow the phases in program.md "
        f"(stop attempt {state['blocks']})."
    )


def _limit_reached(cfg, run: dict) -> str | None:
    if cfg.max_iterations and run.iterations >= cfg.max_iterations:
        return f"max_iterations = {cfg.max_iterations} reached"
    if cfg.max_hours and time.time() - run.started_at >= cfg.max_hours * 3600:
        return f"max_hours = {cfg.max_hours:g} reached"
    return None


def _mark_stopped(root: Path, run: dict, reason: str) -> None:
    run.status, run.stopped = "stopped", {"at": time.time(), "reason": reason}
    runstate.save_run(root, run)


def _gate_state(root: Path, tag: str, let_go: str | None = None) -> dict:
    """The gate's own memory: stop_hook_active cannot count how often the agent tried to stop."""
    path = runstate.run_dir(root, tag) / "stopgate.json"
    state = read_json(path, {"blocks": 0, "let_go": []})
    if let_go:
        state["let_go"].append({"at": time.time(), "why": let_go})
    else:
        state["blocks"] += 1
    state["last"] = time.time()
    write_json(path, state)
    return state


# ---------------------------------------------------------------------------
# SessionStart


def session_start(payload: dict, root: Path) -> str | None:
    tag = runstate.active_tag(root)
    run = runstate.load_run(root, tag) if tag else None
    if run is None:
        return None
    from autoresearch.config import load_config
    from autoresearch.cards import status_card
    from autoresearch.manifest import load_manifest

    text = status_card(load_config(root), run, load_manifest(load_config(root)) or {})
    if run.status == "active":
        text = (
            "An autoresearch run is in progress in this project (you may have been resumed or compacted). "
            "Re-read program.md, then continue the loop: edit train.py, `uv run autoresearch step`.\n" + text
        )
    return text


# ---------------------------------------------------------------------------
# Entry point


def add_arguments_hook(p) -> None:
    p.add_argument("event", choices=["guard", "stop", "session-start"], help="which hook is calling")


def run_hook(args) -> int:
    try:
        payload = json.load(sys.stdin)
    except ValueError:
        payload = {}
    root = Path(os.environ.get("CLAUDE_PROJECT_DIR") or payload.get("cwd") or ".").resolve()
    if args.event == "guard":
        reason = guard(payload, root)
        if reason:
            print(
                json.dumps(
                    {
                        "hookSpecificOutput": {
                            "hookEventName": "PreToolUse",
                            "permissionDecision": "deny",
                            "permissionDecisionReason": reason,
                        }
                    }
                )
            )
    elif args.event == "stop":
        reason = stop(payload, root)
        if reason:
            print(json.dumps({"decision": "block", "reason": reason}))
    else:
        text = session_start(payload, root)
        if text:
            print(text)
    return 0
