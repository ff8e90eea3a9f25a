"""One sanitiser for the text the agent writes and the harness passes on (HYPOTHESIS, CATEGORY, a child's
error lines) to git, the ledger, JSON files and the terminal.

Python strings can hold what no file or terminal should get: a lone surrogate cannot be encoded as UTF-8
at all (the write fails, and so does every later one), a NUL truncates C strings, a newline or a tab breaks
a one-line record, an escape sequence or a bidi override rewrites what the human sees. So every such string
goes through here once, where it enters:

    clean(value)            the full text, made one safe line (kept in the per-iteration JSON, the commit)
    shown(value, width)     clean, then capped with an ellipsis (the step line, the ledger, the card)
    error_tail(output)      the last lines of a child's output, each made safe and clipped
"""

from __future__ import annotations

import re

SHOWN_WIDTH = 200  # one hypothesis on the step line: long enough to say what changed, short of a screenful
TAIL_LINES = 15
TAIL_WIDTH = 300  # one printed tail line at most: a single 100 MB line must not flood the agent
ELLIPSIS = "…"

# A surrogate pair spelled as two escapes ("\ud83d\ude00") is one character a UTF-16 writer meant; joined,
# it prints as itself instead of two escapes.
_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")
# Escaped rather than dropped, so a reader still sees something was there: C0 and C1 controls and DEL
# (what whitespace folding left), lone surrogates, and the bidi controls that reorder a line on screen
# (U+061C, U+200E/F, U+202A-E, U+2066-9). Other format characters (the zero-width joiner inside an emoji)
# stay: they change no order and hide nothing.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NOT_SPACE_WHITESPACE = re.compile(r"[^\S ]")


def _join_pair(m: re.Match) -> str:
    hi, lo = (ord(c) for c in m.group())
    return chr(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))


def _escape(m: re.Match) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _as_str(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "backslashreplace")
    return value if isinstance(value, str) else str(value)


def clean(value) -> str:
    """`value` as one line that encodes as UTF-8 and shows as itself, not capped.

    Every run of whitespace (newlines, CR, tabs, form feeds, U+2028, no-break spaces...) becomes one space and
    the ends are stripped; a surrogate pair becomes its character; what remains of controls, lone surrogates
    and bidi controls is escaped as \\xNN or \\uNNNN. None gives "", bytes are read as UTF-8 (undecodable
    bytes as \\xNN), anything else as str(). clean(clean(x)) == clean(x)."""
    s = _PAIR.sub(_join_pair, _as_str(value))
    return _UNSAFE.sub(_escape, " ".join(s.split()))


def shown(value, width: int = SHOWN_WIDTH) -> str:
    """clean(value), cut to at most `width` characters (code points) ending in an ellipsis when it was longer."""
    if width < 1:
        raise ValueError(f"width must be at least 1, not {width}")
    s = clean(value)
    if len(s) <= width:
        return s
    return s[: width - 1].rstrip() + ELLIPSIS


def clip(line: str, width: int = TAIL_WIDTH) -> str:
    """A line longer than `width` cut there, saying how much was left out."""
    return line if len(line) <= width else f"{line[:width]} [... {len(line) - width} more characters]"


def _tail_line(line: str) -> str:
    # unlike clean(), runs of spaces stay: a traceback's indentation says which frame a line belongs to
    s = _NOT_SPACE_WHITESPACE.sub(" ", _PAIR.sub(_join_pair, line).expandtabs(4)).rstrip()
    return _UNSAFE.sub(_escape, s)


def error_tail(output, lines: int = TAIL_LINES, width: int = TAIL_WIDTH) -> list[str]:
    """The last `lines` non-blank lines of a child's output, each made safe (controls escaped, tabs as
    spaces, indentation kept) and clipped to `width` characters plus the "[... N more characters]" note."""
    out: list[str] = []
    for raw in reversed(_as_str(output).splitlines()):
        if len(out) >= lines:
            break
        line = _tail_line(raw)
        if line.strip():
            out.append(clip(line, width))
    return out[::-1]
