#!/bin/sh
# Claude Code hook entry point: `autoresearch hook <event>` with the project's own interpreter.
# All logic lives in autoresearch/hooks.py; this file only finds Python fast (no uv resolve on every tool call).
dir="${CLAUDE_PROJECT_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
cd "$dir" || exit 0
if [ -x "$dir/.venv/bin/python" ]; then
  exec "$dir/.venv/bin/python" -m autoresearch.cli hook "$@"
fi
exec uv run --quiet --project "$dir" python -m autoresearch.cli hook "$@"
