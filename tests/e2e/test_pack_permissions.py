"""The pack's permission rules (.claude/settings.json), applied by the real Claude Code CLI in both ways the pack
runs: a trusted project with no --settings (as in an interactive session) and `claude -p ... --settings
.claude/settings.json` in a project that was never trusted (headless). The hooks are removed from the project's
copy of the settings here, so every verdict below comes from a rule, not from the guard hook.

Path forms, measured with 2.1.330 (Edit and Read rules):
- `/x` is anchored at the project root only when the file is read as the project's settings; from the file given to
  --settings it means <that file's folder>/x, i.e. .claude/x. In -p mode an untrusted project's own allow rules are
  ignored, so `Edit(/train.py)` prompted (and was denied) headless.
- `./x` and a bare `x` match the project's file in both modes, but unanchored: also x at any depth (sub/x).
- `//abs/path` is anchored in both modes but names one machine's folder.
So the pack writes every path rule as `./x`. The over-match is harmless for deny rules and small for the two allow
rules (another file named train.py or notes.md): the guard hook denies it during a run and `step` refuses any
change outside train.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import FAST_CONFIG, ROOT, Project, make_project

from .claude_runner import claude_doctor, invalid_settings, run_claude
from .fake_model import FakeModel, block_text, final_text, tool_call

# A test-only stand-in for `uv`, first on PATH. `uv run` in a temporary copy of the project would sync the project
# into the symlinked .venv (checked: `uv sync --dry-run` there would re-point this checkout's editable install at the
# copy and uninstall the bench group), so the copy runs the pack's unchanged commands (`uv run autoresearch ...`,
# `uv run train.py`, `uv run prepare.py`) through the shared venv's python instead. Users run the real uv.
UV_SHIM = """\
#!/bin/sh
# test-only uv shim (tests/e2e/test_pack_permissions.py): `uv run autoresearch|X.py ...` with the shared venv
[ "$1" = run ] || {{ echo "test uv shim: only 'uv run' is supported, got: uv $*" >&2; exit 2; }}
shift
case "$1" in
  autoresearch) shift; exec "{python}" -P -m autoresearch.cli "$@" ;;
  *.py) exec "{python}" "$@" ;;
