"""Fixtures for the end-to-end tests against the real Claude Code CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from .claude_runner import require_claude


@pytest.fixture(scope="session")
def claude_bin() -> Path:
    """The claude binary (CLAUDE_BIN, <repo>/.ci/node, PATH); missing: skip, or fail when CI is set."""
    return require_claude()
