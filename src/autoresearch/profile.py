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
    structure     exact facts between columns of at most STRUCT_LEVELS values, on every row: one column
                  determines another (each value of A goes with one value of B: a zip and its city), and
                  a value of one column marks the same rows as a value of another ('No internet service'
                  in one column is internet_service 'No'); what an agent would otherwise infer from counts

Only levels seen in the train part are shown: the `category` dtype's declared categories also hold levels
that occur in the holdout only, and those are never printed. No per-level target rates are shown either: a
mapping copied from them into train.py would leak each fold's validation targets.

Bounds (set in autoresearch.profile_text, asserted by tests/test_profile.py): a column line is at most
LINE_BYTES (140) bytes, plus the name's length beyond NAME_WIDTH; the default view shows at most TOP (30)
columns, the strongest (the rest are counted, and `--all` / `--column NAME` show them) and at most MAX_PAIRS
pairs, and drops columns from its end rather than pass MAX_BYTES (6,000 bytes) however wide the table. Measured:
a column line is ~80 bytes on average (numbers ~75, categoricals up to 140), so 20 columns cost ~1.6 KB plus a
~0.7 KB header; the default 19-column table prints 2,726 bytes in all; 500-column tables print 3.7-4.7 KB.
`compact()` (the start and status cards' form: ~440 bytes on the default table) is at most its `limit_bytes`
(default COMPACT_BYTES, 700).

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
import json
import math
import os
import time
import warnings

from autoresearch import layout
from autoresearch.config import Config, load_config
from autoresearch.errors import UserError
from autoresearch.files import atomic_write, read_json
from autoresearch.profile_text import COMPACT_BYTES, TOP, clip, column_text, compact_text, render

VERSION = 3  # of the cached statistics: a change recomputes every cache
SAMPLE_ROWS = 20_000  # the signal's sample
PAIR_ROWS = 5_000  # the correlation screen's sample (a prefix of the signal's)
PAIR_COLUMNS = 400  # at most this many numeric columns (the strongest) enter the correlation screen
PAIR_R = 0.99
PARTITION_CHECKS = 5_000  # candidate pairs checked for the same partition, at most
STRUCT_LEVELS = 200  # columns with 2..this many distinct values enter the structure facts ...
STRUCT_COLUMNS = 60  # ... the strongest this many of them
STRUCT_MIN_ROWS = 10  # a shared value is reported when it marks at least this many rows
STRUCT_KEPT = 40  # facts stored (the text shows fewer)
BINS = 16
TOP_LEVELS = 15
LEVELS_KEPT = 100  # levels stored per column, for --column
PAIRS_KEPT = 50

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
  structure:
            exact facts on every train row among columns of 2..{STRUCT_LEVELS} values (missing counted as a
            value): 'A determines B' (each value of A goes with one value of B), and 'the same N rows: A a =
            B b' (those values mark exactly the same rows, at least {STRUCT_MIN_ROWS} of them): facts you may
            rely on in features() instead of inferring them from counts
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
        "signal, the target's balance, near-duplicate column pairs and exact structure between columns. "
        "Bounded output; cached."
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
    structure, structure_more = _structure(X, [c["name"] for c in columns], np)

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
        "structure": structure,
        "structure_more": structure_more,
        # how it was computed, for the text to say: {"sample_max", "bins", "top_levels", "pair_r", "pair_rows"}
        "method": dict(sample_max=SAMPLE_ROWS, bins=BINS, top_levels=TOP_LEVELS, pair_r=PAIR_R, pair_rows=PAIR_ROWS),
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


def _structure(X, by_signal: list, np) -> tuple[list, int]:
    """Exact facts between low-cardinality columns, on every row (missing is a value of its own):
    ["determines", A, B, "k_A -> k_B values"] when each value of A goes with a single value of B, and
    ["same rows", rows, [[A, a], [B, b], ...]] when A == a, B == b, ... all mark exactly the same rows (pairs
    where one column determines the other, or that are the same partition, are left out: there every value
    would match). The strongest columns first; how many more facts there were than STRUCT_KEPT."""
    import pandas as pd

    coded, values = [], {}
    for c in by_signal:
        codes, values[c] = pd.factorize(X[c], use_na_sentinel=False)
        k = len(values[c])
        if 2 <= k <= STRUCT_LEVELS:
            coded.append((c, codes.astype(np.int64), k))
        if len(coded) >= STRUCT_COLUMNS:
            break
    facts, marks = [], {}  # marks: (column, code) -> the group of marks with the same rows, and its rows
    for i, (a, ca, ka) in enumerate(coded):
        for b, cb, kb in coded[i + 1 :]:
            joint = np.bincount(ca * kb + cb, minlength=ka * kb).reshape(ka, kb)
            a_to_b = bool(((joint > 0).sum(axis=1) <= 1).all())
            b_to_a = bool(((joint > 0).sum(axis=0) <= 1).all())
            if a_to_b and b_to_a:
                continue  # a relabeling: a near-duplicate pair, where every value would match
            if a_to_b or b_to_a:
                src, dst, ks, kd = (a, b, ka, kb) if a_to_b else (b, a, kb, ka)
                facts.append(["determines", src, dst, f"{ks} -> {kd} values"])
                continue
            rows_a, rows_b = joint.sum(axis=1), joint.sum(axis=0)
            same = (joint == rows_a[:, None]) & (joint == rows_b[None, :]) & (joint >= STRUCT_MIN_ROWS)
            for la, lb in zip(*np.nonzero(same), strict=True):
                ga = marks.setdefault((a, int(la)), [[(a, int(la))], int(joint[la, lb])])
                gb = marks.get((b, int(lb)))
                if gb is None:
                    ga[0].append((b, int(lb)))
                    marks[(b, int(lb))] = ga
                elif gb is not ga:  # equal row sets are transitive: merge the two groups
                    ga[0] += gb[0]
                    for m in gb[0]:
                        marks[m] = ga
    seen = set()
    for group, rows in marks.values():
        if id(group) in seen:
            continue
        seen.add(id(group))
        facts.append(["same rows", rows, [[c, _level(values[c][k])] for c, k in group]])
    return facts[:STRUCT_KEPT], max(0, len(facts) - STRUCT_KEPT)


def _same_partition(a, b, pd, np) -> bool:
    ca, cb = pd.factorize(a, use_na_sentinel=False)[0], pd.factorize(b, use_na_sentinel=False)[0]
    k = int(ca.max()) + 1
    return k == int(cb.max()) + 1 and len(np.unique(ca.astype(np.int64) * k + cb)) == k


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
        return clip("data profile: `uv run autoresearch profile` (not computed yet)", limit_bytes)
    return compact_text(prof, limit_bytes)
