#!/bin/sh
# Claude Code hook entry point: `autoresearch hook <event>` from the project's own environment.
# All logic lives in src/autoresearch/hooks.py; this file finds it fast (no uv resolve on every tool call) and
# makes sure that a hook which cannot run never blocks: Claude Code reads exit 2 as "block", and the stop
# gate's block cap is lifted, so a failure that blocked would trap the agent. Hence exit 0 on every path
# here, and the hook's stdout (its decision) is passed on only when the hook finished cleanly. The permission
# rules in .claude/settings.json apply whatever this file does.
#
# The venv's console script, not `python -m`: `-m` puts the working directory (the project folder, which the
# agent writes) first on sys.path, where a planted json.py or pandas/ would shadow the library.
dir="${CLAUDE_PROJECT_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
event="${1:-}"
log="$dir/.autoresearch/hook-errors.log"
err=""

case "$event" in
  guard) consequence="the guard gives no decision, so the permission rules in .claude/settings.json decide this tool call" ;;
  stop) consequence="the stop gate lets the agent stop (a hook must not trap it on its own failure); fix this, then resume the session" ;;
  session-start) consequence="no status card injected; \`uv run autoresearch status\` shows where the run stands" ;;
  *) consequence="no decision" ;;
esac

fail_open() {
  # $1: what went wrong; $2: a file with the hook's stderr, for the log (optional)
  printf 'autoresearch hook %s failed: %s; %s (details in .autoresearch/hook-errors.log)\n' \
    "$event" "$1" "$consequence" >&2
  # only inside an existing project folder: never create the folder a wrong CLAUDE_PROJECT_DIR names
  if [ -d "$dir" ] && { [ -d "$dir/.autoresearch" ] || mkdir "$dir/.autoresearch" 2>/dev/null; }; then
    if [ -f "$log" ] && [ $(($(wc -c 2>/dev/null <"$log") + 0)) -gt 262144 ]; then
      mv -f "$log" "$log.1" 2>/dev/null  # bounded like hooks.py: at most twice this on disk
    fi
    {
      printf '%s %s hook %s (run-hook.sh)\n%s\n' "---" "$(date +%Y-%m-%dT%H:%M:%S)" "$event" "$1"
      # the control characters a terminal would act on go; the traceback's lines stay
      [ -n "$2" ] && tail -n 60 "$2" | tr -d '\000-\010\013-\037\177'
    } >>"$log" 2>/dev/null
  fi
  exit 0
}

cd "$dir" 2>/dev/null || fail_open "the project folder $dir cannot be entered"
if [ -x "$dir/.venv/bin/autoresearch" ]; then
  set -- "$dir/.venv/bin/autoresearch" hook "$@"
elif command -v uv >/dev/null 2>&1; then
  # --frozen: a hook must never rewrite uv.lock, a frozen file
  set -- uv run --quiet --frozen --project "$dir" autoresearch hook "$@"
else
  fail_open "neither $dir/.venv/bin/autoresearch nor uv was found (run \`uv sync\` in the project)"
fi

err=$(mktemp "${TMPDIR:-/tmp}/autoresearch-hook.XXXXXX" 2>/dev/null) || err=""
if [ -n "$err" ]; then
  trap 'rm -f "$err"' EXIT
  trap 'rm -f "$err"; exit 0' HUP INT TERM  # killed at Claude Code's timeout: no temporary file left behind
fi
if [ -n "$err" ]; then
  out=$("$@" 2>"$err")
  rc=$?
  cat "$err" >&2
else
  out=$("$@")
  rc=$?
fi
if [ "$rc" -ne 0 ]; then
  fail_open "\`autoresearch hook\` exited with status $rc, its decision (if any) ignored" "$err"
fi
[ -n "$out" ] && printf '%s\n' "$out"
exit 0
