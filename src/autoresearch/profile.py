"""`autoresearch profile`: an agent-safe look at the train part, the data scientist's first hour in one screen.

The agent may not read data/, so without this it knows the column names and kinds only. The profile shows,
computed on data/train.parquet (the train part: features and target) and never on the holdout:

    target        its dtype (strings or numbers, as y reaches the model) and class balance, or its distribution
    kinds         how many columns of each kind the model sees; which columns have missing values
    columns       one line each, strongest signal first: kind, missing share, distinct values, signal, then
                  for numbers [min p25 median p75 max] and the share of zeros, for categoricals the top
                  levels with counts, quoted exactly as the strings in the `category` dtype
    signal        mutual information with the target (nats, Miller-Madow bias-corrected), on a seeded
                  sample of at most SAMPLE_ROWS rows: numbers in at most BINS quantile bins, categoricals
                  their TOP_LEVELS commonest levels + "other", missing values a bin of their own
    near-dupes    column pairs that carry the same information: |Pearson r| > PAIR_R on a sample of at most
                  PAIR_ROWS rows (then r on every row), or the same partition of the rows (a relabeling)

Only levels seen in the train part are shown: the `category` dtype's declared categories also hold levels
that occur in the holdout only, and those are never printed. No per-level target rates are shown either: a
mapping copied from them into train.py would leak each fold's validation targets.

Bounds (asserted by tests/test_profile.py): a column line is at most LINE_BYTES (140) bytes, plus the name's
length beyond NAME_WIDTH; the default view shows at most TOP (30) columns, the strongest (the rest are counted,
and `--all` / `--column NAME` show them) and at most MAX_PAIRS pairs, and drops columns from its end rather than
pass MAX_BYTES (6,000 bytes) however wide the table. Measured: a column line is ~80 bytes on average (numbers
~75, categoricals up to 140), so 20 columns cost ~1.6 KB plus a ~0.7 KB header; the default 19-column table
prints 2,726 bytes in all; 500-column tables print 3.7-4.7 KB. `compact()` (the start and status cards' form:
~440 bytes on the default table) is at most its `limit_bytes` (default COMPACT_BYTES, 700).

Cost: the statistics are computed once per prepared data and cached in .autoresearch/profile-<manifest id>.json,
keyed by the manifest id and the train part's size, mtime and inode, so re-preparing or rewriting the data
recomputes them (bump VERSION when what compute() stores changes). A cached call imports neither pandas nor
numpy. Measured on the shared 2-core box, bytecode caching off (PYTHONDONTWRITEBYTECODE), so every import
compiles: the default table (4,000 train rows x 19) first call 3.6 s wall (0.15 s of it computing, the rest
importing pandas), cached 0.27 s with `uv run` (0.14 s of it ours); 200,000 rows x 59 (bench/profile_bench.py)
first call 3.9 s (1.4 s computing), cached 0.10 s; 20,000 rows x 499 first call 8.7 s (4.6 s computing),
cached 0.3-0.4 s (a 190 KB cache read in 13 ms; the rest is the interpreter on a loaded box).
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import os
import time
import warnings

from autoresearch import layout
from autoresearch.config import Config, load_config
from autoresearch.errors import UserError
from autoresearch.files import atomic_write, read_json

VERSION = 1  # of the cached statistics: a change recomputes every cache
SAMPLE_ROWS = 20_000  # the signal's sample
PAIR_ROWS = 5_000  # the correlation screen's sample (a prefix of the signal's)
PAIR_COLUMNS = 400  # at most this many numeric columns (the strongest) enter the correlation screen
PAIR_R = 0.99
PARTITION_CHECKS = 5_000  # candidate pairs checked for the same partition, at most
BINS = 16
TOP_LEVELS = 15
LEVELS_KEPT = 100  # levels stored per column, for --column
MAX_PAIRS = 8  # pairs shown by default (all stored ones with --all)
PAIRS_KEPT = 50
TOP = 30  # columns shown by default
NAME_WIDTH = 24
LINE_BYTES = 140
LEVEL_CHARS = 24  # a level longer than this is cut in the one-line view (in full with --column)
MAX_BYTES = 6_000
COMPACT_BYTES = 700
KIND_ORDER = ("num", "int", "cat", "bool", "date", "other")
KIND_NOTE = {"num": " (float)", "int": " (integer)", "cat": " (category)", "date": " (datetime)"}

HELP = "an agent-safe look at the train part: kinds, missing, levels, ranges, signal, target balance"

EPILOG = f"""\
what each part of the output means:
  profile:  the rows and features it describes: the train part only (the holdout is never read)
  target:   its dtype as y reaches the model (str: the classes are strings, int64: numbers) and the
            class counts with shares (classification), or [min p25 median p75 max], mean and std (regression)
  kinds:    how many columns the model sees as num (float), int (integer), cat (pandas category: text and
            booleans become categories), bool, date (datetime64); then the columns with missing values
  signal:   how the per-column signal is computed: mutual information with the target in nats (0 = none;
            H(target) is the most there is), Miller-Madow bias-corrected, on a seeded sample of at most
            {SAMPLE_ROWS:,} rows; numbers in <= {BINS} quantile bins, categoricals their {TOP_LEVELS} commonest
            levels + other, missing values in a bin of their own. For orientation only: any feature selection
            must still be fitted inside the pipeline
  columns:  one line per column, strongest signal first: name, kind, missing share (- = none), distinct
            values, signal, then for num/int [min p25 median p75 max] and 'zeros' (share of zero values
            among the present ones), for cat/bool the commonest levels with their counts, quoted exactly as the
            strings in the category dtype (use these literals in features), for date [min .. max]
  near-duplicates:
            pairs carrying the same information: |Pearson r| > {PAIR_R} on a sample of <= {PAIR_ROWS:,} rows
            (r shown is on all rows), or 'same partition' (one column is a relabeling of the other). Keeping
            one of a pair loses (almost) nothing
  notes:    constant columns and row-ID-like columns
