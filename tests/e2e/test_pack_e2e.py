"""The pack end to end (GitHub issue 4): the real `claude` CLI runs `/autoresearch e2e` headless, the way the pack
documents it (`claude -p "/autoresearch e2e" --settings .claude/settings.json`), in a temporary copy of the project,
against a scripted model on 127.0.0.1. Real command expansion, permission engine, hooks, ratchet and data.

The script, one model turn per request:
  0  (the expanded command, with the start card)      Edit train.py to a LightGBM variant
  1                                                   Bash `uv run autoresearch step`
  2  (the step's one line)                            Edit prepare.py: refused by a deny rule
  3  (the refusal)                                    Edit README.md: no rule covers it, the guard hook refuses
  4  (the guard's reason)                             end the turn: the stop gate must block it
  5  (Stop hook feedback)                             Edit train.py again
  6                                                   Bash `uv run autoresearch step --category .. --hypothesis '..'`
  7  (the second line)  the human runs `autoresearch stop` from another terminal, then end the turn: allowed
The whole session is played once per module; each test checks one part of it.

`uv` is a test-only shim here (see test_pack_permissions.UV_SHIM): the pack's commands are unchanged.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT

from autoresearch import ledger

from .claude_runner import ClaudeRun, run_claude
from .fake_model import (
    FakeModel,
    all_text,
    block_text,
    final_text,
    last_user_message,
    message_text,
    tool_call,
    tool_results,
)
from .test_pack_permissions import pack_project

TAG = "e2e"
TIMEOUT_S = 1200  # start (prepare, baseline, holdout) and two steps: ~2-3 min here, far more on a loaded CI box

LGBM = '''"""LightGBM with native categoricals (written by the scripted model of tests/e2e/test_pack_e2e.py)."""

import lightgbm as lgb

from prepare import N_JOBS, SEED

HYPOTHESIS = "{hypothesis}"
CATEGORY = "model"
PARAMS = {{"n_estimators": {n}, "learning_rate": {lr}, "num_leaves": 15}}


def build_pipeline(params):
    return lgb.LGBMClassifier(n_estimators=params["n_estimators"], learning_rate=params["learning_rate"],
                              num_leaves=params["num_leaves"], random_state=SEED, n_jobs=N_JOBS, verbose=-1)
'''
FIRST = LGBM.format(hypothesis="LightGBM, native categoricals, 200 trees at lr 0.05", n=200, lr=0.05)
SMALLER = "LightGBM with 40 trees: is a smaller model as good?"
SECOND = FIRST.replace(
    '"n_estimators": 200', '"n_estimators": 40'
)  # code only: the step writes the declarations, as program.md says
STEP = {"command": "uv run autoresearch step", "description": "evaluate train.py, keep or revert"}
STEP_SAID = {
    "command": f"uv run autoresearch step --category params --hypothesis '{SMALLER}'",
    "description": "evaluate train.py, keep or revert",
}
VERDICTS = r"(KEPT|(SIMPLIFIED|FASTER|KNOB ADDED) \(kept\)|(NOOP|DISCARDED) \(reverted to iter \d+(, near-miss)?\))"
ONE_LINE = re.compile(
    rf"^iter (\d+) \| roc_auc \d\.\d{{4}} \(Δ [+-]\d\.\d{{4}}.*?\) \| {VERDICTS} "
    r"\| eval [\d.]+s of [\d.]+s(, fit ~[\d.]+s/fold)?, step [\d.]+s \| (model|params): ",
    re.M,
)
RULE_REASON = "denied by your permission settings"  # Claude Code's text for a deny rule (checked before hooks)
GUARD_REASON = "is not editable during a run: only train.py"  # autoresearch/hooks.py, for any other path


@dataclass
class Session:
    proj: object
    fm: FakeModel
    run: ClaudeRun
    prepare_before: bytes
    stop_output: str
    leftovers: list[str]
    proj_env_path: str  # PATH with the uv shim first

    def request(self, i: int) -> dict:
        return self.fm.main_requests[i].body

    def last_user(self, i: int) -> str:
        return message_text(last_user_message(self.request(i)))

    def result_of_turn(self, i: int) -> dict:
        """The tool_result that answers scripted turn i (it arrives in request i + 1)."""
        (res,) = tool_results(self.request(i + 1))
        return res

    @property
    def info(self) -> str:
        return f"\n--- requests\n{self.fm.describe()}\n--- run\n{self.run.describe()}"


def _edit_train(proj, new_text: str):
    """An Edit of the whole of train.py as it is now (after a revert it is the incumbent again)."""

    def turn(body):
        return tool_call(
            "Edit",
            {"file_path": str(proj.path / "train.py"), "old_string": proj.read("train.py"), "new_string": new_text},
        )

    return turn


def _processes_in(folder: Path) -> list[str]:
    """Processes (not this one) running in or naming the folder: a hook, a step or a harness child left behind."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cwd == str(folder) or cwd.startswith(f"{folder}/") or str(folder) in cmd:
            found.append(f"{pid} cwd={cwd} cmd={cmd[:200]}")
    return found


