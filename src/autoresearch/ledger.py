"""results.tsv: the append-only ledger, one row per experiment, never rewritten.

Each row goes down in a single write() on an O_APPEND descriptor followed by fsync, so a reader sees
either the whole row or none of it. A torn last line (a crash or a full disk mid-write) is moved aside
to .autoresearch/results.torn-<time> before the next append, never silently dropped.

The format is plain TSV that every reader splits the same way (pandas.read_csv(sep="\t"), the csv module,
cut, awk, a spreadsheet): each field is text.shown() (one line, no tabs, no controls, at most FIELD_WIDTH
characters) with ASCII double quotes turned into single ones. A quote is the one character those readers
disagree on: pandas and csv take a field that starts with one as quoted, run it on across tabs and lines
and lose or merge rows, while cut keeps it. With no quote, no tab and no line break in any field the csv
writer never needs to quote, so no reader has to unquote. Ledgers of the earlier writer (tab-joined, quotes
left as they were) read back unchanged: read() takes every quote literally.
"""

from __future__ import annotations

import csv
import errno
import io
import math
import os
import time
from pathlib import Path

from autoresearch import text
from autoresearch.errors import UserError

FILENAME = "results.tsv"
HEADER = (
    "iter",
    "tag",
    "time",
    "commit",
    "status",
    "metric",
    "delta",
    "p_value",
    "se",
    "wall_s",
    "eval_s",
    "category",
    "hypothesis",
    "note",
)
# wide enough for any hypothesis worth reading in a table; the full text is in iters/<n>.json and the commit
FIELD_WIDTH = 1000


class _Dialect(csv.Dialect):
    delimiter = "\t"
    quotechar = '"'
    doublequote = True
    quoting = csv.QUOTE_MINIMAL  # never triggered by a cell(), which has nothing to quote
    lineterminator = "\n"
    skipinitialspace = False
    strict = False


class _ReadDialect(_Dialect):
    # neither this writer nor the one before it ever quoted a field, so a quote in the file is text
    quoting = csv.QUOTE_NONE
    quotechar = None


class LedgerError(UserError):
    pass


def path(root: Path) -> Path:
    return root / FILENAME


def cell(value) -> str:
    """A value as the ledger stores it: what read() gives back for it."""
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:.6g}"
    return text.shown(value, FIELD_WIDTH).replace('"', "'")


def _line(fields) -> str:
    buf = io.StringIO()
    csv.writer(buf, _Dialect).writerow(fields)
    return buf.getvalue()


def format_row(row: dict) -> str:
    unknown = set(row) - set(HEADER)
    if unknown:
        raise ValueError(f"unknown ledger fields {sorted(unknown)}")
    return _line(cell(row.get(k)) for k in HEADER)


def append(root: Path, row: dict) -> None:
    file = path(root)
    repair(root)
    data = format_row({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **row}).encode()
    fd = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            data = _line(HEADER).encode() + data
        try:
            rest = memoryview(data)
            while rest:  # a full disk first writes short; the next write names the cause (ENOSPC, EFBIG, EDQUOT)
                n = os.write(fd, rest)
                if n == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                rest = rest[n:]
            os.fsync(fd)
        except OSError as e:
            os.ftruncate(fd, size)  # leave no torn row behind
            raise LedgerError(
                f"{file}: could not append the row ({e.strerror or e}); free disk space and run "
                "`uv run autoresearch status` to record it (the step's verdict is kept in "
                ".autoresearch/runs/<tag>/pending.json until then)"
            ) from None
    finally:
        os.close(fd)


def repair(root: Path) -> str | None:
    """Move a torn last line aside; returns a note when something was repaired."""
    file = path(root)
    if not file.is_file():
        return None
    raw = file.read_bytes()
    if not raw or raw.endswith(b"\n") and _whole(raw.rsplit(b"\n", 2)[-2]):
        return None
    body = raw[: raw.rfind(b"\n", 0, len(raw) - 1 if raw.endswith(b"\n") else len(raw)) + 1]
    torn = raw[len(body) :]
    aside = root / ".autoresearch" / f"results.torn-{time.strftime('%Y%m%d-%H%M%S')}"
    aside.parent.mkdir(exist_ok=True)
    aside.write_bytes(torn)
    with open(file, "r+b") as f:
        f.truncate(len(body))
    return f"results.tsv had a torn last line; moved it to {aside.relative_to(root)}"


def _whole(line: bytes) -> bool:
    return line.count(b"\t") == len(HEADER) - 1


def read(root: Path, tag: str | None = None) -> list[dict]:
    """The rows (of `tag`), values as strings. Each value comes out clean (text.clean): an earlier writer
    let control characters through, and the status card prints these to the agent's terminal."""
    file = path(root)
    if not file.is_file():
        return []
    with open(file, encoding="utf-8", errors="replace", newline="\n") as f:
        records = csv.reader(_whole_lines(f), _ReadDialect)
        header = [text.clean(x) for x in next(records, [])]
        rows = []
        for fields in records:
            if len(fields) != len(header):
                continue
            row = dict(zip(header, (text.clean(x) for x in fields), strict=True))
            if tag is None or row.get("tag") == tag:
                rows.append(row)
    return rows


def _whole_lines(f):
    # One record per line: no field holds a line break. A last line without its newline is torn: not a row.
    # No writer put a CR in the file; an editor may have (CRLF endings, a stray one), and csv would take it
    # for the end of a record in the middle of the line.
    for line in f:
        if not line.endswith("\n"):
            return
        yield line[:-1].removesuffix("\r").replace("\r", " ")


def number(row: dict, key: str) -> float:
    try:
        return float(row.get(key, ""))
    except ValueError:
        return math.nan


def by_category(steps: list[dict], kept: tuple[str, ...]) -> list[tuple[str, int, int, float]]:
    """(category, tried, kept, summed Δ of the kept) per category, the largest summed Δ first."""
    stats: dict[str, list] = {}
    for r in steps:
        s = stats.setdefault(r["category"] or "?", [0, 0, 0.0])
        s[0] += 1
        if r["status"] in kept:
            delta = number(r, "delta")
            s[1] += 1
            s[2] += 0.0 if math.isnan(delta) else delta
    return sorted(((c, n, k, d) for c, (n, k, d) in stats.items()), key=lambda x: (-x[3], -x[2], x[0]))