The default view shows the {TOP} strongest columns and says how many are left out. The statistics are cached
per prepared data (.autoresearch/profile-<manifest id>.json): a second call is instant, and re-preparing
recomputes them.
"""


def add_arguments_profile(p: argparse.ArgumentParser) -> None:
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.description = (
        "An agent-safe look at the train part (data/train.parquet; never the holdout): each column's kind, "
        "missing share, distinct values, quantiles or top levels exactly as the model sees them, a univariate "
        "signal, the target's balance, and near-duplicate column pairs. Bounded output; cached."
    )
    p.epilog = EPILOG
    p.add_argument("--all", action="store_true", help="every column and every stored pair, however many")
    p.add_argument(
        "--column",
        action="append",
        metavar="NAME",
        help="one column in full: all levels (up to 100) with counts, percentiles, mean, std; repeatable",
    )


def run_profile(args) -> int:
    cfg = load_config()
    manifest = _manifest(cfg)
    prof = load(cfg, manifest)
    if args.column:
        print("\n\n".join(column_text(prof, name) for name in args.column))
    else:
        print(render(prof, top=None if args.all else TOP))
    return 0


def _manifest(cfg: Config) -> dict:
    from autoresearch.manifest import load_manifest

    manifest = load_manifest(cfg)
    if manifest is None or not (cfg.data_dir / layout.TRAIN_PART).is_file():
        raise UserError("no prepared data yet: run `uv run prepare.py` first, then `uv run autoresearch profile`")
    return manifest


# ---------------------------------------------------------------------------
# The cache


def cache_path(cfg: Config, manifest: dict):
    return cfg.state_dir / f"profile-{manifest['id']}.json"


def _key(cfg: Config, manifest: dict) -> dict:
    st = os.stat(cfg.data_dir / layout.TRAIN_PART)
    return {
        "version": VERSION,
        "manifest": manifest["id"],
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "inode": st.st_ino,
    }


def cached(cfg: Config, manifest: dict) -> dict | None:
    """The cached profile of the prepared data, or None when there is none or it is stale. Never computes."""
    try:
        key = _key(cfg, manifest)
    except OSError:
        return None
    prof = read_json(cache_path(cfg, manifest))
    return prof if isinstance(prof, dict) and prof.get("key") == key else None


def load(cfg: Config, manifest: dict | None = None) -> dict:
    """The profile of the prepared train part: from the cache, else computed (seconds) and cached."""
    manifest = manifest or _manifest(cfg)
    prof = cached(cfg, manifest)
    if prof is not None:
        return prof
    import pandas as pd

    key = _key(cfg, manifest)
    t0 = time.perf_counter()
    prof = compute(pd.read_parquet(cfg.data_dir / layout.TRAIN_PART), manifest, cfg.seed)
    prof["compute_s"] = round(time.perf_counter() - t0, 2)
    prof["key"] = key
    path = cache_path(cfg, manifest)
    atomic_write(path, json.dumps(prof, ensure_ascii=False, separators=(",", ":")))
    for old in path.parent.glob("profile-*.json"):  # the profiles of earlier preparations
        if old != path:
            old.unlink(missing_ok=True)
    return prof


# ---------------------------------------------------------------------------
# Computing (the only part that needs pandas and numpy)


def compute(train, manifest: dict, seed: int) -> dict:
    """The statistics of `train` (the train part: features + target), as plain JSON-able data. Deterministic."""
    import numpy as np

    target = manifest["target"]
    task = manifest["task"]
    y = train[target]
    X = train.drop(columns=[target])
    n = len(train)
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=SAMPLE_ROWS, replace=False)) if n > SAMPLE_ROWS else np.arange(n)
    y_codes = _target_codes(y.iloc[sample], task, np)
    h_y = _entropy(np.bincount(y_codes), np)

    columns = []
    for name in X.columns:
        s = X[name]
        col = _describe(s, np)
        col["name"] = name
        col["signal"] = _mi(_codes(s.iloc[sample], col["kind"], np), y_codes, np)
        columns.append(col)
    order = sorted(range(len(columns)), key=lambda i: (-columns[i]["signal"], i))
    columns = [columns[i] for i in order]
    for rank, col in enumerate(columns, 1):
        col["rank"] = rank
    pairs, more = _pairs(X, [c["name"] for c in columns], sample, np)

    return {
        "version": VERSION,
        "manifest": manifest["id"],
        "n_rows": n,
        "n_features": X.shape[1],
        "sample_rows": len(sample),
        "seed": seed,
        "target": _describe_target(y, task, np) | {"name": target, "task": task, "entropy": round(h_y, 4)},
        "columns": columns,
        "pairs": pairs,
        "pairs_more": more,
    }


def _kind(s) -> str:
    import pandas as pd

    t = s.dtype
    if isinstance(t, pd.CategoricalDtype):
        return "cat"
    if pd.api.types.is_bool_dtype(t):
        return "bool"
    if pd.api.types.is_datetime64_any_dtype(t):
        return "date"
    if pd.api.types.is_integer_dtype(t):
        return "int"
    if pd.api.types.is_numeric_dtype(t):
        return "num"
    return "other"


def _describe(s, np) -> dict:
    kind = _kind(s)
    n = len(s)
    present = s.dropna()
    out = {"kind": kind, "dtype": str(s.dtype), "missing": int(n - len(present)), "distinct": int(present.nunique())}
    if kind in ("num", "int"):
        v = present.to_numpy(dtype=float)
        finite = v[np.isfinite(v)]
        out["inf"], out["finite"] = int(len(v) - len(finite)), len(finite)
        if len(finite):
            q = np.quantile(finite, [0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1])
            out["quantiles"] = [_num(x) for x in q]
            out["mean"], out["std"] = _num(finite.mean()), _num(finite.std())
            out["zeros"] = int((finite == 0).sum())
            out["negative"] = int((finite < 0).sum())
            out["integral"] = bool(np.all(finite == np.round(finite)))
    elif kind == "date":
        if len(present):
            q = present.quantile([0, 0.25, 0.5, 0.75, 1], interpolation="lower")
            out["quantiles"] = [str(x) for x in q]
    else:  # levels exactly as the model sees them: the category dtype's strings (observed ones only)
        counts = present.value_counts(sort=False)
        counts = counts[counts > 0]
        pos = {v: i for i, v in enumerate(counts.index)}
        top = sorted(counts.items(), key=lambda kv: (-kv[1], pos[kv[0]]))[:LEVELS_KEPT]
        out["levels"] = [[_level(v), int(c)] for v, c in top]
    return out


def _describe_target(y, task: str, np) -> dict:
    out = {"dtype": str(y.dtype), "n": len(y)}
    if task == "regression":
        v = y.to_numpy(dtype=float)
        out["quantiles"] = [_num(x) for x in np.quantile(v, [0, 0.01, 0.25, 0.5, 0.75, 0.99, 1])]
        out["mean"], out["std"] = _num(v.mean()), _num(v.std())
        out["zeros"] = int((v == 0).sum())
        out["distinct"] = int(y.nunique())
    else:
        counts = y.value_counts()
        out["classes"] = [[_level(k), int(c)] for k, c in sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))]
    return out


def _num(x) -> float | None:
    x = float(x)
    return x if math.isfinite(x) else None


def _level(v) -> str:
    """A level as a Python literal: 'yes' for the string yes, 1 for the number 1, so the quotes tell which."""
    if hasattr(v, "item"):
        v = v.item()
    return repr(v)


def _target_codes(y, task: str, np):
    if task == "regression":
        return _numeric_codes(y.to_numpy(dtype=float), np)
    import pandas as pd

    return pd.factorize(y, sort=True)[0]


def _numeric_codes(v, np):
    """At most BINS quantile bins (each value its own when there are few), NaN a bin of its own."""
    nan = np.isnan(v)
    present = v[~nan]
    if len(present) == 0:
        return np.zeros(len(v), dtype=np.int64)
    values = np.unique(present)
    if len(values) <= BINS:
        codes = np.searchsorted(values, v)
    else:
        edges = np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1], method="lower"))
        codes = np.searchsorted(edges, v, side="right")
    codes[nan] = codes[~nan].max() + 1
    return codes.astype(np.int64)


def _codes(s, kind: str, np):
    """The column binned for the signal."""
    import pandas as pd

    if kind in ("num", "int"):
        return _numeric_codes(s.to_numpy(dtype=float, na_value=np.nan), np)
    if kind == "date":
        return _numeric_codes((s - s.min()).dt.total_seconds().to_numpy(dtype=float, na_value=np.nan), np)
    codes = pd.factorize(s)[0]  # -1 for missing
    counts = np.bincount(codes + 1)
    keep = np.zeros(len(counts), dtype=bool)
    keep[np.argsort(-counts[1:], kind="stable")[:TOP_LEVELS] + 1] = True
    keep[0] = True  # missing keeps its own bin
    return np.where(keep[codes + 1], codes + 1, len(counts))


def _entropy(counts, np) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


def _mi(x, y, np) -> float:
    """Mutual information of two code arrays, in nats, Miller-Madow corrected, clipped at 0."""
    n = len(x)
    if n == 0:
        return 0.0
    x = np.unique(x, return_inverse=True)[1]
    ny = int(y.max()) + 1
    joint = np.bincount(x * ny + y)
    cx, cy = np.bincount(x), np.bincount(y)
    mi = _entropy(cx, np) + _entropy(cy, np) - _entropy(joint, np)
    m = lambda c: int((c > 0).sum())
    mi += (m(cx) - 1 + m(cy) - 1 - (m(joint) - 1)) / (2 * n)
    return round(max(mi, 0.0), 4)


def _pairs(X, by_signal: list, sample, np) -> tuple[list, int]:
    """Near-duplicate pairs, [a, b, how], the strongest first: |r| > PAIR_R among numeric columns, and columns
    inducing the same partition; and how many more were found than PAIRS_KEPT."""
    import pandas as pd

    found: dict[tuple, str] = {}
    numeric = [c for c in by_signal if _kind(X[c]) in ("num", "int", "bool")][:PAIR_COLUMNS]
    rows = sample[:: -(-len(sample) // PAIR_ROWS)] if len(sample) else sample  # a seeded subsample
    if len(numeric) > 1:
        M = np.column_stack([X[c].iloc[rows].to_numpy(dtype=float, na_value=np.nan) for c in numeric])
        M[~np.isfinite(M)] = np.nan
        W = np.isfinite(M).astype(float)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-missing column
            mean, sd = np.nanmean(M, axis=0), np.nanstd(M, axis=0)
        ok = np.isfinite(sd) & (sd > 0)
        names = [c for c, keep in zip(numeric, ok, strict=True) if keep]
        Z, W = np.nan_to_num((M[:, ok] - mean[ok]) / sd[ok]), W[:, ok]
        # Pearson r over the rows where both are present, for all pairs at once
        n_ij, s_ij, q_ij = W.T @ W, Z.T @ W, (Z * Z).T @ W  # s_ij: sum of column i where j is present
        cov = n_ij * (Z.T @ Z) - s_ij * s_ij.T
        var = n_ij * q_ij - s_ij**2
        with np.errstate(invalid="ignore", divide="ignore"):
            R = cov / np.sqrt(var * var.T)
        close = np.triu((np.abs(np.nan_to_num(R)) > PAIR_R) & (n_ij >= 10), 1)
        for i, j in zip(*np.nonzero(close), strict=True):
            a = X[names[i]].to_numpy(dtype=float, na_value=np.nan)
            b = X[names[j]].to_numpy(dtype=float, na_value=np.nan)
            both = np.isfinite(a) & np.isfinite(b)
            with np.errstate(invalid="ignore", divide="ignore"):
                r = np.corrcoef(a[both], b[both])[0, 1] if both.sum() > 2 else np.nan
            if np.isfinite(r) and abs(r) > PAIR_R:
                found[(names[i], names[j])] = f"r {r:+.4f}"
    # the same partition: one column is a relabeling of the other. Candidates share their number of values and
    # largest counts on the sample; a candidate pair is checked on the sample, then on every row.
    buckets: dict[tuple, list] = {}
    for c in by_signal:
        codes = pd.factorize(X[c].iloc[sample], use_na_sentinel=False)[0]
        k = int(codes.max()) + 1 if len(codes) else 0
        if 1 < k <= len(sample) // 2:
            buckets.setdefault((k, *np.sort(np.bincount(codes))[-8:].tolist()), []).append((c, codes))
    checks = 0
    for group in buckets.values():
        for i in range(len(group)):
            for j in range(i + 1, len(group)):
                (a, ca), (b, cb) = group[i], group[j]
                checks += 1
                if (a, b) in found or (b, a) in found or checks > PARTITION_CHECKS:
                    continue
                k = int(ca.max()) + 1
                if len(np.unique(ca * k + cb)) == k and _same_partition(X[a], X[b], pd, np):
                    found[(a, b)] = "same partition"
    rank = {c: i for i, c in enumerate(by_signal)}
    pairs = sorted(found.items(), key=lambda kv: (min(rank[kv[0][0]], rank[kv[0][1]]), kv[0]))
    return [[a, b, how] for (a, b), how in pairs[:PAIRS_KEPT]], max(0, len(pairs) - PAIRS_KEPT)


def _same_partition(a, b, pd, np) -> bool:
    ca, cb = pd.factorize(a, use_na_sentinel=False)[0], pd.factorize(b, use_na_sentinel=False)[0]
    k = int(ca.max()) + 1
    return k == int(cb.max()) + 1 and len(np.unique(ca.astype(np.int64) * k + cb)) == k


# ---------------------------------------------------------------------------
# Rendering (plain data in, text out: no pandas)


def render(prof: dict, top: int | None = TOP) -> str:
    """The profile as text: every column when top is None, else the `top` strongest and a count of the rest,
    within MAX_BYTES (fewer columns when long names would overflow it)."""
    cols = prof["columns"]
    shown = len(cols) if top is None else min(top, len(cols))
    while True:
        text = _render(prof, shown, top is None)
        if top is None or shown == 0 or _bytes(text) <= MAX_BYTES:
            return text
        shown -= 1


def _render(prof: dict, n_shown: int, everything: bool) -> str:
    cols, n = prof["columns"], prof["n_rows"]
    shown, rest = cols[:n_shown], cols[n_shown:]
    width = min(NAME_WIDTH, max((len(_name(c["name"])) for c in shown), default=4))
    lines = [
        f"profile: the train part only ({n:,} rows x {prof['n_features']} features; the holdout is never read), "
        f"manifest {prof['manifest']}",
        _target_line(prof["target"]),
        _kinds_line(cols, n),
        f"signal: mutual information with the target in nats (H(target) = {prof['target']['entropy']:.3f}), "
        f"Miller-Madow corrected, on {prof['sample_rows']:,} rows (seeded sample, at most {SAMPLE_ROWS:,}): "
        f"numbers in <= {BINS} quantile bins, categoricals top {TOP_LEVELS} levels + other, missing its own bin",
        "columns, strongest signal first: name, kind, missing, distinct, signal, then [min p25 median p75 max] "
        "zeros% | 'level' count (the exact strings the model sees)",
    ]
    lines += [_column_line(c, width, n) for c in shown]
    if rest:
        with_missing = sum(1 for c in rest if c["missing"])
        lines.append(
            f"  ... {len(rest)} weaker columns not shown (signal <= {rest[0]['signal']:.3f}; {with_missing} of "
            "them with missing values): `uv run autoresearch profile --all` lists them"
        )
    lines += _pairs_lines(prof["pairs"], prof["pairs_more"], None if everything else MAX_PAIRS)
    notes = _notes(prof)
    if notes:
        lines.append("notes: " + "; ".join(notes))
    lines.append("more: `uv run autoresearch profile --column NAME` shows one column in full (all levels, percentiles)")
    return "\n".join(lines)


def _target_line(t: dict, budget: int | None = 400) -> str:
    head = f"target {t['name']!r}: {t['task']}, dtype {t['dtype']}; "
    if "classes" in t:
        items = [f"{lv} {c:,} ({c / t['n']:.1%})" for lv, c in t["classes"]]
        return head + ", ".join(items) if budget is None else _fit(head, items, budget)
    q = t["quantiles"]
    return (
        f"{head}{_quantiles([q[0], q[2], q[3], q[4], q[-1]])}, mean {_g(t['mean'])}, std {_g(t['std'])}, "
        f"{t['distinct']:,} distinct, zeros {_share(t['zeros'], t['n'])}"
        + (f"; p1 {_g(q[1])}, p99 {_g(q[5])}" if budget is None else "")
    )


def _kinds_line(cols: list, n_rows: int) -> str:
    counts: dict[str, int] = {}
    for c in cols:
        counts[c["kind"]] = counts.get(c["kind"], 0) + 1
    kinds = ", ".join(f"{counts[k]} {k}{KIND_NOTE.get(k, '')}" for k in KIND_ORDER if k in counts)
    missing = sorted((c for c in cols if c["missing"]), key=lambda c: (-c["missing"], c["rank"]))
    if not missing:
        return f"kinds: {kinds}; missing values: none, in any column"
    head = f"kinds: {kinds}; missing values in {len(missing)} of {len(cols)} columns: "
    return _fit(head, [f"{_name(c['name'])} {_share(c['missing'], n_rows)}" for c in missing], 300)


def _column_line(c: dict, width: int, n_rows: int) -> str:
    miss = _share(c["missing"], n_rows) if c["missing"] else "-"
    head = f"  {_name(c['name']):<{width}} {c['kind']:<4} {miss:>5} {c['distinct']:>6} {c['signal']:.3f}  "
    return head + _detail(c, LINE_BYTES - _bytes(head) + max(0, len(_name(c["name"])) - width))


def _detail(c: dict, budget: int) -> str:
    if c["kind"] in ("num", "int"):
        q = c.get("quantiles")
        if not q:
            return "(no values)" if not c.get("inf") else f"inf {c['inf']}"
        text = _quantiles([q[0], q[3], q[4], q[5], q[8]])
        if c["zeros"]:
            text += f" zeros {_share(c['zeros'], c['finite'])}"
        if c.get("inf"):
            text += f" inf {c['inf']}"
        return text
    if c["kind"] == "date":
        q = c.get("quantiles")
        return f"[{_day(q[0])} .. {_day(q[-1])}]" if q else "(no values)"
    items = [f"{_cut(lv)} {n}" for lv, n in c["levels"]]
    return _fit("", items, budget, more=c["distinct"] - len(items))


def _pairs_lines(pairs: list, extra: int, limit: int | None) -> list[str]:
    head = (
        f"near-duplicates (|r| > {PAIR_R} on <= {PAIR_ROWS:,} sampled rows, r shown on all rows; or the same "
        "partition of the rows):"
    )
    if not pairs:
        return [head + " none"]
    shown = pairs if limit is None else pairs[:limit]
    lines = [head] + [f"  {_name(a)} ~ {_name(b)} ({how})" for a, b, how in shown]
    left = len(pairs) - len(shown) + extra
    if left:
        lines.append(f"  ... {left} more pairs" + (": `--all` lists them" if len(shown) < len(pairs) else ""))
    return lines


def _notes(prof: dict) -> list[str]:
    cols, n = prof["columns"], prof["n_rows"]
    out = []
    constant = [c["name"] for c in cols if c["distinct"] <= 1 and c["missing"] in (0, n)]
    if constant:
        out.append(_fit("constant (no information): ", [_name(c) for c in constant], 200))
    ids = [c["name"] for c in cols if n >= 50 and c["distinct"] == n and c["kind"] in ("int", "cat", "other")]
    if ids:
        out.append(_fit("unique per row (an ID?): ", [_name(c) for c in ids], 200))
    inf = [c["name"] for c in cols if c.get("inf")]
    if inf:
        out.append(_fit("infinite values: ", [_name(c) for c in inf], 200))
    return out


# ---------------------------------------------------------------------------
# One column in full


def column_text(prof: dict, name: str) -> str:
    """Everything stored about one column (or the target): all kept levels, percentiles, pairs."""
    t = prof["target"]
    if name == t["name"]:
        return _target_line(t, budget=None)
    by_name = {c["name"]: c for c in prof["columns"]}
    if name not in by_name:
        close = difflib.get_close_matches(name, list(by_name), n=3)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        raise UserError(f"no column {name!r} in the train part{hint}")
    c, n = by_name[name], prof["n_rows"]
    lines = [
        f"column {name!r}: {c['kind']} (dtype {c['dtype']}), signal {c['signal']:.4f} "
        f"(rank {c['rank']} of {len(prof['columns'])})",
        f"rows {n:,}: missing {c['missing']:,} ({_share(c['missing'], n) if c['missing'] else 'none'}), "
        f"{c['distinct']:,} distinct values",
    ]
    if c["kind"] in ("num", "int") and c.get("quantiles"):
        labels = ("min", "p1", "p5", "p25", "median", "p75", "p95", "p99", "max")
        lines.append("percentiles: " + ", ".join(f"{k} {_g(v)}" for k, v in zip(labels, c["quantiles"], strict=True)))
        lines.append(
            f"mean {_g(c['mean'])}, std {_g(c['std'])}; zeros {c['zeros']:,} ({_share(c['zeros'], c['finite'])}), "
            f"negative {c['negative']:,}, infinite {c['inf']:,}, integer-valued: {'yes' if c['integral'] else 'no'}"
        )
    elif c["kind"] == "date" and c.get("quantiles"):
        labels = ("min", "p25", "median", "p75", "max")
        lines.append("quantiles: " + ", ".join(f"{k} {v}" for k, v in zip(labels, c["quantiles"], strict=True)))
    elif "levels" in c:
        shown = len(c["levels"])
        head = (
            f"levels ({c['distinct']:,}, commonest first, quoted exactly as the strings the model sees"
            + (f"; the {shown} commonest" if shown < c["distinct"] else "")
            + "): "
        )
        lines += _wrap(head, [f"{lv} {k:,}" for lv, k in c["levels"]])
    partners = [(b if a == name else a, how) for a, b, how in prof["pairs"] if name in (a, b)]
    if partners:
        lines.append("near-duplicate of: " + ", ".join(f"{p} ({how})" for p, how in partners))
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# The compact form, for the start card and the status card


def compact(cfg: Config, manifest: dict, limit_bytes: int = COMPACT_BYTES, compute: bool = True) -> str:
    """A few lines for a card: the target's balance, the kinds, the missing values, the categoricals' levels
    (exact strings) and the strongest columns, at most `limit_bytes` bytes (UTF-8) in all.

    Uses the cached profile; computes it when there is none and `compute` (seconds on a big table: pass
    compute=False where a card must stay instant, e.g. the SessionStart hook's status card, and you get a
    one-line hint instead until something has computed the profile)."""
    prof = load(cfg, manifest) if compute else cached(cfg, manifest)
    if prof is None:
        return _clip("data profile: `uv run autoresearch profile` (not computed yet)", limit_bytes)
    return compact_text(prof, limit_bytes)


def compact_text(prof: dict, limit_bytes: int = COMPACT_BYTES) -> str:
    """compact() of a loaded profile. Lines in order of importance, each within its share of the limit:
    the target's balance, kinds and missing values, the categoricals' levels, the strongest columns, a hint."""
    t, cols, n = prof["target"], prof["columns"], prof["n_rows"]
    hint = "(`uv run autoresearch profile`: ranges, counts, near-duplicates)"
    reserve = _bytes(hint) + 1 if limit_bytes >= 250 else 0
    if "classes" in t:
        items = [f"{lv} {k / t['n']:.1%}" for lv, k in t["classes"]]
        target = lambda room: _fit(f"target {t['name']!r} ({t['dtype']}): ", items, room)
    else:
        q = t["quantiles"]
        target = lambda room: f"target {t['name']!r} ({t['dtype']}): {_quantiles([q[0], q[2], q[3], q[4], q[-1]])}"
    counts: dict[str, int] = {}
    for c in cols:
        counts[c["kind"]] = counts.get(c["kind"], 0) + 1
    missing = sorted((c for c in cols if c["missing"]), key=lambda c: (-c["missing"], c["rank"]))
    head = "kinds: " + ", ".join(f"{counts[k]} {k}" for k in KIND_ORDER if k in counts) + "; missing: "
    miss = [f"{_name(c['name'])} {_share(c['missing'], n)}" for c in missing]
    kinds = lambda room: _fit(head, miss, room) if miss else head + "none"
    cats = []
    for c in cols:
        if "levels" in c:
            lv = [_cut(v) for v, _ in c["levels"][:4]]
            more = f"/+{c['distinct'] - len(lv)}" if c["distinct"] > len(lv) else ""
            cats.append(f"{_name(c['name'])} {'/'.join(lv)}{more}")
    levels = lambda room: _fit("levels: ", cats, room, sep="; ", need_one=True) if cats else ""
    names = [_name(c["name"]) for c in cols if c["signal"] > 0]
    strongest = lambda room: _fit("strongest: ", names, room, need_one=True) if names else ""
    lines: list[str] = []
    left = limit_bytes - reserve

    def take(build, cap: int) -> None:
        nonlocal left
        room = min(cap, left - (1 if lines else 0))
        line = build(room) if room >= 20 else ""
        line = _clip(line, room) if _bytes(line) > room else line
        if line:
            left -= _bytes(line) + (1 if lines else 0)
            lines.append(line)

    take(target, max(limit_bytes * 3 // 10, 120))
    take(kinds, max(limit_bytes * 3 // 10, 100))
    last = min(limit_bytes // 5, 160)
    take(levels, left - last - 1 if left > last + 60 else left)
    take(strongest, last)
    if reserve:
        lines.append(hint)
    return _clip("\n".join(lines), limit_bytes)


# ---------------------------------------------------------------------------
# Formatting helpers


def _bytes(s: str) -> int:
    return len(s.encode())


def _clip(text: str, limit: int) -> str:
    """At most `limit` bytes: whole lines first, then the last line cut."""
    if _bytes(text) <= limit:
        return text
    out = []
    for line in text.split("\n"):
        room = limit - sum(_bytes(x) + 1 for x in out)
        if _bytes(line) <= room:
            out.append(line)
        else:
            if room > 4:
                out.append(line.encode()[: room - 3].decode(errors="ignore") + "...")
            break
    return "\n".join(out)


def _fit(prefix: str, items: list, budget: int, more: int = 0, sep: str = ", ", need_one: bool = False) -> str:
    """prefix + as many items as fit in `budget` bytes with '... +N more' for the rest (and `more` unlisted);
    "" when need_one and not even one item fits."""
    total = len(items) + more
    out = prefix
    for i, item in enumerate(items):
        piece = (sep if i else "") + item
        rest = total - i - 1
        if _bytes(out + piece + (f"{sep}... +{rest} more" if rest else "")) > budget:
            if need_one and not i:
                return ""
            return out + (sep if i else "") + f"... +{total - i} more"
        out += piece
    return out + (f"{sep}... +{more} more" if more else "")


def _wrap(head: str, items: list, width: int = 118) -> list[str]:
    """head + items joined by ", ", in lines of about `width`, never splitting an item (a level may hold spaces)."""
    lines, line = [], head
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if len(line) + 1 + len(piece) > width and line.strip():
            lines.append(line)
            line = "  " + piece
        else:
            line += ("" if line.endswith(": ") or not line.strip() else " ") + piece
    return [*lines, line]


def _name(name: str) -> str:
    return name if len(name) <= 60 else name[:57] + "..."


def _cut(literal: str) -> str:
    return literal if len(literal) <= LEVEL_CHARS else literal[: LEVEL_CHARS - 3] + "..."


def _share(k: int, n: int) -> str:
    if not k:
        return "0%"
    p = 100 * k / max(n, 1)
    if p < 0.1:
        return "<0.1%"
    return f"{p:.0f}%" if p >= 10 else f"{p:.1f}%"


def _g(x) -> str:
    if x is None:
        return "nan"
    return f"{x:.4g}" if x != int(x) or abs(x) >= 1e6 else str(int(x))


def _quantiles(q: list) -> str:
    return "[" + " ".join(_g(x) for x in q) + "]"


def _day(s: str) -> str:
    return s[:-9] if s.endswith(" 00:00:00") else s
