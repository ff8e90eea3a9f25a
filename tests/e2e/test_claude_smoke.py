"""The machinery end to end: the real Claude Code CLI, a scripted model on 127.0.0.1, a throwaway project.

The project (not the real pack) has a slash command, a permission rule for one Bash command, a PreToolUse hook
that denies edits of frozen.txt, and a Stop hook that blocks the first stop. This proves that the real command
expansion, permission engine and hooks can be driven and observed offline.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from .claude_runner import claude_doctor, invalid_settings, run_claude
from .fake_model import (
    FakeModel,
    all_text,
    final_text,
    last_user_message,
    message_text,
    tool_call,
    tool_results,
)

FROZEN = "frozen v1\n"
DENY_REASON = "FROZEN-GUARD: frozen.txt is frozen by the harness"
STOP_REASON = "STOP-GATE: record the result before stopping"

GUARD_HOOK = f"""\
import json, os, sys
event = json.load(sys.stdin)
root = os.environ.get("CLAUDE_PROJECT_DIR", ".")
with open(os.path.join(root, "hook.log"), "a") as f:
    f.write(json.dumps(event) + "\\n")
path = (event.get("tool_input") or {{}}).get("file_path") or ""
if os.path.basename(path) == "frozen.txt":
    print(json.dumps({{"hookSpecificOutput": {{"hookEventName": "PreToolUse", "permissionDecision": "deny",
                                             "permissionDecisionReason": {DENY_REASON!r}}}}}))
"""

STOP_HOOK = f"""\
import json, os, sys
event = json.load(sys.stdin)
root = os.environ.get("CLAUDE_PROJECT_DIR", ".")
with open(os.path.join(root, "hook.log"), "a") as f:
    f.write(json.dumps(event) + "\\n")
state = os.path.join(root, ".stop-state")
if not os.path.exists(state):
    open(state, "w").write("blocked once\\n")
    print(json.dumps({{"decision": "block", "reason": {STOP_REASON!r}}}))
