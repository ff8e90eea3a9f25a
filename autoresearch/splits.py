"""The holdout split and the CV folds, fixed once so every experiment is scored on identical rows.

Classification: stratified. Groups: no group on both sides of any split. Time: the holdout is the
latest rows and folds chain forward (train on the past, test on the next block).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import (
    GroupKFold,
    GroupShuffleSplit,
    KFold,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)

Folds = list[tuple[np.ndarray, np.ndarray]]


def holdout_split(y: pd.Series, task: str, test_size: float, seed: int,
                  groups: pd.Series | None = None, time: pd.Series | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Row positions (train, holdout)."""
    idx = np.arange(len(y))
    if time is not None:
        order = np.argsort(time.to_numpy(), kind="stable")
        n_hold = max(1, int(round(len(y) * test_size)))
        return np.sort(order[:-n_hold]), np.sort(order[-n_hold:])
    classify = task != "regression"
    if groups is not None:
        if classify:
            n_splits = max(2, int(round(1 / test_size)))
            splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
            train, hold = next(splitter.split(idx, y, groups))
        else:
            splitter = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
            train, hold = next(splitter.split(idx, y, groups))
        return np.sort(train), np.sort(hold)
    train, hold = train_test_split(idx, test_size=test_size, random_state=seed,
                                   stratify=y if classify else None)
    return np.sort(train), np.sort(hold)


def make_folds(y: pd.Series, task: str, folds: int, repeats: int, seed: int,
               groups: pd.Series | None = None, time: pd.Series | None = None) -> Folds:
    """(train positions, test positions) for every fold, repeat-major."""
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
                # GroupKFold has no shuffle: permute the group labels per repeat instead
                codes, _ = pd.factorize(groups)
                perm = np.random.default_rng(rs).permutation(codes.max() + 1)
                groups = pd.Series(perm[codes])
                splitter = GroupKFold(n_splits=folds)
            parts = splitter.split(idx, y, groups)
        elif classify:
            parts = StratifiedKFold(n_splits=folds, shuffle=True, random_state=rs).split(idx, y)
        else:
            parts = KFold(n_splits=folds, shuffle=True, random_state=rs).split(idx)
        out.extend((np.sort(tr), np.sort(te)) for tr, te in parts)
    return out


def _forward_chaining(time: pd.Series, folds: int) -> Folds:
    order = np.argsort(time.to_numpy(), kind="stable")
    blocks = np.array_split(order, folds + 1)
    return [(np.sort(np.concatenate(blocks[: k + 1])), np.sort(blocks[k + 1])) for k in range(folds)]


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
