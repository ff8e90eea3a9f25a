"""Run the real Claude Code CLI (`claude -p`) against a FakeModel on loopback, in a throwaway HOME.

    bin = require_claude()                      # skips (or fails when CI is set) if the CLI is not installed
    with FakeModel(script) as fm:
        run = run_claude("/hello world", project_dir, fm.base_url, claude_bin=bin)
    run.result                                  # the final {"type": "result", ...} stream event
    run.transcript                              # the session file under $HOME/.claude/projects/, parsed

Install the pinned CLI with `bash tests/e2e/install_claude.sh` (into <repo>/.ci/node).

Observed with 2.1.330 (see test_claude_smoke.py, which pins each of these):
- Main-loop requests: POST /v1/messages?beta=true, stream=true, ~12 tools (others deferred behind ToolSearch),
  `messages` may contain role "system" entries. No auxiliary (tool-less) request and no count_tokens call was seen
  in -p runs; FakeModel still answers them without consuming a turn.
- A slash command arrives as user text blocks `<command-message>NAME</command-message>\n<command-name>/NAME
  </command-name>\n<command-args>ARGS</command-args>` then the body with $ARGUMENTS substituted.
- A hook deny: tool_result is_error, content "PreToolUse:Edit hook error: <reason>"; in result.permission_denials.
- A call -p mode would have prompted for: stream event {"type":"system","subtype":"permission_denied",...}, an
  error tool_result with the same message, and an entry in result.permission_denials.
- A blocked stop: next request ends with user "Stop hook feedback:\n<reason>" and a role "system" message
  "Stop hook blocking error from command: ...".
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LOCAL_BIN = ROOT / ".ci" / "node" / "node_modules" / ".bin" / "claude"
INSTALL_HINT = "install the pinned Claude Code CLI with `bash tests/e2e/install_claude.sh` (or set CLAUDE_BIN)"

# Environment for a hermetic run. Checked against 2.1.330 with strace: without
# CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC the CLI sends `HEAD <base>/api/hello` and resolves api.anthropic.com
# (event logging); with it, the only connection is to ANTHROPIC_BASE_URL. The others are belt and braces.
QUIET_ENV = {
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DO_NOT_TRACK": "1",
    "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
    "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
}
# variables of an outer Claude Code session or of the user's own setup that must not leak into the run
_DROP_PREFIXES = ("ANTHROPIC_", "CLAUDE", "OTEL_", "AWS_BEARER_TOKEN", "VERTEX_", "CLOUD_ML_")
_DROP_NAMES = {
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "XDG_STATE_HOME",
}


def find_claude() -> Path | None:
    """CLAUDE_BIN, then <repo>/.ci/node/node_modules/.bin/claude, then `claude` on PATH."""
    env_bin = os.environ.get("CLAUDE_BIN")
    if env_bin:
        p = Path(env_bin)
        return p if p.is_file() and os.access(p, os.X_OK) else None
    if LOCAL_BIN.exists() and os.access(LOCAL_BIN, os.X_OK):
        return LOCAL_BIN
    found = shutil.which("claude")
    return Path(found) if found else None


def require_claude() -> Path:
    """The claude binary; when missing, fail under CI (env CI set) and skip otherwise."""
    b = find_claude()
    if b is not None:
        return b
    where = (
        f"CLAUDE_BIN={os.environ['CLAUDE_BIN']!r} is not an executable file"
        if os.environ.get("CLAUDE_BIN")
        else f"no claude at {LOCAL_BIN} nor on PATH"
    )
    msg = f"Claude Code CLI not found ({where}): {INSTALL_HINT}"
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(msg, pytrace=False)
    pytest.skip(msg)


def claude_env(home: Path, base_url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP_PREFIXES) and k not in _DROP_NAMES}
    env.pop("VIRTUAL_ENV", None)
    env.update(QUIET_ENV)
    env.update(
        {
            "HOME": str(home),
            "ANTHROPIC_API_KEY": "x",
            "ANTHROPIC_BASE_URL": base_url,
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
        }
    )
    env.update(extra or {})
    return env


def project_key(cwd: Path) -> str:
    """How the CLI names a project's folder under ~/.claude/projects/ (observed: every non-alphanumeric -> '-')."""
    return "".join(c if c.isalnum() else "-" for c in str(cwd))


