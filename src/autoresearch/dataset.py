"""Checking a user's table is fit to learn from, and shaping it for the models.

A problem that makes the table unusable is a DataError naming the column and the fix; one that is likely a
mistake but may be meant is a one-line warning, shown on the data card. Reading the file is sources.py.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from autoresearch.config import Config
from autoresearch.errors import DataError
from autoresearch.sources import Read, read_source

RESERVED_PREFIX = "__"
MIN_ROWS_FOR_IDS = 50


@dataclasses.dataclass
class Table:
    X: pd.DataFrame  # the features, in the dtypes every model sees
    y: pd.Series
    task: str
    warnings: list[str]
    source: str
    read: str | None = None  # how a CSV file was read, when not the plain default: for the data card


def load_table(cfg: Config) -> Table:
    read = read_source(cfg)
    df = read.df
    where = f"data = {cfg.data!r}"
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise DataError(f"{where}: the table has no rows or no columns")
    _check_column_names(df, where)
    _check_named_columns(df, cfg, read)
    warnings = list(read.warnings)

    y = df[cfg.target]
    _check_target_values(y, cfg.target, where)
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
        read=f"{Path(cfg.data).name} {read.unusual}" if read.unusual else None,
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


# ---------------------------------------------------------------------------
# Errors: the table cannot be used as configured


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


def _check_named_columns(df: pd.DataFrame, cfg: Config, read: Read) -> None:
    for name, field in ((cfg.target, "target"), (cfg.group_column, "group_column"), (cfg.time_column, "time_column")):
        if name is not None and name not in df.columns:
            close = difflib.get_close_matches(name, [str(c) for c in df.columns], n=3)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            if read.dialect and df.shape[1] == 1:
                # the usual cause: a separator the detection does not try
                only = str(df.columns[0])
                marks = collections.Counter(ch for ch in only if not ch.isalnum() and ch not in " _-.()'\"")
                sep = json.dumps(marks.most_common(1)[0][0]) if marks else '"..."'
                hint += (
                    f"; the file was read as one column named {only!r}: if it uses another separator, "
                    f"set it: csv = {{sep = {sep}}}"
                )
            elif read.unusual:
                hint += f"; the file was read {read.unusual}"
            raise DataError(
                f"pyproject.toml [tool.autoresearch] {field} = {name!r}: no such column in {cfg.data}{hint}"
            )
    missing_drop = [c for c in cfg.drop_columns if c not in df.columns]
    if missing_drop:
        raise DataError(f"pyproject.toml [tool.autoresearch] drop_columns: no column {missing_drop[0]!r} in {cfg.data}")


def _check_target_values(y: pd.Series, name: str, where: str) -> None:
    n_missing = int(y.isna().sum())
    if n_missing:
        raise DataError(
            f"{where}: target {name!r} is missing in {n_missing} of {len(y)} rows; "
            "drop those rows from the file (a model cannot learn or be scored on them)"
        )


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


def _id_like(X: pd.DataFrame) -> list[str]:
    n = len(X)
    out = []
    for c in X.columns:
        s = X[c]
        if (
            n >= MIN_ROWS_FOR_IDS
            and s.notna().all()
            and s.nunique() == n
            and (pd.api.types.is_integer_dtype(s) or pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s))
        ):
            out.append(c)
    return out


# ---------------------------------------------------------------------------
# Shaping


def _as_model_dtypes(X: pd.DataFrame) -> pd.DataFrame:
    """Text and booleans become pandas 'category' so every model sees the same, declared types."""
    X = X.copy()
    for c in X.columns:
        s = X[c]
        if pd.api.types.is_bool_dtype(s) or pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s):
            X[c] = s.astype(str).where(s.notna()).astype("category")
    return X
