"""The Claude Code hooks, fed the documented stdin JSON through the real hook script, as Claude Code calls it.

The run state is written here rather than made by `autoresearch start`: these tests are about what the hooks
do with a state, and the ratchet's own tests cover how a run gets there.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import ROOT, make_project

from autoresearch.hooks import FAILED_OPEN, NO_CARD

HOOK = ".claude/hooks/run-hook.sh"
TAG = "hooks"
LOG = ".autoresearch/hook-errors.log"
EVENTS = {"PreToolUse": "guard", "Stop": "stop", "SessionStart": "session-start"}


def start_run(p, tag: str = TAG, **fields) -> None:
    """The files `autoresearch start` leaves behind that the hooks read: the run pointer, the run record and
    the manifest's metric."""
    commit = p.git("rev-parse", "HEAD")
    point = {"iter": 0, "commit": commit, "mean": 0.5, "se": 0.01, "scores": [0.5, 0.51, 0.49]}
    run = {
        "tag": tag,
        "branch": f"autoresearch/{tag}",
        "status": "active",
        "manifest_id": "handmade",
        "started_at": time.time(),
        "iterations": 0,
        "harness_errors": 0,
        "incumbent": point,
        "baseline": point,
        **fields,
    }
    p.write(f".autoresearch/runs/{tag}/run.json", json.dumps(run))
    p.write(".autoresearch/active.json", json.dumps({"tag": tag}))
    p.write("data/manifest.json", json.dumps({"metric": "roc_auc", "higher_is_better": True, "n_folds": 3}))


def update_run(p, **fields) -> None:
    path = p.path / f".autoresearch/runs/{TAG}/run.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def new_project(path: Path, venv: bool = True):
    p = make_project(path, config={"folds": 3, "repeats": 1, "budget_s": 60})
    if venv:  # the hook script runs the project's own .venv; share this checkout's instead of building one
        (p.path / ".venv").symlink_to(ROOT / ".venv")
    return p


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    p = new_project(tmp_path_factory.mktemp("hooks") / "proj")
    start_run(p)
    return p


def call(proj, event: str, payload: dict | str, env: dict | None = None) -> subprocess.CompletedProcess:
    """The hook script run as Claude Code runs it: the event's JSON on stdin, CLAUDE_PROJECT_DIR set."""
    if isinstance(payload, dict):
        payload = json.dumps(
            {
                "session_id": "s1",
                "transcript_path": "/dev/null",
                "cwd": str(proj.path),
                "hook_event_name": event,
                "permission_mode": "default",
                **payload,
            }
        )
    return subprocess.run(
        [str(proj.path / HOOK), EVENTS[event]],
        input=payload,
        capture_output=True,
        text=True,
        env={**os.environ, "CLAUDE_PROJECT_DIR": str(proj.path), **(env or {})},
        timeout=30,
    )


def hook(proj, event: str, payload: dict) -> dict | None:
    r = call(proj, event, payload)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr  # a hook that worked says nothing on stderr
    if not r.stdout.strip():
        return None
    return json.loads(r.stdout) if event != "SessionStart" else {"text": r.stdout}


def decision(out):
    return None if out is None else out["hookSpecificOutput"]["permissionDecision"]


def tool(name, **inp):
    return {"tool_name": name, "tool_input": inp}


def test_edit_of_prepare_denied_and_train_allowed(proj):
    out = hook(
        proj, "PreToolUse", tool("Edit", file_path=str(proj.path / "prepare.py"), old_string="a", new_string="b")
    )
    assert decision(out) == "deny"
    assert "only train.py" in out["hookSpecificOutput"]["permissionDecisionReason"]
    for name in ("train.py", "notes.md"):
        assert hook(proj, "PreToolUse", tool("Edit", file_path=str(proj.path / name))) is None
    for rel in ("src/autoresearch/ratchet.py", ".claude/settings.json", "pyproject.toml", "results.tsv"):
        assert decision(hook(proj, "PreToolUse", tool("Write", file_path=str(proj.path / rel), content=""))) == "deny"
    assert decision(hook(proj, "PreToolUse", tool("Edit", file_path="/etc/passwd"))) == "deny"


