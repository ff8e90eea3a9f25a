"""Checking a user's table is fit to learn from, and shaping it for the models.

A problem that makes the table unusable is a DataError naming the column and the fix. One that is likely a
mistake but may be meant (an infinity, a text column of numbers, a leak) is a one-line warning naming the
column, shown on the data card. Reading the file is sources.py.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from autoresearch.config import Config
from autoresearch.errors import DataError
from autoresearch.sources import Read, read_source

RESERVED_PREFIX = "__"
MIN_ROWS_FOR_IDS = 50
MIN_VALUES_TO_JUDGE = 20  # fewer values than this say too little about a column to warn about it
MOSTLY_NUMBERS = 0.9
FEW_TARGET_VALUES = 10
PERFECT_CORRELATION = 0.9999


@dataclasses.dataclass
class Table:
    X: pd.DataFrame  # the features, in the dtypes every model sees
    y: pd.Series
    task: str
    warnings: list[str]
    source: str
    # the split columns, aligned with X and y; in X too only when kept (keep_time_column, keep_group_column)
    time: pd.Series | None = None
    groups: pd.Series | None = None
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
    warnings += _target_doubts(y, task, cfg)

    X = df.drop(columns=[cfg.target, *cfg.drop_columns])
    empty = [c for c in X.columns if X[c].isna().all()]
    if empty:
        warnings.append(f"dropped {len(empty)} entirely empty column(s): {', '.join(map(str, empty[:5]))}")
        X = X.drop(columns=empty)
    time, groups = _split_column(X, cfg, "time_column"), _split_column(X, cfg, "group_column")
    not_features = _not_features(cfg)
    X = X.drop(columns=not_features)
    if X.shape[1] == 0:
        besides = "".join(f" and the split column {c!r} (not a feature unless kept)" for c in not_features)
        raise DataError(f"{where}: no feature columns left besides the target{besides}")

    X, infinite = _finite(X)
    warnings += infinite
    warnings += _numbers_as_text(X, read)
    warnings += _constant(X)
    warnings += [
        f"column {c!r} looks like a row ID (unique per row); consider adding it to drop_columns"
        for c in _id_like(X.drop(columns=[cfg.time_column], errors="ignore"))
    ]
    warnings += _leaks(X, y, task)
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
        time=time,
        groups=groups,
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
    n_inf = int(np.isinf(y.to_numpy(dtype=float, na_value=np.nan)).sum()) if pd.api.types.is_float_dtype(y) else 0
    for n_bad, what in ((int(y.isna().sum()), "missing"), (n_inf, "infinite")):
        if n_bad:
            raise DataError(
                f"{where}: target {name!r} is {what} in {n_bad} of {len(y)} rows; "
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


def _split_column(X: pd.DataFrame, cfg: Config, field: str) -> pd.Series | None:
    name = getattr(cfg, field)
    if name is None:
        return None
    if name not in X.columns:
        raise DataError(
            f"pyproject.toml [tool.autoresearch] {field} = {name!r}: the column is empty in every "
            "row or listed in drop_columns; name a column with values"
        )
    return X[name].reset_index(drop=True)


def _not_features(cfg: Config) -> list[str]:
    """The split columns not kept as features: a time is beyond the range of every earlier fold it trains
    on, and a group is unseen in every fold that tests it."""
    split = ((cfg.time_column, cfg.keep_time_column), (cfg.group_column, cfg.keep_group_column))
    return [name for name, kept in split if name is not None and not kept]


# ---------------------------------------------------------------------------
# Warnings: likely mistakes, each on one line that names the column


def _target_doubts(y: pd.Series, task: str, cfg: Config) -> list[str]:
    """A task that fits the target's values but perhaps not its meaning."""
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return []
    n = y.nunique()
    if task == "regression" and n <= FEW_TARGET_VALUES:
        values = ", ".join(f"{v:g}" for v in sorted(y.unique())[:5]) + (", ..." if n > 5 else "")
        return [
            f"target {cfg.target!r} has only {n} distinct values ({values}) but is scored as regression; "
            'if they are classes, set task = "multiclass"'
        ]
    if task == "multiclass" and cfg.task is None and n > FEW_TARGET_VALUES:
        return [
            f"target {cfg.target!r} is numeric with {n} distinct values and was taken as {n} classes; "
            'if it is a quantity (a count, a score), set task = "regression"'
        ]
    return []


