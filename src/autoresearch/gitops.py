"""The git side of the ratchet (gitpython over the git CLI).

A candidate is committed as an object first, on no branch: the branch ref moves only when the keep
rule says keep, in a single compare-and-swap update-ref. So a step killed at any moment leaves the
branch at the incumbent or at the kept candidate, never in between.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from autoresearch import layout
from autoresearch.boot import on_end
from autoresearch.errors import UserError

if TYPE_CHECKING:
    import git

TRAIN = layout.TRAIN


def _git():
    """gitpython, imported on first use: the step starts its sandbox before it pays for this import."""
    import git

    return git


def open_repo(root: Path) -> git.Repo:
    git = _git()
    try:
        repo = git.Repo(root)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise UserError(
            f"{root} is not a git repository: run `git init && git add -A && git commit -m init` first"
        ) from None
    # gitpython keeps `git cat-file` helpers running per repo; the CLI ends without teardown (boot.end_process),
    # so they are stopped there, not left to notice the closed pipe later
    on_end(repo.close)
    if not repo.head.is_valid():
        raise UserError("the repository has no commit yet: run `git add -A && git commit -m init` first")
    return repo


def changed_files(repo: git.Repo) -> list[str]:
    """Modified, staged, deleted and untracked (not ignored) paths, relative to the root."""
    out = []
    entries = iter(repo.git.status("--porcelain=v1", "-z", "--untracked-files=all").split("\0"))
    for entry in entries:
        if len(entry) > 3:
            out.append(entry[3:])
            if entry[0] in "RC":  # a rename or copy: under -z its source path follows as an entry of its own
                source = next(entries, "")
                if source:
                    out.append(source)
    return out


def branch_name(tag: str) -> str:
    return f"autoresearch/{tag}"


def current_branch(repo: git.Repo) -> str | None:
    return None if repo.head.is_detached else repo.active_branch.name


def tip(repo: git.Repo, ref: str) -> str | None:
    git = _git()
    try:
        return repo.git.rev_parse("--verify", "-q", f"{ref}^{{commit}}")
    except git.GitCommandError:
        return None


def refs(repo: git.Repo, prefix: str) -> dict[str, str]:
    """ref -> commit for every ref under `prefix`, in one git call."""
    out = repo.git.for_each_ref("--format=%(refname) %(objectname)", prefix)
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def blob_of_worktree(repo: git.Repo, path: str = TRAIN) -> str:
    return repo.git.hash_object(path)


def blob_at(repo: git.Repo, commit: str, path: str = TRAIN) -> str | None:
    git = _git()
    try:
        return repo.git.rev_parse(f"{commit}:{path}")
    except git.GitCommandError:
        return None


def show(repo: git.Repo, commit: str, path: str = TRAIN) -> str:
    return repo.git.show(f"{commit}:{path}")


def make_candidate(repo: git.Repo, incumbent: str, message: str, path: str = TRAIN) -> str:
    """A commit of the incumbent's tree with the work tree's train.py, parented on the incumbent; no ref moves."""
    blob = repo.git.hash_object("-w", path)
    fd, index = tempfile.mkstemp(prefix="autoresearch-index-")
    os.close(fd)
    env = {"GIT_INDEX_FILE": index}
    try:
        repo.git.read_tree(incumbent, env=env)
        repo.git.update_index("--add", "--cacheinfo", f"100644,{blob},{path}", env=env)
        tree = repo.git.write_tree(env=env)
    finally:
        os.unlink(index)
    return repo.git.commit_tree(tree, "-p", incumbent, "-m", message)


def move_ref(repo: git.Repo, ref: str, new: str, old: str | None = None, reason: str = "autoresearch") -> None:
    args = ["-m", reason, ref, new] + ([old] if old else [])
    repo.git.update_ref(*args)


def delete_ref(repo: git.Repo, ref: str) -> None:
    git = _git()
    try:
        repo.git.update_ref("-d", ref)
    except git.GitCommandError:
        pass


def restore(repo: git.Repo, commit: str, *paths: str) -> None:
    """Work tree and index of `paths` back to their content at `commit`."""
    repo.git.checkout(commit, "--", *paths)


def sync_index(repo: git.Repo) -> None:
    """Index back to HEAD (after the branch ref moved under it); the work tree is untouched."""
    repo.git.reset("-q")


def checkout_branch(repo: git.Repo, branch: str, create_at: str | None = None) -> None:
    if create_at is not None:
        repo.git.checkout("-q", "-b", branch, create_at)
    else:
        repo.git.checkout("-q", branch)
