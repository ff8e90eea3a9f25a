"""End-to-end tests that drive the real Claude Code CLI against a scripted model on 127.0.0.1 (see claude_runner)."""