def _finite(X: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Infinities become missing values: every scikit-learn model refuses them ("Input X contains
    infinity", naming no column), while every model of the baseline can handle a missing value."""
    warnings = []
    for c in X.columns:
        if not pd.api.types.is_float_dtype(X[c]):
            continue
        values = X[c].to_numpy(dtype=float, na_value=np.nan)
        inf = np.isinf(values)
        if inf.any():
            n_pos, n_neg = int((values == np.inf).sum()), int((values == -np.inf).sum())
            kinds = ", ".join(f"{k} {s}" for k, s in ((n_pos, "inf"), (n_neg, "-inf")) if k)
            warnings.append(
                f"column {c!r} holds {_count(n_pos + n_neg, 'infinite value')} ({kinds}); the harness made them "
                "missing values so every model can run: if they mean something (a cap, a division by zero), "
                "replace them in the file"
            )
            X = X.assign(**{c: X[c].mask(inf)})
    return X, warnings


def _numbers_as_text(X: pd.DataFrame, read: Read) -> list[str]:
    """A text column that is mostly numbers: a few markers of missing values ('?', '-', 'unknown') made
    pandas read it as text, and the models would see a category of many levels instead of a number."""
    decimal = read.dialect.decimal if read.dialect else "."
    warnings = []
    for c in X.columns:
        s = X[c]
        if not (pd.api.types.is_object_dtype(s) or pd.api.types.is_string_dtype(s)):
            continue
        text = s.dropna().astype(str).str.strip()
        if len(text) < MIN_VALUES_TO_JUDGE or _as_numbers(text.iloc[:1000], decimal).notna().mean() < 0.5:
            continue
        numbers = _as_numbers(text, decimal)
        share = numbers.notna().mean()
        if share < MOSTLY_NUMBERS:
            continue
        others = text[numbers.isna()].value_counts()
        if others.empty:
            warnings.append(f"column {c!r} holds numbers stored as text; convert it to numbers in the file")
            continue
        shown = ", ".join(f"{v!r} ({_count(k, 'row')})" for v, k in others.head(3).items())
        shown += ", ..." if len(others) > 3 else ""
        if read.dialect is not None:
            listed = ", ".join(json.dumps(v, ensure_ascii=False) for v in others.index[:3])
            fix = f"list them in csv.na_values (csv = {{na_values = [{listed}]}})"
        else:
            fix = "make them missing values in the source"
        warnings.append(
            f"column {c!r} is text, but {math.floor(share * 100)}% of its values are numbers; the others are "
            f"{shown}: if they mean missing, {fix} so the column is read as numbers"
        )
    return warnings


def _as_numbers(text: pd.Series, decimal: str) -> pd.Series:
    if decimal == ",":
        # as the CSV reader would: with a decimal comma, a point is not part of a number
        text = text.where(~text.str.contains(".", regex=False)).str.replace(",", ".", regex=False)
    return pd.to_numeric(text, errors="coerce")


def _constant(X: pd.DataFrame) -> list[str]:
    # a single value with missing ones still says which rows are missing: not constant
    return [
        f"column {c!r} has the same value ({X[c].iloc[0]!r}) in every row: nothing to learn from; "
        "consider adding it to drop_columns"
        for c in X.columns
        if X[c].nunique(dropna=False) == 1
    ]


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


def _leaks(X: pd.DataFrame, y: pd.Series, task: str) -> list[str]:
    """Columns that predict the target perfectly: a copy of it, a recoding of its classes, or an exact linear
    function of it. Real features almost never do; a column filled in after the outcome does."""
    leak = "a leak? if it is known only after the outcome, add it to drop_columns"
    copy = f"is a copy of the target {y.name!r}: a leak; add it to drop_columns"
    out = []
    for c in X.columns:
        s = X[c]
        known = s.notna()
        if known.sum() < max(MIN_VALUES_TO_JUDGE, 0.9 * len(s)) or s[known].nunique() < 2:
            continue
        if task == "regression":
            if not pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s):
                continue
            x, t = s[known].to_numpy(dtype=float), y[known].to_numpy(dtype=float)
            r = np.corrcoef(x, t)[0, 1]
            if np.array_equal(x, t):
                out.append(f"column {c!r} {copy}")
            elif abs(r) >= PERFECT_CORRELATION:
                out.append(f"column {c!r} predicts the target perfectly (correlation {r:.4f} with {y.name!r}): {leak}")
        elif s[known].nunique() == y[known].nunique():  # cheap, and rules out every continuous column
            pairs = pd.DataFrame({"x": s[known].to_numpy(), "y": y[known].to_numpy()}).drop_duplicates()
            if len(pairs) == y[known].nunique():  # a one-to-one map between the column's values and the classes
                if (pairs["x"].astype(str) == pairs["y"].astype(str)).all():
                    out.append(f"column {c!r} {copy}")
                else:
                    out.append(
                        f"column {c!r} predicts the target perfectly (each of its values goes with one class of "
                        f"{y.name!r}, and back): {leak}"
                    )
    return out


def _count(n: int, thing: str) -> str:
    return f"{n} {thing}{'s' * (n != 1)}"


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
