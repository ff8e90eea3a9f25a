"""`autoresearch predict`: an exported model folder applied to new rows (CSV or Parquet), anywhere.

The columns and their types are checked against metadata.json first. Pickles of functions and classes defined
in train.py refer to a module named `train`, so the saved train.py is imported under that name before
unpickling; the `from prepare import ...` inside it is served from metadata.json (prepare.py reads the
project's config and data at import, which a deployed model has not).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from autoresearch.errors import UserError
from autoresearch.export import META, MODEL, SOURCE, versions

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