esac
echo "test uv shim: unsupported: uv run $*" >&2
exit 2
"""

# refused by a deny rule: Edit/Read, then Bash
RULE_DENIED = ("denied by your permission settings", "has been denied")
NEEDS_APPROVAL = ("haven't granted it yet", "requires approval")  # what -p mode answers instead of a prompt


def pack_project(path: Path, config: dict | None = FAST_CONFIG) -> tuple[Project, dict[str, str]]:
    """A temporary copy of the project with the real pack, sharing this checkout's .venv; and the environment
    (PATH with the uv shim first) to run claude in."""
    proj = make_project(path / "proj", config=config)
    (proj.path / ".venv").symlink_to(ROOT / ".venv")  # git-ignored: the tree stays clean for `start`
    bindir = path / "bin"
    bindir.mkdir()
    shim = bindir / "uv"
    shim.write_text(UV_SHIM.format(project=proj.path, python=proj.path / ".venv" / "bin" / "python"))
    shim.chmod(0o755)
    return proj, {"PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}


def verdict(result: dict) -> str:
    """ok | denied (by a deny rule) | prompt (-p mode's answer to a call it would have asked about) | error: ..."""
    text = block_text(result)
    if not result.get("is_error"):
        return "ok"
    if any(s in text for s in RULE_DENIED):
        return "denied"
    if any(s in text for s in NEEDS_APPROVAL):
        return "prompt"
    return "error: " + text[:200]


def calls(p: Path) -> list[tuple[str, str, dict]]:
    """(expected verdict, tool, input): what the loop needs runs unasked, the frozen and private paths are refused."""
    return [
        (
            "ok",
            "Edit",
            {
                "file_path": str(p / "train.py"),
                "old_string": 'CATEGORY = "baseline"',
                "new_string": 'CATEGORY = "model"',
            },
        ),
        ("ok", "Write", {"file_path": str(p / "notes.md"), "content": "ideas\n"}),
        (
            "denied",
            "Edit",
            {"file_path": str(p / "prepare.py"), "old_string": "The frozen harness.", "new_string": "A harness."},
        ),
        ("denied", "Write", {"file_path": str(p / "src" / "autoresearch" / "x.py"), "content": "x = 1\n"}),
        (
            "denied",
            "Edit",
            {"file_path": str(p / "pyproject.toml"), "old_string": "folds = 3", "new_string": "folds = 2"},
        ),
        ("denied", "Read", {"file_path": str(p / "data" / "holdout.parquet")}),
        ("denied", "Read", {"file_path": str(p / ".autoresearch" / "runs" / "t" / "holdout.jsonl")}),
        ("ok", "Read", {"file_path": str(p / "program.md")}),
        ("ok", "Bash", {"command": "uv run autoresearch status", "description": "where the run stands"}),
        ("ok", "Bash", {"command": "git log --oneline -1", "description": "last commit"}),
        ("denied", "Bash", {"command": "curl -s http://127.0.0.1:9/", "description": "network"}),
        ("prompt", "Bash", {"command": "git push origin main", "description": "not allowed: -p mode cannot ask"}),
    ]


@pytest.fixture(params=["trusted", "settings-flag"])
def rules_only(request, tmp_path):
    """(mode, project) with the pack's settings minus the hooks, and private files for the Read rules to refuse."""
    proj, env = pack_project(tmp_path)
    settings = json.loads(proj.read(".claude/settings.json"))
    settings.pop("hooks")
    proj.write(".claude/settings.json", json.dumps(settings, indent=2))
    proj.write("data/holdout.parquet", "PAR1 not really parquet\n")
    proj.write(".autoresearch/runs/t/holdout.jsonl", '{"iter": 0, "holdout": 0.5}\n')
    return request.param, proj, env, tmp_path


def test_rules_mean_the_project_root_in_both_modes(claude_bin, rules_only):
    mode, proj, env, tmp = rules_only
    prepare_before = proj.read("prepare.py")
    script = calls(proj.path)
    with FakeModel([tool_call(tool, inp) for _, tool, inp in script] + [final_text("done")]) as fm:
        run = run_claude(
            "check the rules",
            proj.path,
            fm.base_url,
            claude_bin=claude_bin,
            home=tmp / "home",
            settings="auto" if mode == "settings-flag" else None,
            trusted=mode == "trusted",
            env=env,
            timeout=240,
        )
    info = f"\n--- {mode} requests\n{fm.describe()}\n--- run\n{run.describe()}"
    assert run.returncode == 0 and not run.timed_out, info
    results = run.tool_results()
    assert len(results) == len(script), info
    what = [(tool, inp.get("file_path") or inp.get("command")) for _, tool, inp in script]
    got = [(*w, verdict(r)) for w, r in zip(what, results, strict=True)]
    want = [(*w, v) for w, (v, _, _) in zip(what, script, strict=True)]
    assert got == want, "\n".join(f"{g}  (want {w[2]})" for g, w in zip(got, want, strict=True)) + info

    # Bash refusals also come as permission_denied events: the rule's (curl), then the one nothing allows
    events = [
        (e["tool_name"], verdict({"type": "tool_result", "is_error": True, "content": e["message"]}))
        for e in run.permission_denied_events
    ]
    assert events == [("Bash", "denied"), ("Bash", "prompt")], info
    assert run.hook_responses == [], info  # no hook in these settings: the rules alone decided
    status = block_text(results[8])
    assert "no run yet" in status, status
    assert 'CATEGORY = "model"' in proj.read("train.py") and proj.read("notes.md") == "ideas\n"
    assert proj.read("prepare.py") == prepare_before
    assert not (proj.path / "src" / "autoresearch" / "x.py").exists()
    if mode == "settings-flag":  # the project's own allow rules were ignored: --settings alone allowed the calls
        assert "has not been trusted" in run.stderr, info


def test_every_path_rule_uses_the_form_that_works_in_both_modes():
    settings = json.loads((ROOT / ".claude" / "settings.json").read_text())
    assert settings["$schema"] == "https://json.schemastore.org/claude-code-settings.json"
    rules = [r for kind in ("allow", "deny", "ask") for r in settings["permissions"].get(kind, [])]
    path_rules = [r for r in rules if r.startswith(("Edit(", "Read("))]
    assert path_rules, rules
    wrong = [r for r in path_rules if not r.split("(", 1)[1].startswith("./")]
    assert wrong == [], f"write these as Edit(./x) / Read(./x): `/x` means .claude/x in a --settings file: {wrong}"


def test_a_long_step_is_not_moved_to_the_background():
    """Claude Code moves a Bash command that outlives BASH_DEFAULT_TIMEOUT_MS (120 s when unset) to the background and
    hands the model a "moved to the background" note instead of its output (measured with 2.1.330: a 130 s command;
    with the pack's env block it ran to the end, with --settings and in a trusted project). A step is a CV evaluation
    plus, when kept, a holdout evaluation, each up to budget_s; a sweep is longer still."""
    from autoresearch.config import load_config

    env = json.loads((ROOT / ".claude" / "settings.json").read_text())["env"]
    default_ms, max_ms = int(env["BASH_DEFAULT_TIMEOUT_MS"]), int(env["BASH_MAX_TIMEOUT_MS"])
    assert default_ms >= 1000 * (2 * load_config(ROOT).budget_s + 120) and max_ms >= default_ms, env


def test_doctor_finds_no_invalid_settings(claude_bin, tmp_path):
    proj, _ = pack_project(tmp_path, config=None)
    out = claude_doctor(proj.path, home=tmp_path / "home", claude_bin=claude_bin)
    assert out.returncode == 0, out.stdout + out.stderr
    assert invalid_settings(out.stdout) == [], out.stdout
