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

A hook fails open. Whatever goes wrong inside one (a config error, a corrupt run state, a bug) lets the
agent's action through: the guard gives no decision (the permission rules still decide), the stop gate lets
the agent stop, the session start goes without its card. The error goes to stderr and, with its traceback,
to .autoresearch/hook-errors.log. The exit code is 0 in every case, failures included: Claude Code blocks
on exit 2, and the settings lift the stop gate's block cap, so a failure that blocked would trap the agent in
a loop it cannot leave (it may not touch the frozen file that broke). Exit 1 (a "non-blocking error") would
let the action through too, but Claude Code then ignores stdout, and the session start's fallback note must
reach the agent; 0 also reads the same in every event and every version. Deliberate blocks are JSON
decisions on stdout, so no code path exits 2. The cost: at exit 0 Claude Code shows a hook's stderr only in
its verbose mode, hence the log.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
from pathlib import Path

from autoresearch import layout, runstate, text
from autoresearch.contract import NEXT, STEP_USAGE
from autoresearch.files import read_json, write_json
from autoresearch.records import Run

EDITABLE = set(layout.EDITABLE)
HARNESS_FAILURES_TO_LET_GO = 3
ERROR_LOG = ".autoresearch/hook-errors.log"
ERROR_LOG_MAX_BYTES = 256 << 10  # then it moves to hook-errors.log.1: at most twice this on disk
# what the agent's action becomes when its hook fails; run-hook.sh says the same when Python cannot start
FAILED_OPEN = {
    "guard": "the guard gives no decision, so the permission rules in .claude/settings.json decide this tool call",
    "stop": "the stop gate lets the agent stop (a hook must not trap it on its own failure); fix this, then "
    "resume the session",
    "session-start": "no status card injected; `uv run autoresearch status` shows where the run stands",
}
NO_CARD = "the session starts with a one-line note instead of the status card"

