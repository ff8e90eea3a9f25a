"""The ratchet's integrity checks: before a step (is only train.py changed, is the harness as prepared, is
anything planted that the trusted side would import), and after each evaluation (did anything private or
frozen move, are the run's refs intact). Damage is put back and named; the step is then INVALID.

The sandbox already keeps train.py away from all of this; these checks are the second wall, and they also
catch what happened between steps (a human's or an agent's shell).
"""

from __future__ import annotations

from pathlib import Path

from autoresearch import gitops, layout, ledger, runstate
from autoresearch.config import Config
from autoresearch.errors import UserError
from autoresearch.manifest import load_manifest, problems
from autoresearch.manifest import write as reprepare
from autoresearch.records import Run
from autoresearch.static_check import declaration_problems, findings

ROOT_PLANTS = ("sitecustomize.py", "usercustomize.py")
IMPORTABLE = (".py", ".pyc", ".pth", ".so", ".pyd")


# ---------------------------------------------------------------------------
# Plants: code the trusted side or every later sandbox would import


def plants(cfg: Config, repo=None) -> list[str]:
    """Files Python would import that nobody may add: each named with what to do. Checked before any command
    that runs or judges code."""
    root = cfg.root
    tracked = set(repo.git.ls_files().splitlines()) if repo is not None else set()
    out = []
    shadowed = _module_names()
    for entry in sorted(root.iterdir()):
        name = entry.name
        if name in layout.ROOT_PYTHON:
            continue
        module = (
            name.split(".")[0]
            if entry.is_file() and name.endswith(IMPORTABLE)
            else (name if (entry / "__init__.py").is_file() else None)
        )
        if name in ROOT_PLANTS or name.endswith(".pth"):
            out.append(f"{name} in the project folder runs in every Python process started there: delete it")
        elif module in shadowed and name not in tracked:
            out.append(
                f"{name} in the project folder shadows the module {module!r} for anything started there: delete it"
            )
    src = root / "src"
    if src.is_dir():
        for entry in sorted(src.iterdir()):
            if entry.name != "autoresearch":
                out.append(f"src/{entry.name} sits beside the harness package on Python's path: delete it")
    manifest = load_manifest(cfg)
    if manifest and manifest.get("venv"):
        out += _venv_changes(manifest["venv"], layout.venv_fingerprint())
    hooks = root / ".git" / "hooks"
    if hooks.is_dir():
        for hook in sorted(hooks.iterdir()):
            if not hook.name.endswith(".sample"):
                out.append(f".git/hooks/{hook.name} would run inside git commands of the harness: delete it")
    if repo is not None:
        try:
            path = repo.git.config("--get", "core.hooksPath")
        except Exception:  # noqa: BLE001 - unset
            path = ""
        if path:
            out.append(
                f"git's core.hooksPath is set ({path}): hooks there would run inside the harness's git "
                "commands; `git config --unset core.hooksPath`"
            )
    return out


_MODULES: set[str] = set()


def _module_names() -> set[str]:
    """Top-level names Python would look up: the standard library's and every installed package's."""
    if not _MODULES:
        import sys
        import sysconfig

        _MODULES.update(sys.stdlib_module_names)
        for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
            name = entry.name
            if name.endswith((".dist-info", ".egg-info", ".pth")) or name.startswith(("_", ".")):
                continue
            _MODULES.add(name.split(".")[0])
    return _MODULES


def _venv_changes(before: dict, now: dict) -> list[str]:
    out = []
    where = before.get("site_packages", "site-packages")
    for name in sorted(set(now["pth"]) | set(before.get("pth", {}))):
        if now["pth"].get(name) != before.get("pth", {}).get(name):
            verb = (
                "added to"
                if name not in before.get("pth", {})
                else "removed from"
                if name not in now["pth"]
                else "changed in"
            )
            out.append(
                f"{name} was {verb} {where} since the data was prepared (a .pth runs at every start): "
                "delete it, or `uv sync --reinstall` to restore the environment"
            )
    for path in sorted(set(now["customize"]) - set(before.get("customize", []))):
        out.append(f"{path} appeared since the data was prepared (it runs at every start): delete it")
    if not out and now["files"] != before.get("files"):
        out.append(
            f"files in {where} changed since the data was prepared: `uv sync --reinstall` restores them "
            "(if you changed the environment on purpose, `uv run prepare.py --force` and a new run)"
        )
    return out


def refuse_plants(cfg: Config, repo=None) -> None:
    found = plants(cfg, repo)
    if found:
        raise UserError(
            "refused before running anything: "
            + "; ".join(found[:5])
            + (f" (and {len(found) - 5} more)" if len(found) > 5 else "")
        )


# ---------------------------------------------------------------------------
# Before a step


def other_changes(cfg: Config, repo, run: Run) -> str | None:
    """What differs from the incumbent besides train.py, with the frozen files among it put back."""
    others = [f for f in gitops.changed_files(repo) if f != layout.TRAIN and f not in layout.TOLERATED]
    if not others:
        return None
    restored = restore_frozen(cfg, repo, run, others)
    return (
        "only train.py may change, but these differ from the incumbent: "
        + ", ".join(others[:8])
        + (
            f" (frozen files restored from git: {', '.join(restored)})"
            if restored
            else "; undo them (git checkout -- FILE, or delete new files)"
        )
    )


