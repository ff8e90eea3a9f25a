"""results.tsv: whatever the agent writes as HYPOTHESIS or CATEGORY, every TSV reader gets the same rows back."""

from __future__ import annotations

import csv
import errno
import subprocess

import pandas as pd
import pytest

from autoresearch import ledger, text

HOSTILE = [
    '"starts with a quote',
    'ends with a quote"',
    'a "quoted" word inside',
    '"',
    '""',
    '"wholly quoted"',
    "tab\tinside\tit",
    "new\nline",
    "carriage\rreturn and\r\nCRLF",
    "nul \x00 byte",
    "lone surrogate \udcff bad byte",
    "\ud800",
    "x" * 10_000,
    "emoji 😀👩‍💻🇫🇷 and a \ud83d\ude00 pair",
    "RTL \u200f mark, \u202e override \u202c, Hebrew שלום",
    "\x1b[31mescape\x1b[0m sequence",
    "\ufeffBOM first",
    "trailing backslash \\",
    "  spaces around  ",
    "",
    "NA",
    "nan",
    "#not a comment",
    "a,b;c|d",
    "\u2028line separator\u2029paragraph",
]


def append_all(root, hypotheses):
    for i, h in enumerate(hypotheses, 1):
        ledger.append(
            root,
            {
                "iter": i,
                "tag": "t",
                "commit": "abc123",
                "status": "discard",
                "metric": 0.5 + i / 1000,
                "delta": float("nan"),
                "category": h[:30] or "model",
                "hypothesis": h,
                "note": f"note for {h[:50]}",
            },
        )


def test_hostile_hypotheses_round_trip_through_every_reader(tmp_path):
    append_all(tmp_path, HOSTILE)
    file = tmp_path / "results.tsv"
    expected = [ledger.cell(h) for h in HOSTILE]
    for v in expected:  # each stored value is one safe line within the cap, with no quote to unquote
        v.encode("utf-8")
        assert len(v) <= ledger.FIELD_WIDTH and "\t" not in v and '"' not in v and v == text.clean(v)
    assert expected[-13] == "x" * (ledger.FIELD_WIDTH - 1) + "…"

    ours = ledger.read(tmp_path)
    assert [r["hypothesis"] for r in ours] == expected
    assert [r["iter"] for r in ours] == [str(i) for i in range(1, len(HOSTILE) + 1)]

    frame = pd.read_csv(file, sep="\t", dtype=str, keep_default_na=False)
    assert list(frame.columns) == list(ledger.HEADER)
    assert frame["hypothesis"].tolist() == expected
    assert frame.to_dict("records") == ours

    with open(file, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    assert rows[0] == list(ledger.HEADER)
    assert [dict(zip(rows[0], r, strict=True)) for r in rows[1:]] == ours

    col = ledger.HEADER.index("hypothesis") + 1
    out = subprocess.run(["cut", "-f", str(col), str(file)], capture_output=True, check=True).stdout.decode()
    assert out.split("\n") == ["hypothesis", *expected, ""]
    fields = subprocess.run(["awk", "-F", "\t", "{print NF}", str(file)], capture_output=True, check=True).stdout
    assert fields.decode().split() == [str(len(ledger.HEADER))] * (len(HOSTILE) + 1)


def test_cell():
    assert ledger.cell('say "hi"\tthen\nleave') == "say 'hi' then leave"
    assert ledger.cell(float("nan")) == "" and ledger.cell(0.123456789) == "0.123457" and ledger.cell(None) == ""
    assert ledger.cell(7) == "7"


def test_a_ledger_of_the_earlier_writer_reads_back(tmp_path):
    """The writer before this one joined fields with tabs and left quotes and controls as they were: pandas
    merges such rows, read() keeps each line a row and each quote a quote."""
    header = "\t".join(ledger.HEADER) + "\n"

    def old_row(i, hypothesis):
        row = {k: "" for k in ledger.HEADER} | {"iter": str(i), "tag": "old", "status": "discard"}
        return "\t".join({**row, "hypothesis": hypothesis}.values()) + "\n"

    rows = [old_row(1, '"starts with a quote'), old_row(2, "plain"), old_row(3, 'ends"'), old_row(4, "esc \x1b[2J")]
    (tmp_path / "results.tsv").write_text(header + "".join(rows))
    ledger.append(tmp_path, {"iter": 5, "tag": "old", "status": "keep", "hypothesis": '"new" one'})
    got = ledger.read(tmp_path, "old")
    assert [r["hypothesis"] for r in got] == ['"starts with a quote', "plain", 'ends"', "esc \\x1b[2J", "'new' one"]
    assert [r["iter"] for r in got] == ["1", "2", "3", "4", "5"]


def test_a_hand_edited_ledger_reads_back(tmp_path):
    """Saved by an editor with CRLF line endings and a stray CR: still one row per line."""
    append_all(tmp_path, ["one", "two", "three"])
    file = tmp_path / "results.tsv"
    lines = file.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"two", b"t\rwo")
    file.write_bytes(b"\r\n".join(lines))
    assert [r["hypothesis"] for r in ledger.read(tmp_path)] == ["one", "t wo", "three"]


def test_header_once_and_tag_filter(tmp_path):
    ledger.append(tmp_path, {"iter": 1, "tag": "a", "status": "baseline"})
    ledger.append(tmp_path, {"iter": 1, "tag": "b", "status": "baseline"})
    lines = (tmp_path / "results.tsv").read_text().splitlines()
    assert lines[0] == "\t".join(ledger.HEADER) and len(lines) == 3
    assert [r["tag"] for r in ledger.read(tmp_path, "b")] == ["b"]
    assert ledger.read(tmp_path / "nowhere") == []


def test_unknown_field():
    with pytest.raises(ValueError, match="unknown ledger fields"):
        ledger.format_row({"iter": 1, "secret": "x"})


def test_torn_last_line_is_moved_aside(tmp_path):
    append_all(tmp_path, ["one", "two"])
    file = tmp_path / "results.tsv"
    whole = file.read_bytes()
    with open(file, "ab") as f:
        f.write(b"3\tt\t2024")  # a crash mid-row
    assert len(ledger.read(tmp_path)) == 2  # a torn line is not a row
    ledger.append(tmp_path, {"iter": 3, "tag": "t", "status": "keep", "hypothesis": "three"})
    assert file.read_bytes().startswith(whole)
    assert [r["hypothesis"] for r in ledger.read(tmp_path)] == ["one", "two", "three"]
    (aside,) = (tmp_path / ".autoresearch").glob("results.torn-*")
    assert aside.read_bytes() == b"3\tt\t2024"


def test_a_short_write_is_truncated_and_reported(tmp_path, monkeypatch):
    """A full disk: the first write() goes short, the next one fails. No torn row stays, the message says why."""
    append_all(tmp_path, ["one"])
    file = tmp_path / "results.tsv"
    before = file.read_bytes()
    real_write, calls = ledger.os.write, []

    def full_disk(fd, data):
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:7]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ledger.os, "write", full_disk)
    with pytest.raises(ledger.LedgerError) as e:
        ledger.append(tmp_path, {"iter": 2, "tag": "t", "status": "keep", "hypothesis": "two"})
    assert str(e.value) == (
        f"{file}: could not append the row (No space left on device); free disk space and run "
        "`uv run autoresearch status` to record it (the step's verdict is kept in "
        ".autoresearch/runs/<tag>/pending.json until then)"
    )
    assert file.read_bytes() == before and len(calls) == 2