# what no shell command may write: the harness, the private state, and anything Python runs at start-up
FROZEN = layout.path_pattern(
    extra=(r"program\.md", r"\.venv/", r"\.git/", r"sitecustomize", r"usercustomize", r"\.pth\b")
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


class StateError(Exception):
    pass


def _state_json(root: Path, rel: str):
    # Unlike runstate.read_json, a file that is there but unreadable is an error, not "no run": the hook
    # still lets the action through, but says so instead of quietly standing down.
    try:
        raw = (root / rel).read_bytes()
    except FileNotFoundError:
        return None
    try:
        return json.loads(raw)
    except ValueError as e:
        raise StateError(f"{rel} is not valid JSON ({e})") from None


def _run(root: Path) -> tuple[str | None, dict | None]:
    """The active run's tag and raw record (None, None without one); StateError when the state is corrupt."""
    pointer = _state_json(root, ".autoresearch/active.json")
    if pointer is None:
        return None, None
    tag = pointer.get("tag") if isinstance(pointer, dict) else None
    if not isinstance(tag, str) or not runstate.TAG_RE.match(tag) or ".." in tag:
        raise StateError('.autoresearch/active.json does not name a run (expected {"tag": "<tag>"})')
    raw = _state_json(root, f".autoresearch/runs/{tag}/run.json")
    if raw is not None and not (isinstance(raw, dict) and isinstance(raw.get("status"), str)):
        raise StateError(f".autoresearch/runs/{tag}/run.json is not a run record (no status)")
    return tag, raw


def _record(tag: str, raw: dict) -> Run:
    """The whole record, where a hook needs more than the status (the guard needs only that)."""
    run = Run.from_json(raw)
    if run is None:
        raise StateError(f".autoresearch/runs/{tag}/run.json is not a whole run record (fields are missing)")
    return run


def _active_run(root: Path) -> dict | None:
    _, raw = _run(root)
    return raw if raw and raw["status"] == "active" else None


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


# the agent's own words in single quotes (literal to the shell): a hypothesis may say "data" or "python"
SAID = re.compile(r"--(hypothesis|note)[\s=]+'[^']*'")


def _guard_bash(command: str) -> str | None:
    command = SAID.sub("", command)
    for pattern, reason in RULES:
        if re.search(pattern, command):
            return f"blocked by the autoresearch guard: {reason}"
    return None


# ---------------------------------------------------------------------------
# Stop


def stop(payload: dict, root: Path) -> str | None:
    """A reason to keep going (blocks the stop), or None to let the agent stop."""
    tag, raw = _run(root)
    if raw is None or raw["status"] != "active":
        return None
    run = _record(tag, raw)
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
    nxt = NEXT
    if run.last_status in ("crash", "timeout", "invalid"):
        nxt = f"read the last step's error lines, fix or simplify train.py, then run {STEP_USAGE}"
    return (
        f"The autoresearch run '{tag}' is still active, so do not stop: the human ends it. "
        f"Best {manifest.get('metric', 'score')} so far {inc.mean:.4f} (iter {inc.iter}), "
        f"{run.iterations} iterations done. Next: {nxt}. If you are unsure where things stand, run "
        f"`uv run autoresearch status`; if ideas run dry, follow the phases in program.md "
        f"(stop attempt {state['blocks']})."
    )


def _limit_reached(cfg, run: Run) -> str | None:
    if cfg.max_iterations and run.iterations >= cfg.max_iterations:
        return f"max_iterations = {cfg.max_iterations} reached"
    if cfg.max_hours and time.time() - run.started_at >= cfg.max_hours * 3600:
        return f"max_hours = {cfg.max_hours:g} reached"
    return None


def _mark_stopped(root: Path, run: Run, reason: str) -> None:
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
    tag, raw = _run(root)
    if raw is None:
        return None
    try:
        from autoresearch.cards import status_card
        from autoresearch.config import load_config
        from autoresearch.manifest import load_manifest

        cfg = load_config(root)
        shown = status_card(cfg, _record(tag, raw), load_manifest(cfg) or {})
    except Exception as e:  # noqa: BLE001 - the agent must still learn that a run is in progress
        _failed("session-start", root, e, NO_CARD)
        shown = (
            f"run {tag} ({text.shown(raw['status'], 40)}): the status card could not be built "
            f"({text.shown(_what(e), 300)}); run `uv run autoresearch status` for where the run stands"
        )
    if raw["status"] == "active":
        shown = (
            "An autoresearch run is in progress in this project (you may have been resumed or compacted). "
            "Re-read program.md, then continue the loop: edit train.py, `uv run autoresearch step`.\n" + shown
        )
    return shown


# ---------------------------------------------------------------------------
# Entry point


def add_arguments_hook(p) -> None:
    p.add_argument("event", choices=["guard", "stop", "session-start"], help="which hook is calling")


def run_hook(args) -> int:
    """Always 0 (see the module's docstring): a decision reaches stdout only from a hook that finished."""
    root = Path(os.environ.get("CLAUDE_PROJECT_DIR") or ".")
    try:
        payload = json.loads(sys.stdin.buffer.read())
        if not isinstance(payload, dict):
            raise ValueError(f"the hook input is a JSON {type(payload).__name__}, not an object")
        root = Path(os.environ.get("CLAUDE_PROJECT_DIR") or payload.get("cwd") or ".").resolve()
        out = _decide(args.event, payload, root)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - a failing hook must never block, whatever failed
        with contextlib.suppress(Exception):  # not even by failing to report the failure
            _failed(args.event, root, e)
        return 0
    if out:
        # bytes, encoded before anything is written: a terminal encoding cannot fail halfway through a decision
        sys.stdout.buffer.write((out + "\n").encode("utf-8", "backslashreplace"))
        sys.stdout.flush()
    return 0


def _decide(event: str, payload: dict, root: Path) -> str | None:
    if event == "guard":
        reason = guard(payload, root)
        if not reason:
            return None
        return json.dumps(
            {
                "hookSpecificOutput": {
                    "hookEventName": "PreToolUse",
                    "permissionDecision": "deny",
                    "permissionDecisionReason": reason,
                }
            }
        )
    if event == "stop":
        reason = stop(payload, root)
        return json.dumps({"decision": "block", "reason": reason}) if reason else None
    return session_start(payload, root)


def _what(e: BaseException) -> str:
    try:
        return f"{type(e).__name__}: {e}"
    except Exception:  # noqa: BLE001 - an exception whose str() raises still gets reported
        return type(e).__name__


def _failed(event: str, root: Path, e: BaseException, consequence: str | None = None) -> None:
    """Say on stderr that the hook failed and what the agent's action became; keep the traceback."""
    try:
        _log(root, event, e)
        where = f"details in {ERROR_LOG}"
    except Exception as log_error:  # noqa: BLE001 - a read-only disk must not turn into a block either
        where = f"and {ERROR_LOG} could not be written: {text.shown(_what(log_error), 200)}"
    consequence = consequence or FAILED_OPEN.get(event, "no decision")
    print(f"autoresearch hook {event} failed: {text.shown(_what(e), 400)}; {consequence} ({where})", file=sys.stderr)


def _log(root: Path, event: str, e: BaseException) -> None:
    import traceback

    # the last lines of the traceback carry the error; each made safe to `cat` (text.error_tail)
    lines = text.error_tail("".join(traceback.format_exception(e)), lines=60, width=500)
    record = f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} hook {event} (pid {os.getpid()})\n" + "\n".join(lines) + "\n"
    path = root / ERROR_LOG
    path.parent.mkdir(exist_ok=True)
    try:
        if path.stat().st_size > ERROR_LOG_MAX_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, record.encode("utf-8", "backslashreplace"))
    finally:
        os.close(fd)