def pre_checks(cfg: Config, repo, run: Run, source: str) -> list[str]:
    """Problems that make the step INVALID before anything is committed; harness damage is put back first."""
    bad = [p for p in [other_changes(cfg, repo, run)] if p]
    manifest = load_manifest(cfg)
    drift = problems(cfg, manifest) if manifest else ["data/manifest.json is missing"]
    if drift and manifest:
        repair_harness(cfg, repo, run)
        bad.append("the harness differs from its manifest: " + "; ".join(drift[:4]) + " (restored)")
    elif drift:
        bad.append("data/manifest.json is missing: run `uv run prepare.py`")
    bad += [f"train.py {f}" for f in findings(source)]
    bad += declaration_problems(source)
    if manifest and manifest["id"] != run.manifest_id:
        bad.append(
            f"the prepared data changed since the run started ({run.manifest_id} → {manifest['id']}): "
            "start a new run tag"
        )
    return bad


def restore_frozen(cfg: Config, repo, run: Run, paths: list[str]) -> list[str]:
    manifest = load_manifest(cfg)
    frozen = set(manifest.get("frozen", {})) if manifest else set()
    tracked = set(repo.git.ls_files().splitlines())
    fix = [p for p in paths if p in frozen and p in tracked]
    if fix:
        gitops.restore(repo, run.incumbent.commit, *fix)
    return fix


# ---------------------------------------------------------------------------
# Around an evaluation


def snapshot(cfg: Config, repo, tag: str) -> dict:
    """What an evaluation must leave as it found it (it cannot reach any of it: verified anyway): the bytes of
    the run's private files, and the run's refs."""
    rdir = runstate.run_dir(cfg.root, tag)
    files = [
        cfg.root / ledger.FILENAME,
        rdir / "run.json",
        rdir / "holdout.jsonl",
        runstate.state_dir(cfg.root) / "active.json",
        runstate.pending_path(cfg.root, tag),
    ]
    return {
        "files": {p: (p.read_bytes() if p.is_file() else None) for p in files},
        "refs": gitops.refs(repo, f"refs/autoresearch/{tag}/") | gitops.refs(repo, "refs/heads/"),
    }


def post_checks(cfg: Config, repo, run: Run, cand: str, before: dict, violations: list[str]) -> list[str]:
    """What the evaluation changed that it must not have: each named (and put back)."""
    damage = list(violations[:10])  # each attempt the in-sandbox guard saw, not only the first
    for p, was in before["files"].items():
        now = p.read_bytes() if p.is_file() else None
        if now != was:
            damage.append(f"{p.relative_to(cfg.root)} was changed during the run (restored)")
            if was is None:
                p.unlink(missing_ok=True)
            else:
                p.write_bytes(was)
    if gitops.blob_of_worktree(repo) != gitops.blob_at(repo, cand):
        damage.append("train.py rewrote itself during the run")
    changed = [f for f in gitops.changed_files(repo) if f != layout.TRAIN and f not in layout.TOLERATED]
    if changed:
        damage.append("files changed during the run: " + ", ".join(changed[:5]) + " (restored)")
        undo_changes(cfg, repo, run, changed)
    manifest = load_manifest(cfg)
    drift = problems(cfg, manifest) if manifest else ["data/manifest.json was removed"]
    if drift:
        damage.append("harness changed during the run: " + "; ".join(drift[:3]) + " (restored)")
        repair_harness(cfg, repo, run)
    damage += restore_refs(repo, before["refs"], run.tag)
    return damage


def undo_changes(cfg: Config, repo, run: Run, changed: list[str]) -> None:
    tracked = set(repo.git.ls_files().splitlines())
    for rel in changed:
        if rel in tracked:
            gitops.restore(repo, run.incumbent.commit, rel)
        elif layout.is_frozen(rel):
            (cfg.root / rel).unlink(missing_ok=True)


def repair_harness(cfg: Config, repo, run: Run) -> None:
    manifest = load_manifest(cfg) or {}
    # planted files go first: re-preparing hashes the frozen files into the new manifest, which would
    # otherwise bless them (and report them as removed on every later step)
    for rel in set(layout.frozen_files(cfg.root)) - set(manifest.get("frozen", {})):
        (cfg.root / rel).unlink(missing_ok=True)
    if any(p.startswith("data/") for p in problems(cfg, manifest)):
        new = reprepare(cfg)  # deterministic: the same split and folds, byte for byte
        if new["files"] != manifest.get("files"):
            raise UserError(
                "the prepared data could not be restored to its manifest; run `uv run prepare.py --force` "
                "and start a new run tag"
            )


def restore_refs(repo, before: dict[str, str], tag: str) -> list[str]:
    """Every ref the run had before the evaluation (the branches, refs/autoresearch/<tag>/...) where it was:
    one deleted or moved is put back (its commit outlives it)."""
    now = gitops.refs(repo, f"refs/autoresearch/{tag}/") | gitops.refs(repo, "refs/heads/")
    out = []
    for ref, commit in sorted(before.items()):
        if now.get(ref) != commit:
            gitops.move_ref(repo, ref, commit)
            out.append(f"{ref} was {'moved' if ref in now else 'deleted'} during the run (put back)")
    return out
