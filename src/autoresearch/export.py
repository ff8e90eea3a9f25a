"""`autoresearch export`: a usable model out of a night of experiments.

It fits a commit's train.py pipeline on the whole train part in the sandbox, scores the holdout once, and
saves models/<tag>-<commit8>/: model.joblib, metadata.json and that train.py (autoresearch.predict applies it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from autoresearch import layout
from autoresearch.errors import UserError
from autoresearch.metrics import direction

MODEL, META, SOURCE = "model.joblib", "metadata.json", "train.py"
PACKAGES = ("scikit-learn", "lightgbm", "pandas", "numpy", "joblib")


# ---------------------------------------------------------------------------
# export


def add_arguments_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("--commit", help="the commit whose train.py to fit (default: the run's incumbent)")
    p.add_argument("--tag", help="the run (default: the active run); names the folder models/<tag>-<commit8>/")
    p.add_argument("--out", help="the folder to write (default: models/<tag>-<commit8>/ in the project)")
    p.add_argument("--force", action="store_true", help="replace the folder if it exists")
    p.add_argument(
        "--show-holdout",
        action="store_true",
        help="print the holdout score even when stdout is not a terminal (it is always in metadata.json)",
    )


def run_export(args) -> int:
    from autoresearch import gitops, integrity, runstate
    from autoresearch.config import load_config

    cfg = load_config()
    manifest = _prepared(cfg)
    repo = gitops.open_repo(cfg.root)
    tag = args.tag or runstate.active_tag(cfg.root)
    run = runstate.load_run(cfg.root, tag) if tag else None
    if args.tag and run is None:
        raise UserError(f"no run named {args.tag!r} in .autoresearch/runs/; drop --tag or name a started run")
    commit = _resolve_commit(repo, args.commit or (run.incumbent.commit if run else None))
    source = _train_source(repo, commit)
    out = Path(args.out).resolve() if args.out else cfg.root / layout.MODELS / f"{tag or 'commit'}-{commit[:8]}"
    if out.exists() and any(out.iterdir()) and not args.force:
        raise UserError(f"{out} already exists; pass --force to replace it, or --out DIR for another folder")
    integrity.refuse_plants(cfg, repo)
    # no run lock: export writes nothing of the run's, so it may run beside a live step
    with tempfile.TemporaryDirectory(prefix="autoresearch-export-") as tmp:
        work = Path(tmp)
        (work / SOURCE).write_text(source)
        done = _fit(cfg, work)
        meta = _metadata(cfg, manifest, run, tag, commit, done)
        (work / META).write_text(json.dumps(meta, indent=1))
        _install(work, out)
    _ignore_in_git(repo, cfg.root, out)
    shown = meta["holdout"]["score"] if args.show_holdout or sys.stdout.isatty() else None
    print(
        f"exported {commit[:8]} ({'iter ' + str(meta['iter']) if meta['iter'] is not None else 'not in the ledger'}"
        f"{', run ' + tag if tag else ''}) to {_rel(out, cfg.root)}: {MODEL}, {META}, {SOURCE}"
    )
    print(
        f"fitted on {meta['n_train']} train rows in {meta['fit_s']:.1f} s; "
        + (
            f"holdout {meta['metric']} {shown:.4f} on {meta['holdout']['n_rows']} rows"
            if shown is not None
            else f"the holdout score is in {_rel(out / META, cfg.root)}, for the human"
        )
    )
    print(f"use it: uv run autoresearch predict {_rel(out, cfg.root)} NEW_ROWS.csv -o predictions.csv")
    return 0


def _prepared(cfg) -> dict:
    """The manifest, when the train and holdout files are as prepared. Unlike a step, export does not mind a
    changed harness file (an upgrade after the run): only the rows it fits and scores on matter."""
    from autoresearch.manifest import ensure, load_manifest, problems

    manifest = load_manifest(cfg)
    if manifest is None:
        return ensure(cfg, quiet=True)
    moved = [p for p in problems(cfg, manifest) if p.startswith("data/")]
    if moved:
        raise UserError(
            "; ".join(moved) + ": the rows the run was scored on are gone; `uv run prepare.py --force` "
            "rebuilds them from the same config (the same split), then export again"
        )
    return manifest


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _resolve_commit(repo, ref: str | None) -> str:
    import git

    if not ref:
        raise UserError(
            "no run here, so no incumbent to export: pass --commit <sha> (any commit with a train.py), "
            "or start a run with `uv run autoresearch start <tag>`"
        )
    try:
        return repo.git.rev_parse("--verify", "-q", f"{ref}^{{commit}}")
    except git.GitCommandError:
        raise UserError(
            f"--commit {ref!r} is not a commit of this repository; use a sha from results.tsv "
            "(the commit column) or `git log`"
        ) from None


def _train_source(repo, commit: str) -> str:
    import git

    try:
        return repo.git.show(f"{commit}:{SOURCE}") + "\n"
    except git.GitCommandError:
        raise UserError(f"commit {commit[:12]} has no train.py; pick a commit of the run (results.tsv)") from None


def _fit(cfg, work: Path) -> dict:
    """Fit in the sandbox on the whole train part; the holdout is scored here; the pickled model comes back as
    bytes that this side stores without loading."""
    import pandas as pd

    from autoresearch.engine import fit_holdout
    from autoresearch.text import error_tail

    out = fit_holdout(cfg, work / SOURCE, log_path=work / "export.log", export=True)
    if out.status != "ok" or out.model is None:
        tail = "\n".join(f"  | {line}" for line in error_tail(out.tail))
        raise UserError(
            f"fitting the pipeline failed ({out.status}: {out.reason}); the budget and memory cap are budget_s and "
            f"memory_mb in pyproject.toml [tool.autoresearch]\n{tail}"
        )
    (work / MODEL).write_bytes(out.model)
    X = pd.read_parquet(cfg.data_dir / layout.TRAIN_FEATURES)
    n_holdout = len(pd.read_parquet(cfg.data_dir / layout.HOLDOUT_FEATURES, columns=[X.columns[0]]))
    return {
        "holdout": out.holdout,
        "fit_s": round(sum(out.fit_s), 3),
        "n_train": len(X),
        "n_holdout": n_holdout,
        "features": [_feature(name, dtype) for name, dtype in X.dtypes.items()],
        "classes": out.classes,
    }


def _metadata(cfg, manifest: dict, run: dict | None, tag: str | None, commit: str, done: dict) -> dict:
    from autoresearch import ledger

    row = next((r for r in ledger.read(cfg.root, tag) if tag and commit.startswith(r["commit"] or "-")), None)
    return {
        "format": 1,
        "commit": commit,
        "tag": tag,
        "iter": int(row["iter"]) if row else None,
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "validation": None
        if row is None
        else {"status": row["status"], "mean": ledger.number(row, "metric"), "se": ledger.number(row, "se")},
        "config": cfg.as_dict(),
        "manifest_id": manifest["id"],
        "run_manifest_id": run.manifest_id if run else None,
        "source": manifest["source"],
        "target": manifest["target"],
        "task": manifest["task"],
        "metric": manifest["metric"],
        "higher_is_better": manifest["higher_is_better"],
        "direction": direction(manifest["higher_is_better"]),
        "holdout": {"score": done["holdout"], "n_rows": done["n_holdout"]},
        "n_train": done["n_train"],
        "fit_s": done["fit_s"],
        "features": done["features"],
        "classes": done["classes"],
        "prepare": {"TASK": manifest["task"], "METRIC": manifest["metric"], "SEED": cfg.seed, "N_JOBS": cfg.n_jobs},
        "sandboxed": cfg.sandbox,
        "versions": versions(),
        "files": {"model": MODEL, "source": SOURCE},
    }


def versions() -> dict:
    from importlib import metadata

    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _install(work: Path, out: Path) -> None:
    """Copy into a staging folder beside `out`, then swap it in: a failed export leaves no half folder."""
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f".{out.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for name in (MODEL, META, SOURCE):
        shutil.copy2(work / name, staging / name)
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)


def _ignore_in_git(repo, root: Path, out: Path) -> None:
    """An untracked folder in the work tree would make the next step INVALID (only train.py may change):
    a one-line .gitignore keeps an export inside the project out of git's sight."""
    import git

    try:
        rel = out.relative_to(root)
    except ValueError:
        return
    try:
        repo.git.check_ignore("-q", str(rel / META))
        return  # already ignored (e.g. models/ in .gitignore)
    except git.GitCommandError:
        pass
    top = root / rel.parts[0] if rel.parts[0] == layout.MODELS else out
    (top / ".gitignore").write_text("# exported models: local files, never committed\n*\n")


# ---------------------------------------------------------------------------
# the model's columns


def _feature(name: str, dtype) -> dict:
    out = {"name": name, "dtype": str(dtype)}
    if str(dtype) == "category":
        out["categories"] = _json_list(dtype.categories)
    return out


def _json_list(values) -> list | None:
    if values is None:
        return None
    return [v.item() if hasattr(v, "item") else v for v in list(values)]
