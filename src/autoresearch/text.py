"""Agent-written text made safe for git, the ledger, JSON and the terminal (placeholder: see the ledger branch)."""

from __future__ import annotations

TAIL_LINES = 15
TAIL_WIDTH = 300  # one printed tail line at most: a single 100 MB line must not flood the agent


def tail_lines(text: str, lines: int = TAIL_LINES, width: int = TAIL_WIDTH) -> list[str]:
    out = [_clip(line, width) for line in text.splitlines() if line.strip()]
    return out[-lines:]


def _clip(line: str, width: int) -> str:
    return line if len(line) <= width else f"{line[:width]} [... {len(line) - width} more characters]"


def clean(value) -> str:
    """Placeholder until the sanitiser lands: one line, no control characters."""
    s = "" if value is None else str(value)
    s = "".join(ch if ch.isprintable() or ch == " " else " " for ch in s)
    s = s.encode("utf-8", "replace").decode("utf-8")
    return " ".join(s.split())


def shown(value, cap: int = 300) -> str:
    s = clean(value)
    return s if len(s) <= cap else s[: cap - 1] + "…"