@dataclass
class ClaudeRun:
    args: list[str]
    returncode: int | None
    stdout: str
    stderr: str
    duration: float
    timed_out: bool
    home: Path
    events: list[dict] = field(default_factory=list)  # parsed stream-json lines
    bad_lines: list[str] = field(default_factory=list)  # stdout lines that were not JSON
    transcript_path: Path | None = None
    transcript: list[dict] = field(default_factory=list)

    @property
    def init(self) -> dict | None:
        return next((e for e in self.events if e.get("type") == "system" and e.get("subtype") == "init"), None)

    @property
    def result(self) -> dict | None:
        return next((e for e in reversed(self.events) if e.get("type") == "result"), None)

    @property
    def session_id(self) -> str | None:
        for e in self.events:
            if e.get("session_id"):
                return e["session_id"]
        return None

    def of_type(self, type_: str, subtype: str | None = None) -> list[dict]:
        return [e for e in self.events if e.get("type") == type_ and (subtype is None or e.get("subtype") == subtype)]

    @property
    def permission_denied_events(self) -> list[dict]:
        """`{"type":"system","subtype":"permission_denied",...}`: a tool call that -p mode could not approve."""
        return self.of_type("system", "permission_denied")

    @property
    def permission_denials(self) -> list[dict]:
        return list((self.result or {}).get("permission_denials") or [])

    @property
    def hook_responses(self) -> list[dict]:
        """`system/hook_response` events (only with --include-hook-events, which run_claude passes by default):
        hook_event, hook_name ("PreToolUse:Edit", "Stop"), exit_code, outcome ("success" | "error"), stdout, stderr."""
        return self.of_type("system", "hook_response")

    @property
    def hook_problems(self) -> list[dict]:
        """Hooks that failed without blocking (e.g. a mistyped script path): non-"success" hook responses, plus the
        transcript's `hook_non_blocking_error` attachments ("Hook script appears to be missing ...")."""
        bad = [e for e in self.hook_responses if e.get("outcome") != "success"]
        bad += [
            e["attachment"]
            for e in self.transcript
            if e.get("type") == "attachment" and (e.get("attachment") or {}).get("type") == "hook_non_blocking_error"
        ]
        return bad

    def tool_results(self) -> list[dict]:
        """tool_result blocks the CLI produced, in order (from the stream's user events)."""
        out = []
        for e in self.of_type("user"):
            content = (e.get("message") or {}).get("content")
            if isinstance(content, list):
                out.extend(b for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
        return out

    def describe(self, limit: int = 4000) -> str:
        lines = [
            f"args: {self.args}",
            f"returncode: {self.returncode} timed_out: {self.timed_out} duration: {self.duration:.1f}s",
            "events:",
        ]
        for e in self.events:
            lines.append("  " + json.dumps(e)[:300])
        lines.append("stderr: " + self.stderr[-limit:])
        if self.bad_lines:
            lines.append("non-JSON stdout: " + "\n".join(self.bad_lines)[-limit:])
        return "\n".join(lines)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill the CLI's whole process group (it runs hooks and Bash commands as children)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        if sig == signal.SIGTERM:
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
            time.sleep(0.1)


def trust_project(home: Path | str, project_dir: Path | str) -> None:
    """Mark project_dir as trusted in HOME/.claude.json (as accepting the interactive trust dialog would).

    Then the project's own .claude/settings.json permissions.allow apply without --settings; without it, -p mode
    prints "Ignoring N permissions.allow entry from .claude/settings.json: this workspace has not been trusted".
    """
    cfg = Path(home) / ".claude.json"
    data = json.loads(cfg.read_text()) if cfg.exists() else {}
    data.setdefault("projects", {}).setdefault(str(Path(project_dir).resolve()), {})["hasTrustDialogAccepted"] = True
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(json.dumps(data, indent=2))


def _drain(stream, sink: list[str]) -> None:
    try:
        for chunk in iter(lambda: stream.read(65536), ""):
            sink.append(chunk)
    except (OSError, ValueError):
        pass


def run_claude(
    prompt: str,
    project_dir: Path | str,
    base_url: str,
    *,
    claude_bin: Path | str | None = None,
    settings: Path | str | None = "auto",
    extra_args: list[str] | tuple[str, ...] = (),
    home: Path | str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 90,
    trusted: bool = False,
    hook_events: bool = True,
    output_format: str = "stream-json",
) -> ClaudeRun:
    """Run `claude -p PROMPT --output-format stream-json --verbose [--include-hook-events] [--settings S] EXTRA_ARGS`
    in project_dir.

    settings="auto" passes <project_dir>/.claude/settings.json when it exists (in -p mode the project's own
    permissions.allow apply only to a trusted folder, and -p never asks for trust; hooks and deny rules apply
    regardless); None passes no --settings.
    home: a throwaway HOME (pass one under pytest's tmp_path; when None a fresh temp dir is made and kept, so the
    transcript can be inspected).
    trusted: pre-accept the trust dialog for project_dir in HOME/.claude.json.
    hook_events: pass --include-hook-events (hook_started / hook_response events in the stream).
    timeout: seconds for the whole run; on expiry the CLI's process group is killed and timed_out is set.
    """
    project_dir = Path(project_dir).resolve()
    claude_bin = str(claude_bin or require_claude())
    if home is None:
        home = Path(tempfile.mkdtemp(prefix="claude-home-"))
    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    if trusted:
        trust_project(home, project_dir)
    args = [claude_bin, "-p", prompt, "--output-format", output_format]
    if output_format == "stream-json":
        args.append("--verbose")
        if hook_events:
            args.append("--include-hook-events")
    if settings == "auto":
        s = project_dir / ".claude" / "settings.json"
        settings = s if s.exists() else None
    if settings is not None:
        args += ["--settings", str(settings)]
    args += list(extra_args)

    t0 = time.monotonic()
    proc = subprocess.Popen(
        args,
        cwd=project_dir,
        env=claude_env(home, base_url, env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
        start_new_session=True,
    )
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=_drain, args=(proc.stdout, out), daemon=True),
        threading.Thread(target=_drain, args=(proc.stderr, err), daemon=True),
    ]
    for t in readers:
        t.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
    finally:
        # on timeout, and also after a normal exit: a hook or a background Bash command may outlive the CLI
        _kill_group(proc)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for t in readers:
            t.join(timeout=5)
        for f in (proc.stdout, proc.stderr):
            try:
                f.close()
            except OSError:
                pass
    stdout, stderr = "".join(out), "".join(err)
    run = ClaudeRun(
        args=args,
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
        duration=time.monotonic() - t0,
        timed_out=timed_out,
        home=home,
    )
    for line in stdout.splitlines():
        if not line.strip():
            continue
        try:
            run.events.append(json.loads(line))
        except ValueError:
            run.bad_lines.append(line)
    run.transcript_path = find_transcript(home, project_dir, run.session_id)
    if run.transcript_path is not None:
        run.transcript = read_jsonl(run.transcript_path)
    return run