@pytest.fixture(scope="module")
def session(claude_bin, tmp_path_factory) -> Session:
    tmp = tmp_path_factory.mktemp("pack-e2e")
    proj, env = pack_project(tmp, config={"folds": 3, "repeats": 1, "budget_s": 60})
    prepare_before = (proj.path / "prepare.py").read_bytes()
    stop_output: list[str] = []

    def human_stops_then_end_turn(body):
        r = proj.cli("stop", "--reason", "stopped by the e2e test, as from another terminal")
        stop_output.append(r.stdout + r.stderr)
        return final_text("The human stopped the run; ending here.")

    def off_script(body):  # never reached when the pack works; stops the run so the session cannot loop forever
        proj.cli("stop", "--reason", "the e2e script ran out")
        return final_text("off script")

    script = [
        _edit_train(proj, FIRST),
        tool_call("Bash", STEP),
        tool_call(
            "Edit",
            {
                "file_path": str(proj.path / "prepare.py"),
                "old_string": "The frozen harness.",
                "new_string": "A harness I may change.",
            },
        ),
        tool_call(
            "Edit",
            {
                "file_path": str(proj.path / "README.md"),
                "old_string": proj.read("README.md")[:40],
                "new_string": "My notes on the run.",
            },
        ),
        final_text("Iteration done; stopping here for now."),
        _edit_train(proj, SECOND),
        tool_call("Bash", STEP_SAID),
        human_stops_then_end_turn,
        off_script,
        off_script,
    ]
    with FakeModel(script) as fm:
        run = run_claude(
            f"/autoresearch {TAG}",
            proj.path,
            fm.base_url,
            claude_bin=claude_bin,
            home=tmp / "home",
            settings="auto",
            env=env,
            timeout=TIMEOUT_S,
        )
    return Session(proj, fm, run, prepare_before, "".join(stop_output), _processes_in(proj.path), env["PATH"])


def test_session_ran_the_script_and_ended_by_itself(session):
    s = session
    assert not s.run.timed_out and s.run.returncode == 0, s.info
    assert s.fm.errors == [], s.info
    assert s.fm.turns_played == 8, f"expected exactly the 8 scripted turns{s.info}"
    assert s.run.result["subtype"] == "success", s.info
    assert s.run.result["result"] == "The human stopped the run; ending here.", s.info


def test_command_expands_and_its_start_runs_first(session):
    s = session
    first = s.last_user(0)
    assert "<command-name>/autoresearch</command-name>" in first and f"<command-args>{TAG}</command-args>" in first, (
        first[-3000:]
    )
    # the `!` line ran `uv run autoresearch start e2e` before the model saw anything: its card is in the prompt
    assert f"run:       {TAG} on branch autoresearch/{TAG} (new)" in first, first[-3000:]
    assert re.search(r"^baseline:  0\.\d{4} ± 0\.\d{4} \(± here: ", first, re.M), first[-3000:]
    assert "You are the researcher of this autoresearch run" in first
    # @program.md and @train.py are attached
    everything = all_text(s.request(0))
    assert "# The research program" in everything and "## Never stop" in everything
    assert 'HYPOTHESIS = "baseline: impute, scale, one-hot, then a linear model"' in everything
    assert "autoresearch" in s.run.init["slash_commands"], s.info


def test_the_loop_needed_no_permission_prompt(session):
    s = session
    assert s.run.permission_denied_events == [], s.info
    denials = [(d["tool_name"], Path(d["tool_input"].get("file_path", "")).name) for d in s.run.permission_denials]
    assert denials == [("Edit", "prepare.py"), ("Edit", "README.md")], s.info  # the intended refusals only
    assert s.run.hook_problems == [], s.info


