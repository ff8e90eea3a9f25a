"""The holdout split and the CV folds, fixed once so every experiment is scored on identical rows.

Classification: stratified. Groups: no group on both sides of any split. Time: the holdout is the
latest rows and folds chain forward (train on the past, test on the next block).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from autoresearch.errors import DataError

if TYPE_CHECKING:  # pandas is imported where it is used: the evaluation child loads folds without it
    import pandas as pd

Folds = list[tuple[np.ndarray, np.ndarray]]


def holdout_split(
    y: pd.Series, task: str, test_size: float, seed: int, groups: pd.Series | None = None, time: pd.Series | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (train, holdout)."""
    # sklearn only here and in make_folds: the evaluation child loads folds without paying for it
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split

    idx = np.arange(len(y))
    if time is not None:
        order, t = _time_order(time)
        cut = _tie_safe(t, len(y) - max(1, int(round(len(y) * test_size))))
        if cut == 0:
            raise DataError(
                f"time_column {time.name!r}: the latest time covers every row, so nothing is "
                "left to train on; use a finer time column or lower test_size"
            )
        return np.sort(order[:cut]), np.sort(order[cut:])
    classify = task != "regression"
    if groups is not None:
        if groups.isna().any():
            raise DataError(
                f"group_column {groups.name!r} is missing in {int(groups.isna().sum())} rows; "
                "fill them (e.g. with a group of their own) or drop those rows"
            )
        n_splits = max(2, int(round(1 / test_size)))
        _check_groups(groups, n_splits, "the holdout split")
        if classify:
            splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            train, hold = next(splitter.split(idx, y, groups))
        else:
            train, hold = _group_holdout(groups, test_size, seed)
        return np.sort(train), np.sort(hold)
    train, hold = train_test_split(idx, test_size=test_size, random_state=seed, stratify=y if classify else None)
    return np.sort(train), np.sort(hold)


def _group_holdout(groups: pd.Series, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Whole groups, in a seeded random order, until test_size of the rows is held out. (GroupShuffleSplit
    holds out test_size of the groups instead, which misses the row share badly when group sizes differ.)"""
    import pandas as pd

    codes, uniques = pd.factorize(groups)
    order = np.random.default_rng(seed).permutation(len(uniques))
    n_groups = int(np.searchsorted(np.cumsum(np.bincount(codes)[order]), test_size * len(codes))) + 1
    hold = np.isin(codes, order[: min(n_groups, len(uniques) - 1)])  # never every group: keep some to train on
    return np.flatnonzero(~hold), np.flatnonzero(hold)


def _check_groups(groups: pd.Series, need: int, what: str) -> None:
    if groups.nunique() < need:
        raise DataError(
            f"group_column {groups.name!r} has {groups.nunique()} groups here, too few for {what} "
            f"(at least {need}); lower folds or test_size, or name a finer group column"
        )


def make_folds(
    y: pd.Series,
    task: str,
    folds: int,
    repeats: int,
    seed: int,
    groups: pd.Series | None = None,
    time: pd.Series | None = None,
) -> Folds:
    """(train positions, test positions) for every fold, repeat-major."""
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    idx = np.arange(len(y))
    if time is not None:
        return _forward_chaining(time, folds)
    classify = task != "regression"
    out: Folds = []
    for r in range(repeats):
        rs = seed + 1000 * r
        if groups is not None:
            if classify:
                splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=rs)
            else:
                # without shuffle GroupKFold deals groups by size, so every repeat would be the same folds
                splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=rs)
            _check_groups(groups, folds, f"{folds} folds")
            parts = splitter.split(idx, y, groups)
        elif classify:
            parts = StratifiedKFold(n_splits=folds, shuffle=True, random_state=rs).split(idx, y)
        else:
            parts = KFold(n_splits=folds, shuffle=True, random_state=rs).split(idx)
        out.extend((np.sort(tr), np.sort(te)) for tr, te in parts)
    return out


def _forward_chaining(time: pd.Series, folds: int) -> Folds:
    order, t = _time_order(time)
    sizes = [len(b) for b in np.array_split(order, folds + 1)]
    edges = [0, *(_tie_safe(t, int(c)) for c in np.cumsum(sizes)[:-1]), len(order)]
    if any(a >= b for a, b in zip(edges, edges[1:], strict=False)):
        raise DataError(
            f"time_column {time.name!r} has too few distinct times for {folds} forward-chaining "
            "folds; lower folds or use a finer time column"
        )
    return [(np.sort(order[: edges[k + 1]]), np.sort(order[edges[k + 1] : edges[k + 2]])) for k in range(folds)]


def _time_order(time: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Row positions sorted by time, and the sorted times. Text is parsed as dates: sorting it as text
    would put '10/1/2020' before '9/1/2020'."""
    import pandas as pd

    t = time.astype(object) if isinstance(time.dtype, pd.CategoricalDtype) else time
    if not (pd.api.types.is_numeric_dtype(t) or pd.api.types.is_datetime64_any_dtype(t)):
        try:
            t = pd.to_datetime(t, format="mixed")
        except (ValueError, TypeError, OverflowError):
            raise DataError(
                f"time_column {time.name!r}: values such as {time.dropna().iloc[0]!r} are neither "
                "numbers nor dates; name a numeric or date column"
            ) from None
    if t.isna().any():
        raise DataError(
            f"time_column {time.name!r} is missing in {int(t.isna().sum())} rows; "
            "fill or drop those rows (they cannot be placed in time)"
        )
    order = np.argsort(t.to_numpy(), kind="stable")
    return order, t.to_numpy()[order]


def _tie_safe(sorted_times: np.ndarray, cut: int) -> int:
    """Move a cut back to where the time changes, so rows sharing a time stay on one side."""
    return int(np.searchsorted(sorted_times, sorted_times[cut], side="left"))


def fold_size_ratio(folds: Folds) -> float:
    """n_test / n_train, the Nadeau-Bengio correction term."""
    return float(np.mean([len(te) / len(tr) for tr, te in folds]))


def save_folds(path, folds: Folds) -> None:
    arrays = {}
    for i, (tr, te) in enumerate(folds):
        arrays[f"train_{i}"] = tr.astype(np.int32)
        arrays[f"test_{i}"] = te.astype(np.int32)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def load_folds(path) -> Folds:
    with np.load(path) as z:
        n = len(z.files) // 2
        return [(z[f"train_{i}"], z[f"test_{i}"]) for i in range(n)]
