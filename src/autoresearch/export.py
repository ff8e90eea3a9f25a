"""`autoresearch export` and `autoresearch predict`: a usable model out of a night of experiments.

export   fits a commit's train.py pipeline on the whole train part in a budgeted child process, scores the
         holdout once, and saves models/<tag>-<commit8>/: model.joblib, metadata.json and that train.py.
predict  loads such a folder anywhere and applies it to new rows (CSV or Parquet), checking the columns and
         their types against metadata.json first.

Pickles of functions and classes defined in train.py refer to a module named `train`, so predict imports the
saved train.py under that name before unpickling; the `from prepare import ...` inside it is served from
metadata.json (prepare.py reads the project's config and data at import, which a deployed model has not).
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

from autoresearch.errors import UserError

MODEL, META, SOURCE = "model.joblib", "metadata.json", "train.py"
PACKAGES = ("scikit-learn", "lightgbm", "pandas", "numpy", "joblib")

PREDICT_HELP = """\
The folder holds model.joblib, metadata.json and the train.py it was fitted from. Unpickling needs the
functions and classes that train.py defines, so predict imports that train.py as module `train` first (it
runs its top-level code: only load models you trust, as with any pickle). train.py's
`from prepare import TASK, METRIC, SEED, N_JOBS` is answered from metadata.json, so predict works from any
folder, without the project, its data or its pyproject.toml; it needs the same libraries (see
metadata.json "versions"; a different scikit-learn or LightGBM version is reported).

Input columns are checked against the training columns: a missing column is an error, extra columns are
ignored (with a note), a numeric column holding text is an error naming the column and the expected type,
and text columns become 'category' with the training categories (unseen values become missing, with a note).
Output: the input rows as read, plus `prediction` and, for classifiers, one `proba_<class>` column per class.
"""


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
    out = Path(args.out).resolve() if args.out else cfg.root / "models" / f"{tag or 'commit'}-{commit[:8]}"
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

    from autoresearch import layout
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
        "direction": "higher is better" if manifest["higher_is_better"] else "lower is better",
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
    top = root / rel.parts[0] if rel.parts[0] == "models" else out
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


# ---------------------------------------------------------------------------
# predict


def add_arguments_predict(p: argparse.ArgumentParser) -> None:
    p.epilog = PREDICT_HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("model", help="an export folder (models/<tag>-<commit8>/) or the model.joblib inside it")
    p.add_argument("input", help="the rows to predict: .csv, .tsv or .parquet with the training feature columns")
    p.add_argument(
        "-o",
        "--output",
        help="where to write the rows with their predictions (.csv, .tsv or .parquet; '-' for stdout); "
        "default: <input>.predictions.csv beside the input",
    )


def run_predict(args) -> int:
    folder, meta = load_metadata(Path(args.model))
    src = Path(args.input)
    raw = read_rows(src, meta)
    X, notes = conform(raw, meta, src.name)
    notes += _version_notes(meta)
    est = load_model(folder, meta)
    out = raw.copy()
    for col in ("prediction", *(f"proba_{c}" for c in meta.get("classes") or [])):
        if col in out.columns:
            notes.append(f"the input's column {col!r} is replaced by the model's output")
    out["prediction"] = est.predict(X)
    if meta["task"] != "regression" and hasattr(est, "predict_proba"):
        proba = est.predict_proba(X)
        for i, c in enumerate(getattr(est, "classes_", meta.get("classes") or [])):
            out[f"proba_{c}"] = proba[:, i]
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    dest = _write_rows(out, args.output, src)
    if dest is not None:
        print(f"predicted {len(out)} rows with {folder.name} ({meta['commit'][:8]}): {dest}")
    return 0


def load_metadata(path: Path) -> tuple[Path, dict]:
    folder = path.parent if path.is_file() else path
    meta_path = folder / META
    if not meta_path.is_file():
        raise UserError(
            f"{path}: no {META} here; give the folder `autoresearch export` wrote "
            "(models/<tag>-<commit8>/) or the model.joblib inside it"
        )
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"{meta_path}: not valid JSON ({e}); export the model again") from None
    for name in (MODEL, SOURCE):
        if not (folder / name).is_file():
            raise UserError(f"{folder}: {name} is missing; export the model again")
    return folder, meta


def read_rows(path: Path, meta: dict):
    import pandas as pd

    if not path.is_file():
        raise UserError(f"{path}: no such file; give a .csv, .tsv or .parquet file of rows to predict")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if suffix in (".csv", ".tsv", ".txt"):
            # text columns are read as text, so a category such as "415" or "007" keeps its training spelling
            text = {f["name"]: str for f in meta["features"] if f["dtype"] == "category"}
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=text)
    except (ValueError, OSError) as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise UserError(f"{path}: cannot read it ({first})") from None
    raise UserError(f"{path}: unknown file type {suffix!r}; use .csv, .tsv or .parquet")


def conform(df, meta: dict, where: str):
    """The model's feature frame, typed as in training; returns (X, notes). Errors name the column."""
    import pandas as pd

    names = [f["name"] for f in meta["features"]]
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise UserError(
            f"{where}: missing column{'s' if len(missing) > 1 else ''} "
            f"{', '.join(map(repr, missing[:10]))}{' ...' if len(missing) > 10 else ''}; the model needs "
            f"all {len(names)} training columns: {', '.join(names)}"
        )
    notes = []
    extra = [str(c) for c in df.columns if c not in names]
    if extra:
        shown = [f"{c} (the target)" if c == meta["target"] else c for c in extra[:10]]
        notes.append(
            f"ignored {len(extra)} column(s) the model was not trained on: "
            + ", ".join(shown)
            + (" ..." if len(extra) > 10 else "")
        )
    cols = {}
    for f in meta["features"]:
        cols[f["name"]], note = _convert(df[f["name"]], f, where)
        if note:
            notes.append(note)
    return pd.DataFrame(cols, index=df.index), notes