def test_first_step_edits_train_py_and_its_line_reaches_the_model(session):
    s = session
    edit = s.result_of_turn(0)
    assert not edit.get("is_error"), edit
    step = block_text(s.result_of_turn(1))
    m = ONE_LINE.search(step)
    assert m and m.group(1) == "1", step
    assert "| KEPT |" in step, step  # LightGBM beats the linear baseline on this table by far more than the noise


def test_frozen_edits_are_refused_and_the_model_is_told_why(session):
    s = session
    rule, guard = s.result_of_turn(2), s.result_of_turn(3)
    assert rule.get("is_error") is True and guard.get("is_error") is True, (rule, guard)
    assert RULE_REASON in block_text(rule) or f"prepare.py {GUARD_REASON}" in block_text(rule), rule
    assert f"README.md {GUARD_REASON}" in block_text(guard), guard
    assert (s.proj.path / "prepare.py").read_bytes() == s.prepare_before
    assert s.proj.read("README.md") == (ROOT / "README.md").read_text()


def test_stop_gate_blocks_the_end_of_turn_and_the_loop_goes_on(session):
    s = session
    feedback = s.last_user(5)
    assert feedback.startswith("Stop hook feedback:"), feedback
    assert f"The autoresearch run '{TAG}' is still active" in feedback and "uv run autoresearch step" in feedback
    step = block_text(s.result_of_turn(6))
    m = ONE_LINE.search(step)
    assert m and m.group(1) == "2", step
    # the human's stop let the last end of turn through: exactly one block, then one pass
    stops = [h for h in s.run.hook_responses if h["hook_event"] == "Stop"]
    assert [bool(h.get("stdout", "").strip()) for h in stops] == [True, False], s.info
    assert f"run {TAG} stopped" in s.stop_output, s.stop_output


def test_ledger_and_branch_hold_exactly_what_the_ratchet_decided(session):
    s = session
    rows = ledger.read(s.proj.path, TAG)
    assert [(r["iter"], r["status"]) for r in rows][:2] == [("0", "baseline"), ("1", "keep")], rows
    assert len(rows) == 3 and rows[2]["iter"] == "2" and rows[2]["status"] in ("keep", "simplify", "noop", "discard"), (
        rows
    )
    assert (rows[2]["category"], rows[2]["hypothesis"]) == ("params", SMALLER), rows  # the step's flags
    kept = [r["commit"] for r in rows if r["status"] in ("keep", "simplify")]
    on_branch = s.proj.git("rev-list", "--reverse", f"main..autoresearch/{TAG}").split()
    assert len(on_branch) == len(kept), (on_branch, rows)
    assert all(c.startswith(k) for c, k in zip(on_branch, kept, strict=True)), (on_branch, rows)
    assert s.proj.git("log", "-1", "--format=%s", on_branch[0]) == "LightGBM, native categoricals, 200 trees at lr 0.05"
    assert s.proj.git("branch", "--show-current") == f"autoresearch/{TAG}"
    assert s.proj.git("status", "--porcelain") == ""  # the reverted candidate left nothing behind
    assert (s.proj.path / "prepare.py").read_bytes() == s.prepare_before


def test_nothing_is_left_running(session):
    assert session.leftovers == [], "\n".join(session.leftovers)


def test_stop_command_stops_first_then_shows_the_card(session, claude_bin, tmp_path):
    """/autoresearch-stop in a trusted project without --settings (the interactive way). Its two commands are one
    `!` line joined by &&: two `!` lines run concurrently (measured), and the card then showed the run still active."""
    s = session
    assert s.proj.cli("start", TAG).returncode == 0  # resume the stopped run
    with FakeModel([final_text("Stopped: best 0.92 with LightGBM; the smaller model was worse.")]) as fm:
        run = run_claude(
            "/autoresearch-stop",
            s.proj.path,
            fm.base_url,
            claude_bin=claude_bin,
            home=tmp_path / "home",
            settings=None,
            trusted=True,
            env={"PATH": s.proj_env_path},
            timeout=300,
        )
    info = f"\n--- requests\n{fm.describe()}\n--- run\n{run.describe()}"
    assert run.returncode == 0 and not run.timed_out and len(fm.main_requests) == 1, info  # the gate let it end
    prompt = message_text(last_user_message(fm.main_requests[0].body))
    assert f"run {TAG} stopped (stopped by the human from Claude Code)" in prompt, prompt[-2000:]
    assert f"run {TAG} (stopped (stopped by the human from Claude Code))" in prompt, prompt[-2000:]
    assert run.permission_denied_events == [] and run.hook_problems == [], info