@pytest.mark.parametrize(
    "command",
    [
        "sed -i 's/FOLDS/2/' prepare.py",
        "echo x >> pyproject.toml",
        "cp /tmp/x src/autoresearch/ratchet.py",
        "echo import os > .venv/lib/python3.11/site-packages/x.pth",
        "printf x > sitecustomize.py",
        "rm -rf .autoresearch/",
        "cat data/holdout.parquet",
        "head -5 data/train.parquet",
        "python -c 'import pandas as pd; print(pd.read_parquet(\"data/train.parquet\").shape)'",
        "uv run python -c 'print(1)'",
        "python3 train.py",
        "uv run autoresearch stop",
        "uv run autoresearch report",
        "git reset --hard HEAD~1",
        "git commit -am x",
        "git checkout main",
        "pip install xgboost",
        "uv add catboost",
        "curl https://example.com",
        "cat .autoresearch/runs/hooks/holdout.jsonl",
        "sed -i 's/a/b/' train.py",
        "uv run autoresearch step --hypothesis 'x' && cat data/train.parquet",
        'uv run autoresearch step --hypothesis "$(cat data/holdout.parquet)"',
        "uv run autoresearch step --note 'a' --hypothesis 'b'; python -c 1",
    ],
)
def test_bash_denied(proj, command):
    out = hook(proj, "PreToolUse", tool("Bash", command=command))
    assert decision(out) == "deny", command
    assert "autoresearch guard" in out["hookSpecificOutput"]["permissionDecisionReason"]


@pytest.mark.parametrize(
    "command",
    [
        "uv run autoresearch step",
        "uv run autoresearch status",
        "uv run autoresearch sweep --trials 20",
        "uv run autoresearch step --category features --hypothesis 'python-style flags: is a missing data/ value a "
        "signal in the holdout of git users?' --note='trees parked; git gud'",
        "uv run train.py",
        "git log --oneline -5",
        "git diff HEAD~1 -- train.py",
        "git status --short",
        "git checkout refs/autoresearch/hooks/discarded/4 -- train.py",
        "cat .autoresearch/runs/hooks/logs/3.log",
    ],
)
def test_bash_allowed(proj, command):
    assert hook(proj, "PreToolUse", tool("Bash", command=command)) is None, command


def test_reading_private_files_denied(proj):
    assert decision(hook(proj, "PreToolUse", tool("Read", file_path=str(proj.path / "data/holdout.parquet")))) == "deny"
    assert decision(hook(proj, "PreToolUse", tool("Read", file_path=str(proj.path / "reports/x/report.md")))) == "deny"
    assert hook(proj, "PreToolUse", tool("Read", file_path=str(proj.path / "program.md"))) is None


def test_session_start_injects_the_card(proj):
    out = hook(proj, "SessionStart", {"source": "compact"})
    assert "autoresearch run is in progress" in out["text"] and "run hooks (active)" in out["text"]


HEAVY = ("git", "pandas", "numpy", "scipy", "sklearn", "lightgbm", "matplotlib", "optuna", "pyarrow")