"""

SIDE_EFFECT = """\
import pathlib, sys
pathlib.Path("side.txt").write_text("side effect: " + " ".join(sys.argv[1:]) + "\\n")
print("SIDE-EFFECT-OK", *sys.argv[1:])
"""

HELLO_COMMAND = """\
---
description: Greet someone (smoke test)
argument-hint: "[name]"
---
HELLO-COMMAND-BODY: greet $ARGUMENTS, then stop.
"""


def make_mini_project(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / ".claude" / "commands").mkdir(parents=True)
    (root / ".claude" / "hooks").mkdir()
    (root / ".claude" / "commands" / "hello.md").write_text(HELLO_COMMAND)
    (root / ".claude" / "hooks" / "guard.py").write_text(GUARD_HOOK)
    (root / ".claude" / "hooks" / "stop_gate.py").write_text(STOP_HOOK)
    (root / "side_effect.py").write_text(SIDE_EFFECT)
    (root / "frozen.txt").write_text(FROZEN)
    settings = {
        "$schema": "https://json.schemastore.org/claude-code-settings.json",
        "permissions": {"allow": ["Bash(python3 side_effect.py *)"]},
        "hooks": {
            "PreToolUse": [
                {
                    "matcher": "Edit|Write|MultiEdit|NotebookEdit",
                    "hooks": [
                        {
                            "type": "command",
                            "command": 'python3 "$CLAUDE_PROJECT_DIR"/.claude/hooks/guard.py',
                            "timeout": 30,
                        }
                    ],
                }
            ],
            "Stop": [
                {
                    "hooks": [
                        {
                            "type": "command",
                            "command": 'python3 "$CLAUDE_PROJECT_DIR"/.claude/hooks/stop_gate.py',
                            "timeout": 30,
                        }
                    ]
                }
            ],
        },
    }
    (root / ".claude" / "settings.json").write_text(json.dumps(settings, indent=2))
    return root


@pytest.fixture
def mini_project(tmp_path) -> Path:
    return make_mini_project(tmp_path / "proj")


def test_slash_command_permissions_and_hooks_end_to_end(claude_bin, mini_project, tmp_path):
    frozen = mini_project / "frozen.txt"

    def after_expansion(body):
        # the first request carries the expanded slash command, with the argument substituted
        text = message_text(last_user_message(body))
        assert "<command-name>/hello</command-name>" in text, text
        assert "<command-args>Ada Lovelace</command-args>" in text, text
        assert "HELLO-COMMAND-BODY: greet Ada Lovelace, then stop." in text, text
        return tool_call("Bash", {"command": "python3 side_effect.py alpha beta", "description": "make side.txt"})

    def after_bash(body):
        (res,) = tool_results(body)
        assert not res.get("is_error"), res
        assert "SIDE-EFFECT-OK alpha beta" in res["content"], res
        return tool_call("Edit", {"file_path": str(frozen), "old_string": "v1", "new_string": "v2"})

    def after_denied_edit(body):
        (res,) = tool_results(body)
        assert res.get("is_error") is True, res
        assert DENY_REASON in res["content"], res
        return final_text("first stop attempt")

    def after_blocked_stop(body):
        text = message_text(last_user_message(body))
        assert text.startswith("Stop hook feedback:"), text
        assert STOP_REASON in text, text
        return final_text("second stop attempt")

    with FakeModel([after_expansion, after_bash, after_denied_edit, after_blocked_stop]) as fm:
        run = run_claude(
            "/hello Ada Lovelace", mini_project, fm.base_url, claude_bin=claude_bin, home=tmp_path / "home", timeout=90
        )
    info = f"\n--- requests\n{fm.describe()}\n--- run\n{run.describe()}"

    # the process finished by itself, after exactly the scripted turns
    assert not run.timed_out, info
    assert run.returncode == 0, info
    assert fm.errors == [], info
    assert fm.script_done and len(fm.main_requests) == 4, info
    assert run.result is not None and run.result["subtype"] == "success", info
    assert run.result["result"] == "second stop attempt", info
    assert run.result["num_turns"] == 4, info

    # the stream: the command is registered, the hook denial is reported, nothing needed an interactive prompt
    assert "hello" in run.init["slash_commands"], info
    assert [d["tool_name"] for d in run.permission_denials] == ["Edit"], info
    assert run.permission_denials[0]["tool_input"]["file_path"] == str(frozen)
    assert run.permission_denied_events == [], info
    stream_results = [r["content"] for r in run.tool_results()]
    assert "SIDE-EFFECT-OK alpha beta" in stream_results[0] and DENY_REASON in stream_results[1], info

    # the recorded requests, after the fact: every one since the first carries the history
    last = fm.main_requests[-1].body
    history = all_text(last)
    assert "HELLO-COMMAND-BODY: greet Ada Lovelace" in history
    assert "SIDE-EFFECT-OK alpha beta" in history and DENY_REASON in history
    assert f"Stop hook feedback:\n{STOP_REASON}" in history
    assert all(r.body.get("stream") is True for r in fm.main_requests)

    # the filesystem
    assert frozen.read_text() == FROZEN
    assert (mini_project / "side.txt").read_text() == "side effect: alpha beta\n"
    hook_events = [json.loads(line) for line in (mini_project / "hook.log").read_text().splitlines()]
    assert [(e["hook_event_name"], e.get("tool_name"), e.get("stop_hook_active")) for e in hook_events] == [
        ("PreToolUse", "Edit", None),
        ("Stop", None, False),
        ("Stop", None, True),
    ], hook_events
    assert hook_events[1]["last_assistant_message"] == "first stop attempt"

    # the stream's hook events (--include-hook-events): every hook ran and succeeded (a mistyped hook path shows
    # up here as outcome "error", exit_code 2, and the stop is then NOT blocked)
    assert [(h["hook_name"], h["exit_code"], h["outcome"]) for h in run.hook_responses] == [
        ("PreToolUse:Edit", 0, "success"),
        ("Stop", 0, "success"),
        ("Stop", 0, "success"),
    ], info
    assert run.hook_problems == [], info

    # the session transcript under $HOME/.claude/projects/
    assert run.transcript_path is not None and run.transcript_path.is_relative_to(tmp_path / "home"), info
    transcript = json.dumps(run.transcript)
    assert "<command-args>Ada Lovelace</command-args>" in transcript
    assert "Stop hook feedback" in transcript
    assert any(
        e.get("type") == "attachment" and (e.get("attachment") or {}).get("type") == "hook_blocking_error"
        for e in run.transcript
    )


def test_a_tool_call_that_would_prompt_is_reported_as_permission_denied(claude_bin, mini_project, tmp_path):
    """In -p mode there is no prompt: an unapproved call becomes a `system/permission_denied` stream event, an
    error tool_result for the model, and an entry of result.permission_denials."""
    notes = mini_project / "notes.txt"
    notes.write_text("a\n")
    script = [tool_call("Edit", {"file_path": str(notes), "old_string": "a", "new_string": "b"}), final_text("done")]
    with FakeModel(script) as fm:
        run = run_claude(
            "edit notes", mini_project, fm.base_url, claude_bin=claude_bin, home=tmp_path / "home", timeout=90
        )
    info = f"\n--- requests\n{fm.describe()}\n--- run\n{run.describe()}"
    assert run.returncode == 0 and not run.timed_out, info
    assert notes.read_text() == "a\n"
    (event,) = run.permission_denied_events
    assert event["tool_name"] == "Edit", info
    assert "haven't granted it yet" in event["message"], info
    (res,) = tool_results(fm.main_requests[1].body)
    assert res["is_error"] is True and res["content"] == event["message"], info
    assert [d["tool_name"] for d in run.permission_denials] == ["Edit"], info


def test_doctor_reports_invalid_settings_offline(claude_bin, mini_project, tmp_path):
    ok = claude_doctor(mini_project, home=tmp_path / "home1", claude_bin=claude_bin)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert invalid_settings(ok.stdout) == [], ok.stdout

    settings = mini_project / ".claude" / "settings.json"
    data = json.loads(settings.read_text())
    data["permissions"]["allow"] = "Bash(python3 side_effect.py *)"  # a string, not a list
    settings.write_text(json.dumps(data))
    bad = claude_doctor(mini_project, home=tmp_path / "home2", claude_bin=claude_bin)
    assert bad.returncode == 0  # doctor exits 0 even then
    problems = invalid_settings(bad.stdout)
    assert any("permissions.allow" in p for p in problems), textwrap.shorten(bad.stdout, 2000)


def test_a_mistyped_hook_path_does_not_block_but_is_visible(claude_bin, mini_project, tmp_path):
    settings = mini_project / ".claude" / "settings.json"
    data = json.loads(settings.read_text())
    data["hooks"]["Stop"][0]["hooks"][0]["command"] = 'python3 "$CLAUDE_PROJECT_DIR"/.claude/hooks/no_such_hook.py'
    settings.write_text(json.dumps(data))
    with FakeModel([final_text("stopping"), final_text("never reached")]) as fm:
        run = run_claude(
            "stop now", mini_project, fm.base_url, claude_bin=claude_bin, home=tmp_path / "home", timeout=90
        )
    info = f"\n--- requests\n{fm.describe()}\n--- run\n{run.describe()}"
    assert run.returncode == 0 and not run.timed_out, info
    assert len(fm.main_requests) == 1, info  # python3's exit 2 for a missing file did NOT block the stop
    (problem,) = [p for p in run.hook_problems if p.get("outcome") == "error"]
    assert problem["hook_event"] == "Stop" and problem["exit_code"] == 2, info
    assert any("appears to be missing" in (p.get("stderr") or "") for p in run.hook_problems), info


@pytest.mark.parametrize("mode", ["settings-flag", "no-flag", "no-flag-trusted"])
def test_project_allow_rules_apply_only_with_settings_flag_or_trust(claude_bin, mini_project, tmp_path, mode):
    script = [tool_call("Bash", {"command": "python3 side_effect.py gamma"}), final_text("done")]
    with FakeModel(script) as fm:
        run = run_claude(
            "run it",
            mini_project,
            fm.base_url,
            claude_bin=claude_bin,
            home=tmp_path / "home",
            settings="auto" if mode == "settings-flag" else None,
            trusted=mode == "no-flag-trusted",
            timeout=90,
        )
    info = f"\n--- requests\n{fm.describe()}\n--- run\n{run.describe()}"
    assert run.returncode == 0 and not run.timed_out, info
    (res,) = tool_results(fm.main_requests[1].body)
    if mode == "no-flag":
        assert res["is_error"] and res["content"] == "This command requires approval", info
        assert [e["tool_name"] for e in run.permission_denied_events] == ["Bash"], info
        assert "has not been trusted" in run.stderr, info
        assert not (mini_project / "side.txt").exists()
    else:
        assert "SIDE-EFFECT-OK gamma" in res["content"], info
        assert (mini_project / "side.txt").exists()


def test_root_anchored_rules_in_a_settings_flag_file_are_relative_to_that_file(claude_bin, mini_project, tmp_path):
    """`Edit(/a.txt)` in the file given to --settings means <that file's folder>/a.txt (here .claude/a.txt), not the
    project's a.txt; `Edit(./b.txt)` does match the project's b.txt. With a trusted project and no --settings, `/` is
    the project root."""
    settings = mini_project / ".claude" / "settings.json"
    data = json.loads(settings.read_text())
    data["permissions"]["allow"] += ["Edit(/a.txt)", "Edit(./b.txt)"]
    settings.write_text(json.dumps(data))
    for mode in ("settings-flag", "trusted"):
        for name in ("a.txt", "b.txt"):
            (mini_project / name).write_text("old\n")
        script = [
            tool_call("Edit", {"file_path": str(mini_project / n), "old_string": "old", "new_string": "new"})
            for n in ("a.txt", "b.txt")
        ] + [final_text("done")]
        with FakeModel(script) as fm:
            run = run_claude(
                "edit both",
                mini_project,
                fm.base_url,
                claude_bin=claude_bin,
                home=tmp_path / f"home-{mode}",
                settings="auto" if mode == "settings-flag" else None,
                trusted=mode == "trusted",
                timeout=90,
            )
        info = f"\n--- {mode} requests\n{fm.describe()}\n--- run\n{run.describe()}"
        assert run.returncode == 0 and not run.timed_out, info
        denied = sorted(Path(d["tool_input"]["file_path"]).name for d in run.permission_denials)
        assert denied == (["a.txt"] if mode == "settings-flag" else []), info
        assert (mini_project / "b.txt").read_text() == "new\n"