def _convert(s, feature: dict, where: str):
    import pandas as pd

    name, dtype = feature["name"], feature["dtype"]
    if dtype == "category":
        cats = feature.get("categories") or []
        if all(isinstance(c, str) for c in cats):
            s = s.astype(object).map(lambda v: v if isinstance(v, str) else str(v), na_action="ignore")
        out = s.astype(pd.CategoricalDtype(cats))
        unseen = s.notna() & out.isna()
        note = None
        if unseen.any():
            examples = ", ".join(map(repr, pd.unique(s[unseen])[:3]))
            note = (
                f"column {name!r}: {int(unseen.sum())} value(s) not seen in training (e.g. {examples}) "
                "are treated as missing"
            )
        return out, note
    if dtype.startswith(("int", "uint", "float", "Int", "UInt", "Float")):
        return _as_number(s, name, dtype, where), None
    if dtype.startswith("datetime"):
        out = pd.to_datetime(s, errors="coerce")
        _refuse_unparsed(s, out, name, dtype, where, "dates")
        return out, None
    if dtype in ("bool", "boolean") and not pd.api.types.is_bool_dtype(s):
        raise UserError(f"{where}: column {name!r} must be {dtype} (true/false) as in training, got {s.dtype}")
    return s, None


def _as_number(s, name: str, dtype: str, where: str):
    import pandas as pd

    if pd.api.types.is_bool_dtype(s) or not pd.api.types.is_numeric_dtype(s):
        out = pd.to_numeric(s.astype(object).where(s.notna()), errors="coerce")
        _refuse_unparsed(s, out, name, dtype, where, "numbers")
    else:
        out = s
    if dtype.startswith(("int", "uint")) and (out.isna().any() or (out.dropna() % 1 != 0).any()):
        return out.astype("float64")  # missing or fractional values cannot be int64; the model takes floats
    try:
        return out.astype(dtype)
    except (TypeError, ValueError):
        return out.astype("float64")


def _refuse_unparsed(raw, parsed, name: str, dtype: str, where: str, what: str) -> None:
    bad = raw.notna() & parsed.isna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        first = bad.to_numpy().nonzero()[0][0]
        examples = ", ".join(repr(v) for v in list(dict.fromkeys(raw[bad].astype(str)))[:3])
        raise UserError(
            f"{where}: column {name!r} must hold {what} ({dtype}, as in training) but has text such as "
            f"{examples} ({int(bad.sum())} value(s), first in data row {first + 1}); fix those values or "
            "leave them empty (missing)"
        )


def _version_notes(meta: dict) -> list[str]:
    now, then = versions(), meta.get("versions") or {}
    return [
        f"{name} is {now.get(name)} here but the model was fitted with {then[name]}: "
        "predictions may differ or loading may fail"
        for name in ("scikit-learn", "lightgbm")
        if then.get(name) and now.get(name) != then.get(name)
    ]


def load_model(folder: Path, meta: dict):
    import joblib

    from autoresearch.contract import import_train

    try:
        import_train(folder / SOURCE, meta.get("prepare") or {})
    except Exception as e:
        raise UserError(
            f"{folder / SOURCE}: importing it failed ({type(e).__name__}: {e}); the model's code needs "
            "the libraries it was trained with (see metadata.json versions)"
        ) from None
    try:
        return joblib.load(folder / MODEL)
    except Exception as e:
        raise UserError(
            f"{folder / MODEL}: cannot load it ({type(e).__name__}: {e}); install the library "
            "versions in metadata.json or export the model again"
        ) from None


def _write_rows(df, output: str | None, src: Path) -> str | None:
    if output == "-":
        try:
            df.to_csv(sys.stdout, index=False)
            sys.stdout.flush()
        except BrokenPipeError:  # `| head`: the reader has all it wants
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return None
    dest = Path(output) if output else src.with_name(f"{src.stem}.predictions.csv")
    suffix = dest.suffix.lower()
    if suffix in (".parquet", ".pq"):
        df.to_parquet(dest, index=False)
    elif suffix in (".csv", ".tsv", ".txt"):
        df.to_csv(dest, index=False, sep="\t" if suffix == ".tsv" else ",")
    else:
        raise UserError(f"-o {output}: unknown file type {suffix!r}; use .csv, .tsv or .parquet (or '-' for stdout)")
    return str(dest)
