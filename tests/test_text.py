"""text.py: whatever the agent writes, what reaches git, the ledger, JSON and the terminal is one safe line.

Property-style over seeded random strings (no extra dependency: the generator draws from the kinds of
characters that broke things, not uniformly from Unicode, where they would be rare), plus named cases.
"""

from __future__ import annotations

import random
import re
import unicodedata

import pytest

from autoresearch import static_check, text

BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
POOLS = [
    "abcxyz ABC 0123456789 .,;:!?-_/()[]{}=+*'\"`\\",  # plain text, quotes and backslashes included
    "\t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\u2028\u2029\xa0\u3000   ",  # whitespace of every kind
    "".join(map(chr, range(0x00, 0x20))) + "\x7f" + "".join(map(chr, range(0x80, 0xA0))),  # C0, DEL, C1
    "\ud800\udbff\udc00\udcff\udfff\ud83d\ude00",  # lone surrogates, and halves of a pair
    BIDI + "\u200b\u200d\ufeff\u2060",  # bidi controls, zero-width characters, BOM
    "éßøπЖשלוםمرحبا中文日本語😀👍🏽👩‍💻🇫🇷\u0301",  # letters of several scripts, emoji, a combining mark
    "\x1b[31m\x1b]0;title\x07\x1b[2J",  # terminal escape sequences, whole
]


def random_text(rng: random.Random) -> str:
    n = rng.choice([0, 1, 2, 5, 20, 100, 500, 3000])
    pools = rng.sample(POOLS, rng.randint(1, len(POOLS)))
    return "".join(rng.choice(rng.choice(pools)) for _ in range(n))


def random_bytes(rng: random.Random) -> bytes:
    return bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 10, 300])))


CASES = [random_text(random.Random(seed)) for seed in range(1000)]
UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff" + BIDI + "]")


def assert_one_safe_line(s: str) -> None:
    s.encode("utf-8")  # strict: no surrogate survives
    assert not UNSAFE.search(s), ascii(s)
    assert s == " ".join(s.split()), ascii(s)  # one line: no other whitespace, no runs, no ends
    assert len(s.splitlines()) <= 1


def test_clean_is_one_safe_line_and_idempotent():
    for s in CASES:
        c = text.clean(s)
        assert_one_safe_line(c)
        assert text.clean(c) == c


@pytest.mark.parametrize("width", [1, 2, 10, 80, text.SHOWN_WIDTH])
def test_shown_is_capped_and_idempotent(width):
    for s in CASES:
        v = text.shown(s, width)
        assert_one_safe_line(v)
        assert len(v) <= width
        assert text.shown(v, width) == v and text.clean(v) == v
        assert v == text.shown(text.clean(s), width)
        full = text.clean(s)
        assert v == full if len(full) <= width else v.endswith(text.ELLIPSIS)


def test_bytes_and_other_values():
    rng = random.Random(7)
    for _ in range(300):
        b = random_bytes(rng)
        assert_one_safe_line(text.clean(b))
        assert text.clean(text.clean(b)) == text.clean(b)
    assert text.clean(None) == "" and text.clean(3.5) == "3.5" and text.clean(b"\xff ok") == "\\xff ok"


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("\udcff bad byte", "\\udcff bad byte"),
        ("\ud800", "\\ud800"),
        ("\x00", "\\x00"),
        ("a\x00b", "a\\x00b"),
        ("one\ntwo", "one two"),
        ("  a\r\n\tb  \u2028 c ", "a b c"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("abc\u202edcba", "abc\\u202edcba"),
        ("\u200fRTL mark", "\\u200fRTL mark"),
        ("\ud83d\ude00 as two escapes", "😀 as two escapes"),
        ("👩‍💻 שלום", "👩‍💻 שלום"),  # the joiner inside the emoji stays, right-to-left letters stay
        ('"quoted" \\ kept', '"quoted" \\ kept'),
        ("\x85next line", "next line"),
    ],
)
def test_named_cases(raw, clean):
    assert text.clean(raw) == clean


def test_shown_cap():
    assert text.shown("x" * 10_000) == "x" * (text.SHOWN_WIDTH - 1) + "…"
    assert text.shown("word " * 100, 11) == "word word…"  # no space before the ellipsis
    assert text.shown("short") == "short"
    with pytest.raises(ValueError):
        text.shown("x", 0)


def test_error_tail():
    out = "\n".join(f"line {i}" for i in range(40)) + "\n\n   \n"
    assert text.error_tail(out) == [f"line {i}" for i in range(25, 40)]
    assert text.TAIL_LINES == 15 and text.TAIL_WIDTH == 300
    long = "y" * 1000
    assert text.error_tail(long) == ["y" * 300 + " [... 700 more characters]"]
    tb = 'Traceback (most recent call last):\n  File "train.py", line 3\n\tx = 1\x1b[2J\r\nValueError: \udcff\n'
    assert text.error_tail(tb, lines=3) == ['  File "train.py", line 3', "    x = 1\\x1b[2J", "ValueError: \\udcff"]
    assert text.error_tail("") == [] and text.error_tail(None) == []


def test_error_tail_lines_are_safe():
    for i, s in enumerate(CASES):
        width = 1 + i % 300
        lines = text.error_tail(s, lines=1 + i % 20, width=width)
        assert len(lines) <= 1 + i % 20
        for line in lines:
            line.encode("utf-8")
            assert not UNSAFE.search(line) and line.strip() and len(line.splitlines()) == 1
            m = re.fullmatch(r"(.*) \[\.\.\. (\d+) more characters\]", line, re.DOTALL)
            assert len(line) <= width or (m and len(m.group(1)) == width), ascii(line)
            assert all(not unicodedata.category(c).startswith("Z") or c == " " for c in line)


def test_declarations_are_clean_at_the_source():
    source = 'HYPOTHESIS = "a\\rb\\x00 \\udcff \\u202e end"\nCATEGORY = "model\\t"\n'
    assert static_check.declarations(source) == {"HYPOTHESIS": "a b\\x00 \\udcff \\u202e end", "CATEGORY": "model"}
    # the one-line rule still judges what was written
    assert static_check.declaration_problems('HYPOTHESIS = "two\\nlines"\nCATEGORY = "model"\n')
    assert not static_check.declaration_problems('HYPOTHESIS = "one line"\nCATEGORY = "model"\n')


def test_a_nul_byte_in_train_py_is_not_a_traceback():
    source = 'HYPOTHESIS = "nul \x00 inside"\nCATEGORY = "model"\n'  # a raw NUL: ast.parse raises ValueError
    assert static_check.findings(source) == []
    assert static_check.declarations(source) == {"HYPOTHESIS": "nul \\x00 inside", "CATEGORY": "model"}
    assert static_check.statements(source) == 2
    assert static_check.without_declarations(source) == source
