"""`autoresearch profile`: real tables prepared in tmp_path, the verb run as a real subprocess."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import FAST_CONFIG, make_project

from autoresearch import layout, manifest, profile, profile_text
from autoresearch.config import load_config


def prepared(tmp_path, df: pd.DataFrame, name: str = "p", **config):
    """A project whose data is `df` (target y), prepared: (project, cfg, manifest)."""
    p = make_project(tmp_path / name, config={**FAST_CONFIG, "data": "table.parquet", "target": "y", **config})
    df.to_parquet(p.path / "table.parquet", index=False)
    cfg = load_config(p.path)
    return p, cfg, manifest.write(cfg)


def train_part(cfg) -> pd.DataFrame:
    return pd.read_parquet(cfg.data_dir / layout.TRAIN_PART)


def mixed(n=600, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    df = pd.DataFrame(
        {
            "x": np.where(rng.random(n) < 0.1, np.nan, x),  # ~10% missing
            "count": rng.integers(0, 4, size=n),  # many zeros
            "month": rng.choice(["Jan", "Feb", "Mar", " Apr", "Mai é"], size=n, p=[0.4, 0.3, 0.15, 0.1, 0.05]),
            "flag": rng.random(n) < 0.3,  # a bool column: the model sees category 'True'/'False'
            "plan": np.where(rng.random(n) < 0.05, None, rng.choice(["basic", "pro"], size=n)),
        }
    )
    df["y"] = np.where(x + rng.normal(scale=0.5, size=n) > 0, "yes", "no")
    return df


# ---------------------------------------------------------------------------
# The holdout is never read


def holdout_marked(n=400) -> pd.DataFrame:
    """A time-ordered table whose latest rows (the holdout) hold a level and a value seen nowhere else."""
    rng = np.random.default_rng(1)
    df = pd.DataFrame(
        {
            "t": pd.date_range("2020-01-01", periods=n, freq="D"),
            "c": rng.choice(["a", "b"], size=n).astype(object),
            "x": rng.normal(size=n),
        }
    )
    late = df.index >= n - 40  # inside the latest 20%: the holdout
    df.loc[late, "c"] = "HOLDOUT_MARKER"
    df.loc[late, "x"] = 1e9
    df["y"] = rng.choice(["u", "v"], size=n)
    return df


def test_holdout_never_read(tmp_path):
    p, cfg, m = prepared(tmp_path, holdout_marked(), time_column="t", keep_time_column=True, test_size=0.2)
    # the test means something: the train part's category dtype declares the holdout-only level
    assert "HOLDOUT_MARKER" in train_part(cfg)["c"].cat.categories
    assert "HOLDOUT_MARKER" in set(pd.read_parquet(cfg.data_dir / layout.HOLDOUT_PART)["c"])
    for name in (layout.HOLDOUT_PART, layout.HOLDOUT_FEATURES, layout.LABELS):  # whatever reads them fails
        (cfg.data_dir / name).unlink()
    out = p.cli("profile", "--all", check=True).stdout + p.cli("profile", "--column", "c", check=True).stdout
    cache = profile.cache_path(cfg, m).read_text()
    for text in (out, cache):
        assert "HOLDOUT_MARKER" not in text and "1e+09" not in text and "1000000000" not in text
    col = {c["name"]: c for c in json.loads(cache)["columns"]}
    assert col["c"]["distinct"] == 2 and col["x"]["quantiles"][-1] < 10
    assert col["t"]["kind"] == "date" and col["t"]["quantiles"][-1] < "2020-12-01"


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace to watch the file opens")
def test_no_holdout_file_is_opened(tmp_path):
    p, cfg, m = prepared(tmp_path, mixed())
    log = tmp_path / "opens.log"
    cmd = ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", str(log)]
    proc = subprocess.run(
        [*cmd, sys.executable, "-m", "autoresearch.cli", "profile"],
        cwd=p.path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0 and "ptrace" in proc.stderr:
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    opened = log.read_text()
    assert "train.parquet" in opened  # the trace saw the data file it did read
    for name in (layout.HOLDOUT_PART, layout.HOLDOUT_FEATURES, layout.LABELS):
        assert name not in opened


# ---------------------------------------------------------------------------
# What it says matches pandas on the train part


def test_levels_counts_missing_and_quantiles_match_pandas(tmp_path):
    p, cfg, m = prepared(tmp_path, mixed())
    train = train_part(cfg)
    prof = profile.load(cfg, m)
    col = {c["name"]: c for c in prof["columns"]}
    n = len(train)
    assert prof["n_rows"] == n == m["n_train"]
    for name in ("x", "count", "month", "flag", "plan"):
        s = train[name]
        assert col[name]["missing"] == s.isna().sum(), name
        assert col[name]["distinct"] == s.nunique(), name
    assert [col[c]["kind"] for c in ("x", "count", "month", "flag", "plan")] == ["num", "int", "cat", "cat", "cat"]
    for name in ("month", "flag", "plan"):
        counts = train[name].value_counts()
        counts = counts[counts > 0]
        assert dict(col[name]["levels"]) == {repr(v): int(k) for v, k in counts.items()}
        assert [k for _, k in col[name]["levels"]] == sorted(counts, reverse=True)
    assert {lv for lv, _ in col["flag"]["levels"]} == {"'True'", "'False'"}  # strings, as the model sees them
    x = train["x"].dropna().to_numpy()
    np.testing.assert_allclose(col["x"]["quantiles"], np.quantile(x, [0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1]))
    assert col["count"]["zeros"] == (train["count"] == 0).sum()
    assert prof["target"]["classes"] == [[repr(k), int(v)] for k, v in train["y"].value_counts().items()]

    out = p.cli("profile", check=True).stdout
    line = next(x for x in out.splitlines() if x.strip().startswith("month "))
    top = train["month"].value_counts()
    assert f"{top.index[0]!r} {top.iloc[0]}" in line and "' Apr'" in line  # the leading space is visible
    plan_line = next(x for x in out.splitlines() if x.strip().startswith("plan "))
    x_share, plan_share = train["x"].isna().mean(), train["plan"].isna().mean()
    assert f" {100 * plan_share:.1f}% " in plan_line  # (both shares are under 10%: one decimal)
    assert f"missing values in 2 of 5 columns: x {100 * x_share:.1f}%, plan {100 * plan_share:.1f}%" in out
    assert "target 'y': binary, dtype " in out and f"'no' {(train['y'] == 'no').sum():,}" in out
    full = p.cli("profile", "--column", "month", check=True).stdout
    assert "'Mai é'" in full and "commonest first" in full


def test_regression_target_and_unknown_column(tmp_path):
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"a": rng.normal(size=300), "b": rng.integers(0, 3, size=300)})
    df["y"] = 3 * df["a"] + rng.normal(size=300)
    p, cfg, m = prepared(tmp_path, df)
    t = profile.load(cfg, m)["target"]
    y = train_part(cfg)["y"]
    assert t["task"] == "regression" and t["distinct"] == y.nunique()
    np.testing.assert_allclose([t["quantiles"][0], t["quantiles"][-1], t["mean"]], [y.min(), y.max(), y.mean()])
    assert profile.load(cfg, m)["columns"][0]["name"] == "a"  # the signal ranks the informative column first
    bad = p.cli("profile", "--column", "aa")
    assert bad.returncode == 2 and "no column 'aa'" in bad.stderr and "did you mean 'a'" in bad.stderr


# ---------------------------------------------------------------------------
# Near-duplicate pairs


def test_correlated_and_relabelled_pairs(tmp_path):
    rng = np.random.default_rng(4)
    n = 500
    a = rng.normal(size=n)
    e = rng.choice(["x", "y", "z"], size=n, p=[0.5, 0.3, 0.2])
    df = pd.DataFrame(
        {
            "a": a,
            "b": 2 * a + 1,  # r = +1
            "c": -a + rng.normal(scale=0.01, size=n),  # r ~ -0.9999
            "d": rng.normal(size=n),  # independent
            "e": e,
            "f": pd.Series(e).map({"x": "level_1", "y": "level_2", "z": "level_3"}),  # a relabeling of e
            "g": rng.choice(["x", "y", "z"], size=n, p=[0.5, 0.3, 0.2]),  # same counts shape, not the same
        }
    )
    df.loc[rng.choice(n, 30, replace=False), "b"] = np.nan  # r is still found with missing values
    df["const"], df["row_id"] = 7, np.arange(n)  # notes, never pairs
    df["y"] = np.where(a + rng.normal(size=n) > 0, "p", "q")
    p, cfg, m = prepared(tmp_path, df)
    pairs = {frozenset((x, y)): how for x, y, how in profile.load(cfg, m)["pairs"]}
    assert pairs[frozenset("ab")] == "r +1.0000"
    assert pairs[frozenset("ac")].startswith("r -0.999")
    assert pairs[frozenset("ef")] == "same partition"
    assert not any(k & {"d", "g", "const", "row_id"} for k in pairs), pairs
    out = p.cli("profile", check=True).stdout
    assert "  e ~ f (same partition)\n" in out and "  a ~ b (r +1.0000)\n" in out
    assert "notes: constant (no information): const; unique per row (an ID?): row_id" in out


def test_structure_between_columns_is_exact(tmp_path):
    """What dogfood agents inferred from counts (round 4: is 'No internet service' the rows where
    internet_service is 'No'? round 5: does a zip fall in one city?), stated exactly on every train row."""
    rng = np.random.default_rng(8)
    n = 600
    zip_ = rng.choice([f"z{i}" for i in range(12)], size=n)
    internet = rng.choice(["DSL", "Fiber", "No"], size=n, p=[0.4, 0.4, 0.2])
    df = pd.DataFrame(
        {
            "zip": zip_,
            "city": pd.Series(zip_).map({f"z{i}": f"c{i // 3}" for i in range(12)}),  # zip determines city
            "internet": internet,
            "security": np.where(internet == "No", "No internet", rng.choice(["Yes", "No"], size=n)),
            "backup": np.where(internet == "No", "No internet", rng.choice(["Yes", "No"], size=n)),
            "relabel": pd.Series(internet).map({"DSL": "a", "Fiber": "b", "No": "c"}),  # a pair, not a fact
            "noise": rng.choice(["u", "v"], size=n),
        }
    )
    df["y"] = np.where(rng.normal(size=n) + (internet == "No") > 0.5, "p", "q")
    p, cfg, m = prepared(tmp_path, df)
    prof = profile.load(cfg, m)
    facts = prof["structure"]
    assert ["determines", "zip", "city", "12 -> 4 values"] in facts, facts
    same = [f for f in facts if f[0] == "same rows"]
    no_internet = int((train_part(cfg)["internet"] == "No").sum())
    assert len(same) == 1 and same[0][1] == no_internet, same  # one group, not three pairs
    assert sorted(map(tuple, same[0][2])) == [
        ("backup", "'No internet'"),
        ("internet", "'No'"),
        ("relabel", "'c'"),
        ("security", "'No internet'"),
    ]
    assert not any("noise" in json.dumps(f) for f in facts), facts
    # a relabeling is a near-duplicate pair, not a pair of facts: every value of it would match
    assert not [f for f in facts if f[0] == "determines" and {f[1], f[2]} == {"internet", "relabel"}], facts
    out = p.cli("profile", check=True).stdout
    assert "  zip determines city (12 -> 4 values)\n" in out, out
    assert f"  the same {no_internet:,} rows: " in out and "internet 'No'" in out, out
    one = p.cli("profile", "--column", "security", check=True).stdout
    assert f"structure: the same {no_internet:,} rows: " in one and "zip" not in one, one


# ---------------------------------------------------------------------------
# Bounded output


def wide(n_rows=300, n_cols=500, seed=5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.random(n_rows) < 0.4
    cols = {}
    for i in range(n_cols):
        name = f"feature_with_a_longish_name_{i:03d}"
        if i % 5 == 0:
            levels = [f"a rather long level string number {k} of the column" for k in range(30)]
            cols[name] = rng.choice(levels, size=n_rows)
        else:
            cols[name] = np.where(rng.random(n_rows) < 0.05, np.nan, rng.normal(size=n_rows) * 1e5)
    cols["strong"] = np.where(y, 1.0, 0.0) + rng.normal(scale=0.3, size=n_rows)
    df = pd.DataFrame(cols)
    df["y"] = np.where(y, "yes", "no")
    return df


def test_bound_holds_on_a_wide_table(tmp_path):
    p, cfg, m = prepared(tmp_path, wide())
    out = p.cli("profile", check=True).stdout
    assert len(out.encode()) <= profile_text.MAX_BYTES, len(out.encode())
    lines = out.splitlines()
    rows = [x for x in lines if x.startswith("  feature_") or x.startswith("  strong")]
    assert len(rows) == profile.TOP and rows[0].startswith("  strong ")  # the strongest signal first
    assert all(len(x.encode()) <= profile_text.LINE_BYTES + 10 for x in rows)  # names are 34 chars: 10 past the width
    assert f"{501 - profile.TOP} weaker columns not shown" in out and "--all" in out and "--column NAME" in out
    assert "missing values in 400 of 501 columns" in out
    everything = p.cli("profile", "--all", check=True).stdout
    assert all(f"feature_with_a_longish_name_{i:03d} " in everything for i in range(500))
    # 20 columns print in a few KB: one short line each
    p20, cfg20, m20 = prepared(tmp_path, wide(n_cols=20).drop(columns="strong"), name="p20")
    text = profile.render(profile.load(cfg20, m20))
    assert len(text.encode()) <= 20 * profile_text.LINE_BYTES + 1200


def test_compact_is_bounded_and_says_what_matters(tmp_path):
    p, cfg, m = prepared(tmp_path, mixed())
    assert profile.compact(cfg, m, compute=False) == "data profile: `uv run autoresearch profile` (not computed yet)"
    text = profile.compact(cfg, m)
    assert len(text.encode()) <= profile.COMPACT_BYTES
    assert "target 'y'" in text and "'no'" in text and "%" in text
    assert "month 'Jan'/'Feb'/'Mar'/' Apr'/+1" in text and "flag 'False'/'True'" in text
    share = train_part(cfg)["plan"].isna().mean()
    assert "missing: x " in text and f"plan {100 * share:.1f}%" in text
    for limit in (60, 120, 200, 300, 500, 2000):
        assert len(profile.compact(cfg, m, limit).encode()) <= limit
    wide_p, wide_cfg, wide_m = prepared(tmp_path, wide(), name="wide")
    for limit in (200, 700):
        assert len(profile.compact(wide_cfg, wide_m, limit).encode()) <= limit


# ---------------------------------------------------------------------------
# The cache


def test_cache_reused_then_recomputed_when_the_data_changes(tmp_path):
    df = mixed()
    p, cfg, m = prepared(tmp_path, df)
    first = p.cli("profile", check=True).stdout
    path = profile.cache_path(cfg, m)
    stamp = path.stat().st_mtime_ns
    assert p.cli("profile", check=True).stdout == first and path.stat().st_mtime_ns == stamp  # reused
    # a cached call imports neither pandas nor numpy: it costs the interpreter's start and a JSON read
    probe = (
        "import sys; from autoresearch import profile; from autoresearch.config import load_config; "
        "from autoresearch.manifest import load_manifest; cfg = load_config(); "
        "profile.render(profile.load(cfg, load_manifest(cfg))); print(sorted({'pandas', 'numpy'} & set(sys.modules)))"
    )
    assert p.run("-c", probe, check=True).stdout.strip() == "[]"

    # new data, prepared again: a new manifest id, a fresh profile, the old one gone
    df.loc[df.index[:50], "month"] = "Dec"
    df.to_parquet(p.path / "table.parquet", index=False)
    m2 = manifest.write(cfg)
    assert m2["id"] != m["id"]
    second = p.cli("profile", check=True).stdout
    assert "'Dec'" in second and "'Dec'" not in first
    assert not path.exists() and profile.cache_path(cfg, m2).exists()

    # the train part rewritten in place (same manifest): the stale cache is not used
    assert profile.cached(cfg, m2) is not None
    train = train_part(cfg)
    train["month"] = train["month"].cat.add_categories("Nov")
    train.loc[train.index[:5], "month"] = "Nov"
    train.to_parquet(cfg.data_dir / layout.TRAIN_PART, index=False)
    assert profile.cached(cfg, m2) is None
    assert "'Nov' 5" in profile.render(profile.load(cfg, m2))


def test_deterministic(tmp_path):
    p, cfg, m = prepared(tmp_path, wide(n_rows=25_000, n_cols=12))  # over the signal's sample size
    first = profile.load(cfg, m)
    profile.cache_path(cfg, m).unlink()
    second = profile.load(cfg, m)
    assert first["sample_rows"] == profile.SAMPLE_ROWS
    first.pop("compute_s"), second.pop("compute_s")
    assert first == second


def test_help_explains_each_part(tmp_path):
    p = make_project(tmp_path / "p")
    out = p.cli("profile", "--help", check=True).stdout
    for part in (
        "target:",
        "kinds:",
        "signal:",
        "columns:",
        "near-duplicates:",
        "structure:",
        "notes:",
        "--all",
        "--column",
    ):
        assert part in out, part
    assert "mutual information" in out and "never" in out
    missing = p.cli("profile")
    assert missing.returncode == 2 and "uv run prepare.py" in missing.stderr
