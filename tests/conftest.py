"""Shared fixtures: a real copy of the project in a temporary git repository, driven by real subprocesses."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT_FILES = ("prepare.py", "train.py", "pyproject.toml", "uv.lock", "program.md", ".gitignore", "README.md")
PROJECT_DIRS = ("src", ".claude")
# small and fast by default; tests that need the full shape pass their own config
FAST_CONFIG = {"folds": 3, "repeats": 1, "budget_s": 60}

# train.py code: an estimator that honours the contract except for what predict_proba returns. No
# scikit-learn, so a child evaluation stays cheap; needs `import numpy as np` above it.
FAKE_ESTIMATOR = """
class Model:
    def fit(self, X, y):
        return self

    def predict(self, X):
        return np.zeros(len(X))

    def predict_proba(self, X):
        n = len(X)
        return PROBA


def build_pipeline(params):
    return Model()
"""


def fake_estimator(proba: str = "np.full((n, 2), 0.5)") -> str:
    """FAKE_ESTIMATOR whose predict_proba returns proba, an expression of n = len(X) (the default: roc_auc 0.5)."""
    return FAKE_ESTIMATOR.replace("PROBA", proba)


class Project:
    """A throwaway autoresearch project: files copied from this repo, its own git history."""

    def __init__(self, path: Path):
        self.path = path

    def run(
        self, *args: str, check: bool = False, timeout: float = 300, env: dict | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess:
        """Run `python ARGS...` in the project with this test session's interpreter (no uv, no network)."""
        full_env = {**os.environ, **(env or {})}
        full_env.pop("VIRTUAL_ENV", None)
        proc = subprocess.run(
            [sys.executable, *args],
            cwd=self.path,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=full_env,
            input=input,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return proc

    def cli(self, *args: str, **kw) -> subprocess.CompletedProcess:
        return self.run("-P", "-m", "autoresearch.cli", *args, **kw)

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, capture_output=True, text=True, check=True).stdout.strip()

    def write(self, rel: str, text: str) -> Path:
        p = self.path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
        return p

    def read(self, rel: str) -> str:
        return (self.path / rel).read_text()

    def set_config(self, **fields) -> None:
        """Replace the [tool.autoresearch] table of the project's pyproject.toml."""
        text = self.read("pyproject.toml")
        head = text[: text.index("[tool.autoresearch]")]
        body = "".join(f"{k} = {_toml(v)}\n" for k, v in fields.items())
        self.write("pyproject.toml", head + "[tool.autoresearch]\n" + body)

    def edit_train(self, pattern: str, replacement: str, count: int = 1) -> None:
        text = self.read("train.py")
        new, n = re.subn(pattern, replacement, text, count=count)
        assert n, f"pattern {pattern!r} not found in train.py"
        self.write("train.py", new)

    def commit_all(self, message: str = "setup") -> None:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return repr(v)


def make_project(path: Path, config: dict | None = FAST_CONFIG, commit: bool = True) -> Project:
    path.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        if (ROOT / name).exists():
            shutil.copy2(ROOT / name, path / name)
    for name in PROJECT_DIRS:
        if (ROOT / name).exists():
            skip = shutil.ignore_patterns("__pycache__", "settings.local.json")
            shutil.copytree(ROOT / name, path / name, ignore=skip)
    proj = Project(path)
    if config is not None:
        proj.set_config(**config)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=path, check=True)
    for k, v in (("user.email", "test@example.invalid"), ("user.name", "test")):
        subprocess.run(["git", "config", k, v], cwd=path, check=True)
    if commit:
        proj.commit_all("initial project")
    return proj


@pytest.fixture
def project(tmp_path) -> Project:
    return make_project(tmp_path / "proj")
