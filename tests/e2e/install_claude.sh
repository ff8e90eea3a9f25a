#!/usr/bin/env bash
# Install the pinned Claude Code CLI into <repo>/.ci/node (idempotent), check that it runs offline, and print the
# path of the `claude` binary on stdout (everything else goes to stderr).
#   bash tests/e2e/install_claude.sh            # CLAUDE_CODE_VERSION=x.y.z overrides the pin
# The npm package is a thin wrapper: the CLI is a native binary in a per-platform optional dependency
# (@anthropic-ai/claude-code-linux-x64, ...), so optional dependencies must not be omitted. The package declares
# engines node>=22 but the native binary does not use node, so it runs with Node 20 (npm only warns).
set -euo pipefail
VERSION="${CLAUDE_CODE_VERSION:-2.1.330}"
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PREFIX="$ROOT/.ci/node"
BIN="$PREFIX/node_modules/.bin/claude"
# keep every check offline and quiet (see claude_runner.QUIET_ENV)
export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 DISABLE_TELEMETRY=1 DISABLE_ERROR_REPORTING=1

installed_version() {
  # `claude --version` prints "2.1.330 (Claude Code)"
  [ -x "$BIN" ] || return 1
  timeout 30 "$BIN" --version 2>/dev/null | awk '{print $1; exit}'
}

if [ "$(installed_version || true)" != "$VERSION" ]; then
  command -v npm >/dev/null 2>&1 || { echo "install_claude.sh: npm not found (install Node.js >= 20)" >&2; exit 1; }
  mkdir -p "$PREFIX"
  echo "install_claude.sh: installing @anthropic-ai/claude-code@$VERSION into $PREFIX" >&2
  start=$(date +%s)
  npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error --include=optional \
    "@anthropic-ai/claude-code@$VERSION" >&2
  echo "install_claude.sh: npm install took $(( $(date +%s) - start ))s" >&2
  got="$(installed_version || true)"
  if [ "$got" != "$VERSION" ]; then
    echo "install_claude.sh: installed CLI reports version '$got', expected '$VERSION'" >&2
    exit 1
  fi
fi

# offline health check with a throwaway HOME (doctor writes ~/.claude.json and runs `npm -g config get prefix`)
tmp_home="$(mktemp -d)"
trap 'rm -rf "$tmp_home"' EXIT
if ! out="$(cd "$tmp_home" && HOME="$tmp_home" timeout 60 "$BIN" doctor </dev/null 2>&1)"; then
  echo "install_claude.sh: \`claude doctor\` failed:" >&2
  echo "$out" >&2
  exit 1
fi
echo "$BIN"