@pytest.mark.parametrize(
    "event, payload",
    [
        ("SessionStart", {"source": "compact"}),
        ("PreToolUse", tool("Edit", file_path="train.py", old_string="a", new_string="b")),
        ("PreToolUse", tool("Bash", command="uv run autoresearch step")),
        ("Stop", {"stop_hook_active": False}),
    ],
)
def test_hooks_import_nothing_heavy(tmp_path, event, payload):
    """Every tool call goes through the guard, and the status card runs at every session start: neither may
    pay for gitpython, pandas or the rest (Python's own import log, -X importtime, says what was imported)."""
    p = new_project(tmp_path / "proj")  # its own: the stop gate counts attempts per run
    start_run(p)
    r = call(p, event, payload, env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert r.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    assert "autoresearch.runstate" in imported  # the log is real: it saw what every hook reads
    assert not {m for m in imported if m.split(".")[0] in HEAVY}


def test_stop_gate(proj):
    # blocked while active, with the next action and the best score
    out = hook(proj, "Stop", {"stop_hook_active": False, "last_assistant_message": "done"})
    assert out["decision"] == "block"
    assert "uv run autoresearch step" in out["reason"] and "Best roc_auc" in out["reason"]
    out = hook(proj, "Stop", {"stop_hook_active": True})
    assert out["decision"] == "block" and "(stop attempt 2)" in out["reason"]  # its own count

    # allowed after repeated harness failures the agent cannot fix (the ratchet counts them in run.json)
    update_run(proj, harness_errors=3, last_harness_error="the branch autoresearch/hooks was moved by hand")
    assert hook(proj, "Stop", {"stop_hook_active": True}) is None
    gate = json.loads((proj.path / ".autoresearch/runs/hooks/stopgate.json").read_text())
    assert "moved by hand" in gate["let_go"][-1]["why"]

    # a successful step resets the count: blocked again
    update_run(proj, harness_errors=0)
    assert hook(proj, "Stop", {"stop_hook_active": True})["decision"] == "block"

    # allowed once the human stopped the run; the guard stands down too
    update_run(proj, status="stopped", stopped={"at": time.time(), "reason": "stopped by the human"})
    assert hook(proj, "Stop", {"stop_hook_active": True}) is None
    assert hook(proj, "PreToolUse", tool("Bash", command="git log")) is None
    update_run(proj, status="active", stopped=None)


def test_settings_valid_against_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema_path = ROOT / "tests" / "fixtures" / "claude-code-settings.schema.json"  # SchemaStore's, see its README
    settings = json.loads((ROOT / ".claude" / "settings.json").read_text())
    jsonschema.validate(settings, json.loads(schema_path.read_text()))
    assert settings["env"]["CLAUDE_CODE_STOP_HOOK_BLOCK_CAP"] == "0"
    hooks = json.dumps(settings["hooks"])
    assert Path(ROOT / HOOK).exists() and "run-hook.sh guard" in hooks and "run-hook.sh stop" in hooks


# ---------------------------------------------------------------------------
# A hook never traps its agent on its own failure: exit 0, no decision, the reason on stderr and in the log

STOP = {"stop_hook_active": False, "last_assistant_message": "done"}
DENIED = tool("Bash", command="sed -i 's/FOLDS/2/' prepare.py")  # what a working guard denies
DETAILS = f"(details in {LOG})\n"

BROKEN_CONFIGS = {
    "budget_s a string": lambda p: p.set_config(folds=3, repeats=1, budget_s="120"),
    "invalid TOML": lambda p: p.write("pyproject.toml", p.read("pyproject.toml") + "\n[tool.autoresearch\n"),
    "unknown field": lambda p: p.set_config(folds=3, repeats=1, budget_s=60, budget_seconds=60),
}
CORRUPT_STATES = {
    "active.json truncated": (".autoresearch/active.json", '{"tag": "ho', "is not valid JSON"),
    "active.json a list": (".autoresearch/active.json", '["hooks"]', "does not name a run"),
    "active.json tag a number": (".autoresearch/active.json", '{"tag": 5}', "does not name a run"),
    "active.json tag a path": (".autoresearch/active.json", '{"tag": "../../etc"}', "does not name a run"),
    "run.json truncated": (f".autoresearch/runs/{TAG}/run.json", '{"tag": "hooks", "status": "act', "not valid JSON"),
    "run.json a list": (f".autoresearch/runs/{TAG}/run.json", "[1, 2]", "is not a run record"),
    "run.json status a number": (f".autoresearch/runs/{TAG}/run.json", '{"status": 1}', "is not a run record"),
}


@pytest.fixture
def fresh(tmp_path):
    p = new_project(tmp_path / "proj")
    start_run(p)
    return p


def assert_failed_open(p, r, event: str, what: str, consequence: str | None = None, stdout: str = "") -> str:
    """The one shape of every failure: exit 0, `stdout` (no decision), the message on stderr, the traceback
    in the log. Returns the log."""
    assert r.returncode == 0, r.stderr
    assert r.stdout == stdout
    assert r.stderr.startswith(f"autoresearch hook {event} failed: {what}"), r.stderr
    assert r.stderr.endswith(f"; {consequence or FAILED_OPEN[event]} {DETAILS}"), r.stderr
    log = (p.path / LOG).read_text()
    assert f" hook {event} (pid " in log and "Traceback (most recent call last):" in log, log
    return log


@pytest.mark.parametrize("broken", BROKEN_CONFIGS)
def test_stop_with_a_broken_config_lets_the_agent_stop(fresh, broken):
    BROKEN_CONFIGS[broken](fresh)
    r = call(fresh, "Stop", STOP)
    log = assert_failed_open(fresh, r, "stop", "ConfigError: ")
    assert "ConfigError" in log
    # and again: no gate state was counted, nothing wedges
    assert_failed_open(fresh, call(fresh, "Stop", {"stop_hook_active": True}), "stop", "ConfigError: ")
    assert not (fresh.path / f".autoresearch/runs/{TAG}/stopgate.json").exists()


def test_the_reported_string_budget(fresh):
    fresh.set_config(folds=3, repeats=1, budget_s="120")
    r = call(fresh, "Stop", STOP)
    assert r.returncode == 0 and r.stdout == ""
    assert "budget_s" in r.stderr and "the stop gate lets the agent stop" in r.stderr


@pytest.mark.parametrize("broken", BROKEN_CONFIGS)
def test_guard_needs_no_config(fresh, broken):
    """The guard reads only the run state: a broken config neither breaks nor weakens it."""
    BROKEN_CONFIGS[broken](fresh)
    r = call(fresh, "PreToolUse", DENIED)
    assert r.returncode == 0 and r.stderr == ""
    assert json.loads(r.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert not (fresh.path / LOG).exists()


@pytest.mark.parametrize("broken", BROKEN_CONFIGS)
def test_session_start_with_a_broken_config_still_says_a_run_is_on(fresh, broken):
    BROKEN_CONFIGS[broken](fresh)
    r = call(fresh, "SessionStart", {"source": "resume"})
    assert r.returncode == 0
    assert r.stdout.startswith("An autoresearch run is in progress in this project")
    assert f"run {TAG} (active): the status card could not be built (ConfigError: " in r.stdout
    assert len(r.stdout.splitlines()) == 2 and "decision" not in r.stdout
    assert_failed_open(fresh, r, "session-start", "ConfigError: ", NO_CARD, stdout=r.stdout)


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("corrupt", CORRUPT_STATES)
def test_corrupt_run_state_fails_open(fresh, event, corrupt):
    rel, content, why = CORRUPT_STATES[corrupt]
    fresh.write(rel, content)
    payload = {"PreToolUse": DENIED, "Stop": STOP, "SessionStart": {"source": "startup"}}[event]
    r = call(fresh, event, payload)
    assert_failed_open(fresh, r, EVENTS[event], "StateError: ")
    assert why in r.stderr


@pytest.mark.parametrize("event", EVENTS)
def test_run_record_of_the_wrong_shape(fresh, event):
    """A run.json with a status but none of the rest: whatever breaks deeper in a hook fails open too."""
    fresh.write(f".autoresearch/runs/{TAG}/run.json", json.dumps({"tag": TAG, "status": "active", "incumbent": 7}))
    payload = {"PreToolUse": DENIED, "Stop": STOP, "SessionStart": {"source": "startup"}}[event]
    r = call(fresh, event, payload)
    if event == "PreToolUse":  # all the guard needs is there: it still works
        assert r.returncode == 0 and r.stderr == ""
        assert json.loads(r.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"
    elif event == "Stop":
        assert_failed_open(fresh, r, "stop", "StateError: .autoresearch/runs/hooks/run.json is not a whole run record")
    else:
        assert "the status card could not be built" in r.stdout
        assert_failed_open(fresh, r, "session-start", "", NO_CARD, stdout=r.stdout)


@pytest.mark.parametrize("event", EVENTS)
def test_unreadable_hook_input_fails_open(fresh, event):
    r = call(fresh, event, "this is not JSON")
    assert_failed_open(fresh, r, EVENTS[event], "JSONDecodeError: ")
    r = call(fresh, event, "[1, 2]")
    assert_failed_open(fresh, r, EVENTS[event], "ValueError: the hook input is a JSON list, not an object")


def test_the_error_log_is_bounded(fresh):
    fresh.write(".autoresearch/active.json", "{")
    old = "x" * 100 + "\n"
    fresh.write(LOG, old * 3000)  # 303 000 bytes, past the 256 KiB bound
    assert_failed_open(fresh, call(fresh, "Stop", STOP), "stop", "StateError: ")
    assert (fresh.path / (LOG + ".1")).read_text() == old * 3000
    assert (fresh.path / LOG).stat().st_size < 10_000


def test_a_log_that_cannot_be_written_does_not_block(fresh):
    fresh.write(".autoresearch/active.json", "{")
    (fresh.path / LOG).mkdir(parents=True)  # a directory where the log goes
    r = call(fresh, "Stop", STOP)
    assert r.returncode == 0 and r.stdout == ""
    assert f"(and {LOG} could not be written: IsADirectoryError" in r.stderr


# run-hook.sh: when Python itself cannot run the hook


def _bin(tmp_path: Path, name: str, script: str) -> Path:
    d = tmp_path / "bin"
    d.mkdir(exist_ok=True)
    (d / name).write_text("#!/bin/sh\n" + script)
    (d / name).chmod(0o755)
    return d


def _path_without_uv(tmp_path: Path) -> str:
    """PATH with the shell tools and no uv."""
    d = tmp_path / "tools"
    d.mkdir()
    for name in ("cat", "date", "mkdir", "mktemp", "mv", "rm", "tail", "tr", "wc", "dirname"):
        for where in ("/usr/bin", "/bin"):
            if Path(where, name).exists():
                (d / name).symlink_to(Path(where, name))
                break
    return str(d)


@pytest.mark.parametrize("event", EVENTS)
def test_no_venv_and_no_uv_does_not_block(tmp_path, event):
    p = new_project(tmp_path / "proj", venv=False)
    start_run(p)
    payload = {"PreToolUse": DENIED, "Stop": STOP, "SessionStart": {"source": "startup"}}[event]
    r = call(p, event, payload, env={"PATH": _path_without_uv(tmp_path)})
    assert (r.returncode, r.stdout) == (0, "")
    assert r.stderr == (
        f"autoresearch hook {EVENTS[event]} failed: neither {p.path}/.venv/bin/autoresearch nor uv was found "
        f"(run `uv sync` in the project); {FAILED_OPEN[EVENTS[event]]} {DETAILS}"
    )
    assert "neither" in (p.path / LOG).read_text()


@pytest.mark.parametrize("event", EVENTS)
def test_a_failing_uv_does_not_block(tmp_path, event):
    """uv exits 2 on its own errors (a resolution failure, a lock mismatch): that must not read as a block,
    and what it printed must not pass for a decision."""
    p = new_project(tmp_path / "proj", venv=False)
    start_run(p)
    fake = _bin(
        tmp_path, "uv", 'echo \'{"decision": "block", "reason": "from a failure"}\'\necho "uv: broken" >&2\nexit 2\n'
    )
    payload = {"PreToolUse": DENIED, "Stop": STOP, "SessionStart": {"source": "startup"}}[event]
    r = call(p, event, payload, env={"PATH": f"{fake}:{_path_without_uv(tmp_path)}"})
    assert (r.returncode, r.stdout) == (0, "")
    assert r.stderr == (
        "uv: broken\n"
        f"autoresearch hook {EVENTS[event]} failed: `autoresearch hook` exited with status 2, its decision (if "
        f"any) ignored; {FAILED_OPEN[EVENTS[event]]} {DETAILS}"
    )
    assert "uv: broken" in (p.path / LOG).read_text()


def test_a_crashing_interpreter_does_not_block(tmp_path):
    """The hook's Python dies before hooks.py could catch anything (here: a broken venv whose console script
    prints a deny and a traceback, then exits 1): no decision passes, the traceback is logged."""
    p = new_project(tmp_path / "proj", venv=False)
    start_run(p)
    script = (
        'echo \'{"hookSpecificOutput": {"permissionDecision": "deny"}}\'\n'
        "printf 'Traceback (most recent call last):\\nImportError: no autoresearch\\033[2J\\n' >&2\nexit 1\n"
    )
    (p.path / ".venv/bin").mkdir(parents=True)
    (p.path / ".venv/bin/autoresearch").write_text("#!/bin/sh\n" + script)
    (p.path / ".venv/bin/autoresearch").chmod(0o755)
    r = call(p, "PreToolUse", DENIED)
    assert (r.returncode, r.stdout) == (0, "")
    assert "exited with status 1, its decision (if any) ignored" in r.stderr
    log = (p.path / LOG).read_text()
    assert "ImportError: no autoresearch[2J" in log and "\033" not in log


def test_a_missing_project_folder_does_not_block(tmp_path):
    p = new_project(tmp_path / "proj")
    r = call(p, "Stop", STOP, env={"CLAUDE_PROJECT_DIR": str(tmp_path / "gone")})
    assert (r.returncode, r.stdout) == (0, "")
    assert f"the project folder {tmp_path / 'gone'} cannot be entered" in r.stderr
    assert not (tmp_path / "gone").exists()


def test_a_planted_module_in_the_project_does_not_shadow_a_library(fresh):
    """The project folder is the agent's: the hook must not import from it (json.py here would run first
    under `python -m`, which puts the working directory on sys.path)."""
    fresh.write("json.py", "open('PLANTED', 'w').close()\nraise SystemExit(2)\n")
    r = call(fresh, "PreToolUse", DENIED)
    assert r.returncode == 0 and r.stderr == ""
    assert json.loads(r.stdout)["hookSpecificOutput"]["permissionDecision"] == "deny"
    assert not (fresh.path / "PLANTED").exists()
