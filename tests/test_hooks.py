"""The Claude Code hooks, fed the documented stdin JSON through the real hook script, on a real run."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import ROOT, make_project

HOOK = ".claude/hooks/run-hook.sh"


@pytest.fixture(scope="module")
def proj(tmp_path_factory):
    p = make_project(tmp_path_factory.mktemp("hooks") / "proj", config={"folds": 3, "repeats": 1, "budget_s": 60})
    # the hook script runs the project's own .venv; share this checkout's instead of building one
    (p.path / ".venv").symlink_to(ROOT / ".venv")
    r = p.cli("start", "hooks")
    assert r.returncode == 0, r.stderr
    return p


def hook(proj, event: str, payload: dict) -> dict | None:
    payload = {
        "session_id": "s1",
        "transcript_path": "/dev/null",
        "cwd": str(proj.path),
        "hook_event_name": event,
        "permission_mode": "default",
        **payload,
    }
    arg = {"PreToolUse": "guard", "Stop": "stop", "SessionStart": "session-start"}[event]
    r = subprocess.run(
        [str(proj.path / HOOK), arg],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        env={**os.environ, "CLAUDE_PROJECT_DIR": str(proj.path)},
        timeout=30,
    )
    assert r.returncode == 0, r.stderr
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
    for rel in ("autoresearch/ratchet.py", ".claude/settings.json", "pyproject.toml", "results.tsv"):
        assert decision(hook(proj, "PreToolUse", tool("Write", file_path=str(proj.path / rel), content=""))) == "deny"
    assert decision(hook(proj, "PreToolUse", tool("Edit", file_path="/etc/passwd"))) == "deny"


@pytest.mark.parametrize(
    "command",
    [
        "sed -i 's/FOLDS/2/' prepare.py",
        "echo x >> pyproject.toml",
        "cp /tmp/x autoresearch/ratchet.py",
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


def test_stop_gate(proj):
    # blocked while active, with the next action and the best score
    out = hook(proj, "Stop", {"stop_hook_active": False, "last_assistant_message": "done"})
    assert out["decision"] == "block"
    assert "uv run autoresearch step" in out["reason"] and "Best roc_auc" in out["reason"]
    out = hook(proj, "Stop", {"stop_hook_active": True})
    assert out["decision"] == "block" and "(stop attempt 2)" in out["reason"]  # its own count

    # allowed after repeated harness failures the agent cannot fix (here: the branch moved by hand)
    incumbent = proj.git("rev-parse", "HEAD")
    proj.write("README.md", "moved\n")
    proj.commit_all("a commit the ratchet did not make")
    proj.write("train.py", proj.read("train.py").replace('C": 1.0', 'C": 0.5'))
    for _ in range(3):
        r = proj.cli("step")
        assert r.returncode == 2 and "moved by hand" in r.stderr
    assert hook(proj, "Stop", {"stop_hook_active": True}) is None
    gate = json.loads((proj.path / ".autoresearch/runs/hooks/stopgate.json").read_text())
    assert "moved by hand" in gate["let_go"][-1]["why"]
    proj.git("checkout", "-q", "--", "train.py")
    proj.git("reset", "-q", "--hard", incumbent)

    # a successful step resets the count: blocked again
    run = json.loads((proj.path / ".autoresearch/runs/hooks/run.json").read_text())
    run["harness_errors"] = 0
    (proj.path / ".autoresearch/runs/hooks/run.json").write_text(json.dumps(run))
    assert hook(proj, "Stop", {"stop_hook_active": True})["decision"] == "block"

    # allowed once the human stopped the run; the guard stands down too
    assert proj.cli("stop").returncode == 0
    assert hook(proj, "Stop", {"stop_hook_active": True}) is None
    assert hook(proj, "PreToolUse", tool("Bash", command="git log")) is None


def test_settings_valid_against_schema():
    jsonschema = pytest.importorskip("jsonschema")
    schema_path = ROOT / "tests" / "fixtures" / "claude-code-settings.schema.json"  # SchemaStore's, see its README
    settings = json.loads((ROOT / ".claude" / "settings.json").read_text())
    jsonschema.validate(settings, json.loads(schema_path.read_text()))
    assert settings["env"]["CLAUDE_CODE_STOP_HOOK_BLOCK_CAP"] == "0"
    hooks = json.dumps(settings["hooks"])
    assert Path(ROOT / HOOK).exists() and "run-hook.sh guard" in hooks and "run-hook.sh stop" in hooks