def claude_doctor(
    project_dir: Path | str, *, home: Path | str, claude_bin: Path | str | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """`claude doctor` in project_dir, offline. It exits 0 even with invalid settings: look for a line
    `Invalid settings` followed by `- <path> › <key>: <problem>` lines (see invalid_settings())."""
    claude_bin = str(claude_bin or require_claude())
    Path(home).mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [claude_bin, "doctor"],
        cwd=project_dir,
        env=claude_env(Path(home), "http://127.0.0.1:9"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def invalid_settings(doctor_output: str) -> list[str]:
    """The `- path › key: problem` lines under doctor's `Invalid settings` heading."""
    lines = doctor_output.splitlines()
    out: list[str] = []
    for i, line in enumerate(lines):
        if line.strip() == "Invalid settings":
            for follow in lines[i + 1 :]:
                if follow.startswith("- "):
                    out.append(follow[2:])
                elif follow.startswith("  "):
                    continue
                else:
                    break
    return out


def find_transcript(home: Path, project_dir: Path, session_id: str | None) -> Path | None:
    projects = Path(home) / ".claude" / "projects"
    if not projects.is_dir():
        return None
    if session_id:
        exact = projects / project_key(project_dir) / f"{session_id}.jsonl"
        if exact.exists():
            return exact
        hits = list(projects.glob(f"*/{session_id}.jsonl"))
        if hits:
            return hits[0]
    files = sorted(projects.glob("*/*.jsonl"), key=lambda p: p.stat().st_mtime)
    return files[-1] if files else None


def read_jsonl(path: Path) -> list[dict]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
