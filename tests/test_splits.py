"""The holdout split and the CV folds: deterministic, platform-independent, stratified, group- and time-safe.

Every test prepares a real table in tmp_path with the harness and reads back what it wrote to data/.
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np
import pandas as pd
import pytest

from autoresearch.config import parse_config
from autoresearch.dataset import DataError
from autoresearch.layout import FOLDS, MANIFEST
from autoresearch.layout import HOLDOUT_PART as HOLDOUT
from autoresearch.layout import TRAIN_PART as TRAIN
from autoresearch.manifest import prepare
from autoresearch.splits import load_folds


def table(n=600):
    """A deterministic table without any RNG (identical on every platform): 15% positives, one text column."""
    i = np.arange(n)
    return pd.DataFrame(
        {
            "x1": (i * 37 % 101) / 10.0,
            "x2": np.where(i % 11 == 0, np.nan, (i * 13 % 29) / 3.0),
            "color": np.array(["red", "green", "blue", "cyan"])[i * 7 % 4],
            "y": np.where(i * 7 % 20 < 3, "yes", "no"),
        }
    )


def prepared(root, df, **fields):
    """Prepare df; the parts it returns hold a split column only when kept (keep_time_column, ...)."""
    root.mkdir(parents=True, exist_ok=True)
    df.to_csv(root / "t.csv", index=False)
    cfg = parse_config({"data": "t.csv", "target": "y", "folds": 3, "repeats": 2, **fields}, root)
    manifest, written = prepare(cfg)
    assert written
    data = root / "data"
    return (manifest, pd.read_parquet(data / TRAIN), pd.read_parquet(data / HOLDOUT), load_folds(data / FOLDS))


def folds_sha(folds) -> str:
    h = hashlib.sha256()
    for tr, te in folds:
        h.update(np.asarray(tr, dtype="<i4").tobytes() + b"|" + np.asarray(te, dtype="<i4").tobytes() + b";")
    return h.hexdigest()


# ---------------------------------------------------------------------------
# Determinism


def test_same_split_in_two_directories(tmp_path):
    a = prepared(tmp_path / "a", table())
    time.sleep(2.1)  # zip and parquet timestamps have 2 s resolution: a time-stamped file would differ now
    b = prepared(tmp_path / "b", table())
    assert a[0]["id"] == b[0]["id"] and a[0]["files"] == b[0]["files"]
    pd.testing.assert_frame_equal(a[1], b[1])
    pd.testing.assert_frame_equal(a[2], b[2])
    assert folds_sha(a[3]) == folds_sha(b[3])
    for (tra, tea), (trb, teb) in zip(a[3], b[3], strict=True):
        np.testing.assert_array_equal(tra, trb)
        np.testing.assert_array_equal(tea, teb)
    # the manifest on disk is what prepare returned, and its id pins the files it lists
    on_disk = json.loads((tmp_path / "a" / "data" / MANIFEST).read_text())
    assert on_disk["id"] == a[0]["id"] and on_disk["n_folds"] == 6


# Recorded once; the same on every platform and run (numpy's MT19937 and sklearn's splitters are portable).
# If this fails after a dependency bump, the split moved: every result scored before it is incomparable.
GOLDEN_FOLDS_SHA = "14b3a85b9d5dcd4139f96c6e9e22ae602d5512d725d38181435130bb70c8529f"
GOLDEN_HOLDOUT_X1_SUM = 618.3


def test_split_matches_the_recorded_hashes(tmp_path):
    manifest, train, hold, folds = prepared(tmp_path, table())
    assert (manifest["n_train"], manifest["n_holdout"]) == (480, 120)
    assert folds_sha(folds) == GOLDEN_FOLDS_SHA
    assert round(float(hold["x1"].sum()), 6) == GOLDEN_HOLDOUT_X1_SUM


# ---------------------------------------------------------------------------
# Stratification


@pytest.mark.parametrize("kind", ["binary", "multiclass"])
def test_folds_and_holdout_are_stratified(tmp_path, kind):
    df = table()
    if kind == "multiclass":
        df["y"] = np.array(["a", "b", "b", "c", "c", "c", "c", "c", "c", "c"])[np.arange(len(df)) * 3 % 10]
    manifest, train, hold, folds = prepared(tmp_path, df)
    overall = df["y"].value_counts(normalize=True)
    assert manifest["task"] == kind and len(folds) == 6
    parts = [hold["y"]] + [train["y"].iloc[te] for _, te in folds] + [train["y"].iloc[tr] for tr, _ in folds]
    for part in parts:
        share = part.value_counts(normalize=True).reindex(overall.index, fill_value=0)
        assert (share - overall).abs().max() < 0.02, share
    for tr, te in folds:  # a partition of the train part
        assert len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == len(train)
    # each repeat covers every train row once, and the two repeats are different draws
    for r in (0, 1):
        tests = np.sort(np.concatenate([te for _, te in folds[3 * r : 3 * r + 3]]))
        np.testing.assert_array_equal(tests, np.arange(len(train)))
    assert not np.array_equal(folds[0][1], folds[3][1])


# ---------------------------------------------------------------------------
# Groups


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_no_group_on_both_sides(tmp_path, kind):
    df = table(595)
    i = np.arange(len(df))
    # 34 groups of 1, 2, ..., 34 rows (no two the same size), scattered through the table
    df["store"] = np.repeat([f"s{g}" for g in range(34)], np.arange(1, 35))[i * 3 % 595]
    if kind == "regression":
        df["y"] = df["x1"] * 2 + i % 7
    manifest, train, hold, folds = prepared(tmp_path, df, group_column="store", keep_group_column=True)
    assert manifest["task"] == kind
    assert not set(train["store"]) & set(hold["store"])
    assert 0.1 < len(hold) / len(df) < 0.3
    for tr, te in folds:
        assert not set(train["store"].iloc[tr]) & set(train["store"].iloc[te])
    # repeats must be different draws, or the t-test counts the same folds twice
    assert not all(np.array_equal(folds[k][1], folds[k + 3][1]) for k in range(3))


# ---------------------------------------------------------------------------
# Time


def dated(n=400, fmt="%m/%d/%Y"):
    """Several rows per day, shuffled, across a year boundary; US dates that sort wrongly as text."""
    df = table(n)
    days = pd.Timestamp("2019-11-20") + pd.to_timedelta(np.arange(n) * 7 % 90 // 1, unit="D")
    df["when"] = days.strftime(fmt)
    df["day"] = days
    return df


@pytest.mark.parametrize("fmt", ["%m/%d/%Y", "%Y-%m-%d"])
def test_time_split_is_past_then_future(tmp_path, fmt):
    df = dated(fmt=fmt)
    manifest, train, hold, folds = prepared(tmp_path, df.drop(columns="day"), time_column="when", keep_time_column=True)
    day = {d: pd.Timestamp(x) for d, x in zip(df["when"], df["day"], strict=True)}
    t_train = train["when"].astype(str).map(day)
    t_hold = hold["when"].astype(str).map(day)
    assert t_train.max() < t_hold.min(), "the holdout must be the latest rows, with no day on both sides"
    assert 0.1 < len(hold) / len(df) < 0.3
    assert manifest["n_folds"] == 3 and len(folds) == 3  # repeats are meaningless in time order
    for tr, te in folds:
        assert t_train.iloc[tr].max() < t_train.iloc[te].min()
    assert [t_train.iloc[te].min() for _, te in folds] == sorted(t_train.iloc[te].min() for _, te in folds)


def test_numeric_time_column(tmp_path):
    df = table().assign(t=lambda d: (np.arange(len(d)) * 31) % 600)
    _, train, hold, folds = prepared(tmp_path, df, time_column="t", keep_time_column=True)
    assert train["t"].max() < hold["t"].min()
    for tr, te in folds:
        assert train["t"].iloc[tr].max() < train["t"].iloc[te].min()


@pytest.mark.parametrize(
    "values, message",
    [
        (lambda n: ["2020-01-01"] * (n - 1) + [None], "is missing in 1 rows"),
        (lambda n: ["soon", "later"] * (n // 2), "neither numbers nor dates"),
        (lambda n: ["2020-01-01"] * n, "nothing is left to train on"),
        (lambda n: ["2020-01-01"] * (n - 10) + ["2020-01-02"] * 10, "too few distinct times"),
    ],
)
def test_bad_time_columns_are_clean_errors(tmp_path, values, message):
    df = table(100).assign(when=lambda d: values(len(d)))
    with pytest.raises(DataError, match=message):
        prepared(tmp_path, df, time_column="when", test_size=0.05)
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("kind", ["binary", "regression"])
@pytest.mark.parametrize(
    "stores, folds, message",
    [
        (lambda i: np.where(i == 5, None, "s" + (i % 9).astype(str)), 3, "group_column 'store' is missing in 1 rows"),
        (lambda i: "s" + (i % 3).astype(str), 3, "has 3 groups here, too few for the holdout split \\(at least 5\\)"),
        (lambda i: "s" + (i % 6).astype(str), 10, r"has \d groups here, too few for 10 folds \(at least 10\)"),
    ],
)
def test_bad_group_columns_are_clean_errors(tmp_path, kind, stores, folds, message):
    df = table(100).assign(store=lambda d: stores(np.arange(len(d))))
    if kind == "regression":
        df["y"] = df["x1"]
    with pytest.raises(DataError, match=message):
        prepared(tmp_path, df, group_column="store", folds=folds)
    assert not (tmp_path / "data").exists()
